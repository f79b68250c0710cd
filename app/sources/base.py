"""What every source hands the pipeline, and the two buffers it hands it through.

Audio sources write mono float32 16 kHz samples into an ``AudioRing``; the number of
samples written is the engine's master clock (t = n / ``models.spec.SAMPLE_RATE``).
Video sources put ``Frame``s stamped on the ``CaptureClock`` into a ``FrameBuffer``
(sample 0 of the audio is at capture time ``AudioSource.offset_s``). A source runs on its own
thread (or PortAudio's) from ``start()`` until ``stop()`` or until it ends; it reports
problems with ``fault(...)``, never by raising into the pipeline.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Callable

import numpy as np

from models.spec import SAMPLE_RATE

# How long a source that may not drop data (a file) waits for room before checking
# again whether it was stopped.
_POLL_S = 0.002
# Audio is delivered 20 ms at a time, as a sound card does: low latency without waking
# Python too often (the microphone's callback, a real-time file, silence).
BLOCK_S = 0.020
BLOCK_SAMPLES = round(SAMPLE_RATE * BLOCK_S)


class SourceError(RuntimeError):
    """A device or file cannot be used as a source; the message says what to do."""


class Pacing(Enum):
    REALTIME = "realtime"  # release data as the wall clock reaches its timestamp
    FAST = "fast"  # as fast as the consumer takes it, nothing dropped (offline)


@dataclass(frozen=True)
class Frame:
    """One video frame: ``time_s`` on the capture clock (same origin as the audio)."""

    index: int  # unique, increasing within one source
    time_s: float
    rgb: np.ndarray  # HxWx3 uint8


class CaptureClock:
    """Monotonic time since the engine started, shared by all sources of one engine
    (``app.pipeline.Timeline`` converts it to the other clocks)."""

    def __init__(self, start: float | None = None) -> None:
        self.start = time.monotonic() if start is None else start

    def now(self) -> float:
        return time.monotonic() - self.start

    def sleep_until(self, capture_s: float, stop: threading.Event) -> bool:
        """Sleep until capture time ``capture_s``; False when ``stop`` was set first."""
        delay = capture_s - self.now()
        return not stop.wait(delay) if delay > 0 else not stop.is_set()


class AudioRing:
    """A preallocated single-producer, single-consumer ring of float32 samples.

    ``write`` is what a PortAudio callback calls: one or two slice copies and counters,
    no allocation, no lock. When the reader falls more than ``capacity`` behind, the
    oldest samples are overwritten; the reader notices and counts them as lost.
    """

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros(capacity, np.float32)
        self.capacity = capacity
        self.written = 0  # samples ever written: the master clock
        self.device_overflows = 0  # blocks the device itself reported as overflowed
        self.read_until = 0  # set by the reader: samples it has consumed
        self.lost = 0  # samples overwritten before the reader got them
        self.last_write = 0.0  # monotonic time of the last write, to spot a stalled device

    def write(self, samples: np.ndarray) -> None:
        n = len(samples)
        if n > self.capacity:
            samples, n = samples[-self.capacity:], self.capacity
        start = self.written % self.capacity
        first = min(n, self.capacity - start)
        self._data[start:start + first] = samples[:first]
        self._data[:n - first] = samples[first:]
        self.written += n
        self.last_write = time.monotonic()

    def write_waiting(self, samples: np.ndarray, stop: threading.Event) -> bool:
        """Write without ever overwriting unread samples (file sources); False if stopped."""
        offset = 0
        while offset < len(samples):
            room = self.capacity - (self.written - self.read_until)
            if room <= 0:
                if stop.wait(_POLL_S):
                    return False
                continue
            chunk = samples[offset:offset + room]
            self.write(chunk)
            offset += len(chunk)
        return True

    def read(self, start: int, n: int) -> np.ndarray | None:
        """Samples [start, start + n) if all written and not yet overwritten, else None.

        The caller checks ``oldest()`` first when it may have fallen behind.
        """
        if start + n > self.written or start < self.oldest():
            return None
        out = np.empty(n, np.float32)
        begin = start % self.capacity
        first = min(n, self.capacity - begin)
        out[:first] = self._data[begin:begin + first]
        out[first:] = self._data[:n - first]
        # The writer may have lapped us during the copy: then the copy is not trustworthy.
        if start < self.written - self.capacity:
            return None
        return out

    def oldest(self) -> int:
        """Index of the oldest sample still held."""
        return max(0, self.written - self.capacity)


class FrameBuffer:
    """The newest frames of one video source, for the pipeline to pick from by time.

    ``complete_until``: every frame with time_s below it has been delivered. File
    sources advance it so the pipeline can wait for exactly the frames it needs and
    choose the same frame whatever the thread timing; live cameras leave it None.
    """

    def __init__(self, keep_s: float = 1.0, max_frames: int = 64,
                 on_frame: Callable[[Frame], None] | None = None) -> None:
        self._frames: deque[Frame] = deque(maxlen=max_frames)
        self._on_frame = on_frame  # the owner's publisher, called after each put
        self._lock = threading.Lock()
        self.keep_s = keep_s
        self.complete_until: float | None = None
        self.finished = False  # the source will deliver no more frames
        self.reader_time = 0.0  # set by the pipeline: the capture time it is working at
        self.received = 0

    def put(self, frame: Frame) -> None:
        with self._lock:
            self._frames.append(frame)
            self.received += 1
            while self._frames and self._frames[0].time_s < frame.time_s - self.keep_s:
                self._frames.popleft()
        if self._on_frame is not None:  # outside the lock: the reader never waits on it
            self._on_frame(frame)

    def put_waiting(self, frame: Frame, lead_s: float, stop: threading.Event) -> bool:
        """Deliver ``frame`` once the reader is within ``lead_s`` of it (file sources)."""
        while frame.time_s > self.reader_time + lead_s:
            if stop.wait(_POLL_S):
                return False
        self.put(frame)
        return True

    def frames_until(self, end_s: float) -> list[Frame]:
        with self._lock:
            return [f for f in self._frames if f.time_s <= end_s]

    def newest_time(self) -> float | None:
        with self._lock:
            return self._frames[-1].time_s if self._frames else None


FaultHandler = Callable[[str, str], None]  # (source name, message)


class Source(ABC):
    """Common life cycle: ``start`` once, ``stop`` any number of times."""

    name: str = "source"
    live: bool = False  # hardware: timing is the world's, not reproducible

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_fault: FaultHandler = lambda source, message: None
        self.ended = False  # no more data will come (end of file, device gone)

    def fault(self, message: str) -> None:
        self._on_fault(self.name, message)

    def _run_thread(self, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            finally:
                self.ended = True
                self._finish()
        self._thread = threading.Thread(target=guarded, name=self.name, daemon=True)
        self._thread.start()

    def _finish(self) -> None:
        """Called on the source's thread when it ends; buffers mark themselves finished."""

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)


class AudioSource(Source):
    sample_rate = SAMPLE_RATE

    @abstractmethod
    def start(self, ring: AudioRing, clock: CaptureClock, on_fault: FaultHandler) -> None:
        """Begin writing samples into ``ring``; sample 0 is at capture time ``offset_s``."""

    offset_s: float = 0.0  # capture time of sample 0 (live: when the device started)


class VideoSource(Source):
    @abstractmethod
    def start(self, frames: FrameBuffer, clock: CaptureClock, on_fault: FaultHandler) -> None:
        """Begin putting frames into ``frames``, stamped on the capture clock."""
