"""The newest video frame with the tracked face box, painted scaled to fit.

``show_frame`` only keeps a reference; painting happens when Qt repaints, and only
when the frame changed. The frame's pixels are wrapped, not copied, into a QImage.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QTextOption
from PySide6.QtWidgets import QSizePolicy, QWidget

FOUND = QColor(80, 220, 100)
LOST = QColor(230, 80, 80)
MESSAGE_MARGIN = 12  # px between a message and the panel's edges


class VideoView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(240, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._rgb: np.ndarray | None = None
        self._image: QImage | None = None
        self._index: int | None = None
        self._box: tuple[float, float, float, float] | None = None
        self.face_found = False
        self.message = "no video"
        self.frames_shown = 0

    def show_frame(self, index: int, rgb: np.ndarray, box, face_found: bool) -> None:
        if index == self._index and box == self._box and face_found == self.face_found:
            return
        if index != self._index:
            self._rgb = np.ascontiguousarray(rgb)
            height, width = self._rgb.shape[:2]
            self._image = QImage(self._rgb.data, width, height, 3 * width,
                                 QImage.Format.Format_RGB888)
            self._index = index
            self.frames_shown += 1
        self._box, self.face_found = box, face_found
        self.update()

    def clear(self, message: str = "no video") -> None:
        self._rgb = self._image = self._index = self._box = None
        self.message = message
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        if self._image is None:
            # Wrapped inside the panel at any size; a word wider than the panel (a long
            # path) breaks where it must instead of running off the edge.
            option = QTextOption(Qt.AlignmentFlag.AlignCenter)
            option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
            painter.setPen(QColor(170, 170, 170))
            area = QRectF(self.rect()).adjusted(MESSAGE_MARGIN, MESSAGE_MARGIN,
                                                -MESSAGE_MARGIN, -MESSAGE_MARGIN)
            painter.drawText(area, self.message, option)
            return
        width, height = self._image.width(), self._image.height()
        scale = min(self.width() / width, self.height() / height)
        target = QRectF((self.width() - width * scale) / 2, (self.height() - height * scale) / 2,
                        width * scale, height * scale)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.drawImage(target, self._image)
        colour = FOUND if self.face_found else LOST
        if self._box is not None and self.face_found:
            x, y, w, h = self._box
            painter.setPen(QPen(colour, 2))
            painter.drawRect(QRectF(target.x() + x * scale, target.y() + y * scale,
                                    w * scale, h * scale))
        painter.setPen(colour)
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(target.adjusted(6, 4, -6, -4),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                         "face" if self.face_found else "no face")
