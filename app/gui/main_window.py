"""The main window: layout and wiring. What it shows comes from a ``LiveControl``
(``app.gui.control``: engine, recording, LSL, baseline, self-rating, markers), which the
window commands from its actions and observes (``on_change``, ``on_message``, ...).

One QTimer (~30 Hz) does everything periodic on the GUI thread: ``control.poll()``
(drain the engine's queue, sample the self-rating, watch the recorder), one setData per
curve, repaint the video if a new frame came. Inference runs on the engine's thread,
disk writes on the recorder's.
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QEvent, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut
from PySide6.QtWidgets import (QFileDialog, QGridLayout, QInputDialog, QMainWindow,
                               QMessageBox, QToolBar, QWidget)

from app.gui import settings as settings_store
from app.gui.control import LSL_STREAMS, MAX_BASELINE_S, LiveControl, recorder_class
from app.gui.live_panel import WINDOW_NAMES, LivePanel
from app.gui.markers import MarkerBar
from app.gui.rating import CIRCUMPLEX
from app.gui.recording import RecordDialog
from app.gui.settings import WINDOW_CHOICES_S, Settings
from app.gui.sources_menu import fill_sources_menu
from app.gui.status import StatusPanel
from app.recording.lsl import lsl_not_installed
from app.sources import Pacing
from models.runtime import AffectSession

log = logging.getLogger(__name__)

TICK_MS = 33  # ~30 Hz: drain, sample ratings, redraw
DEFAULT_BASELINE_S = 60.0
RATING_INPUTS = ((CIRCUMPLEX, "Circumplex (valence and arousal)"),
                 ("arousal", "Slider: arousal only"), ("valence", "Slider: valence only"))


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings, store: QSettings | None = None,
                 session: AffectSession | None = None, model_problem: str | None = None,
                 devices=None, pacing: Pacing = Pacing.REALTIME) -> None:
        super().__init__()
        self.setWindowTitle("affect-monitor")
        self.settings = settings
        self.store = store
        self.devices = devices  # app.sources.DeviceList for the Sources menu; None: look
        self.reviews: list = []  # open review windows (app.gui.review)
        self.error_box: QMessageBox | None = None
        recorder, self.record_problem = recorder_class()
        self.control = LiveControl(session, settings.sources, model_path=settings.model,
                                   marker_labels=settings.marker_labels,
                                   lsl_stream=settings.lsl_stream, pacing=pacing,
                                   recorder_class=recorder, observer=self)
        self._build()
        self.control.set_focused(self.isActiveWindow())
        self.on_change()
        if model_problem:
            self.video.clear("choose a model: Model ▸ Choose model… (Ctrl+M)")
            self.status.message(model_problem, 0)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.tick)
        self.timer.start(TICK_MS)

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        self.panel = LivePanel(self.settings.window_s)
        # The panel's parts the window wires (and tests and scripts look at).
        panel = self.panel
        self.video, self.curves, self.circumplex = panel.video, panel.curves, panel.circumplex
        self.rating_slider, self.window_box = panel.rating_slider, panel.window_box
        self.face_value = panel.face_value
        self.circumplex.ratingMoved.connect(self._rating_moved)
        self.rating_slider.ratingMoved.connect(self._slider_moved)
        self.window_box.currentIndexChanged.connect(
            lambda i: self.set_window(self.window_box.itemData(i)))
        self.marker_bar = MarkerBar(self.settings.marker_labels, self)
        self.marker_bar.marked.connect(self.control.add_marker)
        self.marker_bar.labelsChanged.connect(self._labels_changed)
        central = QWidget()
        grid = QGridLayout(central)
        grid.addWidget(panel, 0, 0)
        grid.addWidget(self.marker_bar, 1, 0)
        self.setCentralWidget(central)
        self.status = StatusPanel(self.statusBar())
        self._build_actions()
        self._build_menus()
        self.resize(1280, 800)
        if self.settings.geometry is not None:
            self.restoreGeometry(self.settings.geometry)

    def _action(self, text: str, shortcut: str | None, slot, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            tip = f"{tip or text} ({shortcut})"
        action.setToolTip(tip or text)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        control = self.control
        self.start_action = self._action("Start", "Space", control.toggle_running,
                                         "start or stop the engine")
        self.record_action = self._action("Record", "Ctrl+R", self.toggle_recording,
                                          "record a session")
        if control.recorder_class is None:
            self.record_action.setEnabled(False)
            self.record_action.setToolTip(self.record_problem)
        self.baseline_action = self._action("Record a neutral baseline…", "Ctrl+B",
                                            self.ask_baseline,
                                            "take the next seconds of this recording as "
                                            "the participant's neutral baseline")
        self.stream_action = self._action("Stream on LSL", "Ctrl+L", control.set_lsl_stream,
                                          f"LSL outlets {LSL_STREAMS}, for LabRecorder and "
                                          "other LSL apps")
        self.stream_action.setCheckable(True)
        problem = lsl_not_installed()  # no mne-lsl import: that takes seconds
        if problem:
            self.stream_action.setEnabled(False)
            self.stream_action.setToolTip(problem)
        self.rating_action = self._action("Self-rating", "Ctrl+T", control.set_rating,
                                          "continuous self-rating on the circumplex or a "
                                          "slider (mouse or arrow keys)")
        self.rating_action.setCheckable(True)
        self.open_action = self._action("Open video/audio file…", "Ctrl+O",
                                        self.open_file_dialog)
        self.review_action = self._action(
            "Open session for review…", "Ctrl+Shift+O", self.open_review_dialog,
            "play a recorded session folder with its curves and markers")
        self.model_action = self._action("Choose model…", "Ctrl+M", self.choose_model_dialog)
        self.quit_action = self._action("Quit", "Ctrl+Q", self.close)
        for number, seconds in enumerate(WINDOW_CHOICES_S, start=1):
            self._action(f"Window {WINDOW_NAMES[seconds]}", f"Ctrl+{number}",
                         lambda _=False, s=seconds: self.set_window(s))
        # Arrow keys move the self-rating (only while it runs; otherwise they do nothing).
        for key, dv, da in ((Qt.Key.Key_Left, -1, 0), (Qt.Key.Key_Right, 1, 0),
                            (Qt.Key.Key_Up, 0, 1), (Qt.Key.Key_Down, 0, -1)):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(lambda dv=dv, da=da: self.nudge_rating(dv, da))

    def _build_menus(self) -> None:
        toolbar = QToolBar("main")
        toolbar.setMovable(False)
        for action in (self.start_action, self.record_action, self.rating_action,
                       self.open_action, self.model_action):
            toolbar.addAction(action)
        self.addToolBar(toolbar)
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for action in (self.open_action, self.review_action, self.quit_action):
            file_menu.addAction(action)
        self.sources_menu = menu.addMenu("&Sources")
        self.sources_menu.aboutToShow.connect(self._fill_sources_menu)
        menu.addMenu("&Model").addAction(self.model_action)
        session_menu = menu.addMenu("S&ession")
        for action in (self.start_action, self.record_action, self.baseline_action,
                       self.stream_action, self.rating_action):
            session_menu.addAction(action)
        input_menu = session_menu.addMenu("Self-rating input")
        self.rating_mode_actions = {}
        modes = QActionGroup(input_menu)
        for mode, text in RATING_INPUTS:
            action = input_menu.addAction(text)
            action.setCheckable(True)
            action.triggered.connect(lambda _=False, m=mode: self.control.set_rating_mode(m))
            modes.addAction(action)
            self.rating_mode_actions[mode] = action

    def _fill_sources_menu(self) -> None:
        if self.devices is None:
            from app.sources import list_devices
            self.devices = list_devices()
        fill_sources_menu(self.sources_menu, self.devices, self.control.sources,
                          self.control.set_sources, self._refresh_devices)

    def _refresh_devices(self) -> None:
        self.devices = None

    # -- what the control says (LiveObserver) ---------------------------------------------
    def on_change(self) -> None:
        """Show the control's state: actions, rating input, labels, REC indicator."""
        control = self.control
        self.start_action.setText("Stop" if control.running else "Start")
        self.record_action.setText("Record" if control.recording is None else "Stop recording")
        self.baseline_action.setEnabled(control.recording is not None)  # only while recording
        self.stream_action.setChecked(control.lsl_stream)
        self.rating_action.setChecked(control.sampler.running)
        self.rating_mode_actions[control.rating_mode].setChecked(True)
        self.panel.show_rating_input(control.rating_mode, control.sampler.running)
        if control.sampler.running:
            self._show_rating()
        model = control.model
        self.status.set_model(*(("no model", "") if model is None
                                else (model.spec.name, model.provider)))
        self.status.set_sources(*control.source_names())
        self._show_recording()

    def on_message(self, text: str, ms: int) -> None:
        self.status.message(text, ms)

    def on_restart(self) -> None:
        self.panel.restart(self.control.has_video())

    def on_marker(self, t: float, text: str) -> None:
        self.curves.add_marker(t, text)

    def on_choice(self) -> None:
        self.settings.model = self.control.model_path
        self.settings.sources = self.control.sources
        self._save_settings()

    # -- timer tick: everything periodic ----------------------------------------------------
    def tick(self) -> None:
        update = self.control.poll()
        self.panel.show_predictions(update.predictions)
        if update.predictions:
            self.status.set_voice(update.predictions[-1].voice_active)
        live = self.control.live
        if live is not None:
            self.panel.show_frame(live)
            self.status.set_level(live.audio_level())
            rates = self.control.rates()
            if rates is not None:
                self.status.set_rates(*rates)
        self.panel.show_ratings(update.ratings, self.control.rating_mode)
        self.panel.redraw(update.now)
        self._show_recording()

    def _show_recording(self) -> None:
        recording = self.control.recording  # the REC indicator and a baseline's countdown
        self.status.set_recording(*((None,) if recording is None else
                                    (recording.elapsed_s, recording.baseline_left_s())))

    # -- self-rating input ----------------------------------------------------------------
    def _show_rating(self) -> None:
        self.panel.show_rating(self.control.sampler, self.control.rating_mode)

    def _rating_moved(self, valence: float, arousal: float) -> None:
        self.control.move_rating(valence, arousal)
        self._show_rating()

    def _slider_moved(self, value: float) -> None:
        self.control.set_slider(value)
        self._show_rating()

    def nudge_rating(self, d_valence: int, d_arousal: int) -> None:
        self.control.nudge_rating(d_valence, d_arousal)
        if self.control.sampler.running:
            self._show_rating()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.ActivationChange:
            self.control.set_focused(self.isActiveWindow())
            if self.control.sampler.running:
                self._show_rating()
        super().changeEvent(event)

    # -- dialogs ------------------------------------------------------------------------------
    def toggle_recording(self) -> None:
        if self.control.recording is not None:
            self.control.stop_recording()
            return
        dialog = RecordDialog(self)
        if dialog.exec() == RecordDialog.DialogCode.Accepted:
            self.control.start_recording(dialog.out_dir(), dialog.metadata(), **dialog.options())

    def ask_baseline(self) -> None:
        if self.control.recording is None:
            return
        seconds, ok = QInputDialog.getDouble(
            self, "Neutral baseline", "Keep the participant neutral for (seconds):",
            DEFAULT_BASELINE_S, 1.0, MAX_BASELINE_S, 0)
        if ok:
            self.control.record_baseline(seconds)

    def choose_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model", self.control.model_path,
                                              "ONNX models (*.onnx);;All files (*)")
        if path:
            self.control.set_model(path)

    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a video or audio file", "",
            "Media (*.mp4 *.mkv *.avi *.mov *.flv *.webm *.wav *.flac *.mp3 *.ogg *.m4a);;"
            "All files (*)")
        if path:
            self.control.open_file(path)

    def open_review_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a recorded session folder")
        if folder:
            self.open_review(folder)

    def open_review(self, folder) -> object | None:
        """A review window on a recorded session folder (app.gui.review), apart from the
        live engine; a message, not a traceback, when the folder is not a session."""
        from app.gui.review import open_review

        window, problem = open_review(folder)
        if window is None:
            self.on_error("Cannot review this folder", problem)
            return None
        self.reviews = [w for w in self.reviews if w.isVisible()] + [window]
        return window

    def on_error(self, title: str, text: str) -> None:
        """A window-modal message that does not block the timer (or a test)."""
        log.warning("%s: %s", title, text)
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok,
                          self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.error_box = box

    # -- settings ---------------------------------------------------------------------------
    def set_window(self, seconds: int) -> None:
        self.settings.window_s = seconds
        self.window_box.blockSignals(True)
        self.window_box.setCurrentIndex(WINDOW_CHOICES_S.index(seconds))
        self.window_box.blockSignals(False)
        self.curves.set_window(seconds)
        self._save_settings()

    def _labels_changed(self, labels: list) -> None:
        self.settings.marker_labels = list(labels)
        self.control.marker_labels = list(labels)
        self._save_settings()

    def _save_settings(self) -> None:
        if self.store is not None:
            settings_store.save(self.store, self.settings)

    def closeEvent(self, event) -> None:
        self.timer.stop()
        for review in self.reviews:
            review.close()
        self.control.close()  # finalises a recording too
        # The stream as the user left it (a recording's own stream is off again by now).
        self.settings.lsl_stream = self.control.lsl_stream
        self.settings.geometry = self.saveGeometry()
        self._save_settings()
        super().closeEvent(event)
