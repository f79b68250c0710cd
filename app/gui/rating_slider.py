"""A 1-D continuous self-rating (as in CARMA): one dimension, arousal or valence, on a
vertical slider from -1 (bottom) to 1 (top).

The slider only says where the rater points; sampling is ``app.gui.rating.RatingSampler``
(the same 25 Hz sample-and-hold on the engine clock as the circumplex rating), so both
inputs give ratings.csv rows on the same 40 ms grid.

The dimension the slider does not rate is written as ``UNRATED`` (see ``app.gui.rating``,
where the rating modes and their session.json metadata live, Qt-free).
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.gui.rating import (CIRCUMPLEX, DIMENSIONS, RATING_MODES, UNRATED, rated_dimensions,
                            rating_metadata, set_slider_rating, slider_rating)

ENDS = {"arousal": ("high arousal", "low arousal"), "valence": ("positive", "negative")}
ACTIVE = QColor(120, 230, 120)
PAUSED = QColor(110, 110, 110)


class RatingSlider(QWidget):
    """``ratingMoved(value)`` fires while ``rating_enabled`` when the mouse moves over
    the slider (no button needed, as in CARMA) or presses on it."""

    ratingMoved = Signal(float)

    def __init__(self, dimension: str = "arousal", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(70, 160)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.dimension = dimension
        self.value = 0.0
        self.active = False
        self.rating_enabled = False
        self._update_tip()

    def set_dimension(self, dimension: str) -> None:
        if dimension not in DIMENSIONS:
            raise ValueError(f"a slider rates one of {DIMENSIONS}, not {dimension!r}")
        self.dimension = dimension
        self._update_tip()
        self.update()

    def _update_tip(self) -> None:
        self.setToolTip(f"self-rating of {self.dimension} (-1..1): while rating, move the "
                        "mouse over the slider or use the arrow keys")

    def set_rating_enabled(self, enabled: bool) -> None:
        self.rating_enabled = enabled
        self.setCursor(Qt.CursorShape.SizeVerCursor if enabled else Qt.CursorShape.ArrowCursor)
        if not enabled:
            self.active = False
        self.update()

    def show_rating(self, value: float, active: bool) -> None:
        self.value, self.active = float(value), bool(active)
        self.update()

    # -- geometry ---------------------------------------------------------------------------
    def _track(self) -> QRectF:
        top, bottom = 34.0, 34.0
        width = 14.0
        return QRectF((self.width() - width) / 2, top, width,
                      max(1.0, self.height() - top - bottom))

    def value_at(self, y: float) -> float:
        track = self._track()
        fraction = (track.bottom() - y) / track.height()
        return max(-1.0, min(1.0, 2.0 * fraction - 1.0))

    def y_of(self, value: float) -> float:
        track = self._track()
        return track.bottom() - (value + 1.0) / 2.0 * track.height()

    # -- input ------------------------------------------------------------------------------
    def mouseMoveEvent(self, event) -> None:
        if self.rating_enabled:
            self.ratingMoved.emit(self.value_at(event.position().y()))
        super().mouseMoveEvent(event)

    def mousePressEvent(self, event) -> None:
        if self.rating_enabled:
            self.ratingMoved.emit(self.value_at(event.position().y()))
        super().mousePressEvent(event)

    # -- painting ---------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(20, 20, 24))
        track = self._track()
        painter.setPen(QPen(QColor(110, 110, 110), 1))
        painter.setBrush(QColor(45, 45, 52))
        painter.drawRoundedRect(track, 5, 5)
        zero = self.y_of(0.0)
        painter.drawLine(QPointF(track.left() - 6, zero), QPointF(track.right() + 6, zero))
        high, low = ENDS.get(self.dimension, ("+1", "-1"))
        painter.setPen(QColor(170, 170, 170))
        full = QRectF(0, 0, self.width(), self.height())
        painter.drawText(full.adjusted(2, 2, -2, 0),
                         Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                         f"{self.dimension}\n{high}")
        painter.drawText(full.adjusted(2, 0, -2, -2),
                         Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, low)
        if self.rating_enabled:
            colour = ACTIVE if self.active else PAUSED
            y = self.y_of(self.value)
            painter.setPen(QPen(colour, 3))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(track.left() - 8, y - 4, track.width() + 16, 8))
            painter.drawText(QRectF(0, y - 22, self.width(), 16),
                             Qt.AlignmentFlag.AlignHCenter, f"{self.value:+.2f}")


__all__ = ["RatingSlider", "RATING_MODES", "CIRCUMPLEX", "DIMENSIONS", "UNRATED",
           "rating_metadata", "rated_dimensions", "set_slider_rating", "slider_rating"]
