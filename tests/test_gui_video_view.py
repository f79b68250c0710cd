"""The video panel's message (no camera and no microphone, no model, ...) stays whole and
inside the panel at any size: real VideoView and MainWindow widgets, offscreen, checked on
the pixels they paint."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings, QSize
from PySide6.QtGui import QFontMetrics, QImage

from app.gui.main import NO_SOURCES
from app.gui.main_window import MainWindow
from app.gui.settings import Settings
from app.gui.video_view import VideoView


def painted(widget) -> np.ndarray:
    """The widget as it paints itself, as an RGB array (a copy: the QImage goes away)."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(),
                                                              image.bytesPerLine())
    return rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def text_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the lit pixels on the black panel."""
    ys, xs = np.nonzero(pixels.max(axis=2) > 60)
    assert xs.size > 50, "no message was painted"
    return xs.min(), ys.min(), xs.max(), ys.max()


def assert_inside(pixels: np.ndarray, edge: int = 4) -> tuple[int, int, int, int]:
    height, width = pixels.shape[:2]
    left, top, right, bottom = text_box(pixels)
    assert left >= edge and right <= width - 1 - edge, (left, right, width)
    assert top >= edge and bottom <= height - 1 - edge, (top, bottom, height)
    return left, top, right, bottom


@pytest.mark.parametrize("size", [(240, 180), (320, 240), (520, 340), (1600, 900)])
def test_the_no_source_message_wraps_inside_the_panel(qtbot, size):
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(*size)
    view.clear(NO_SOURCES)
    view.show()
    qtbot.waitExposed(view)
    assert view.size().toTuple() == size
    left, top, right, bottom = assert_inside(painted(view))
    line = QFontMetrics(view.font()).height()
    if QFontMetrics(view.font()).horizontalAdvance(NO_SOURCES) > size[0]:
        assert bottom - top > 1.5 * line  # the text did not fit one line: it wrapped
    # Centred: about as much room on the left as on the right.
    assert abs(left - (size[0] - 1 - right)) <= 0.15 * size[0]


def test_a_long_path_without_spaces_breaks_inside_the_panel(qtbot):
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(240, 180)
    view.clear("cannot open /" + "very_long_folder_name/" * 8 + "clip.mp4")
    view.show()
    qtbot.waitExposed(view)
    assert_inside(painted(view))


@pytest.mark.parametrize("size", ["minimum", (1280, 800)])
def test_in_the_main_window_at_its_smallest_and_a_usual_size(qtbot, tmp_path, size):
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(Settings(), store, None)
    qtbot.addWidget(window)
    window.video.clear(NO_SOURCES)  # what `affect-monitor` shows with no devices
    window.show()
    window.resize(window.minimumSizeHint() if size == "minimum" else QSize(*size))
    qtbot.waitExposed(window)
    qtbot.wait(50)  # the splitters lay out the new size
    assert_inside(painted(window.video))
    window.close()
