"""Review a recorded session folder: its video in sync with the predicted arousal and
valence, the self-ratings and the event markers; play/pause, scrub, jump to markers.

Separate from the live path: its own window and its own timer, no engine. Everything is
read from the folder (``app.recording.layout``) once, except the video, which is decoded
on demand: the frame shown at time t is the last frame of frames.csv captured at or
before t (video frame 0 is the black placeholder before the first real frame, when the
recording has one), found by seeking to the keyframe before it (about one a second) and
decoding forward; playing decodes forward only. A session recorded with ``--no-media``
opens with the curves only.

    python -m app.gui.review SESSION_FOLDER
"""
from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QMessageBox, QPushButton, QSlider, QSplitter, QVBoxLayout,
                               QWidget)

from app.gui.curves import AROUSAL_COLOUR, VALENCE_COLOUR, make_plot
from app.gui.rating_slider import rated_dimensions
from app.gui.video_view import VideoView
from app.recording import layout
from app.recording.layout import SessionFormatError
from app.recording.reader import read_session
from models.media import to_rgb

log = logging.getLogger(__name__)

TICK_MS = 33
MARKER_COLOUR = (250, 220, 60)
CURSOR_COLOUR = (230, 230, 230)
WINDOWS = ((10, "10 s"), (60, "60 s"), (300, "5 min"), (0, "whole session"))
DEFAULT_WINDOW_S = 60
SCRUB_STEP_S = 1.0  # Left/Right keys
FORWARD_DECODE_S = 2.0  # a target further ahead than this is reached by seeking


@dataclass(frozen=True)
class Marker:
    time_s: float
    label: str  # trial_type
    value: str

    @property
    def text(self) -> str:
        return self.value or self.label


@dataclass
class ReviewData:
    """A session folder, read for review. Times are on the session clock (seconds)."""

    folder: Path
    info: dict
    time_s: np.ndarray
    arousal: np.ndarray
    valence: np.ndarray
    face_found: np.ndarray
    rating_time_s: np.ndarray
    rating_arousal: np.ndarray
    rating_valence: np.ndarray
    rated: tuple[str, ...]
    markers: list[Marker]
    video: Path | None = None
    frame_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    frame_time_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    placeholder: bool = False
    video_problem: str | None = None  # why a session with media shows no video
    duration_s: float = 0.0

    def frame_at(self, t: float) -> tuple[int, float] | None:
        """(frame index in video.mp4, its time) shown at ``t``; None without video."""
        if self.video is None:
            return None
        i = int(np.searchsorted(self.frame_time_s, t + 1e-6, side="right")) - 1
        if i < 0:
            if self.placeholder:
                return 0, 0.0
            i = 0
        return int(self.frame_index[i]), float(self.frame_time_s[i])

    def prediction_at(self, t: float) -> int | None:
        """Index of the prediction step holding ``t`` (the last one at or before it)."""
        if not len(self.time_s):
            return None
        return max(0, int(np.searchsorted(self.time_s, t + 1e-6, side="right")) - 1)


def load_session(folder: str | Path) -> ReviewData:
    """Read a session folder; SessionFormatError with a message when it is not one."""
    recorded = read_session(folder)
    markers = [Marker(float(row["onset"]), row.get("trial_type") or "", row.get("value") or "")
               for row in recorded.events]
    data = ReviewData(recorded.folder, recorded.info, recorded.time_s, recorded.arousal,
                      recorded.valence, recorded.face_found, recorded.rating_time_s,
                      recorded.rating_arousal, recorded.rating_valence,
                      rated_dimensions(recorded.info), markers)
    _attach_video(data)
    info, time_s, rating_t = recorded.info, recorded.time_s, recorded.rating_time_s
    ends = [float(info.get("duration_s") or 0.0)]
    step = 0.04
    ends += [time_s[-1] + step] if len(time_s) else []
    ends += [m.time_s for m in markers] + ([rating_t[-1]] if len(rating_t) else [])
    ends += [data.frame_time_s[-1]] if len(data.frame_time_s) else []
    data.duration_s = max(ends)
    return data


def _attach_video(data: ReviewData) -> None:
    media = data.info.get("media") or {}
    video_info = media.get("video") if isinstance(media, dict) else None
    video, frames = data.folder / layout.VIDEO, data.folder / layout.FRAMES
    if not video.is_file():
        if video_info:
            data.video_problem = f"{layout.VIDEO} is missing from this session"
        return
    if not frames.is_file():
        data.video_problem = f"{layout.FRAMES} is missing: the video's frame times are unknown"
        return
    try:
        rows = layout.read_table(frames)
        index = np.array([int(r["frame"]) for r in rows], np.int64)
        times = np.array([float(r["time_s"]) for r in rows], np.float64)
    except (KeyError, TypeError, ValueError):
        data.video_problem = f"{layout.FRAMES} cannot be read"
        return
    if not len(index):
        data.video_problem = "the video holds no frames"
        return
    order = np.argsort(times, kind="stable")
    data.video, data.frame_index, data.frame_time_s = video, index[order], times[order]
    data.placeholder = bool((video_info or {}).get("placeholder_frame_at_0", index.min() > 0))


class FrameReader:
    """Frames of video.mp4 by presentation time: forward decoding while playing, a seek
    to the keyframe before the target when scrubbing back or far ahead."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._container = av.open(str(path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, OSError, IndexError) as error:
            raise SessionFormatError(f"{path}: cannot be opened as video ({error})") from None
        self._stream.thread_type = "AUTO"
        starts = [float(s.start_time * s.time_base) for s in self._container.streams
                  if s.start_time is not None and s.time_base is not None
                  and s.type in ("audio", "video")]
        self._origin = min(starts) if starts else 0.0
        self._decoder = None
        self._last: tuple | None = None  # (time, av.VideoFrame) last decoded
        self.seeks = 0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _time(self, frame) -> float:
        if frame.pts is None:
            return self._last[0] if self._last else 0.0
        return float(frame.pts * frame.time_base) - self._origin

    def frame_at(self, target: float) -> tuple[float, np.ndarray] | None:
        """(time, RGB) of the frame presented at ``target`` (a frame time from frames.csv)."""
        if self._container is None:
            return None
        last = self._last
        if last is not None and abs(last[0] - target) < 1e-4:
            return self._rgb(last)
        if (last is None or target < last[0] or target - last[0] > FORWARD_DECODE_S
                or self._decoder is None):
            self.seeks += 1
            pts = int(round((target + self._origin) / self._stream.time_base))
            self._container.seek(max(0, pts), backward=True, any_frame=False,
                                 stream=self._stream)
            self._decoder = self._container.decode(self._stream)
            self._last = None
        previous = self._last
        try:
            for frame in self._decoder:
                current = (self._time(frame), frame)
                if current[0] > target + 1e-4 and previous is not None:
                    # Past it (the target was not a frame time): the one before is shown.
                    self._last = current
                    return self._rgb(previous)
                self._last = previous = current
                if current[0] >= target - 1e-4:
                    return self._rgb(current)
        except av.FFmpegError as error:
            log.warning("%s: decoding stopped (%s)", self.path, error)
        self._decoder = None
        return None if previous is None else self._rgb(previous)

    @staticmethod
    def _rgb(entry) -> tuple[float, np.ndarray]:
        t, frame = entry
        if not isinstance(frame, np.ndarray):
            frame = to_rgb(frame)  # as read_video_frames converts
        return t, frame


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

        self.readout = QLabel()
        self.play_button = QPushButton("Play")
        self.play_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.play_button.clicked.connect(self.toggle_play)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, max(1, int(math.ceil(data.duration_s * 1000))))
        self.slider.setSingleStep(40)
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
