"""app.gui.main_window on a real clip and a real exported model (pytest-qt, offscreen).

The window runs the real engine on a CREMA-D clip paced in real time; only the session
recorder (issue 7's module) is replaced by a fake that keeps what it is given.
"""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from app.gui import settings as settings_store
from app.gui.main_window import MainWindow
from app.gui.settings import Settings, SourceChoice
from models.runtime import AffectSession

CLIP = "1001_DFA_ANG_XX.flv"  # 2.2 s, face and voice


@pytest.fixture(scope="module")
def session(tiny_model_path):
    return AffectSession(tiny_model_path, intra_op_threads=1)


@pytest.fixture
def store(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


class FakeRecorder:
    """The agreed SessionRecorder interface; keeps calls instead of writing files."""

    instances: list["FakeRecorder"] = []

    def __init__(self, out_dir, metadata, engine):
        self.out_dir, self.metadata, self.engine = out_dir, metadata, engine
        self.events, self.ratings, self.started, self.stopped = [], [], False, False
        self.predictions = engine.subscribe(100_000)  # what a real recorder would write
        FakeRecorder.instances.append(self)

    def start(self):
        self.started = True

    def add_event(self, onset_s, label, value=""):
        self.events.append((onset_s, label, value))

    def add_rating(self, t_s, arousal, valence):
        self.ratings.append((t_s, arousal, valence))

    def stop(self):
        self.stopped = True


def open_window(qtbot, session, store, clip, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr("app.gui.main_window.recorder_class", lambda: (FakeRecorder, None))
    settings = Settings(sources=SourceChoice(video_file=str(clip)))
    window = MainWindow(settings, store, session, devices=None)
    qtbot.addWidget(window)
    window.show()
    assert window.start()
    return window


def test_window_on_a_clip_draws_curves_circumplex_and_video(qtbot, session, store, cremad_dir):
    window = open_window(qtbot, session, store, cremad_dir / CLIP)
    qtbot.waitUntil(lambda: window.curves.traces["arousal"].size >= 25, timeout=15_000)
    assert window.circumplex.points >= 25
    t, arousal = window.curves.curves["arousal"].getData()
    assert len(t) >= 25 and np.all(np.diff(t) == pytest.approx(0.04))
    assert np.all(np.abs(arousal) <= 1.0)
    x, y = window.circumplex.trail.getData()
    assert len(x) == window.circumplex.points
    assert window.circumplex.trail in window.circumplex.getPlotItem().items  # still drawn
    assert window.video.frames_shown > 0
    qtbot.waitUntil(lambda: window.live.face_box() is not None, timeout=5_000)
    assert "face yes" in window.face_value.text()
    assert "steps/s" in window.status.rate.text()
    window.close()


def test_a_bad_model_is_refused_and_the_previous_one_keeps_running(qtbot, session, store,
                                                                    cremad_dir, tmp_path):
    window = open_window(qtbot, session, store, cremad_dir / CLIP)
    qtbot.waitUntil(lambda: window.curves.traces["arousal"].size >= 5, timeout=15_000)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an ONNX file")
    engine_before = window.live.engine
    assert not window.set_model(str(bad))
    assert window.error_box is not None and window.error_box.isVisible()
    assert "not a loadable ONNX model" in window.error_box.text()
    assert window.session is session and window.live.engine is engine_before
    assert window.settings.model != str(bad)
    points = window.curves.traces["arousal"].size
    qtbot.waitUntil(lambda: window.curves.traces["arousal"].size > points + 5, timeout=10_000)
    window.close()


def test_markers_and_ratings_reach_the_recorder_on_the_engine_clock(qtbot, session, store,
                                                                     cremad_dir, tmp_path,
                                                                     monkeypatch):
    FakeRecorder.instances.clear()
    window = open_window(qtbot, session, store, cremad_dir / CLIP, monkeypatch)
    assert window.record_action.isEnabled()
    qtbot.waitUntil(lambda: window.curves.traces["arousal"].size >= 5, timeout=15_000)
    assert window.start_recording(tmp_path / "session", {"participant_id": "p01"})
    recorder = FakeRecorder.instances[-1]
    assert recorder.started and recorder.metadata["participant_id"] == "p01"
    assert window.sampler.running  # self-rating runs while recording
    window.sampler.focused = True  # offscreen windows never get focus
    window._rating_moved(0.5, -0.5)

    before = window.live.now()
    window.marker_bar.mark(1)
    window.marker_bar.text.setText("door slammed")
    qtbot.keyClick(window.marker_bar.text, Qt.Key.Key_Return)
    after = window.live.now()
    qtbot.wait(400)  # ~10 rating samples
    last_prediction = window.curves.traces["arousal"].last_t
    window.stop_recording()

    assert recorder.stopped and window.recording is None
    assert [(label, value) for _, label, value in recorder.events] == [
        ("event 1", ""), ("note", "door slammed")]
    onsets = [onset for onset, _, _ in recorder.events]
    assert before <= onsets[0] <= onsets[1] <= after
    # The engine clock of a marker is the clock of the predictions around it.
    predictions = recorder.predictions.drain()
    assert predictions and abs(onsets[0] - last_prediction) < 0.6
    times = np.array([t for t, _, _ in recorder.ratings])
    assert len(times) >= 5
    assert np.allclose(np.diff(times), 0.04)  # 25 Hz, no gaps, no repeats
    assert np.allclose(np.round(times / 0.04) * 0.04, times)  # on the step grid
    assert all((a, v) == (-0.5, 0.5) for _, a, v in recorder.ratings)
    window.close()


def test_closing_the_window_while_recording_finalises_the_recorder(qtbot, session, store,
                                                                   cremad_dir, tmp_path,
                                                                   monkeypatch):
    FakeRecorder.instances.clear()
    window = open_window(qtbot, session, store, cremad_dir / CLIP, monkeypatch)
    assert window.start_recording(tmp_path / "s", {})
    window.close()
    assert FakeRecorder.instances[-1].stopped


def test_settings_persist_between_runs(qtbot, session, store, cremad_dir):
    window = open_window(qtbot, session, store, cremad_dir / CLIP)
    window.set_window(300)
    window.marker_bar.set_label(3, "laugh")
    window.set_model(str(session.path))
    window.close()

    again = settings_store.load(QSettings(store.fileName(), QSettings.Format.IniFormat))
    assert again.window_s == 300
    assert again.marker_labels[2] == "laugh"
    assert again.sources.video_file == str(cremad_dir / CLIP)
    assert again.model == str(session.path)
    assert again.geometry is not None
    reopened = MainWindow(again, store, session)
    qtbot.addWidget(reopened)
    assert reopened.window_box.currentData() == 300 and reopened.curves.window_s == 300
    assert reopened.marker_bar.buttons[2].text() == "3 laugh"
    reopened.close()


def test_without_a_model_the_window_opens_and_says_to_choose_one(qtbot, store):
    window = MainWindow(Settings(), store, None, model_problem="model file not found: x")
    qtbot.addWidget(window)
    window.show()
    assert "choose a model" in window.video.message
    assert not window.start()
    assert "Choose a model" in window.error_box.text()
    window.close()


def test_record_is_disabled_with_a_reason_when_recording_is_missing(qtbot, store, monkeypatch):
    monkeypatch.setattr("app.gui.main_window.recorder_class",
                        lambda: (None, "recording is not available in this build (x)"))
    window = MainWindow(Settings(), store, None)
    qtbot.addWidget(window)
    assert not window.record_action.isEnabled()
    assert "not available" in window.record_action.toolTip()
    window.close()
