"""Scrolling arousal and valence curves (pyqtgraph's scrollingPlots pattern).

Points go into preallocated arrays twice the longest window long; each timer tick
makes exactly one ``setData`` per curve on a view of the newest points (no copies, no
allocation in ``append``) and moves the x range. ``setDownsampling(mode='peak')`` and
``setClipToView(True)`` keep a 5-minute window as cheap as a 10-second one.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from models.spec import STEPS_PER_SECOND

AROUSAL_COLOUR = (235, 125, 35)
VALENCE_COLOUR = (40, 140, 235)
RATING_COLOUR = (200, 200, 200)
BACKGROUND = (20, 20, 24)
MAX_WINDOW_S = 300


class Trace:
    """A growing (t, y) series kept in a fixed buffer; ``view()`` is the newest ``capacity``.

    The buffer holds 2 x capacity; when it fills, the newest half moves to the front
    once (amortised O(1) per point) so the view is always one contiguous slice.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.t = np.zeros(2 * capacity, np.float64)
        self.y = np.zeros(2 * capacity, np.float64)
        self.size = 0  # points held in the buffer

    def clear(self) -> None:
        self.size = 0

    def extend(self, t: np.ndarray, y: np.ndarray) -> None:
        n = len(t)
        if n > self.capacity:
            t, y, n = t[-self.capacity:], y[-self.capacity:], self.capacity
        if self.size + n > len(self.t):
            keep = self.capacity - n
            self.t[:keep] = self.t[self.size - keep:self.size]
            self.y[:keep] = self.y[self.size - keep:self.size]
            self.size = keep
        self.t[self.size:self.size + n] = t
        self.y[self.size:self.size + n] = y
        self.size += n

    def view(self, points: int) -> tuple[np.ndarray, np.ndarray]:
        begin = max(0, self.size - points)
        return self.t[begin:self.size], self.y[begin:self.size]

    @property
    def last_t(self) -> float | None:
        return float(self.t[self.size - 1]) if self.size else None


def make_plot(title: str, colour) -> tuple[pg.PlotWidget, pg.PlotDataItem, pg.PlotDataItem]:
    widget = pg.PlotWidget(background=BACKGROUND)
    item = widget.getPlotItem()
    item.setMenuEnabled(False)
    item.setMouseEnabled(x=False, y=False)
    item.hideButtons()
    item.setYRange(-1.0, 1.0, padding=0.02)
    item.getViewBox().setLimits(yMin=-1.05, yMax=1.05)
    item.setLabel("left", title)
    # No grid: pyqtgraph draws grid lines as part of each axis picture and replays it on
    # every repaint (half of the whole app's CPU at 30 Hz when drawn); the zero line and
    # the fixed [-1, 1] y axis are what the eye needs.
    item.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen((120, 120, 120), width=1)))
    curve = item.plot(pen=pg.mkPen(colour, width=2), name=title)
    rating = item.plot(pen=pg.mkPen(RATING_COLOUR, width=1, style=pg.QtCore.Qt.PenStyle.DashLine),
                       name=f"{title} (self-rating)")
    for c in (curve, rating):
        c.setDownsampling(auto=True, method="peak")
        c.setClipToView(True)
        c.setSkipFiniteCheck(True)
    return widget, curve, rating


class CurvePanel(QWidget):
    """Arousal above valence, x linked, y fixed to [-1, 1] with a zero line."""

    def __init__(self, window_s: int = 10, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        capacity = MAX_WINDOW_S * STEPS_PER_SECOND
        self.traces = {name: Trace(capacity) for name in ("arousal", "valence")}
        self.ratings = {name: Trace(capacity) for name in ("arousal", "valence")}
        self.arousal_plot, arousal, arousal_rating = make_plot("arousal", AROUSAL_COLOUR)
        self.valence_plot, valence, valence_rating = make_plot("valence", VALENCE_COLOUR)
        self.valence_plot.setXLink(self.arousal_plot)
        self.valence_plot.getPlotItem().setLabel("bottom", "time", units="s")
        self.arousal_plot.getPlotItem().hideAxis("bottom")  # one moving time axis is enough
        self.curves = {"arousal": arousal, "valence": valence}
        self.rating_curves = {"arousal": arousal_rating, "valence": valence_rating}
        self._markers: list[tuple[float, list[pg.InfiniteLine]]] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.arousal_plot)
        layout.addWidget(self.valence_plot)
        self.window_s = window_s
        self.now = 0.0
        self._dirty = False
        self.set_window(window_s)

    # -- data in (cheap, any number of times per tick) --------------------------------
    def add_predictions(self, t: np.ndarray, arousal: np.ndarray, valence: np.ndarray) -> None:
        if len(t):
            self.traces["arousal"].extend(t, arousal)
            self.traces["valence"].extend(t, valence)
            self._dirty = True

    def add_ratings(self, t: np.ndarray, arousal: np.ndarray, valence: np.ndarray,
                    rated: tuple[str, ...] = ("arousal", "valence")) -> None:
        """Self-ratings; only the ``rated`` dimensions are drawn (a slider rates one)."""
        if len(t):
            values = {"arousal": arousal, "valence": valence}
            for name in rated:
                self.ratings[name].extend(t, values[name])
            self._dirty = True

    def add_marker(self, t: float, label: str) -> None:
        lines = []
        for plot in (self.arousal_plot, self.valence_plot):
            line = pg.InfiniteLine(pos=t, angle=90, pen=pg.mkPen((250, 220, 60), width=1),
                                   label=label if plot is self.arousal_plot else None,
                                   labelOpts={"position": 0.9, "color": (250, 220, 60)})
            plot.addItem(line)
            lines.append(line)
        self._markers.append((t, lines))
        # Markers older than the longest window are never seen again: drop them.
        while self._markers and self._markers[0][0] < t - MAX_WINDOW_S:
            for line, plot in zip(self._markers.pop(0)[1], (self.arousal_plot, self.valence_plot)):
                plot.removeItem(line)

    def clear(self) -> None:
        for trace in (*self.traces.values(), *self.ratings.values()):
            trace.clear()
        for _, lines in self._markers:
            for line, plot in zip(lines, (self.arousal_plot, self.valence_plot)):
                plot.removeItem(line)
        self._markers.clear()
        self.now = 0.0
        self._dirty = True

    def set_window(self, seconds: int) -> None:
        self.window_s = seconds
        self._dirty = True
        self.redraw()

    # -- once per timer tick -------------------------------------------------------------
    def redraw(self, now: float | None = None) -> None:
        """One setData per curve (only when something changed) and the x range."""
        if now is not None and now != self.now:
            self.now = now
            self._dirty = True
        if not self._dirty:
            return
        self._dirty = False
        points = self.window_s * STEPS_PER_SECOND + 2
        for name in ("arousal", "valence"):
            self.curves[name].setData(*self.traces[name].view(points))
            if self.ratings[name].size:
                self.rating_curves[name].setData(*self.ratings[name].view(points))
        end = max(self.now, self.window_s)
        self.arousal_plot.getPlotItem().setXRange(end - self.window_s, end, padding=0)
