"""Every file of a recording folder except session.json, written on the recorder's
thread: predictions.csv, ratings.csv, events.tsv and, with media, audio.wav, video.mp4
and frames.csv (``app.recording.layout`` says what each holds).

Audio comes as ``AudioChunk``s on the engine's sample clock; audio.wav starts at the
recording's first sample and is kept continuous: samples that never arrived are written
as silence and counted, so the file's clock never slips. Video frames come with their
folder time; video.mp4 opens at the first one and, like audio.wav, starts at 0.0 s (a
black placeholder frame when the first frame is later).
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from app.pipeline import AudioChunk
from app.recording import layout
from app.recording.tables import RowWriter
from app.recording.video import VideoWriter
from app.recording.wav import WavWriter

_FIRST_FRAME_SLACK_S = 1e-3  # a first frame later than this gets a placeholder at 0.0 s


class RecordingFiles:
    """The open files of one recording. Raises OSError when they cannot be created
    (whatever was opened is closed again)."""

    def __init__(self, out_dir: Path, rate: int, *, media: bool, video: bool, fps: float,
                 first_sample: int = 0) -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.fps = fps
        self.tables: dict[str, RowWriter] = {}
        self.wav: WavWriter | None = None
        self.video: VideoWriter | None = None
        self.next_sample = first_sample  # the engine sample audio.wav expects next
        self.audio_gap = 0  # samples written as silence because none arrived
        self.audio_dropped = 0  # ... of which the recorder's queue had dropped
        self.frames_before_start = self.frames_unordered = 0
        self.first_frame_s: float | None = None
        self.last_frame_s: float | None = None
        self.placeholder = False
        try:
            self._open(media, video)
        except BaseException:
            self.close_quietly()
            raise

    def _open(self, media: bool, video: bool) -> None:
        out = self.out_dir
        self.tables[layout.PREDICTIONS] = RowWriter(out / layout.PREDICTIONS,
                                                    layout.PREDICTION_COLUMNS)
        self.tables[layout.RATINGS] = RowWriter(out / layout.RATINGS, layout.RATING_COLUMNS)
        self.tables[layout.EVENTS] = RowWriter(out / layout.EVENTS, layout.EVENT_COLUMNS, "\t")
        if media:
            self.wav = WavWriter(out / layout.AUDIO, self.rate)
            if video:
                self.tables[layout.FRAMES] = RowWriter(out / layout.FRAMES, layout.FRAME_COLUMNS)

    # -- tables ---------------------------------------------------------------------------
    def write_prediction(self, time_s: float, p) -> None:
        self.tables[layout.PREDICTIONS].write(layout.prediction_row(
            time_s, p.arousal, p.valence, p.face_found, p.face_score, p.voice_active,
            p.latency_ms))

    def write_rating(self, time_s: float, arousal: float, valence: float) -> None:
        self.tables[layout.RATINGS].write((f"{time_s:.3f}", f"{arousal:.4f}", f"{valence:.4f}"))

    def write_event(self, onset: float, duration: float, trial_type: str, value: str) -> None:
        self.tables[layout.EVENTS].write((f"{onset:.3f}", f"{duration:g}", trial_type, value))

    def rows(self, name: str) -> int:
        table = self.tables.get(name)
        return table.rows if table is not None else 0

    # -- media ----------------------------------------------------------------------------
    def write_audio(self, chunks: list[AudioChunk], end_sample: int | None,
                    queue_dropped: bool = False) -> None:
        """Chunks in order; ``end_sample``: nothing from it on (the time limit);
        ``queue_dropped``: the subscription lost chunks, so a gap counts as dropped."""
        for chunk in chunks:
            index, samples = chunk.start, chunk.samples
            if index > self.next_sample:  # samples we never saw: keep the clock, say so
                gap = index - self.next_sample
                if end_sample is not None:
                    gap = min(gap, max(0, end_sample - self.next_sample))
                self.wav.write(np.zeros(gap, np.float32))
                self.audio_gap += gap
                self.audio_dropped += gap if queue_dropped else 0
                self.next_sample += gap
            skip = self.next_sample - index
            if skip >= samples.size:
                continue
            samples = samples[max(0, skip):]
            if end_sample is not None:
                samples = samples[:max(0, end_sample - self.next_sample)]
            self.wav.write(samples)
            self.next_sample += samples.size

    def write_frames(self, timed: list[tuple[float, object]], duration_s: float | None) -> None:
        """(folder seconds, ``Frame``) pairs -> video.mp4 and frames.csv."""
        for time_s, frame in timed:
            if time_s < 0:
                self.frames_before_start += 1
                continue
            if duration_s is not None and time_s >= duration_s:
                continue
            if self.video is None:
                self._open_video(frame.rgb, time_s)
            if not self.video.write(frame.rgb, time_s):
                self.frames_unordered += 1
                continue
            self.tables[layout.FRAMES].write((self.video.frames - 1, f"{time_s:.6f}",
                                              frame.index))
            if self.first_frame_s is None:
                self.first_frame_s = time_s
            self.last_frame_s = time_s

    def _open_video(self, rgb: np.ndarray, first_s: float) -> None:
        height, width = rgb.shape[:2]
        self.video = VideoWriter(self.out_dir / layout.VIDEO, width, height, self.fps)
        if first_s > _FIRST_FRAME_SLACK_S:  # video.mp4 starts at 0.0 s like audio.wav
            self.video.write(np.zeros_like(rgb), 0.0)
            self.placeholder = True

    @property
    def audio_samples(self) -> int | None:
        return self.wav.frames if self.wav is not None else None

    @property
    def video_frames(self) -> int:
        return self.video.frames if self.video is not None else 0

    def frame_span_s(self) -> float | None:
        if self.first_frame_s is None or self.last_frame_s is None:
            return None
        return self.last_frame_s - self.first_frame_s

    def media_info(self, stored: bool) -> dict:
        """session.json's ``media``."""
        wav, video = self.wav, self.video
        return {"stored": stored,
                "audio": None if wav is None else {
                    "file": layout.AUDIO, "samples": wav.frames,
                    "seconds": wav.frames / self.rate, "format": "PCM 16-bit mono"},
                "video": None if video is None else {
                    "file": layout.VIDEO, "codec": "h264", "frames": video.frames,
                    "width": video.width, "height": video.height,
                    "placeholder_frame_at_0": self.placeholder}}

    # -- flushing and closing -------------------------------------------------------------
    def flush(self, sync: bool = False) -> None:
        for table in self.tables.values():
            table.flush(sync)
        if self.wav is not None:
            self.wav.flush(sync)

    def close(self) -> None:
        if self.video is not None:
            self.video.close()
        if self.wav is not None:
            self.wav.close()
        for table in self.tables.values():
            table.close()

    def close_quietly(self) -> None:
        """Close what can be closed (the disk may be gone); never raises."""
        for closer in (self.video, self.wav, *self.tables.values()):
            if closer is None:
                continue
            try:
                closer.close()
            except (OSError, av.FFmpegError, ValueError):
                pass
