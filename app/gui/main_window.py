"""The main window: wires sources, model, engine, curves, circumplex, video, markers,
self-rating, recording and the status bar together.

One QTimer (~30 Hz) does everything periodic on the GUI thread: drain the engine's
queue, sample the self-rating, one setData per curve, repaint the video if a new frame
came. Inference runs on the engine's thread, disk writes on the recorder's.
"""
from __future__ import annotations

import logging
import socket
import time
from collections import deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut
from PySide6.QtWidgets import (QComboBox, QFileDialog, QGridLayout, QHBoxLayout,
                               QInputDialog, QLabel, QMainWindow, QMessageBox, QSplitter,
                               QToolBar, QVBoxLayout, QWidget)

from app.gui import settings as settings_store
from app.gui.circumplex import CircumplexView
from app.gui.curves import AROUSAL_COLOUR, VALENCE_COLOUR, CurvePanel
from app.gui.live import LiveEngine, MediaError, ModelLoadError, SourceError, load_model
from app.gui.markers import MarkerBar
from app.gui.rating import ARROW_STEP, RatingSampler
from app.gui.rating_slider import (CIRCUMPLEX, RatingSlider, rating_metadata,
                                   set_slider_rating, slider_rating)
from app.gui.recording import (MAX_BASELINE_S, RecordDialog, Recording, baseline_summary,
                               recorder_class)
from app.gui.settings import WINDOW_CHOICES_S, Settings, SourceChoice
from app.gui.status import StatusPanel
from app.gui.video_view import VideoView
from app.recording.lsl import AffectOutlet, MarkerOutlet, lsl_not_installed, marker_text
from app.sources import Pacing
from models.runtime import AffectSession

log = logging.getLogger(__name__)

TICK_MS = 33  # ~30 Hz: drain, sample ratings, redraw
STATS_EVERY_S = 0.5
WINDOW_NAMES = {10: "10 s", 60: "60 s", 300: "5 min"}
DEFAULT_BASELINE_S = 60.0


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings, store: QSettings | None = None,
                 session: AffectSession | None = None, model_problem: str | None = None,
                 devices=None, pacing: Pacing = Pacing.REALTIME) -> None:
        super().__init__()
        self.setWindowTitle("affect-monitor")
        self.settings = settings
        self.store = store
        self.session = session
        self.pacing = pacing
        self.devices = devices
        self.live: LiveEngine | None = None
        self.recording: Recording | None = None
        # While streaming on LSL (Session > Stream on LSL): Affect follows the engine
        # through restarts; Markers is shared with a recording on LSL.
        self.affect_outlet: AffectOutlet | None = None
        self.marker_outlet: MarkerOutlet | None = None
        self.sampler = RatingSampler()
        self.rating_mode = CIRCUMPLEX  # or "arousal"/"valence": a 1-D slider
        self.reviews: list = []  # open review windows (app.gui.review)
        self.markers: list[tuple[float, str, str]] = []  # (engine time, label, value)
        self.ratings_taken = 0
        self.error_box: QMessageBox | None = None
        self._latencies: deque[float] = deque(maxlen=25)
        self._last_face = False
        self._last_voice: bool | None = None
        self._stats_at = time.monotonic()
        self._steps_at = 0
        self._build()
        self._update_model_label()
        self._update_sources_label()
        if model_problem:
            self.video.clear("choose a model: Model ▸ Choose model… (Ctrl+M)")
            self.status.message(model_problem, 0)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.tick)
        self.timer.start(TICK_MS)

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        self.video = VideoView()
        self.circumplex = CircumplexView()
        self.circumplex.ratingMoved.connect(self._rating_moved)
        self.curves = CurvePanel(self.settings.window_s)
        self.arousal_value = self._readout("arousal", AROUSAL_COLOUR)
        self.valence_value = self._readout("valence", VALENCE_COLOUR)
        self.face_value = QLabel("face –")
        self.voice_value = QLabel("voice –")
        readouts = QHBoxLayout()
        for widget in (self.arousal_value, self.valence_value, self.face_value,
                       self.voice_value):
            readouts.addWidget(widget)
        readouts.addStretch(1)
        self.window_box = QComboBox()
        for seconds in WINDOW_CHOICES_S:
            self.window_box.addItem(WINDOW_NAMES[seconds], seconds)
        self.window_box.setCurrentIndex(WINDOW_CHOICES_S.index(self.settings.window_s))
        self.window_box.currentIndexChanged.connect(
            lambda i: self.set_window(self.window_box.itemData(i)))
        self.window_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        readouts.addWidget(QLabel("window"))
        readouts.addWidget(self.window_box)

        self.rating_slider = RatingSlider()
        self.rating_slider.ratingMoved.connect(self._slider_moved)
        self.rating_slider.hide()  # shown when the self-rating input is a slider
        rating_panel = QWidget()
        rating_layout = QHBoxLayout(rating_panel)
        rating_layout.setContentsMargins(0, 0, 0, 0)
        rating_layout.addWidget(self.circumplex, stretch=1)
        rating_layout.addWidget(self.rating_slider)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.video)
        left.addWidget(rating_panel)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(readouts)
        right_layout.addWidget(self.curves, stretch=1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        self.marker_bar = MarkerBar(self.settings.marker_labels, self)
        self.marker_bar.marked.connect(self.add_marker)
        self.marker_bar.labelsChanged.connect(self._labels_changed)
        central = QWidget()
        grid = QGridLayout(central)
        grid.addWidget(split, 0, 0)
        grid.addWidget(self.marker_bar, 1, 0)
        self.setCentralWidget(central)
        self.status = StatusPanel(self.statusBar())
        self._build_actions()
        self.resize(1280, 800)
        if self.settings.geometry is not None:
            self.restoreGeometry(self.settings.geometry)

    def _readout(self, name: str, colour) -> QLabel:
        label = QLabel(f"{name} –")
        label.setStyleSheet(f"font-size: 18px; font-weight: bold; color: rgb{tuple(colour)}")
        label.setMinimumWidth(150)
        return label

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
        self.start_action = self._action("Start", "Space", self.toggle_running,
                                         "start or stop the engine")
        self.record_action = self._action("Record", "Ctrl+R", self.toggle_recording,
                                          "record a session")
        recorder, problem = recorder_class()
        self.recorder_class = recorder
        if recorder is None:
            self.record_action.setEnabled(False)
            self.record_action.setToolTip(problem)
        self.baseline_action = self._action("Record a neutral baseline…", "Ctrl+B",
                                            self.ask_baseline,
                                            "take the next seconds of this recording as "
                                            "the participant's neutral baseline")
        self.baseline_action.setEnabled(False)  # only while recording
        self.stream_action = self._action("Stream on LSL", "Ctrl+L", self.set_lsl_stream,
                                          "LSL outlets 'Affect' (arousal, valence, "
                                          "face_found, voice_active at 25 Hz) and 'Markers' "
                                          "(event markers), for LabRecorder and other LSL apps")
        self.stream_action.setCheckable(True)
        problem = lsl_not_installed()  # no mne-lsl import: that takes seconds
        if problem:
            self.stream_action.setEnabled(False)
            self.stream_action.setToolTip(problem)
        else:
            self.stream_action.setChecked(self.settings.lsl_stream)
        self.rating_action = self._action("Self-rating", "Ctrl+T", self.toggle_rating,
                                          "continuous self-rating on the circumplex or a "
                                          "slider (mouse or arrow keys)")
        self.rating_action.setCheckable(True)
        open_file = self._action("Open video/audio file…", "Ctrl+O", self.open_file_dialog)
        open_review = self._action("Open session for review…", "Ctrl+Shift+O",
                                   self.open_review_dialog,
                                   "play a recorded session folder with its curves and markers")
        choose_model = self._action("Choose model…", "Ctrl+M", self.choose_model_dialog)
        quit_action = self._action("Quit", "Ctrl+Q", self.close)
        for number, seconds in enumerate(WINDOW_CHOICES_S, start=1):
            self._action(f"Window {WINDOW_NAMES[seconds]}", f"Ctrl+{number}",
                         lambda _=False, s=seconds: self.set_window(s))

        toolbar = QToolBar("main")
        toolbar.setMovable(False)
        for action in (self.start_action, self.record_action, self.rating_action, open_file,
                       choose_model):
            toolbar.addAction(action)
        self.addToolBar(toolbar)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for action in (open_file, open_review, quit_action):
            file_menu.addAction(action)
        self.sources_menu = menu.addMenu("&Sources")
        self.sources_menu.aboutToShow.connect(self._fill_sources_menu)
        model_menu = menu.addMenu("&Model")
        model_menu.addAction(choose_model)
        session_menu = menu.addMenu("S&ession")
        for action in (self.start_action, self.record_action, self.baseline_action,
                       self.stream_action, self.rating_action):
            session_menu.addAction(action)
        input_menu = session_menu.addMenu("Self-rating input")
        self.rating_mode_actions = {}
        modes = QActionGroup(input_menu)
        for mode, text in ((CIRCUMPLEX, "Circumplex (valence and arousal)"),
                           ("arousal", "Slider: arousal only"),
                           ("valence", "Slider: valence only")):
            action = input_menu.addAction(text)
            action.setCheckable(True)
            action.setChecked(mode == self.rating_mode)
            action.triggered.connect(lambda _=False, m=mode: self.set_rating_mode(m))
            modes.addAction(action)
            self.rating_mode_actions[mode] = action
        # Arrow keys move the self-rating (only while it runs; otherwise they do nothing).
        for key, dv, da in ((Qt.Key.Key_Left, -1, 0), (Qt.Key.Key_Right, 1, 0),
                            (Qt.Key.Key_Up, 0, 1), (Qt.Key.Key_Down, 0, -1)):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(lambda dv=dv, da=da: self.nudge_rating(dv, da))

    def _fill_sources_menu(self) -> None:
        menu = self.sources_menu
        menu.clear()
        if self.devices is None:
            from app.sources import list_devices
            self.devices = list_devices()
        choice = self.settings.sources
        cameras = QActionGroup(menu)
        menu.addSection("Camera")
        for index, name in [(None, "no camera")] + [(c.index, c.name) for c in self.devices.cameras]:
            action = menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(choice.camera == index and not choice.video_file)
            action.triggered.connect(lambda _=False, i=index: self.set_sources(
                SourceChoice(camera=i, microphone=choice.microphone,
                             audio_file=choice.audio_file)))
            cameras.addAction(action)
        menu.addSection("Microphone")
        microphones = QActionGroup(menu)
        for index, name in [(None, "no microphone")] + [
                (m.index, m.name + (" (default)" if m.is_default else ""))
                for m in self.devices.microphones]:
            action = menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(choice.microphone == index and not choice.audio_file)
            action.triggered.connect(lambda _=False, i=index: self.set_sources(
                SourceChoice(camera=choice.camera, video_file=choice.video_file,
                             microphone=i)))
            microphones.addAction(action)
        for problem in self.devices.problems:
            menu.addAction(problem).setEnabled(False)
        menu.addSeparator()
        menu.addAction("Refresh devices").triggered.connect(self._refresh_devices)

    def _refresh_devices(self) -> None:
        self.devices = None

    # -- model and sources ----------------------------------------------------------------
    def choose_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model", self.settings.model,
                                              "ONNX models (*.onnx);;All files (*)")
        if path:
            self.set_model(path)

    def set_model(self, path: str) -> bool:
        """Load and check a model; on failure say why and keep the previous one running."""
        try:
            session = load_model(path)
        except ModelLoadError as error:
            self.show_error("Cannot use this model", str(error))
            return False
        self.session = session
        self.settings.model = str(path)
        self._save_settings()
        self._update_model_label()
        if self.live is not None:
            self.start()  # restart on the new model
        elif not self.settings.sources.empty:
            self.start()
        return True

    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a video or audio file", "",
            "Media (*.mp4 *.mkv *.avi *.mov *.flv *.webm *.wav *.flac *.mp3 *.ogg *.m4a);;"
            "All files (*)")
        if path:
            self.open_file(path)

    def open_file(self, path: str) -> bool:
        from models.media import probe
        try:
            info = probe(path)
        except MediaError as error:
            self.show_error("Cannot open this file", str(error))
            return False
        if info.has_video:
            choice = SourceChoice(video_file=path)
        elif info.has_audio:
            choice = SourceChoice(camera=self.settings.sources.camera, audio_file=path)
        else:
            self.show_error("Cannot open this file", f"{path} holds neither audio nor video")
            return False
        return self.set_sources(choice)

    def set_sources(self, choice: SourceChoice) -> bool:
        self.settings.sources = choice
        self._save_settings()
        self._update_sources_label()
        if self.session is not None and not choice.empty:
            return self.start()
        self.stop()
        return True

    # -- running ---------------------------------------------------------------------------
    def toggle_running(self) -> None:
        if self.live is not None and self.live.running:
            self.stop()
        else:
            self.start()

    def start(self) -> bool:
        if self.session is None:
            self.show_error("No model", "Choose a model first (Model ▸ Choose model…).")
            return False
        self.stop()
        try:
            live = LiveEngine(self.session, self.settings.sources, self.pacing)
            live.start()
        except (SourceError, MediaError) as error:
            self.show_error("Cannot start", str(error))
            return False
        self.live = live
        self.curves.clear()
        self.circumplex.clear_trail()
        self._latencies.clear()
        self._steps_at, self._stats_at = 0, time.monotonic()
        if self.sampler.running:
            self.sampler.start(0.0)
        if self.settings.sources.video_file is None and self.settings.sources.camera is None:
            self.video.clear("no camera: predictions use audio only")
        self.start_action.setText("Stop")
        self._update_sources_label()
        if self.stream_action.isChecked():
            self.set_lsl_stream(True)  # the stream follows the engine through restarts
        return True

    def stop(self) -> None:
        self.stop_recording()
        self._close_affect_outlet()
        if self.live is not None:
            live, self.live = self.live, None
            live.stop()
            self._drain(live)  # the last predictions still count
        self.start_action.setText("Start")

    # -- timer tick: everything periodic ----------------------------------------------------
    def tick(self) -> None:
        live = self.live
        now = None
        if live is not None:
            finished = self._drain(live)
            now = live.now() if live.running else self.curves.now
            frame = live.latest_frame()
            if frame is not None:
                self.video.show_frame(frame.index, frame.rgb, live.face_box(), self._last_face)
            self.status.set_level(live.audio_level())
            if time.monotonic() - self._stats_at >= STATS_EVERY_S:
                self._update_stats(live)
            if finished:
                self._engine_finished()
            self._sample_ratings(now)
        self.curves.redraw(now)
        self.circumplex.redraw()
        if self.recording is not None:
            self._check_recording()

    def _check_recording(self) -> None:
        """Show the recorder's messages; when it stopped by itself (device lost, disk
        full), finish the session and say why, keeping what was written."""
        recorder = self.recording.recorder
        for message in recorder.messages.drain():
            self.status.message(f"recording: {message}", 10_000)
        self._show_baseline(self.recording)
        if recorder.running:
            self.status.set_recording(self.recording.elapsed_s,
                                      self.recording.baseline_left_s())
            return
        reason = recorder.error
        self.stop_recording()
        if reason:
            self.show_error("Recording stopped", f"{reason}\n\nEverything recorded until "
                            "then is saved and readable.")

    def _drain(self, live: LiveEngine) -> bool:
        poll = live.poll()
        for event in poll.events:
            if event.source not in ("model",):
                self.status.message(f"{event.source}: {event.message}")
        predictions = poll.predictions
        if predictions:
            n = len(predictions)
            t = np.fromiter((p.t for p in predictions), np.float64, n)
            arousal = np.fromiter((p.arousal for p in predictions), np.float64, n)
            valence = np.fromiter((p.valence for p in predictions), np.float64, n)
            self.curves.add_predictions(t, arousal, valence)
            self.circumplex.add_predictions(arousal, valence)
            self._latencies.extend(p.latency_ms for p in predictions)
            last = predictions[-1]
            self._last_face, self._last_voice = last.face_found, last.voice_active
            self.arousal_value.setText(f"arousal {last.arousal:+.2f}")
            self.valence_value.setText(f"valence {last.valence:+.2f}")
            self.face_value.setText(f"face {'yes' if last.face_found else 'no'} "
                                    f"({last.face_score:.2f})")
            self.voice_value.setText(f"voice {'yes' if last.voice_active else 'no'}")
            self.status.set_voice(last.voice_active)
        return poll.finished

    def _update_stats(self, live: LiveEngine) -> None:
        stats = live.stats()
        elapsed = time.monotonic() - self._stats_at
        rate = (stats.steps - self._steps_at) / elapsed if elapsed > 0 else 0.0
        self._steps_at, self._stats_at = stats.steps, time.monotonic()
        latency = float(np.median(self._latencies)) if self._latencies else None
        self.status.set_rates(rate, latency, stats.dropped_windows)

    def _engine_finished(self) -> None:
        self.status.message("the source ended; Start plays it again", 0)
        self.stop_recording()
        self.start_action.setText("Start")

    # -- markers and self-rating -------------------------------------------------------------
    def engine_time(self) -> float | None:
        return self.live.now() if self.live is not None and self.live.running else None

    def add_marker(self, label: str, value: str = "") -> float | None:
        """Stamp a marker with the engine clock; None when nothing is running."""
        t = self.engine_time()
        if t is None:
            self.status.message("markers need a running source (Start)")
            return None
        self.markers.append((t, label, value))
        self.curves.add_marker(t, value or label)
        if self.recording is not None:
            self.recording.recorder.add_event(t, label, value)
        if self.marker_outlet is not None and not self._recording_on_lsl():
            self._push_marker(label, value)  # a recording on LSL pushes its own events
        self.status.message(f"marker '{value or label}' at {t:.2f} s", 3000)
        return t

    def toggle_rating(self) -> None:
        self.set_rating(not self.sampler.running)

    def set_rating(self, on: bool) -> None:
        self.rating_action.setChecked(on)
        slider = self.rating_mode != CIRCUMPLEX
        if on:
            self.sampler.start(self.engine_time() or 0.0)
            self.sampler.set_focused(self.isActiveWindow(), self.engine_time() or 0.0)
            self.circumplex.set_rating_enabled(not slider)
            self.rating_slider.set_rating_enabled(slider)
            self._show_rating()
        else:
            self.sampler.stop()
            self.circumplex.set_rating_enabled(False)
            self.rating_slider.set_rating_enabled(False)

    def set_rating_mode(self, mode: str) -> bool:
        """Rate on the circumplex, or one dimension ("arousal"/"valence") on a slider.
        Fixed while recording: session.json says which input made ratings.csv."""
        if mode != self.rating_mode and self.recording is not None:
            self.status.message("the self-rating input cannot change while recording", 3000)
            self.rating_mode_actions[self.rating_mode].setChecked(True)
            return False
        self.rating_mode = mode
        self.rating_mode_actions[mode].setChecked(True)
        slider = mode != CIRCUMPLEX
        if slider:
            self.rating_slider.set_dimension(mode)
            set_slider_rating(self.sampler, mode, slider_rating(self.sampler, mode))
        self.rating_slider.setVisible(slider)
        if self.sampler.running:
            self.circumplex.set_rating_enabled(not slider)
            self.rating_slider.set_rating_enabled(slider)
            self._show_rating()
        return True

    def _show_rating(self) -> None:
        if self.rating_mode == CIRCUMPLEX:
            self.circumplex.show_rating(self.sampler.valence, self.sampler.arousal,
                                        self.sampler.active)
        else:
            self.rating_slider.show_rating(slider_rating(self.sampler, self.rating_mode),
                                           self.sampler.active)

    def _slider_moved(self, value: float) -> None:
        if self.rating_mode != CIRCUMPLEX:
            set_slider_rating(self.sampler, self.rating_mode, value)
            self._show_rating()

    def _rating_moved(self, valence: float, arousal: float) -> None:
        self.sampler.move_to(valence, arousal)
        self.circumplex.show_rating(self.sampler.valence, self.sampler.arousal,
                                    self.sampler.active)

    def nudge_rating(self, d_valence: int, d_arousal: int) -> None:
        if self.sampler.running and self.rating_mode != CIRCUMPLEX:
            # A slider: up/right raise it, down/left lower it.
            self._slider_moved(slider_rating(self.sampler, self.rating_mode)
                               + (d_valence + d_arousal) * ARROW_STEP)
        elif self.sampler.running:
            self._rating_moved(self.sampler.valence + d_valence * ARROW_STEP,
                               self.sampler.arousal + d_arousal * ARROW_STEP)

    def _sample_ratings(self, now: float | None) -> None:
        if now is None or not self.sampler.running or not self.live.running:
            return
        ratings = self.sampler.sample(now)
        if not ratings:
            return
        self.ratings_taken += len(ratings)
        t = np.array([r.t for r in ratings])
        if self.rating_mode == CIRCUMPLEX:
            self.curves.add_ratings(t, np.array([r.arousal for r in ratings]),
                                    np.array([r.valence for r in ratings]))
        else:  # only the rated dimension is drawn
            self.curves.ratings[self.rating_mode].extend(
                t, np.array([getattr(r, self.rating_mode) for r in ratings]))
            self.curves._dirty = True
        if self.recording is not None:
            for r in ratings:
                self.recording.recorder.add_rating(r.t, r.arousal, r.valence)

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.ActivationChange:
            self.sampler.set_focused(self.isActiveWindow(), self.engine_time() or 0.0)
            if self.sampler.running:
                self._show_rating()
        super().changeEvent(event)

    # -- recording ---------------------------------------------------------------------------
    def toggle_recording(self) -> None:
        if self.recording is not None:
            self.stop_recording()
            return
        dialog = RecordDialog(self)
        if dialog.exec() == RecordDialog.DialogCode.Accepted:
            self.start_recording(dialog.out_dir(), dialog.metadata(), **dialog.options())

    def start_recording(self, out_dir: Path, metadata: dict, baseline_s: float | None = None,
                        lsl: bool = False) -> bool:
        """Record into ``out_dir``; ``baseline_s``: the first seconds are the neutral
        baseline; ``lsl``: stream Affect and Markers on LSL and record other apps' markers."""
        if self.recorder_class is None:
            return False
        if self.live is None or not self.live.running:
            if not self.start():
                return False
        metadata = {**metadata, "model": self.settings.model,
                    "sources": dict(zip(("video", "audio"), self.live.source_names())),
                    "marker_labels": list(self.settings.marker_labels),
                    "self_rating": rating_metadata(self.rating_mode)}
        starts_stream = lsl and not self.stream_action.isChecked()
        if starts_stream and not self.set_lsl_stream(True):
            return False
        try:
            recorder = self.recorder_class(out_dir, metadata, self.live.engine,
                                           baseline_s=baseline_s, lsl=lsl,
                                           lsl_marker_outlet=self.marker_outlet if lsl else None)
            recorder.start()
        except (OSError, ValueError, RuntimeError) as error:
            if starts_stream:
                self.set_lsl_stream(False)
            self.show_error("Cannot record", str(error))
            return False
        self.recording = Recording(recorder, Path(out_dir), starts_stream)
        if baseline_s:
            self.recording.take_baseline(baseline_s)
        self.record_action.setText("Stop recording")
        self.baseline_action.setEnabled(True)
        self.status.set_recording(0.0, self.recording.baseline_left_s())
        if not self.sampler.running:
            self.set_rating(True)  # self-rating runs while recording
        return True

    def stop_recording(self) -> None:
        if self.recording is None:
            return
        recording, self.recording = self.recording, None
        try:
            recording.recorder.stop()
        except (OSError, ValueError, RuntimeError) as error:
            self.show_error("Recording did not finish cleanly", str(error))
        if recording.started_stream:
            self.set_lsl_stream(False)
        stored = recording.new_baseline()  # one that ended with the recording
        self.record_action.setText("Record")
        self.baseline_action.setEnabled(False)
        self.status.set_recording(None)
        self.status.message(f"session saved in {recording.out_dir}"
                            + (f"; {baseline_summary(stored)}" if stored else ""), 0)

    # -- LSL ------------------------------------------------------------------------------------
    def set_lsl_stream(self, on: bool) -> bool:
        """Stream on LSL, with or without a recording: ``Affect`` (the predictions, while
        the engine runs, through restarts) and ``Markers`` (event markers)."""
        if not on and self._recording_on_lsl():
            self.stream_action.setChecked(True)
            self.status.message("this recording streams on LSL until it stops", 5000)
            return False
        self.stream_action.setChecked(bool(on))
        self._close_affect_outlet()
        if not on:
            self._close_marker_outlet()
            return True
        try:
            if self.marker_outlet is None:
                self.marker_outlet = MarkerOutlet(
                    source_id=f"affect-monitor-markers-{socket.gethostname()}")
            if self.live is not None and self.live.running:
                self.affect_outlet = AffectOutlet(self.live.engine)
                self.affect_outlet.start()
        except (OSError, RuntimeError) as error:
            self._close_affect_outlet()
            self._close_marker_outlet()
            self.stream_action.setChecked(False)
            self.show_error("Cannot stream on LSL", f"cannot open the LSL outlets: {error}")
            return False
        self.status.message("streaming on LSL: Affect (arousal, valence, face_found, "
                            "voice_active at 25 Hz) and Markers", 5000)
        return True

    def _close_affect_outlet(self) -> None:
        if self.affect_outlet is not None:
            outlet, self.affect_outlet = self.affect_outlet, None
            outlet.stop()

    def _close_marker_outlet(self) -> None:
        if self.marker_outlet is not None:
            outlet, self.marker_outlet = self.marker_outlet, None
            outlet.close()

    def _recording_on_lsl(self) -> bool:
        return self.recording is not None and bool(getattr(self.recording.recorder, "lsl", False))

    def _push_marker(self, label: str, value: str) -> None:
        try:
            self.marker_outlet.push(marker_text(label, value))  # push() cleans the text
        except Exception as error:  # noqa: BLE001 - LSL must never stop the app
            log.warning("pushing an LSL marker failed: %s", error)

    # -- baseline ---------------------------------------------------------------------------
    def ask_baseline(self) -> None:
        if self.recording is None:
            return
        seconds, ok = QInputDialog.getDouble(
            self, "Neutral baseline", "Keep the participant neutral for (seconds):",
            DEFAULT_BASELINE_S, 1.0, MAX_BASELINE_S, 0)
        if ok:
            self.record_baseline(seconds)

    def record_baseline(self, seconds: float) -> bool:
        """Take the next ``seconds`` of the recording as the neutral baseline (a later one
        replaces an earlier one in session.json; both stay in events.tsv)."""
        if self.recording is None:
            self.status.message("a baseline is taken while recording: press Record first", 5000)
            return False
        try:
            self.recording.recorder.record_baseline(seconds)
        except ValueError as error:
            self.show_error("Cannot take a baseline", str(error))
            return False
        self.recording.take_baseline(seconds)
        self.status.set_recording(self.recording.elapsed_s, self.recording.baseline_left_s())
        return True

    def _show_baseline(self, recording: Recording) -> None:
        """Once a baseline is stored, say what it measured (its countdown runs beside REC)."""
        stored = recording.new_baseline()
        if stored is not None:
            self.status.message(baseline_summary(stored), 15_000)

    # -- review -----------------------------------------------------------------------------------
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
            self.show_error("Cannot review this folder", problem)
            return None
        self.reviews = [w for w in self.reviews if w.isVisible()] + [window]
        return window

    # -- misc -----------------------------------------------------------------------------------
    def set_window(self, seconds: int) -> None:
        self.settings.window_s = seconds
        self.window_box.blockSignals(True)
        self.window_box.setCurrentIndex(WINDOW_CHOICES_S.index(seconds))
        self.window_box.blockSignals(False)
        self.curves.set_window(seconds)
        self._save_settings()

    def _labels_changed(self, labels: list) -> None:
        self.settings.marker_labels = list(labels)
        self._save_settings()

    def show_error(self, title: str, text: str) -> None:
        """A window-modal message that does not block the timer (or a test)."""
        log.warning("%s: %s", title, text)
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok,
                          self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.error_box = box

    def _update_model_label(self) -> None:
        if self.session is None:
            self.status.set_model("no model", "")
        else:
            self.status.set_model(self.session.spec.name, self.session.provider)

    def _update_sources_label(self) -> None:
        if self.live is not None:
            self.status.set_sources(*self.live.source_names())
        else:
            self.status.set_sources(*self.settings.sources.describe())

    def _save_settings(self) -> None:
        if self.store is not None:
            settings_store.save(self.store, self.settings)

    def closeEvent(self, event) -> None:
        self.timer.stop()
        for review in self.reviews:
            review.close()
        self.stop()  # finalises a recording too
        # The stream as the user left it (a recording's own stream is off again by now).
        self.settings.lsl_stream = self.stream_action.isChecked()
        self._close_marker_outlet()
        self.settings.geometry = self.saveGeometry()
        self._save_settings()
        super().closeEvent(event)
