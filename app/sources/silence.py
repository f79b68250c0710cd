"""No microphone: silent samples on the monotonic clock, so the pipeline still steps.

Also what the engine switches to when a microphone dies mid-session: it continues the
sample count from where the device stopped, filling the gap, so time stays continuous.
"""
from __future__ import annotations

import numpy as np

from app.sources.base import BLOCK_S, AudioRing, AudioSource, CaptureClock, FaultHandler



class SilenceSource(AudioSource):
    live = True
    name = "silence (no microphone)"

    def __init__(self, offset_s: float = 0.0) -> None:
        super().__init__()
        self.offset_s = offset_s  # capture time of sample 0 of the ring it writes to

    def start(self, ring: AudioRing, clock: CaptureClock, on_fault: FaultHandler) -> None:
        self._on_fault = on_fault
        self._run_thread(lambda: self._feed(ring, clock))

    def _feed(self, ring: AudioRing, clock: CaptureClock) -> None:
        zeros = np.zeros(ring.capacity, np.float32)
        while not self._stop.wait(BLOCK_S):
            due = int((clock.now() - self.offset_s) * self.sample_rate) - ring.written
            if due > 0:
                ring.write(zeros[:min(due, ring.capacity)])
