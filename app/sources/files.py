"""Media files as sources: audio decoded to 16 kHz, video frames at their real pts.

Paced ``REALTIME``, a file behaves like a device (demos, latency figures, tests);
``FAST`` feeds the pipeline as fast as it consumes, without dropping anything, and
lets it wait for exactly the frames it needs, so results do not depend on timing.
"""
from __future__ import annotations

import math
from pathlib import Path

from app.sources.base import (BLOCK_SAMPLES, AudioRing, AudioSource, CaptureClock, FaultHandler,
                              Frame, FrameBuffer, Pacing, VideoSource)
from models.media import MediaError, ended_early, iter_audio, probe, read_video_frames

FAST_LEAD_S = 0.5  # how far ahead of the pipeline a fast video source may run


class AudioFileSource(AudioSource):
    """The audio track of any file FFmpeg reads (wav, flac, mp3, or a video's sound)."""

    def __init__(self, path: str | Path, pacing: Pacing = Pacing.REALTIME) -> None:
        super().__init__()
        self.path = Path(path)
        self.pacing = pacing
        self.name = f"audio file {self.path.name}"
        info = probe(self.path)  # MediaError now, not on a thread later
        if not info.has_audio:
            raise MediaError(f"{self.path}: has no audio stream")
        self._info = info

    def start(self, ring: AudioRing, clock: CaptureClock, on_fault: FaultHandler) -> None:
        self._on_fault = on_fault
        self._run_thread(lambda: self._feed(ring, clock))

    def _feed(self, ring: AudioRing, clock: CaptureClock) -> None:
        written = read = 0
        try:
            for chunk in iter_audio(self.path, self.sample_rate):
                read += chunk.size
                if self.pacing is Pacing.FAST:
                    if not ring.write_waiting(chunk, self._stop):
                        return
                    continue
                for begin in range(0, chunk.size, BLOCK_SAMPLES):
                    block = chunk[begin:begin + BLOCK_SAMPLES]
                    # A block is "captured" once its last sample's time has passed.
                    if not clock.sleep_until((written + block.size) / self.sample_rate,
                                             self._stop):
                        return
                    ring.write(block)
                    written += block.size
            early = ended_early(self._info, "audio", read / self.sample_rate)
            if early:
                self.fault(early)
        except MediaError as error:
            self.fault(f"stopped reading audio: {error}")


class VideoFileSource(VideoSource):
    """The video track of a file, frames stamped with their presentation time."""

    def __init__(self, path: str | Path, pacing: Pacing = Pacing.REALTIME) -> None:
        super().__init__()
        self.path = Path(path)
        self.pacing = pacing
        self.name = f"video file {self.path.name}"
        info = probe(self.path)
        if not info.has_video:
            raise MediaError(f"{self.path}: has no video stream")
        self._info = info
        self._frames: FrameBuffer | None = None

    def start(self, frames: FrameBuffer, clock: CaptureClock, on_fault: FaultHandler) -> None:
        self._on_fault = on_fault
        self._frames = frames
        frames.complete_until = 0.0  # tells the pipeline to wait for frames by time
        self._run_thread(lambda: self._feed(frames, clock))

    def _feed(self, frames: FrameBuffer, clock: CaptureClock) -> None:
        decoded = read_video_frames(self.path)
        last_s = 0.0
        try:
            upcoming = next(decoded, None)
            frames.complete_until = upcoming.time_s if upcoming else math.inf
            while upcoming is not None:
                frame = Frame(upcoming.index, upcoming.time_s, upcoming.rgb)
                last_s = frame.time_s
                if self.pacing is Pacing.FAST:
                    if not frames.put_waiting(frame, FAST_LEAD_S, self._stop):
                        return
                else:
                    if not clock.sleep_until(frame.time_s, self._stop):
                        return
                    frames.put(frame)
                upcoming = next(decoded, None)
                # Every frame before the next one's time is now delivered.
                frames.complete_until = upcoming.time_s if upcoming else math.inf
            early = ended_early(self._info, "video", last_s)
            if early:
                self.fault(early)
        except MediaError as error:
            self.fault(f"stopped reading video: {error}")
        finally:
            decoded.close()  # closes the container at once, also when stopped early

    def _finish(self) -> None:
        if self._frames is not None:
            self._frames.finished = True
            self._frames.complete_until = math.inf


def open_file(path: str | Path, pacing: Pacing = Pacing.REALTIME
              ) -> tuple[AudioFileSource | None, VideoFileSource | None]:
    """Sources for whatever ``path`` holds: audio, video or both. MediaError if neither."""
    info = probe(path)
    if not (info.has_audio or info.has_video):
        raise MediaError(f"{path}: holds neither audio nor video")
    audio = AudioFileSource(path, pacing) if info.has_audio else None
    video = VideoFileSource(path, pacing) if info.has_video else None
    return audio, video


__all__ = ["AudioFileSource", "VideoFileSource", "open_file"]
