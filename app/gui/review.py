"""Review a recorded session folder: its video in sync with the predicted arousal and
valence, the self-ratings and the event markers; play/pause, scrub, jump to markers.

Separate from the live path: its own window and its own timer, no engine. Everything is
read from the folder once (``app.gui.review_data.load_session``), except the video, which
is decoded on demand (``app.gui.review_data.FrameReader``). A session recorded with
``--no-media`` opens with the curves only.

    python -m app.gui.review SESSION_FOLDER
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QMessageBox, QPushButton, QSlider, QSplitter, QVBoxLayout,
                               QWidget)

from app.gui.curves import AROUSAL_COLOUR, VALENCE_COLOUR, make_plot
from app.gui.review_data import FrameReader, ReviewData, load_session
from app.gui.video_view import VideoView
from app.recording.layout import SessionFormatError
from models.spec import STEP_SECONDS

TICK_MS = 33
MARKER_COLOUR = (250, 220, 60)
CURSOR_COLOUR = (230, 230, 230)
WINDOWS = ((10, "10 s"), (60, "60 s"), (300, "5 min"), (0, "whole session"))
DEFAULT_WINDOW_S = 60
SCRUB_STEP_S = 1.0  # Left/Right keys


class ReviewWindow(QWidget):
    """One recorded session. ``seek(t)`` moves everything to ``t`` at once; ``play()``
    advances it in real time from the window's timer."""

    def __init__(self, data: ReviewData, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.data = data
        self.position = 0.0
        self.playing = False
        self._play_from: tuple[float, float] | None = None  # (wall, position) at play
        self.shown_frame: int | None = None  # video.mp4 index now on screen
        self.reader: FrameReader | None = None
        self.setWindowTitle(f"Review — {data.folder.name}")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self._build()
        self._open_video()
        self.seek(0.0)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.tick)

    @classmethod
    def open(cls, folder: str | Path, parent: QWidget | None = None) -> "ReviewWindow":
        """SessionFormatError (with a message) when ``folder`` is not a session."""
        return cls(load_session(folder), parent)

    # -- layout -----------------------------------------------------------------------------
    def _build(self) -> None:
        data = self.data
        info = data.info
        who = [f"{name} {info.get(key)}" for key, name in
               (("participant_id", "participant"), ("session_id", "session"),
                ("condition", "condition")) if info.get(key)]
        self.header = QLabel(" · ".join([data.folder.name, *who,
                                         f"{data.duration_s:.2f} s",
                                         str(info.get("status", "?"))]))
        self.video = VideoView()
        self._build_plots()
        self._build_marker_list()
        controls = self._build_controls()
        self.readout = QLabel()
        curves = QWidget()
        curves_layout = QVBoxLayout(curves)
        curves_layout.setContentsMargins(0, 0, 0, 0)
        curves_layout.addWidget(self.readout)
        curves_layout.addWidget(self.arousal_plot, stretch=1)
        curves_layout.addWidget(self.valence_plot, stretch=1)
        markers = QWidget()
        markers_layout = QVBoxLayout(markers)
        markers_layout.setContentsMargins(0, 0, 0, 0)
        markers_layout.addWidget(QLabel("markers (click to jump)"))
        markers_layout.addWidget(self.marker_list)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.video)
        left.addWidget(markers)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(curves)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout_ = QVBoxLayout(self)
        layout_.addWidget(self.header)
        layout_.addWidget(split, stretch=1)
        layout_.addLayout(controls)
        layout_.addWidget(self.message)

        for key, slot in ((Qt.Key.Key_Space, self.toggle_play),
                          (Qt.Key.Key_Left, lambda: self.seek(self.position - SCRUB_STEP_S)),
                          (Qt.Key.Key_Right, lambda: self.seek(self.position + SCRUB_STEP_S)),
                          (Qt.Key.Key_Home, lambda: self.seek(0.0))):
            QShortcut(QKeySequence(key), self).activated.connect(slot)
        QShortcut(QKeySequence("Ctrl+W"), self).activated.connect(self.close)
        self.resize(1200, 760)

    def _build_plots(self) -> None:
        """The arousal and valence plots: predictions, self-ratings, a cursor, markers."""
        data = self.data
        self.arousal_plot, self.arousal_curve, arousal_rating = make_plot("arousal",
                                                                          AROUSAL_COLOUR)
        self.valence_plot, self.valence_curve, valence_rating = make_plot("valence",
                                                                          VALENCE_COLOUR)
        self.valence_plot.setXLink(self.arousal_plot)
        self.valence_plot.getPlotItem().setLabel("bottom", "time", units="s")
        self.plots = (self.arousal_plot, self.valence_plot)
        self.curves = {"arousal": self.arousal_curve, "valence": self.valence_curve}
        self.rating_curves = {"arousal": arousal_rating, "valence": valence_rating}
        self.curves["arousal"].setData(data.time_s, data.arousal)
        self.curves["valence"].setData(data.time_s, data.valence)
        ratings = {"arousal": data.rating_arousal, "valence": data.rating_valence}
        for name in ("arousal", "valence"):
            if name in data.rated and len(data.rating_time_s):
                self.rating_curves[name].setData(data.rating_time_s, ratings[name])
        self.cursors = []
        for plot in self.plots:
            cursor = pg.InfiniteLine(pos=0.0, angle=90, pen=pg.mkPen(CURSOR_COLOUR, width=1))
            plot.addItem(cursor)
            self.cursors.append(cursor)
            plot.scene().sigMouseClicked.connect(
                lambda event, p=plot: self._plot_clicked(p, event))
        self.marker_lines = []
        for marker in data.markers:
            for plot in self.plots:
                line = pg.InfiniteLine(
                    pos=marker.time_s, angle=90, pen=pg.mkPen(MARKER_COLOUR, width=1),
                    label=marker.text if plot is self.arousal_plot else None,
                    labelOpts={"position": 0.9, "color": MARKER_COLOUR})
                plot.addItem(line)
                self.marker_lines.append(line)

    def _build_marker_list(self) -> None:
        data = self.data
        self.marker_list = QListWidget()
        for marker in data.markers:
            item = QListWidgetItem(f"{_clock(marker.time_s)}  {marker.text}"
                                   + (f"  ({marker.label})" if marker.value else ""))
            item.setData(Qt.ItemDataRole.UserRole, marker.time_s)
            self.marker_list.addItem(item)
        if not data.markers:
            self.marker_list.addItem("no markers in this session")
            self.marker_list.setEnabled(False)
        self.marker_list.itemClicked.connect(self._marker_clicked)
        self.marker_list.itemActivated.connect(self._marker_clicked)

    def _build_controls(self) -> QHBoxLayout:
        """Play, the time slider, the time and the window choice, in one row."""
        data = self.data
        self.play_button = QPushButton("Play")
        self.play_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.play_button.clicked.connect(self.toggle_play)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, max(1, int(math.ceil(data.duration_s * 1000))))
        self.slider.setSingleStep(round(STEP_SECONDS * 1000))  # ms
        self.slider.setPageStep(1000)
        self.slider.valueChanged.connect(self._slider_moved)
        self.time_label = QLabel()
        self.window_box = QComboBox()
        for seconds, name in WINDOWS:
            self.window_box.addItem(name, seconds)
        self.window_box.setCurrentIndex([s for s, _ in WINDOWS].index(DEFAULT_WINDOW_S))
        self.window_box.currentIndexChanged.connect(lambda _i: self._update_x_range())
        self.window_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.slider, stretch=1)
        controls.addWidget(self.time_label)
        controls.addWidget(QLabel("window"))
        controls.addWidget(self.window_box)
        return controls

    def _open_video(self) -> None:
        data = self.data
        notes = []
        if data.video is not None:
            try:
                self.reader = FrameReader(data.video)
            except SessionFormatError as error:
                data.video_problem = str(error)
        if self.reader is None:
            if data.video_problem:
                self.video.clear(data.video_problem)
                notes.append(data.video_problem)
            else:  # recorded with --no-media, or without a camera: curves only
                self.video.hide()
                notes.append("no video in this session (recorded without media or camera): "
                             "curves only")
        if not len(data.time_s):
            notes.append("this session holds no predictions")
        if data.rated != ("arousal", "valence") and len(data.rating_time_s):
            notes.append(f"self-rating on a slider: {', '.join(data.rated)} only")
        self.message.setText("; ".join(notes))
        self.message.setVisible(bool(notes))

    @property
    def has_video(self) -> bool:
        return self.reader is not None

    # -- moving in time ---------------------------------------------------------------------
    def seek(self, t: float) -> None:
        """Everything to ``t`` (clipped to the session): cursor, curves, video, readouts."""
        t = min(max(0.0, float(t)), self.data.duration_s)
        self.position = t
        if self.playing:
            self._play_from = (time.monotonic(), t)
        self._render()

    def play(self) -> None:
        if self.position >= self.data.duration_s - 1e-6:
            self.seek(0.0)
        self.playing = True
        self._play_from = (time.monotonic(), self.position)
        self.play_button.setText("Pause")
        self.timer.start(TICK_MS)

    def pause(self) -> None:
        self.playing = False
        self._play_from = None
        self.play_button.setText("Play")
        self.timer.stop()

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def tick(self) -> None:
        if not self.playing or self._play_from is None:
            return
        wall, start = self._play_from
        t = start + (time.monotonic() - wall)
        if t >= self.data.duration_s:
            self.position = self.data.duration_s
            self.pause()
            self._render()
            return
        self.position = t
        self._render()

    def _render(self) -> None:
        t = self.position
        for cursor in self.cursors:
            cursor.setPos(t)
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(t * 1000)))
        self.slider.blockSignals(False)
        self.time_label.setText(f"{_clock(t)} / {_clock(self.data.duration_s)}")
        step = self.data.prediction_at(t)
        face = False
        if step is not None:
            face = bool(self.data.face_found[step])
            self.readout.setText(f"arousal {self.data.arousal[step]:+.2f}   "
                                 f"valence {self.data.valence[step]:+.2f}   "
                                 f"face {'yes' if face else 'no'}")
        else:
            self.readout.setText("no predictions")
        self._update_x_range()
        self._show_video(t, face)

    def _show_video(self, t: float, face: bool) -> None:
        if self.reader is None:
            return
        found = self.data.frame_at(t)
        if found is None:
            return
        index, frame_time = found
        if index == self.shown_frame:
            return
        frame = self.reader.frame_at(frame_time)
        if frame is None:
            self.video.clear("this part of the video cannot be decoded")
            self.shown_frame = None
            return
        self.shown_frame = index
        self.video.show_frame(index, frame[1], None, face)

    def _update_x_range(self) -> None:
        window = self.window_box.currentData()
        duration = max(self.data.duration_s, 1e-3)
        if not window or window >= duration:
            lo, hi = 0.0, duration
        else:
            lo = min(max(0.0, self.position - window / 2), duration - window)
            hi = lo + window
        self.arousal_plot.getPlotItem().setXRange(lo, hi, padding=0)

    # -- input ------------------------------------------------------------------------------
    def _slider_moved(self, value: int) -> None:
        self.seek(value / 1000.0)

    def _marker_clicked(self, item: QListWidgetItem) -> None:
        t = item.data(Qt.ItemDataRole.UserRole)
        if t is not None:
            self.seek(float(t))

    def jump_to_marker(self, number: int) -> None:
        """Jump to the ``number``-th marker (0-based), as a click on the list does."""
        item = self.marker_list.item(number)
        self.marker_list.setCurrentItem(item)
        self._marker_clicked(item)

    def _plot_clicked(self, plot: pg.PlotWidget, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        view = plot.getPlotItem().getViewBox()
        if view.sceneBoundingRect().contains(event.scenePos()):
            self.seek(view.mapSceneToView(event.scenePos()).x())

    def closeEvent(self, event) -> None:
        self.pause()
        if self.reader is not None:
            self.reader.close()
        super().closeEvent(event)


def _clock(t: float) -> str:
    minutes, seconds = divmod(max(0.0, t), 60)
    return f"{int(minutes)}:{seconds:05.2f}"


def open_review(folder: str | Path, parent: QWidget | None = None
                ) -> tuple[ReviewWindow | None, str | None]:
    """(the review window, shown) or (None, why not): never raises for a bad folder."""
    try:
        window = ReviewWindow.open(folder, parent)
    except SessionFormatError as error:
        return None, str(error)
    window.show()
    return window, None


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m app.gui.review SESSION_FOLDER", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication([])
    window, problem = open_review(args[0])
    if window is None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Cannot review this folder", problem)
        box.exec()
        return 2
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
