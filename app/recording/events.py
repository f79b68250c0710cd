"""events.tsv of a recording: every row also pushed on LSL (``MarkerBridge``), stamped
at its onset; markers stamped on the monotonic clock (LSL's, from other apps) are
placed once the folder's time 0 is known, or at 0.0 s if the sources never began."""
from __future__ import annotations

from typing import Callable

from app.recording.lsl import clean, marker_text
from app.recording.writers import RecordingFiles


class EventLog:
    def __init__(self, files: RecordingFiles,
                 origin_monotonic: Callable[[], float | None]) -> None:
        self.files = files
        self.bridge = None  # lsl_bridge.MarkerBridge when recording with LSL
        self._origin = origin_monotonic  # time.monotonic() at the folder's 0.0 s, or None
        self._unplaced: list[tuple[float, float, str, str]] = []

    def log(self, onset: float, duration: float, trial_type: str, value: str = "",
            push: bool = True) -> None:
        """One row (onset in folder seconds, clamped at 0), pushed on LSL when ``push``."""
        onset = max(0.0, onset)
        trial_type, value = clean(trial_type), clean(value)
        self.files.write_event(onset, duration, trial_type, value)
        if push and self.bridge is not None:
            origin = self._origin()
            self.bridge.push(marker_text(trial_type, value),
                             None if origin is None else origin + onset)

    def at_monotonic(self, monotonic_s: float, duration: float, label: str,
                     value: str) -> None:
        """A marker received on LSL: never pushed back; kept until time 0 is known."""
        origin = self._origin()
        if origin is None:
            self._unplaced.append((monotonic_s, duration, label, value))
        else:
            self.log(monotonic_s - origin, duration, label, value, push=False)

    def place_waiting(self, at_zero: bool = False) -> None:
        """The markers kept so far, once time 0 is known (``at_zero``: the recording
        ends and the sources never began: they go to 0.0 s)."""
        origin = self._origin()
        if not self._unplaced or (origin is None and not at_zero):
            return
        waiting, self._unplaced = self._unplaced, []
        for monotonic_s, duration, label, value in waiting:
            onset = 0.0 if origin is None or at_zero else monotonic_s - origin
            self.log(onset, duration, label, value, push=False)
