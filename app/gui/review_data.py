"""A recorded session folder, read for review (``load_session``), and its video's frames
by presentation time (``FrameReader``). Qt-free; ``app.gui.review`` shows them.

The frame shown at time t is the last frame of frames.csv captured at or before t (video
frame 0 is the black placeholder before the first real frame, when the recording has
one), found by seeking to the keyframe before it (about one a second) and decoding
forward; playing decodes forward only.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from app.gui.rating import rated_dimensions
from app.recording import layout
from app.recording.layout import SessionFormatError
from app.recording.reader import read_session
from models.media import to_rgb
from models.spec import STEP_SECONDS

log = logging.getLogger(__name__)

FORWARD_DECODE_S = 2.0  # a target further ahead than this is reached by seeking


@dataclass(frozen=True)
class Marker:
    time_s: float
    label: str  # trial_type
    value: str

    @property
    def text(self) -> str:
        return self.value or self.label


@dataclass
class ReviewData:
    """A session folder, read for review. Times are on the session clock (seconds)."""

    folder: Path
    info: dict
    time_s: np.ndarray
    arousal: np.ndarray
    valence: np.ndarray
    face_found: np.ndarray
    rating_time_s: np.ndarray
    rating_arousal: np.ndarray
    rating_valence: np.ndarray
    rated: tuple[str, ...]
    markers: list[Marker]
    video: Path | None = None
    frame_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    frame_time_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    placeholder: bool = False
    video_problem: str | None = None  # why a session with media shows no video
    duration_s: float = 0.0

    def frame_at(self, t: float) -> tuple[int, float] | None:
        """(frame index in video.mp4, its time) shown at ``t``; None without video."""
        if self.video is None:
            return None
        i = int(np.searchsorted(self.frame_time_s, t + 1e-6, side="right")) - 1
        if i < 0:
            if self.placeholder:
                return 0, 0.0
            i = 0
        return int(self.frame_index[i]), float(self.frame_time_s[i])

    def prediction_at(self, t: float) -> int | None:
        """Index of the prediction step holding ``t`` (the last one at or before it)."""
        if not len(self.time_s):
            return None
        return max(0, int(np.searchsorted(self.time_s, t + 1e-6, side="right")) - 1)


def load_session(folder: str | Path) -> ReviewData:
    """Read a session folder; SessionFormatError with a message when it is not one."""
    recorded = read_session(folder)
    markers = [Marker(float(row["onset"]), row.get("trial_type") or "", row.get("value") or "")
               for row in recorded.events]
    data = ReviewData(recorded.folder, recorded.info, recorded.time_s, recorded.arousal,
                      recorded.valence, recorded.face_found, recorded.rating_time_s,
                      recorded.rating_arousal, recorded.rating_valence,
                      rated_dimensions(recorded.info), markers)
    _attach_video(data)
    info, time_s, rating_t = recorded.info, recorded.time_s, recorded.rating_time_s
    ends = [float(info.get("duration_s") or 0.0)]
    ends += [time_s[-1] + STEP_SECONDS] if len(time_s) else []
    ends += [m.time_s for m in markers] + ([rating_t[-1]] if len(rating_t) else [])
    ends += [data.frame_time_s[-1]] if len(data.frame_time_s) else []
    data.duration_s = max(ends)
    return data


def _attach_video(data: ReviewData) -> None:
    media = data.info.get("media") or {}
    video_info = media.get("video") if isinstance(media, dict) else None
    video, frames = data.folder / layout.VIDEO, data.folder / layout.FRAMES
    if not video.is_file():
        if video_info:
            data.video_problem = f"{layout.VIDEO} is missing from this session"
        return
    if not frames.is_file():
        data.video_problem = f"{layout.FRAMES} is missing: the video's frame times are unknown"
        return
    try:
        rows = layout.read_table(frames)
        index = np.array([int(r["frame"]) for r in rows], np.int64)
        times = np.array([float(r["time_s"]) for r in rows], np.float64)
    except (KeyError, TypeError, ValueError):
        data.video_problem = f"{layout.FRAMES} cannot be read"
        return
    if not len(index):
        data.video_problem = "the video holds no frames"
        return
    order = np.argsort(times, kind="stable")
    data.video, data.frame_index, data.frame_time_s = video, index[order], times[order]
    data.placeholder = bool((video_info or {}).get("placeholder_frame_at_0", index.min() > 0))


class FrameReader:
    """Frames of video.mp4 by presentation time: forward decoding while playing, a seek
    to the keyframe before the target when scrubbing back or far ahead."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._container = av.open(str(path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, OSError, IndexError) as error:
            raise SessionFormatError(f"{path}: cannot be opened as video ({error})") from None
        self._stream.thread_type = "AUTO"
        starts = [float(s.start_time * s.time_base) for s in self._container.streams
                  if s.start_time is not None and s.time_base is not None
                  and s.type in ("audio", "video")]
        self._origin = min(starts) if starts else 0.0
        self._decoder = None
        self._last: tuple | None = None  # (time, av.VideoFrame) last decoded
        self.seeks = 0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _time(self, frame) -> float:
        if frame.pts is None:
            return self._last[0] if self._last else 0.0
        return float(frame.pts * frame.time_base) - self._origin

    def frame_at(self, target: float) -> tuple[float, np.ndarray] | None:
        """(time, RGB) of the frame presented at ``target`` (a frame time from frames.csv)."""
        if self._container is None:
            return None
        last = self._last
        if last is not None and abs(last[0] - target) < 1e-4:
            return self._rgb(last)
        if (last is None or target < last[0] or target - last[0] > FORWARD_DECODE_S
                or self._decoder is None):
            self.seeks += 1
            pts = int(round((target + self._origin) / self._stream.time_base))
            self._container.seek(max(0, pts), backward=True, any_frame=False,
                                 stream=self._stream)
            self._decoder = self._container.decode(self._stream)
            self._last = None
        previous = self._last
        try:
            for frame in self._decoder:
                current = (self._time(frame), frame)
                if current[0] > target + 1e-4 and previous is not None:
                    # Past it (the target was not a frame time): the one before is shown.
                    self._last = current
                    return self._rgb(previous)
                self._last = previous = current
                if current[0] >= target - 1e-4:
                    return self._rgb(current)
        except av.FFmpegError as error:
            log.warning("%s: decoding stopped (%s)", self.path, error)
        self._decoder = None
        return None if previous is None else self._rgb(previous)

    @staticmethod
    def _rgb(entry) -> tuple[float, np.ndarray]:
        t, frame = entry
        if not isinstance(frame, np.ndarray):
            frame = to_rgb(frame)  # as read_video_frames converts
        return t, frame
