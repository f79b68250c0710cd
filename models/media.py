"""Decode audio and video from media files with PyAV (FFmpeg), for training and the app.

Audio comes out as the model wants it: mono float32 in [-1, 1] at ``SAMPLE_RATE``.
Video frames come out as RGB uint8 with the time of their real presentation timestamp.
Both are measured from one origin per file (the earliest start of its audio and video
streams), so sample ``n`` of ``read_audio`` and a frame with ``time_s`` = n / rate
describe the same instant: that is what A/V alignment relies on.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from models.spec import SAMPLE_RATE, STEP_SECONDS

MAX_FRAME_AGE_S = 0.120  # a frame further than this from a step's centre means no face
# Decoded audio is handed on in chunks of about this many output samples (1 s at 16 kHz)
# so long files never need a second full-length copy while streaming.
_CHUNK_SAMPLES = 16_000


log = logging.getLogger(__name__)


class MediaError(ValueError):
    """A media file cannot be opened or decoded, or lacks the stream asked for."""


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds, as far as its container says (nothing is decoded)."""

    path: Path
    duration_s: float | None  # None when the container does not know
    has_audio: bool
    has_video: bool
    fps: float | None  # average video frame rate; None without video
    size: tuple[int, int] | None  # (width, height) of the video; None without video
    audio_rate: int | None  # native sample rate of the audio; None without audio
    audio_channels: int | None
    # Each stream's own duration from the headers (None: not stated), to tell a file that
    # ends early (truncated, damaged) from one whose sound is simply shorter than its picture.
    audio_duration_s: float | None = None
    video_duration_s: float | None = None


ENDED_EARLY_S = 1.0  # a stream that stops this much before its stated duration ended early


def ended_early(info: MediaInfo, kind: str, read_s: float) -> str | None:
    """A sentence when the ``kind`` ("audio"/"video") stream stopped at ``read_s`` though
    its header announces more (a truncated or damaged file); None when it is whole."""
    stated = info.audio_duration_s if kind == "audio" else info.video_duration_s
    if stated is None or read_s >= stated - ENDED_EARLY_S:
        return None
    return (f"the file ended early: its {kind} stopped at {read_s:.1f} s of the "
            f"{stated:.1f} s its header announces (truncated or damaged?)")


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: ``time_s`` from its pts, relative to the file's origin."""

    index: int
    time_s: float
    rgb: np.ndarray  # HxWx3 uint8


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not a media file")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(f"{path}: cannot open as audio/video ({_reason(error)})") from None


def _reason(error: Exception) -> str:
    # FFmpeg errors repeat the path; keep only the message part.
    text = getattr(error, "strerror", None) or str(error)
    return str(text)


def _origin_s(container: av.container.InputContainer) -> float:
    """Earliest start time of the audio/video streams: time zero for this file."""
    starts = []
    for stream in list(container.streams.audio) + list(container.streams.video):
        if stream.start_time is not None and stream.time_base is not None:
            starts.append(float(stream.start_time * stream.time_base))
    return min(starts) if starts else 0.0


def probe(path: str | Path) -> MediaInfo:
    """Describe ``path`` from its container headers. Raises MediaError when unreadable."""
    path = Path(path)
    with _open(path) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        video = container.streams.video[0] if container.streams.video else None
        return MediaInfo(
            path=path,
            duration_s=_container_duration(container, audio, video),
            has_audio=audio is not None,
            has_video=video is not None,
            fps=_fps(video),
            size=(video.codec_context.width, video.codec_context.height) if video else None,
            audio_rate=audio.rate if audio is not None else None,
            audio_channels=audio.channels if audio is not None else None,
            audio_duration_s=_stream_duration(audio),
            video_duration_s=_stream_duration(video),
        )


def _container_duration(container: av.container.InputContainer, audio, video) -> float | None:
    """The container's duration; else the longest stream's (some files omit the former)."""
    if container.duration is not None:
        return container.duration / av.time_base
    duration = None
    for stream in (audio, video):
        seconds = _stream_duration(stream)
        if seconds is not None:
            duration = max(duration or 0.0, seconds)
    return duration


def _fps(video) -> float | None:
    """Frame rate from the first rate the headers give (average, guessed, base)."""
    if video is None:
        return None
    rate = video.average_rate or video.guessed_rate or video.base_rate
    return float(rate) if rate else None


def _stream_duration(stream) -> float | None:
    if stream is None or stream.duration is None or not stream.time_base:
        return None
    return float(stream.duration * stream.time_base)


def iter_audio(path: str | Path, sample_rate: int = SAMPLE_RATE,
               threads: int | None = None) -> Iterator[np.ndarray]:
    """Decode the first audio stream as mono float32 chunks at ``sample_rate``.

    Leading silence is inserted when the audio starts after the file's origin (a video
    whose sound begins late), so sample n is at time n / sample_rate on the same clock
    as ``read_video_frames``. Channels are averaged: an explicit downmix, not FFmpeg's
    matrix, so a full-scale stereo file stays within [-1, 1]. ``threads``: see
    ``decoder_threads``.
    """
    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        decoder_threads(stream, threads)
        origin = _origin_s(container)
        resampler = None
        pending: list[np.ndarray] = []
        pending_samples = 0
        started = False
        try:
            for frame in container.decode(stream):
                if resampler is None:
                    # Planar float, original layout: we average channels ourselves.
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout,
                                                  rate=sample_rate)
                    if frame.pts is not None and frame.time_base is not None:
                        lead = float(frame.pts * frame.time_base) - origin
                        if lead > 0:
                            pending.append(np.zeros(int(round(lead * sample_rate)), np.float32))
                            pending_samples += pending[-1].size
                    started = True
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().mean(axis=0, dtype=np.float32)
                    pending.append(samples)
                    pending_samples += samples.size
                if pending_samples >= _CHUNK_SAMPLES:
                    yield np.concatenate(pending)
                    pending, pending_samples = [], 0
            if resampler is not None:
                for out in resampler.resample(None):
                    pending.append(out.to_ndarray().mean(axis=0, dtype=np.float32))
        except av.FFmpegError as error:
            if not started:
                raise MediaError(f"{path}: audio cannot be decoded ({_reason(error)})") from None
            # A file cut short (truncated, damaged tail): keep what decoded; the caller
            # compares it with the stated duration (``ended_early``) and says so.
            log.warning("%s: audio decoding stopped (%s); keeping what was read",
                        path.name, _reason(error))
        if not started:
            raise MediaError(f"{path}: audio stream holds no decodable sound")
        if pending:
            yield np.concatenate(pending)
    finally:
        container.close()


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Whole audio track of ``path`` as mono float32 in [-1, 1] at ``sample_rate``.

    Any container and codec FFmpeg decodes (wav, flac, mp3, flv, mp4, ...).
    Raises MediaError naming the file when it is unreadable or has no audio.
    """
    chunks = list(iter_audio(path, sample_rate))
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return np.clip(audio, -1.0, 1.0, out=audio)


def read_video_frames(path: str | Path, threads: int | None = None) -> Iterator[VideoFrame]:
    """Decode the first video stream frame by frame as RGB uint8.

    ``time_s`` is the frame's presentation time relative to the file's origin (see
    module doc); a frame without a pts gets the previous time plus one frame period.
    Raises MediaError naming the file when it is unreadable or has no video.
    ``threads``: see ``decoder_threads``.
    """
    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        decoder_threads(stream, threads)
        origin = _origin_s(container)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        period = 1.0 / float(rate)
        time_s = -period
        try:
            for index, frame in enumerate(container.decode(stream)):
                if frame.pts is not None and frame.time_base is not None:
                    time_s = float(frame.pts * frame.time_base) - origin
                else:
                    time_s += period
                yield VideoFrame(index=index, time_s=time_s, rgb=to_rgb(frame))
        except av.FFmpegError as error:
            if time_s < 0:  # not a single frame
                raise MediaError(f"{path}: video cannot be decoded ({_reason(error)})") from None
            log.warning("%s: video decoding stopped at %.2f s (%s); keeping what was read",
                        path.name, time_s, _reason(error))
    finally:
        container.close()


def decoder_threads(stream, threads: int | None) -> None:
    """FFmpeg picks its decoder's threads from the core count (None), or uses ``threads``:
    a batch worker given one core's share keeps its decoder to it. Same frames either way."""
    stream.thread_type = "AUTO"
    if threads:
        stream.codec_context.thread_count = threads


def choose_frame(frames: Sequence, centre_s: float, max_age_s: float = MAX_FRAME_AGE_S):
    """The frame (anything with ``time_s``) nearest ``centre_s``, or None if none is
    within ``max_age_s``. An earlier frame wins a tie.

    This is the one alignment rule of the project: for a 40 ms step ending at ``end``,
    ``frames`` are those with time_s <= end (what a live app has seen by then).
    """
    best = None
    for frame in frames:
        if best is None or abs(frame.time_s - centre_s) < abs(best.time_s - centre_s):
            best = frame
    if best is None or abs(best.time_s - centre_s) > max_age_s:
        return None
    return best


def step_frames(path: str | Path, steps: int | None = None,
                step_s: float = STEP_SECONDS) -> Iterator[VideoFrame | None]:
    """The frame used for each 40 ms step of ``path`` (None: no frame near enough).

    Step k covers [k * step_s, (k + 1) * step_s); its frame is chosen by
    ``choose_frame`` among frames up to the step's end, exactly as the app does. The
    same frame can serve two steps (a camera slower than 25 fps): pass its ``index``
    as ``key`` to ``FaceTracker.process`` so it is tracked once. Without ``steps``,
    steps continue until the last frame is more than ``max_age`` behind.
    """
    decoded = read_video_frames(path)
    try:
        upcoming = next(decoded, None)
        recent: list[VideoFrame] = []
        k = 0
        while steps is None or k < steps:
            end = (k + 1) * step_s
            while upcoming is not None and upcoming.time_s <= end:
                recent.append(upcoming)
                upcoming = next(decoded, None)
            centre = end - step_s / 2
            # Older frames can never be chosen again: forget them.
            recent = [f for f in recent if f.time_s >= centre - MAX_FRAME_AGE_S]
            if steps is None and upcoming is None and not recent:
                return
            yield choose_frame(recent, centre)
            k += 1
    finally:
        decoded.close()


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB uint8 HxWx3. OpenCV converts the common yuv420p about 3x faster than swscale."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def write_media(path: str | Path, frames, sound: np.ndarray | None = None, *, fps: int = 25,
                rate: int = SAMPLE_RATE, pix_fmt: str = "yuv420p",
                container_options: dict | None = None) -> Path:
    """Write RGB frames (uint8 [H, W, 3], an iterable) as H.264 at ``fps``, and mono float32
    ``sound`` at ``rate`` as AAC, into one file. Real codecs, for tests, benchmarks and the
    screenshot script."""
    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), "w", options=container_options or {}) as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.height, video.width = first.shape[:2]
        video.pix_fmt = pix_fmt
        track = None
        if sound is not None:  # every stream is added before the first packet is written
            track = out.add_stream("aac", rate=rate)
            track.layout = "mono"
        for index, rgb in enumerate(itertools.chain([first], frames)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if track is not None:
            encode_audio(out, track, sound, rate)
    return Path(path)


def encode_audio(out, track, sound: np.ndarray, rate: int, frame_size: int = 1024) -> None:
    """Encode mono float32 ``sound`` into the open container's audio ``track`` and flush it
    (``frame_size``: samples per codec frame, 1024 for AAC, 1152 for MP3)."""
    sound = np.asarray(sound, np.float32)
    for start in range(0, sound.size, frame_size):
        chunk = av.AudioFrame.from_ndarray(sound[None, start:start + frame_size].copy(),
                                           format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = rate, start
        out.mux(track.encode(chunk))
    out.mux(track.encode(None))
