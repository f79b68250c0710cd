"""One recording decoded onto the model's 40 ms grid, face-tracked, and cached.

Step k holds audio samples [640 k, 640 (k + 1)) of the 16 kHz track (a trailing partial
window is dropped) and the face of one video frame, chosen exactly as the live app
chooses it (``app.pipeline.choose_frame``; training must not import ``app``, so the rule
is restated here and must stay in step with it):

* the window ends at ``end = 640 (k + 1) / 16000`` s and its centre is ``end - 0.02``;
* candidates are the frames already shown by the window's end (``time_s <= end``);
* the one nearest the centre wins, the earlier one on a tie;
* none within ``max_frame_age_s`` (120 ms) of the centre -> no face (face_mask 0);
* a frame chosen for consecutive windows goes through the tracker once.

The chosen frames go through ``models.faces.FaceTracker``, the same detector, box
smoothing and crop the app uses. The result is cached as an uncompressed .npz (see
``training.data.cache``) whose name carries the media files' fingerprint and every
setting that changes the crops, so a second epoch (or a second run) costs one file read:
no decoding, no detection.
"""
from __future__ import annotations

import importlib.metadata
import os
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.faces import FaceDetector, FaceTracker
from models.media import (MAX_FRAME_AGE_S, MediaError, VideoFrame, choose_frame, probe,
                          read_audio, read_video_frames)
from models.spec import SAMPLE_RATE, WINDOW_SAMPLES, FaceCrop
from training.data import cache

_FORMAT = "steps-1"  # bump when the cached arrays change meaning


@dataclass(frozen=True)
class TrackSettings:
    """Everything that decides the face crops; part of the cache key.

    Defaults are the app's: ``FaceTracker(spec.face)`` with smoothing 0.5 and
    detector confidence 0.5, frames up to 120 ms from the window centre.
    """

    crop: FaceCrop
    smoothing: float = 0.5
    min_confidence: float = 0.5
    max_frame_age_s: float = MAX_FRAME_AGE_S

    def key(self) -> str:
        c = self.crop
        return (f"crop={c.size}x{c.channels},m={c.margin},{c.scale};smooth={self.smoothing};"
                f"conf={self.min_confidence};age={self.max_frame_age_s}")


@dataclass(frozen=True, eq=False)
class RecordingSteps:
    """A recording on the 40 ms grid. Face crops are stored once per tracked frame.

    Step t's face is ``crops[crop_index[t]]``; ``crop_index[t] == -1`` means no face
    (no frame near enough, or the detector found none): face_mask 0.
    """

    audio: np.ndarray  # float32 [T, 640], mono 16 kHz in [-1, 1]
    crops: np.ndarray  # uint8 [K, C, H, W], 0..255
    crop_index: np.ndarray  # int32 [T], row of ``crops`` or -1
    face_score: np.ndarray  # float32 [T], detector confidence, 0 without a face
    has_video: bool
    from_cache: bool = False  # True when these arrays were read from the cache file

    @property
    def steps(self) -> int:
        return len(self.audio)

    def face(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """uint8 [n, C, H, W] for steps start..stop, zeros where there is no face."""
        index = self.crop_index[start:stop]
        out = np.zeros((len(index), *self.crops.shape[1:]), np.uint8)
        found = index >= 0
        out[found] = self.crops[index[found]]
        return out

    def face_mask(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return (self.crop_index[start:stop] >= 0).astype(np.float32)


def step_times(step: int) -> tuple[float, float]:
    """(centre, end) of step ``step`` in seconds, computed as the app computes them."""
    end = (step * WINDOW_SAMPLES + WINDOW_SAMPLES) / SAMPLE_RATE
    return end - WINDOW_SAMPLES / (2 * SAMPLE_RATE), end


def step_centres(steps: int) -> np.ndarray:
    """float64 [steps]: the centre of every step, the same numbers as ``step_times``."""
    end = (np.arange(steps, dtype=np.int64) * WINDOW_SAMPLES + WINDOW_SAMPLES) / SAMPLE_RATE
    return end - WINDOW_SAMPLES / (2 * SAMPLE_RATE)


def frames_for_steps(frames: Iterable[VideoFrame], steps: int,
                     max_age_s: float = MAX_FRAME_AGE_S
                     ) -> Iterator[tuple[int, VideoFrame | None]]:
    """(step, chosen frame or None) for steps 0..steps-1, streaming over ``frames``.

    ``frames`` must come in time order (as ``read_video_frames`` yields them). Only the
    frames near the current window are held, so a long video never sits in memory.
    """
    source = iter(frames)
    pending: deque[VideoFrame] = deque()  # frames not yet ruled out, in time order
    exhausted = False
    for step in range(steps):
        centre, end = step_times(step)
        while not exhausted and (not pending or pending[-1].time_s <= end):
            frame = next(source, None)
            if frame is None:
                exhausted = True
            else:
                pending.append(frame)
        # A frame this far before the centre is too old for every later step as well.
        while pending and pending[0].time_s < centre - max_age_s:
            pending.popleft()
        shown = [frame for frame in pending if frame.time_s <= end]  # seen by window end
        yield step, choose_frame(shown, centre, max_age_s)


def decode_steps(audio_path: str | os.PathLike, video_path: str | os.PathLike | None,
                 settings: TrackSettings, detector=None) -> RecordingSteps:
    """Decode and face-track one recording (no cache). MediaError for unreadable media.

    ``detector``: a ``models.faces.FaceDetector`` (or anything with ``detect``) to
    reuse across recordings; one is created and closed here when None.
    ``video_path`` may be ``audio_path`` itself; when that one file has no pictures (a
    sound file, or sound in a video container) the recording has no face (mask 0).
    """
    samples = read_audio(audio_path)
    if len(samples) < WINDOW_SAMPLES:
        raise MediaError(f"{audio_path}: holds {len(samples)} samples of sound, less than "
                         f"one {WINDOW_SAMPLES}-sample step")
    if video_path is not None and Path(video_path) == Path(audio_path) \
            and not probe(video_path).has_video:
        video_path = None
    steps = len(samples) // WINDOW_SAMPLES
    audio = samples[:steps * WINDOW_SAMPLES].reshape(steps, WINDOW_SAMPLES).copy()
    crop = settings.crop
    crop_index = np.full(steps, -1, np.int32)
    face_score = np.zeros(steps, np.float32)
    crops: list[np.ndarray] = []
    if video_path is not None:
        own = detector is None
        if own:
            detector = FaceDetector(settings.min_confidence)
        try:
            tracker = FaceTracker(crop, settings.smoothing, detector=detector)
            last_index, last_row, last_score = None, -1, 0.0
            # closing(): video beyond the end of the sound is never decoded.
            with closing(read_video_frames(video_path)) as frames:
                for step, frame in frames_for_steps(frames, steps, settings.max_frame_age_s):
                    if frame is None:
                        continue  # like the app: the tracker keeps its box across a gap
                    if frame.index != last_index:  # a frame chosen twice is tracked once
                        result = tracker.process(frame.rgb)
                        last_index, last_row, last_score = frame.index, -1, result.score
                        if result.found:
                            crops.append(np.clip(np.rint(result.face * 255.0), 0, 255)
                                         .astype(np.uint8))
                            last_row = len(crops) - 1
                    crop_index[step], face_score[step] = last_row, last_score
        finally:
            if own:
                detector.close()
    shape = (crop.channels, crop.size, crop.size)
    return RecordingSteps(
        audio=audio,
        crops=np.stack(crops) if crops else np.zeros((0, *shape), np.uint8),
        crop_index=crop_index, face_score=face_score, has_video=video_path is not None)


def cache_path(audio_path: str | os.PathLike, video_path: str | os.PathLike | None,
               settings: TrackSettings, detector=None,
               cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``load_steps`` keeps this recording: fingerprint of the files + settings."""
    files = [Path(audio_path)] + ([Path(video_path)] if video_path is not None else [])
    key = cache.fingerprint(files, _FORMAT, settings.key(), _detector_key(detector),
                            f"rate={SAMPLE_RATE};window={WINDOW_SAMPLES}",
                            f"video={video_path is not None}")
    stem = Path(video_path if video_path is not None else audio_path).stem
    return cache.cache_dir(cache_dir) / f"steps-{stem}-{key}.npz"


def load_steps(audio_path: str | os.PathLike, video_path: str | os.PathLike | None,
               settings: TrackSettings, *, detector=None,
               cache_dir: str | os.PathLike | None = None,
               use_cache: bool = True) -> RecordingSteps:
    """``decode_steps`` through the cache: decoded and tracked once, then read back.

    ``audio_path`` may be the video file itself when the sound is in it. Raises
    ``models.media.MediaError`` naming the file when the media cannot be decoded.
    """
    path = cache_path(audio_path, video_path, settings, detector, cache_dir)
    stored = cache.load_npz(path) if use_cache else None
    if stored is not None and set(stored) >= {"audio", "crops", "crop_index", "face_score",
                                              "has_video"}:
        return RecordingSteps(audio=stored["audio"], crops=stored["crops"],
                              crop_index=stored["crop_index"],
                              face_score=stored["face_score"],
                              has_video=bool(stored["has_video"]), from_cache=True)
    steps = decode_steps(audio_path, video_path, settings, detector)
    if use_cache:
        cache.save_npz(path, audio=steps.audio, crops=steps.crops,
                       crop_index=steps.crop_index, face_score=steps.face_score,
                       has_video=np.array(steps.has_video))
    return steps


def _detector_key(detector) -> str:
    # Crops from another detector (or detector version) are different crops.
    if detector is None or isinstance(detector, FaceDetector):
        try:
            version = importlib.metadata.version("mediapipe")
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        return f"blazeface-short;mediapipe={version}"
    return getattr(detector, "cache_key", type(detector).__qualname__)
