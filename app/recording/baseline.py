"""The neutral baseline of a recording: mean and spread of the predictions over a span.

``BaselineTracker`` keeps every prediction written (24 bytes a step, so a span can be
any part of the recording, even one asked for after it passed) and one pending span.
Once the recording has passed the span's end, ``check()`` returns the baseline that
session.json stores; a recording that ends inside the span stores what it has
(``complete: false``). A later span replaces an earlier one.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left

import numpy as np

_EPS = 1e-6  # seconds: steps are on a 40 ms grid, spans are floats

STATISTICS = ("mean and population std (ddof 0) of the model's 40 ms predictions wholly "
              "inside the span")


class BaselineTracker:
    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.span: tuple[float, float] | None = None  # pending (start, end), folder seconds
        self.end_s = 0.0  # end of the last window added (folder seconds)
        self._times, self._arousal, self._valence = array("d"), array("d"), array("d")
        self._face, self._voice = array("b"), array("b")

    def add(self, time_s: float, arousal: float, valence: float, face_found: bool,
            voice_active: bool) -> None:
        """One written prediction (folder seconds, in order)."""
        self._times.append(time_s)
        self._arousal.append(arousal)
        self._valence.append(valence)
        self._face.append(bool(face_found))
        self._voice.append(bool(voice_active))
        self.end_s = max(self.end_s, time_s + self.step_s)

    def request(self, start_s: float, seconds: float) -> None:
        """Take ``seconds`` from ``start_s`` (folder seconds, clamped at 0) as the baseline."""
        start = max(0.0, start_s)
        self.span = (start, start + seconds)

    def check(self, final: bool = False) -> dict | None:
        """The pending span's baseline once it is recorded (or ``final``: now, partial);
        None while it is not. A span without any prediction gives ``arousal: None``."""
        span = self.span
        if span is None or not (final or self.end_s >= span[1] - _EPS):
            return None
        self.span = None
        start, end = span
        first = bisect_left(self._times, start - _EPS)
        last = bisect_left(self._times, end - self.step_s + _EPS)  # windows wholly inside
        steps = max(0, last - first)
        baseline = {"start_s": round(start, 3), "requested_s": round(end - start, 3),
                    "duration_s": round(steps * self.step_s, 3), "steps": steps,
                    "complete": self.end_s >= end - _EPS, "statistics": STATISTICS}
        if steps == 0:
            baseline.update(complete=False, arousal=None, valence=None)
            return baseline
        baseline.update(arousal=_summary(self._arousal, first, last),
                        valence=_summary(self._valence, first, last),
                        face_found_fraction=_fraction(self._face, first, last),
                        voice_active_fraction=_fraction(self._voice, first, last))
        return baseline


def _summary(values: array, first: int, last: int) -> dict:
    part = np.frombuffer(values, np.float64)[first:last]
    return {"mean": round(float(part.mean()), 6), "std": round(float(part.std()), 6)}


def _fraction(flags: array, first: int, last: int) -> float:
    return round(float(np.frombuffer(flags, np.int8)[first:last].mean()), 4)


def describe(baseline: dict) -> str:
    """The events.tsv value of a stored baseline."""
    return (f"arousal mean {baseline['arousal']['mean']:+.4f} sd "
            f"{baseline['arousal']['std']:.4f}; valence mean "
            f"{baseline['valence']['mean']:+.4f} sd {baseline['valence']['std']:.4f}")
