"""app.gui.review (review mode) and app.gui.rating_slider (1-D self-rating), offscreen.

Real session folders are recorded from a CREMA-D clip with the real SessionRecorder and
the tiny exported model (as fast as the model runs); review mode is checked against the
files it reads: predictions.csv, events.tsv, frames.csv and the decoded video.mp4.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QSettings, Qt

from app.gui.main_window import MainWindow
from app.gui.rating_slider import UNRATED, RatingSlider
from app.gui.review import ReviewWindow, load_session
from app.gui.settings import Settings, SourceChoice
from app.pipeline import Engine
from app.recording import layout
from app.recording.recorder import SessionRecorder
from app.sources import Pacing, open_file
from app.vad import EnergyVoiceDetector
from models.media import read_video_frames
from models.runtime import AffectSession

CLIP = "1001_DFA_ANG_XX.flv"  # 2.2 s, face and voice, 25 fps
MARKERS = ((0.5, "stimulus", "film 3"), (1.52, "button", ""))
RATINGS = ((0.2, 0.5, -0.25), (0.6, 0.4, -0.2))


def record(out, clip, model_path, media=True):
    """A real session folder, recorded as fast as the model runs, with markers/ratings."""
    engine = Engine(AffectSession(model_path, intra_op_threads=1),
                    *open_file(clip, Pacing.FAST), vad=EnergyVoiceDetector())
    recorder = SessionRecorder(out, {"participant_id": "P01", "condition": "film"}, engine,
                               store_media=media)
    recorder.start()
    for onset, label, value in MARKERS:
        recorder.add_event(onset, label, value)
    for t, arousal, valence in RATINGS:
        recorder.add_rating(t, arousal, valence)
    engine.start()
    assert recorder.wait(60)
    info = recorder.stop()
    engine.stop()
    assert info["status"] == layout.COMPLETE
    return out


@pytest.fixture(scope="module")
def clip():
    from conftest import data_path

    return data_path("cremad-sample", CLIP)


@pytest.fixture(scope="module")
def recorded(clip, tiny_model_path, tmp_path_factory):
    return record(tmp_path_factory.mktemp("review") / "s", clip, tiny_model_path)


def rows(path, delimiter=","):
    return layout.read_table(path, delimiter)


def test_review_holds_the_recorded_curves_markers_and_ratings(qtbot, recorded):
    window = ReviewWindow.open(recorded)
    qtbot.addWidget(window)
    window.show()
    predictions = rows(recorded / layout.PREDICTIONS)
    assert len(predictions) >= 50
    for name in ("arousal", "valence"):
        t, y = window.curves[name].getData()
        assert np.allclose(t, [float(r["time_s"]) for r in predictions])
        assert np.allclose(y, [float(r[name]) for r in predictions])
    t, arousal = window.rating_curves["arousal"].getData()
    assert np.allclose(t, [0.2, 0.6], atol=1e-3) and np.allclose(arousal, [0.5, 0.4])
    listed = [window.marker_list.item(i) for i in range(window.marker_list.count())]
    assert [item.data(Qt.ItemDataRole.UserRole) for item in listed] == pytest.approx(
        [m[0] for m in MARKERS], abs=1e-3)
    assert "film 3" in listed[0].text() and "0:00.50" in listed[0].text()
    assert "button" in listed[1].text() and "0:01.52" in listed[1].text()
    assert [line.value() for line in window.marker_lines] == pytest.approx(
        [0.5, 0.5, 1.52, 1.52], abs=1e-3)  # one line per plot
    assert window.has_video and "P01" in window.header.text()
    window.close()


def test_jumping_to_a_marker_shows_the_video_frame_of_that_time(qtbot, recorded):
    window = ReviewWindow.open(recorded)
    qtbot.addWidget(window)
    window.show()
    frames = rows(recorded / layout.FRAMES)
    frame_times = np.array([float(r["time_s"]) for r in frames])
    decoded = list(read_video_frames(recorded / layout.VIDEO))
    for number in (1, 0, 1):  # forward, back (a seek), forward again
        t = MARKERS[number][0]
        window.marker_list.itemClicked.emit(window.marker_list.item(number))
        assert window.position == pytest.approx(t, abs=1e-3)
        assert window.slider.value() == round(t * 1000)
        expected = int(frames[int(np.searchsorted(frame_times, t, side="right")) - 1]["frame"])
        assert window.shown_frame == expected
        assert window.video._rgb is not None and np.array_equal(window.video._rgb,
                                                                decoded[expected].rgb)
        assert window.cursors[0].value() == pytest.approx(t)
    # Scrubbing with the time slider moves everything too.
    window.slider.setValue(1000)
    assert window.position == pytest.approx(1.0)
    expected = int(frames[int(np.searchsorted(frame_times, 1.0, side="right")) - 1]["frame"])
    assert window.shown_frame == expected
    # Playing advances in real time from where it is, then pauses.
    window.play()
    qtbot.wait(300)
    window.pause()
    assert 1.1 < window.position < 2.0 and window.shown_frame > expected
    window.close()


def test_a_session_without_media_opens_with_curves_only(qtbot, clip, tiny_model_path,
                                                        tmp_path):
    folder = record(tmp_path / "bare", clip, tiny_model_path, media=False)
    assert not (folder / layout.VIDEO).exists()
    window = ReviewWindow.open(folder)
    qtbot.addWidget(window)
    window.show()
    assert not window.has_video and not window.video.isVisible()
    assert "curves only" in window.message.text()
    t, _ = window.curves["arousal"].getData()
    assert len(t) == len(rows(folder / layout.PREDICTIONS)) >= 50
    window.jump_to_marker(1)
    assert window.position == pytest.approx(1.52, abs=1e-3) and window.shown_frame is None
    window.close()


def test_a_folder_that_is_not_a_session_gives_a_message(qtbot, tmp_path):
    window = MainWindow(Settings(), QSettings(str(tmp_path / "s.ini"),
                                              QSettings.Format.IniFormat), None)
    qtbot.addWidget(window)
    assert window.open_review(tmp_path) is None
    assert "not a session folder" in window.error_box.text()
    (tmp_path / layout.SESSION_JSON).write_text("{ not json")
    assert window.open_review(tmp_path) is None
    assert "unreadable" in window.error_box.text()
    info = {"format": layout.FORMAT_NAME}
    (tmp_path / layout.SESSION_JSON).write_text(json.dumps(info))
    assert window.open_review(tmp_path) is None
    assert "session.json: the file must contain" in window.error_box.text()
    info.update(format_version=1, status="complete",
                rates={"requested": {"predictions_hz": 25.0}})
    (tmp_path / layout.SESSION_JSON).write_text(json.dumps(info))
    (tmp_path / layout.PREDICTIONS).write_text("time_s,arousal,valence\n0.0,x,0.1\n")
    assert window.open_review(tmp_path) is None
    assert "predictions.csv" in window.error_box.text()
    window.close()


def test_the_main_window_opens_a_review_beside_the_live_view(qtbot, recorded, tmp_path):
    window = MainWindow(Settings(), QSettings(str(tmp_path / "s.ini"),
                                              QSettings.Format.IniFormat), None)
    qtbot.addWidget(window)
    action = next(a for a in window.actions() if a.text().startswith("Open session for review"))
    assert action.shortcut().toString() == "Ctrl+Shift+O"
    review = window.open_review(recorded)
    qtbot.addWidget(review)
    assert review is not None and review.isVisible() and window.reviews == [review]
    window.close()
    assert not review.isVisible()


# -- 1-D self-rating slider -------------------------------------------------------------------
def test_slider_maps_the_mouse_to_minus_one_to_one(qtbot):
    slider = RatingSlider("valence")
    qtbot.addWidget(slider)
    slider.resize(80, 300)
    assert slider.value_at(slider.y_of(0.5)) == pytest.approx(0.5)
    assert slider.value_at(0) == 1.0 and slider.value_at(299) == -1.0
    moved = []
    slider.ratingMoved.connect(moved.append)
    qtbot.mouseMove(slider, QPointF(40, slider.y_of(-0.3)).toPoint())
    assert moved == []  # nothing while rating is off
    slider.set_rating_enabled(True)
    point = QPointF(40, slider.y_of(-0.3)).toPoint()
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=point)
    assert moved and moved[-1] == pytest.approx(-0.3, abs=0.01)


def test_slider_ratings_are_recorded_at_25_hz_with_the_unrated_dimension_held(
        qtbot, clip, tiny_model_path, tmp_path):
    session = AffectSession(tiny_model_path, intra_op_threads=1)
    window = MainWindow(Settings(sources=SourceChoice(video_file=str(clip))),
                        QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                        session)
    qtbot.addWidget(window)
    window.show()
    assert window.control.set_rating_mode("arousal") and window.rating_slider.isVisible()
    assert window.control.start()
    qtbot.waitUntil(lambda: window.curves.traces["arousal"].size >= 3, timeout=15_000)
    out = tmp_path / "rated"
    assert window.control.start_recording(out, {"participant_id": "p"})
    assert not window.control.set_rating_mode("valence")  # fixed while recording
    assert window.rating_slider.rating_enabled and not window.circumplex.rating_enabled
    window.control.sampler.focused = True  # offscreen windows never get focus
    window.rating_slider.ratingMoved.emit(0.6)
    qtbot.wait(240)
    window.nudge_rating(0, -1)  # arrow down: 0.6 - 0.05
    qtbot.wait(240)
    window.control.stop_recording()
    window.close()

    ratings = rows(out / layout.RATINGS)
    times = np.array([float(r["time_s"]) for r in ratings])
    assert len(times) >= 8
    assert np.allclose(np.diff(times), 0.04, atol=1e-3)  # 25 Hz, no gaps, no repeats
    assert np.allclose(np.round(times / 0.04) * 0.04, times, atol=1e-3)  # on the step grid
    arousal = [float(r["arousal"]) for r in ratings]
    assert set(arousal) == {0.6, 0.55} and arousal == sorted(arousal, reverse=True)
    assert {float(r["valence"]) for r in ratings} == {UNRATED}
    info = json.loads((out / layout.SESSION_JSON).read_text())
    assert info["metadata"]["self_rating"]["dimensions"] == ["arousal"]
    # Review plots only the rated dimension.
    data = load_session(out)
    assert data.rated == ("arousal",)
    review = ReviewWindow(data)
    qtbot.addWidget(review)
    assert len(review.rating_curves["arousal"].getData()[0]) == len(ratings)
    assert review.rating_curves["valence"].getData()[0] is None
    review.close()
