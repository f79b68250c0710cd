"""A recording's Lab Streaming Layer side (``SessionRecorder(lsl=True)``).

Out: every row the recorder writes to events.tsv is pushed on a ``Markers`` outlet,
stamped at its onset. In: the markers of every other app's ``Markers`` stream reach
``on_marker(monotonic_s, text, stream)``; the recorder writes them to events.tsv
(trial_type = the marker, value = ``lsl:<stream>``) once the folder's clock is known.
The outlet may be the caller's (the window's, which streams with or without a
recording, so LabRecorder sees one Markers stream): then it is pushed on, never closed.
Opened when the recording starts, closed when it ends: ``close()`` stops the inlet
first, so the markers it still held are handed over before the recording's last rows.
"""
from __future__ import annotations

import logging
from typing import Callable

from app.recording.lsl import LslUnavailable, MarkerInlet, MarkerOutlet

log = logging.getLogger(__name__)

ONSET_CONVERSION = ("onset = LSL timestamp + inlet time_correction + "
                    "(time.monotonic - lsl local_clock) - start.monotonic_s")


class MarkerBridge:
    def __init__(self, name: str, on_marker: Callable[[float, str, str], None],
                 shared_outlet: MarkerOutlet | None = None) -> None:
        self.name = shared_outlet.name if shared_outlet is not None else name
        self.on_marker = on_marker
        self._shared = shared_outlet
        self._pushed_before = shared_outlet.pushed if shared_outlet is not None else 0
        self.outlet: MarkerOutlet | None = None
        self.inlet: MarkerInlet | None = None
        self.pushed = 0  # markers pushed by this recording (known once closed)
        self.streams: list[str] = []  # other apps' streams recorded (known once closed)

    def open(self) -> None:
        """RuntimeError (``LslUnavailable`` too) or OSError when LSL cannot be used;
        whatever was opened is closed again."""
        try:
            self.outlet = self._shared or MarkerOutlet(
                self.name, f"affect-monitor-markers-{id(self):x}")
            self.inlet = MarkerInlet(self.on_marker, exclude=(self.outlet.source_id,))
            self.inlet.start()
        except (LslUnavailable, RuntimeError, OSError):
            self.close()
            raise

    def push(self, text: str, monotonic_s: float | None) -> None:
        """One marker stamped at ``monotonic_s`` (None: now); a failure is only logged."""
        if self.outlet is None:
            return
        try:
            self.outlet.push(text, monotonic_s)
        except Exception as error:  # noqa: BLE001 - LSL must never stop a recording
            log.warning("pushing an LSL marker failed: %s", error)

    def stop_inlet(self) -> None:
        """No more markers in (``on_marker`` has had every marker received)."""
        inlet = self.inlet
        if inlet is not None:
            inlet.stop()
            self.streams = inlet.streams_seen
            self.inlet = None

    def close(self) -> None:
        self.stop_inlet()
        outlet = self.outlet
        if outlet is not None:
            self.pushed = outlet.pushed - self._pushed_before
            if outlet is not self._shared:
                outlet.close()
        self.outlet = None

    def info(self) -> dict:
        """session.json's ``lsl``."""
        outlet, inlet = self.outlet, self.inlet
        return {"markers_outlet": self.name,
                "markers_pushed": outlet.pushed - self._pushed_before if outlet else self.pushed,
                "marker_streams_recorded": inlet.streams_seen if inlet else self.streams,
                "onset_conversion": ONSET_CONVERSION}
