"""Russell's circumplex: valence on x, arousal on y, the current prediction with a
fading trail, and (while self-rating) the rater's cursor, moved with the mouse.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from app.gui.curves import BACKGROUND
from models.spec import STEPS_PER_SECOND

TRAIL = 2 * STEPS_PER_SECOND  # points in the trail: the last 2 s
POINT_COLOUR = (250, 90, 90)
RATING_COLOUR = (120, 230, 120)
QUADRANTS = (  # (x, y, text): names after Russell (1980)
    (0.55, 0.9, "excited · happy"),
    (-0.55, 0.9, "tense · angry"),
    (-0.55, -0.9, "sad · bored"),
    (0.55, -0.9, "calm · relaxed"),
)


class CircumplexView(pg.PlotWidget):
    """``ratingMoved(valence, arousal)`` fires when the mouse moves over the panel while
    ``rating_enabled``; the caller decides what a rating is worth and when it is sampled."""

    ratingMoved = Signal(float, float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent=parent, background=BACKGROUND)
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.setXRange(-1, 1, padding=0.03)
        item.setYRange(-1, 1, padding=0.03)
        # Not setAspectLocked: in pyqtgraph 0.14 a locked view wider than tall paints
        # nothing. Unlocked, the circle is an ellipse in a non-square panel; ratings and
        # points stay linear in each axis.
        item.setLabel("bottom", "valence")
        item.setLabel("left", "arousal")
        grey = pg.mkPen((110, 110, 110), width=1)
        item.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=grey))
        item.addItem(pg.InfiniteLine(pos=0.0, angle=90, pen=grey))
        angle = np.linspace(0, 2 * np.pi, 181)
        item.plot(np.cos(angle), np.sin(angle), pen=grey)
        for x, y, text in QUADRANTS:
            label = pg.TextItem(text, color=(170, 170, 170), anchor=(0.5, 0.5))
            label.setPos(x, y)
            item.addItem(label)
        # Oldest trail point faint and small, newest opaque: brushes made once.
        alphas = np.linspace(20, 255, TRAIL).astype(int)
        self._brushes = [pg.mkBrush(*POINT_COLOUR, a) for a in alphas]
        self._sizes = np.linspace(4, 14, TRAIL)
        self.trail = pg.ScatterPlotItem(pen=None)
        item.addItem(self.trail)
        self.rating_point = pg.ScatterPlotItem(
            size=16, symbol="+", pen=pg.mkPen(RATING_COLOUR, width=3), brush=None)
        self.rating_point.setVisible(False)
        item.addItem(self.rating_point)
        self._x = np.zeros(TRAIL)
        self._y = np.zeros(TRAIL)
        self._count = 0
        self._dirty = False
        self.rating_enabled = False
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.setToolTip("valence (x) and arousal (y); while self-rating, move the mouse "
                        "or use the arrow keys")

    def add_predictions(self, arousal: np.ndarray, valence: np.ndarray) -> None:
        n = len(arousal)
        if not n:
            return
        n = min(n, TRAIL)
        self._x = np.roll(self._x, -n)
        self._y = np.roll(self._y, -n)
        self._x[-n:] = valence[-n:]
        self._y[-n:] = arousal[-n:]
        self._count = min(TRAIL, self._count + n)
        self._dirty = True

    @property
    def points(self) -> int:
        return self._count

    def clear_trail(self) -> None:
        # Not named clear(): PlotWidget binds PlotItem.clear (remove every item) on the
        # instance, which would shadow a method of that name.
        self._count = 0
        self._dirty = True
        self.redraw()

    def redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        n = self._count
        if n == 0:
            self.trail.setVisible(False)
            return
        self.trail.setVisible(True)
        self.trail.setData(x=self._x[TRAIL - n:], y=self._y[TRAIL - n:],
                           brush=self._brushes[TRAIL - n:], size=self._sizes[TRAIL - n:])

    def show_rating(self, valence: float, arousal: float, active: bool) -> None:
        self.rating_point.setVisible(True)
        colour = RATING_COLOUR if active else (110, 110, 110)
        self.rating_point.setData([valence], [arousal], pen=pg.mkPen(colour, width=3))

    def hide_rating(self) -> None:
        self.rating_point.setVisible(False)

    def _mouse_moved(self, scene_pos) -> None:
        if not self.rating_enabled:
            return
        point = self.getPlotItem().getViewBox().mapSceneToView(scene_pos)
        valence = float(np.clip(point.x(), -1.0, 1.0))
        arousal = float(np.clip(point.y(), -1.0, 1.0))
        self.ratingMoved.emit(valence, arousal)

    def set_rating_enabled(self, enabled: bool) -> None:
        self.rating_enabled = enabled
        self.setCursor(Qt.CursorShape.CrossCursor if enabled else Qt.CursorShape.ArrowCursor)
        if not enabled:
            self.hide_rating()


__all__ = ["CircumplexView"]
