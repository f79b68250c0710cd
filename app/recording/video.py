"""video.mp4: H.264 through PyAV in fragmented MP4, playable up to a crash.

``movflags=frag_keyframe+empty_moov`` writes the header first and then fragments, one per
keyframe (about every second) and at least every 0.5 s; with ``flush_packets`` each
finished fragment is in the OS at once, so a killed recording loses at most the fragment
being written. Frames carry their capture time as pts (1/90000 s), so a variable camera
rate is kept as it was. ``salvage_video`` rewrites a killed file without its torn tail.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TIME_BASE = Fraction(1, 90_000)
# A fragment at each keyframe and at least every 0.5 s (frag_duration, microseconds): a
# killed recording loses at most the fragment being written (measured by
# benchmarks/reliability.py: up to 1.2 s with a fragment per 1 s keyframe interval alone).
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1",
              "frag_duration": "500000"}


class VideoWriter:
    """Frames (HxWx3 uint8 RGB, any size: odd sizes are cropped to even, 1 padded to 2)
    at given times."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 30.0,
                 crf: int = 23, threads: int = 1) -> None:
        self.path = Path(path)
        # H.264 in 4:2:0 needs even sizes: odd ones are cropped, a 1-pixel side padded to 2.
        self.width, self.height = max(2, width - width % 2), max(2, height - height % 2)
        self._container = av.open(str(self.path), "w", format="mp4", options=FRAGMENTED)
        gop = max(1, round(fps))  # a keyframe, hence a fragment, about every second
        self._stream = self._container.add_stream(
            "libx264", rate=max(1, round(fps)),
            options={"preset": "ultrafast", "tune": "zerolatency", "crf": str(crf),
                     "g": str(gop), "keyint_min": str(gop), "threads": str(threads)})
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = TIME_BASE
        self._stream.codec_context.time_base = TIME_BASE  # not 1/fps: keep capture times
        self._last_pts = -1
        self.frames = 0

    def write(self, rgb: np.ndarray, time_s: float) -> bool:
        """Encode one frame at ``time_s``; False (and nothing written) when its time is
        not after the previous frame's."""
        pts = round(time_s / TIME_BASE)
        if pts <= self._last_pts:
            return False
        rgb = rgb[:self.height, :self.width]
        if rgb.shape[:2] != (self.height, self.width):  # the camera changed size
            rgb = _fit(rgb, self.width, self.height)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts, TIME_BASE
        self._container.mux(self._stream.encode(frame))
        self._last_pts = pts
        self.frames += 1
        return True

    def close(self) -> None:
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            container.mux(self._stream.encode(None))
        finally:
            container.close()


def _fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    out = np.zeros((height, width, 3), np.uint8)
    h, w = min(height, rgb.shape[0]), min(width, rgb.shape[1])
    out[:h, :w] = rgb[:h, :w]
    return out


def count_frames(path: str | Path) -> tuple[int, bool]:
    """(frames that decode, whether the file decoded to its end without an error)."""
    frames = 0
    try:
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                frames += 1
    except (av.FFmpegError, OSError, IndexError):
        return frames, False
    return frames, True


def salvage_video(path: str | Path) -> tuple[int, str | None]:
    """Rewrite a killed recording's video.mp4 from the packets that are whole.

    Returns (frames kept, what was fixed or None). The original is replaced only when
    the copy decodes; otherwise it is left as it was.
    """
    path = Path(path)
    before, clean = count_frames(path)
    copy = path.with_name(path.stem + ".repaired.mp4")
    try:
        with av.open(str(path)) as source, \
                av.open(str(copy), "w", format="mp4", options=FRAGMENTED) as target:
            stream_in = source.streams.video[0]
            stream_out = target.add_stream_from_template(stream_in)
            for packet in source.demux(stream_in):
                if packet.dts is None or packet.size == 0:
                    continue
                packet.stream = stream_out
                target.mux(packet)
    except (av.FFmpegError, OSError, IndexError):
        pass  # a torn last fragment: what was muxed so far is kept
    after, copied_clean = count_frames(copy) if copy.exists() else (0, False)
    if not copied_clean or after < before or (clean and after == before):
        copy.unlink(missing_ok=True)
        return before, None
    os.replace(copy, path)
    return after, f"{path.name}: rewritten without its torn last fragment ({after} frames)"
