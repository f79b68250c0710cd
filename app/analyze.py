"""One recorded file -> arousal and valence every 40 ms (``analyze_file``), and its outputs.

The command `affect-monitor analyze` (many files, folders, manifests, session folders;
resumable; local processes or a Dask cluster) lives in ``app.study``; this module is the
analysis of one file it runs. Per input, ``predictions.csv`` (one row per 40 ms: time_s,
arousal, valence, face_found, face_score, voice_active) and ``summary.json``. The steps
are prepared exactly as live (``app.pipeline.StepPreparer``: same alignment, same crops,
same voice detector) but the model runs the long-T graph on chunks of steps, which
batches the CNNs and is many times faster than real time.
"""
from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.pipeline import StepPreparer
from app.provenance import software_version
from app.sources.base import Frame
from app.vad import VoiceDetector, load_voice_detector
from models.faces import FaceTracker
from models.media import MediaError, ended_early, iter_audio, probe, read_video_frames
from models.runtime import AffectSession
from models.spec import SAMPLE_RATE, STEP_SECONDS, WINDOW_SAMPLES

CHUNK_STEPS = 250  # 10 s per model call: large enough to batch the CNNs, small in memory
CSV_COLUMNS = ("time_s", "arousal", "valence", "face_found", "face_score", "voice_active")
_KEEP_FRAMES_S = 1.0  # frames older than this behind the window cannot be chosen any more


@dataclass(frozen=True)
class FileAnalysis:
    """Per-step results for one file; all arrays have one entry per 40 ms step."""

    path: Path
    time_s: np.ndarray
    arousal: np.ndarray
    valence: np.ndarray
    face_found: np.ndarray
    face_score: np.ndarray
    voice_active: np.ndarray
    duration_s: float
    seconds_taken: float
    ended_early: str | None = None  # the file stopped before its header's duration

    @property
    def steps(self) -> int:
        return int(self.time_s.size)


def analyze_file(path: str | Path, session: AffectSession, *,
                 audio_path: str | Path | None = None,
                 vad: VoiceDetector | None = None, tracker: FaceTracker | None = None,
                 chunk_steps: int = CHUNK_STEPS,
                 on_steps: Callable[[int], None] | None = None,
                 audio_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 decoder_threads: int | None = None) -> FileAnalysis:
    """Predict every 40 ms of ``path``. Raises MediaError when the file is unusable.

    ``audio_path``: the sound comes from this file instead (a recorded session's
    ``audio.wav`` beside its ``video.mp4``; both start at 0.0 s on the session clock).
    ``on_steps(n)`` is called after each model chunk with the number of new steps.
    ``audio_transform`` changes each 40 ms window before it is used (robustness checks:
    the same video with silent or louder audio, benchmarks/voice_heard.py).
    ``vad`` and ``tracker`` are reset first, so one pair can serve many files.
    ``decoder_threads``: FFmpeg's threads per stream (None: one per core).
    """
    path = Path(path)
    started = time.monotonic()
    info, sound = _probe(path, audio_path)
    own_tracker = tracker is None and info.has_video
    if own_tracker:
        tracker = FaceTracker(session.spec.face)
    preparer = StepPreparer(tracker if info.has_video else None,
                            vad if vad is not None else load_voice_detector())
    preparer.reset()
    frames = (_FrameWindow(read_video_frames(path, decoder_threads)) if info.has_video
              else None)
    chunks = _Chunks(session, chunk_steps, on_steps)
    try:
        for index, window in enumerate(_windows(info, sound, audio_transform,
                                                decoder_threads)):
            end_s = (index + 1) * WINDOW_SAMPLES / SAMPLE_RATE
            centre_s = end_s - WINDOW_SAMPLES / (2 * SAMPLE_RATE)
            candidates = frames.until(end_s) if frames is not None else []
            chunks.add(preparer.prepare(window, centre_s, candidates))
        chunks.run()
        early = _ended_early(info, sound, frames, len(chunks.found))
    finally:
        if frames is not None:
            frames.close()
        if own_tracker:
            tracker.close()
    return chunks.analysis(path, sound, early, time.monotonic() - started)


def _windows(info, sound, audio_transform, threads: int | None) -> Iterator[np.ndarray]:
    """The 40 ms audio windows to analyse: the sound's, else silence as long as the video."""
    windows = (_audio_windows(sound.path, threads) if sound.has_audio
               else _silent_windows(info.duration_s or 0.0))
    if audio_transform is not None:
        windows = (audio_transform(window) for window in windows)
    return windows


def _ended_early(info, sound, frames: _FrameWindow | None, steps: int) -> str | None:
    """Why the file stopped before its header's duration, or None."""
    notes = [ended_early(sound, "audio", steps * WINDOW_SAMPLES / SAMPLE_RATE)
             if sound.has_audio else None,
             ended_early(info, "video", frames.last_s)
             if frames is not None and frames.exhausted else None]
    return next((note for note in notes if note), None)


def _probe(path: Path, audio_path: str | Path | None):
    """(the file's MediaInfo, that of the file the sound comes from); MediaError when
    there is nothing to analyse."""
    info = probe(path)
    sound = info
    if audio_path is not None:
        sound = probe(audio_path)
        if not sound.has_audio:
            raise MediaError(f"{audio_path}: has no audio stream")
    if not (sound.has_audio or info.has_video):
        raise MediaError(f"{path}: holds neither audio nor video")
    return info, sound


class _Chunks:
    """Prepared steps gathered into chunks of ``size`` steps, each one model call that
    carries the LSTM state on; the per-step outputs and flags in order."""

    def __init__(self, session: AffectSession, size: int,
                 on_steps: Callable[[int], None] | None) -> None:
        self.session = session
        self.on_steps = on_steps
        self.state = session.initial_state(1)
        self.audio = np.zeros((size, WINDOW_SAMPLES), np.float32)
        self.faces = np.zeros((size, *session.spec.face_shape), np.float32)
        self.mask = np.zeros(size, np.float32)
        self.found: list[bool] = []
        self.score: list[float] = []
        self.voice: list[bool] = []
        self.outputs: list[np.ndarray] = []
        self.filled = 0

    def add(self, prepared) -> None:
        i = self.filled
        self.audio[i] = prepared.audio
        if prepared.face is not None:
            self.faces[i], self.mask[i] = prepared.face, 1.0
        else:
            self.faces[i], self.mask[i] = 0.0, 0.0
        self.found.append(prepared.face_found)
        self.score.append(prepared.face_score)
        self.voice.append(prepared.voice_active)
        self.filled += 1
        if self.filled == len(self.mask):
            self.run()

    def run(self) -> None:
        """The model on the steps gathered so far (if any); ``on_steps(n)`` after it."""
        n = self.filled
        if not n:
            return
        result, self.state = self.session.run(self.audio[None, :n], self.faces[None, :n],
                                              self.mask[None, :n], self.state)
        self.outputs.append(result[0])
        self.filled = 0
        if self.on_steps:
            self.on_steps(n)

    def analysis(self, path: Path, sound, early: str | None, seconds: float) -> FileAnalysis:
        steps = len(self.found)
        values = (np.concatenate(self.outputs) if self.outputs
                  else np.zeros((0, 2), np.float32))
        duration_s = sound.duration_s if sound.duration_s is not None else steps * STEP_SECONDS
        return FileAnalysis(
            path=path, time_s=np.arange(steps) * WINDOW_SAMPLES / SAMPLE_RATE,
            arousal=values[:, 0], valence=values[:, 1], face_found=np.array(self.found, bool),
            face_score=np.array(self.score, np.float32),
            voice_active=np.array(self.voice, bool),
            # What was read, when the file was cut short.
            duration_s=steps * STEP_SECONDS if early else duration_s,
            seconds_taken=seconds, ended_early=early)


def _audio_windows(path: Path, threads: int | None = None) -> Iterator[np.ndarray]:
    """640-sample windows of the file's audio; the last partial one padded with zeros."""
    pending = np.zeros(0, np.float32)
    for chunk in iter_audio(path, SAMPLE_RATE, threads):
        pending = np.concatenate([pending, chunk])
        whole = pending.size // WINDOW_SAMPLES * WINDOW_SAMPLES
        yield from pending[:whole].reshape(-1, WINDOW_SAMPLES)
        pending = pending[whole:]
    if pending.size:
        yield np.concatenate([pending, np.zeros(WINDOW_SAMPLES - pending.size, np.float32)])


def _silent_windows(duration_s: float) -> Iterator[np.ndarray]:
    """A video without sound: silence over its duration, as the live app does."""
    steps = math.ceil(duration_s * SAMPLE_RATE / WINDOW_SAMPLES)
    for _ in range(steps):
        yield np.zeros(WINDOW_SAMPLES, np.float32)


class _FrameWindow:
    """Decoded frames up to a time, read lazily, older ones forgotten."""

    def __init__(self, decoded) -> None:
        self._decoded = decoded
        self._frames: list[Frame] = []
        self._next = next(decoded, None)
        self.last_s = 0.0  # time of the last frame read

    @property
    def exhausted(self) -> bool:
        """Every frame of the file has been read."""
        return self._next is None

    def until(self, end_s: float) -> list[Frame]:
        while self._next is not None and self._next.time_s <= end_s:
            self._frames.append(Frame(self._next.index, self._next.time_s, self._next.rgb))
            self.last_s = self._next.time_s
            self._next = next(self._decoded, None)
        self._frames = [f for f in self._frames if f.time_s >= end_s - _KEEP_FRAMES_S]
        return self._frames

    def close(self) -> None:
        self._decoded.close()


# -- writing results ---------------------------------------------------------------------
def write_predictions(result: FileAnalysis, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in zip(result.time_s, result.arousal, result.valence, result.face_found,
                       result.face_score, result.voice_active):
            t, arousal, valence, face, face_score, voice = row
            writer.writerow((f"{t:.3f}", f"{arousal:.6f}", f"{valence:.6f}", int(face),
                             f"{face_score:.4f}", int(voice)))


def summarise(result: FileAnalysis, session: AffectSession, model_sha256: str,
              voice_detector: str) -> dict:
    def mean(values: np.ndarray) -> float | None:
        return round(float(values.mean()), 6) if values.size else None

    return {
        "input": str(result.path),
        "duration_s": round(result.duration_s, 3),
        "ended_early": result.ended_early,
        "steps": result.steps,
        "step_s": STEP_SECONDS,
        **describe("arousal", result.arousal),
        **describe("valence", result.valence),
        "face_share": mean(result.face_found.astype(np.float64)),
        "voice_share": mean(result.voice_active.astype(np.float64)),
        "voice_detector": voice_detector,
        "model": {"name": session.spec.name, "file": session.path.name,
                  "sha256": model_sha256, "provider": session.provider},
        "software": {"affect-monitor": software_version()},
        "seconds_taken": round(result.seconds_taken, 3),
        "speed_vs_realtime": (round(result.duration_s / result.seconds_taken, 1)
                              if result.seconds_taken > 0 else None),
    }


def describe(name: str, values: np.ndarray) -> dict[str, float | None]:
    """Mean, sd (population) and 10th / 90th percentiles, rounded to the CSV's 6 places."""
    values = np.asarray(values, np.float64)
    if not values.size:
        return {f"{name}_{key}": None for key in ("mean", "sd", "p10", "p90")}
    p10, p90 = np.percentile(values, [10, 90])
    return {f"{name}_mean": round(float(values.mean()), 6),
            f"{name}_sd": round(float(values.std()), 6),
            f"{name}_p10": round(float(p10), 6), f"{name}_p90": round(float(p90), 6)}


def main(argv: list[str] | None = None) -> int:
    from app.study.cli import main as study_main  # the command line lives with the study runner

    return study_main(argv)


if __name__ == "__main__":
    sys.exit(main())
