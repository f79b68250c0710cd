"""app.gui.main_window on a real clip and a real exported model (pytest-qt, offscreen).

The window runs the real engine on a CREMA-D clip paced in real time and records with the
real session recorder into tmp_path.
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


def open_window(qtbot, session, store, clip):
    settings = Settings(sources=SourceChoice(video_file=str(clip)))
    window = MainWindow(settings, store, session, devices=None)
    qtbot.addWidget(window)
    window.show()
    assert window.control.start()
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
    qtbot.waitUntil(lambda: window.control.live.face_box() is not None, timeout=5_000)
    assert "face yes" in window.face_value.text()
    assert "steps/s" in window.status.rate.text()
    window.close()


def test_a_bad_model_is_refused_and_the_previous_one_keeps_running(qtbot, session, store,
                                                                    cremad_dir, tmp_path):
    window = open_window(qtbot, session, store, cremad_dir / CLIP)
    qtbot.waitUntil(lambda: window.curves.traces["arousal"].size >= 5, timeout=15_000)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an ONNX file")
    engine_before = window.control.live.engine
    assert not window.control.set_model(str(bad))
    assert window.error_box is not None and window.error_box.isVisible()
    assert "not a loadable ONNX model" in window.error_box.text()
    assert window.control.model is session and window.control.live.engine is engine_before
    assert window.settings.model != str(bad)
    points = window.curves.traces["arousal"].size
    qtbot.waitUntil(lambda: window.curves.traces["arousal"].size > points + 5, timeout=10_000)
    window.close()


def read_table(path, delimiter=","):
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def test_markers_and_ratings_land_in_the_recorded_files_on_the_engine_clock(
        qtbot, session, store, cremad_dir, tmp_path):
    import json

    window = open_window(qtbot, session, store, cremad_dir / CLIP)
    assert window.record_action.isEnabled()
    qtbot.waitUntil(lambda: window.curves.traces["arousal"].size >= 5, timeout=15_000)
    folder = tmp_path / "session"
    assert window.control.start_recording(folder, {"participant_id": "p01"})
    assert window.control.sampler.running  # self-rating runs while recording
    window.control.sampler.focused = True  # offscreen windows never get focus
    window._rating_moved(0.5, -0.5)
    qtbot.wait(300)
    window.marker_bar.mark(1)
    window.marker_bar.text.setText("door slammed")
    qtbot.keyClick(window.marker_bar.text, Qt.Key.Key_Return)
    qtbot.wait(400)  # ~10 rating samples
    window.control.stop_recording()
    assert window.control.recording is None

    session_json = json.loads((folder / "session.json").read_text())
    assert session_json["participant_id"] == "p01"
    events = read_table(folder / "events.tsv", "\t")
    assert [(e["trial_type"], e["value"]) for e in events
            if e["trial_type"] in ("event 1", "note")] == [("event 1", ""), ("note", "door slammed")]
    predictions = read_table(folder / "predictions.csv")
    times = [float(row["time_s"]) for row in predictions]
    onsets = [float(e["onset"]) for e in events if e["trial_type"] in ("event 1", "note")]
    # Markers sit on the clock of the predictions recorded around them.
    assert times[0] <= onsets[0] <= onsets[1] <= times[-1] + 0.04
    ratings = read_table(folder / "ratings.csv")
    rating_times = np.array([float(r["time_s"]) for r in ratings])
    assert len(rating_times) >= 5
    assert np.allclose(np.diff(rating_times), 0.04)  # 25 Hz, no gaps, no repeats
    assert np.allclose(np.round(rating_times / 0.04) * 0.04, rating_times, atol=1e-3)
    assert all((float(r["arousal"]), float(r["valence"])) == (-0.5, 0.5) for r in ratings)
    window.close()


def test_closing_the_window_while_recording_finalises_the_session(qtbot, session, store,
                                                                  cremad_dir, tmp_path):
    import json

    window = open_window(qtbot, session, store, cremad_dir / CLIP)
    assert window.control.start_recording(tmp_path / "s", {})
    qtbot.wait(300)
    window.close()
    status = json.loads((tmp_path / "s" / "session.json").read_text())["status"]
    assert status in ("complete", "stopped")


def test_settings_persist_between_runs(qtbot, session, store, cremad_dir):
    window = open_window(qtbot, session, store, cremad_dir / CLIP)
    window.set_window(300)
    window.marker_bar.set_label(3, "laugh")
    window.control.set_model(str(session.path))
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
    assert not window.control.start()
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


@pytest.fixture(scope="module")
def long_clip(cremad_dir, tmp_path_factory):
    from session_media import make_long_clip

    return make_long_clip(cremad_dir, tmp_path_factory.mktemp("media") / "long.mp4", seconds=8)


def test_baselines_from_the_record_dialog_and_the_session_menu_are_stored_and_shown(
        qtbot, session, store, long_clip, tmp_path):
    import json

    window = open_window(qtbot, session, store, long_clip)
    assert not window.baseline_action.isEnabled()  # only while recording
    assert not window.control.record_baseline(1.0)
    assert "press Record first" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.curves.traces["arousal"].size >= 5, timeout=15_000)
    folder = tmp_path / "session"
    # The dialog's "Neutral baseline":
    assert window.control.start_recording(folder, {}, baseline_s=1.0)
    assert window.baseline_action.isEnabled()
    assert "baseline: keep neutral, 1 s left" in window.status.recording.text()
    recorder = window.control.recording.recorder
    qtbot.waitUntil(lambda: recorder.baseline is not None, timeout=10_000)
    first = recorder.baseline
    assert first["start_s"] == 0.0 and first["complete"] and first["steps"] == 25
    qtbot.waitUntil(lambda: "baseline stored (1.0 s)" in window.statusBar().currentMessage(),
                    timeout=2_000)
    qtbot.waitUntil(lambda: "baseline" not in window.status.recording.text(), timeout=2_000)

    assert window.control.record_baseline(0.8)  # Session > Record a neutral baseline
    assert "baseline: keep neutral" in window.status.recording.text()
    qtbot.waitUntil(lambda: recorder.baseline is not first, timeout=10_000)
    second = recorder.baseline
    assert second["start_s"] >= 1.0 and second["steps"] in (19, 20)  # 40 ms windows wholly inside
    window.control.stop_recording()
    assert not window.baseline_action.isEnabled()

    stored = json.loads((folder / "session.json").read_text())["baseline"]
    assert stored["start_s"] == second["start_s"]  # the later baseline replaces the first
    baselines = [e for e in read_table(folder / "events.tsv", "\t")
                 if e["trial_type"] == "baseline"]
    assert [float(e["onset"]) for e in baselines] == [0.0, second["start_s"]]
    window.close()


def affect_streams(lsl, timeout=5.0):
    return [s for s in lsl.resolve_streams(timeout=timeout, name="Affect")
            if s.source_id == "affect-monitor"]


def marker_streams(lsl, timeout=5.0):
    return [s for s in lsl.resolve_streams(timeout=timeout, name="Markers")
            if s.source_id.startswith("affect-monitor-markers")]


def open_inlets(lsl):
    """Inlets on this app's one Affect and one Markers stream (asserting there is one each)."""
    affect, markers = affect_streams(lsl), marker_streams(lsl)
    assert len(affect) == 1 and len(markers) == 1
    inlets = lsl.StreamInlet(affect[0]), lsl.StreamInlet(markers[0])
    for inlet in inlets:
        inlet.open_stream(timeout=5)
    return inlets


@pytest.fixture(scope="module")
def lsl():
    return pytest.importorskip("mne_lsl.lsl",
                               reason="the optional LSL extra (mne-lsl) is not installed")


def test_recording_with_lsl_streams_affect_and_markers_until_it_stops(
        qtbot, session, store, long_clip, tmp_path, lsl):
    window = open_window(qtbot, session, store, long_clip)
    qtbot.waitUntil(lambda: window.curves.traces["arousal"].size >= 5, timeout=15_000)
    # The dialog's checkbox:
    assert window.control.start_recording(tmp_path / "session", {}, lsl=True)
    affect_in, markers_in = open_inlets(lsl)
    qtbot.wait(200)
    window.marker_bar.mark(2)
    qtbot.wait(600)
    data, _ = affect_in.pull_chunk(timeout=2)
    texts, _ = markers_in.pull_chunk(timeout=2)
    assert data.shape[1] == 4 and len(data) >= 10  # arousal, valence, face, voice at 25 Hz
    assert np.all(np.abs(data[:, :2]) <= 1.0)
    assert [row[0] for row in texts] == ["event 2"]
    window.control.stop_recording()
    # The recording turned the stream on, so its end turns it off again.
    assert not window.stream_action.isChecked()
    assert not affect_streams(lsl, timeout=1) and not marker_streams(lsl, timeout=1)
    window.close()


def test_the_record_dialog_offers_a_baseline_and_lsl_and_says_what_lsl_needs(qtbot,
                                                                            monkeypatch):
    from app.gui import recording
    from app.recording.lsl import lsl_missing

    dialog = recording.RecordDialog()
    qtbot.addWidget(dialog)
    assert dialog.options() == {"baseline_s": None, "lsl": False}
    assert dialog.baseline.text() == "none"
    dialog.baseline.setValue(60)
    dialog.lsl.setChecked(True)
    assert dialog.options() == {"baseline_s": 60.0, "lsl": lsl_missing() is None}

    monkeypatch.setattr(recording, "lsl_not_installed", lambda: "LSL needs the optional extra: ...")
    without = recording.RecordDialog()
    qtbot.addWidget(without)
    without.lsl.setChecked(True)
    assert not without.lsl.isEnabled() and "optional extra" in without.lsl.toolTip()
    assert without.options()["lsl"] is False


def test_stream_on_lsl_without_recording_follows_engine_restarts_and_is_remembered(
        qtbot, session, store, long_clip, tmp_path, lsl):
    import json

    window = open_window(qtbot, session, store, long_clip)
    assert window.stream_action.isEnabled() and not window.stream_action.isChecked()
    window.stream_action.trigger()  # Session > Stream on LSL (Ctrl+L)
    assert window.stream_action.isChecked() and window.control.recording is None
    affect_in, markers_in = open_inlets(lsl)
    qtbot.wait(300)
    window.marker_bar.mark(1)  # no recording: the window pushes its markers itself
    qtbot.wait(400)
    data, _ = affect_in.pull_chunk(timeout=2)
    assert len(data) >= 10 and data.shape[1] == 4
    texts, _ = markers_in.pull_chunk(timeout=2)
    assert [row[0] for row in texts] == ["event 1"]

    # A recording on LSL shares the one Markers stream: each event goes out once, and the
    # recorder does not take the window's own markers for another app's.
    folder = tmp_path / "session"
    assert window.control.start_recording(folder, {}, lsl=True)
    assert len(marker_streams(lsl, timeout=1)) == 1
    window.stream_action.trigger()  # turning the stream off is refused while it records
    assert window.stream_action.isChecked() and window.control.marker_outlet is not None
    qtbot.wait(300)
    window.marker_bar.mark(3)
    qtbot.wait(1200)  # the recorder's inlet looks for Markers streams every second
    window.control.stop_recording()
    texts, _ = markers_in.pull_chunk(timeout=2)
    assert [row[0] for row in texts] == ["event 3"]
    events = read_table(folder / "events.tsv", "\t")
    assert [(e["trial_type"], e["value"]) for e in events
            if e["trial_type"].startswith("event")] == [("event 3", "")]
    assert json.loads((folder / "session.json").read_text())["lsl"]["markers_pushed"] == 1
    assert window.stream_action.isChecked()  # on before the recording: stays on

    assert window.control.start()  # an engine restart (new sources or model) keeps the stream
    assert window.control.affect_outlet is not None and len(affect_streams(lsl)) == 1
    window.close()  # the choice is remembered, the outlets closed
    assert window.control.affect_outlet is None and window.control.marker_outlet is None
    assert settings_store.load(QSettings(store.fileName(), QSettings.Format.IniFormat)).lsl_stream
