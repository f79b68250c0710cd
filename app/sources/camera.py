"""Camera through OpenCV: frames stamped on the capture clock at grab time.

``capture_factory`` is the hardware edge (default ``cv2.VideoCapture``); tests put a
fake device there. A camera that stops, raises or returns garbage is reported and the
source ends; the pipeline goes on without faces.
"""
from __future__ import annotations

import glob
import sys
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from app.sources.base import (CaptureClock, FaultHandler, Frame, FrameBuffer, SourceError,
                              VideoSource)

# Consecutive failed reads before the camera counts as gone (~1 s at 30 fps).
MAX_FAILED_READS = 30


@dataclass(frozen=True)
class CameraDevice:
    index: int
    name: str


def list_cameras(max_index: int = 4) -> list[CameraDevice]:
    """Cameras that open; empty on a machine with none (no probing noise on Linux)."""
    if sys.platform.startswith("linux"):
        # V4L2 nodes exist only when cameras do; avoid OpenCV's warnings for each index.
        nodes = sorted(glob.glob("/dev/video*"))
        indices = [int(n[len("/dev/video"):]) for n in nodes if n[len("/dev/video"):].isdigit()]
    else:
        indices = list(range(max_index))
    found = []
    for index in indices:
        capture = cv2.VideoCapture(index)
        try:
            if capture.isOpened():
                found.append(CameraDevice(index, f"camera {index}"))
        finally:
            capture.release()
    return found


class CameraSource(VideoSource):
    live = True

    def __init__(self, index: int = 0, size: tuple[int, int] | None = (640, 480),
                 fps: float | None = 30.0,
                 capture_factory: Callable[[int], Any] | None = None) -> None:
        super().__init__()
        self.index = index
        self.size = size
        self.fps = fps
        self.name = f"camera {index}"
        self._factory = capture_factory or cv2.VideoCapture
        self._capture = None
        self.rejected = 0  # frames that were not HxWx3 uint8

    def start(self, frames: FrameBuffer, clock: CaptureClock, on_fault: FaultHandler) -> None:
        self._on_fault = on_fault
        capture = self._factory(self.index)
        if not capture.isOpened():
            capture.release()
            self.ended = True
            raise SourceError(f"cannot open {self.name}: no such camera, or it is in use")
        if self.size is not None:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.fps is not None:
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        self._capture = capture
        self._run_thread(lambda: self._grab(frames, clock))

    def _grab(self, frames: FrameBuffer, clock: CaptureClock) -> None:
        capture, failed, index = self._capture, 0, 0
        try:
            while not self._stop.is_set():
                try:
                    grabbed = capture.grab()
                    stamp = clock.now()  # grab time: the moment the image was taken
                    ok, bgr = capture.retrieve() if grabbed else (False, None)
                except (cv2.error, OSError, RuntimeError) as error:  # driver faults
                    self.fault(f"{self.name} failed: {error}; continuing without video")
                    return
                if not ok:
                    failed += 1
                    if failed >= MAX_FAILED_READS:
                        self.fault(f"{self.name} stopped delivering frames (unplugged?); "
                                   "continuing without video")
                        return
                    self._stop.wait(0.03)
                    continue
                failed = 0
                if not _is_image(bgr):
                    self.rejected += 1
                    if self.rejected == 1:
                        self.fault(f"{self.name} returned an unusable image "
                                   f"({_describe(bgr)}); skipping such frames")
                    continue
                frames.put(Frame(index, stamp, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
                index += 1
        finally:
            capture.release()

    def _finish(self) -> None:
        self._capture = None


def _is_image(image) -> bool:
    return (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and image.shape[0] >= 16 and image.shape[1] >= 16)


def _describe(image) -> str:
    if isinstance(image, np.ndarray):
        return f"array {image.shape} {image.dtype}"
    return type(image).__name__
