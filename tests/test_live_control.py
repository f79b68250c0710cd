"""app.gui.control.LiveControl without a window: the real engine on a real audio file
(played in real time, as a microphone would deliver it), the real SessionRecorder
writing real folders, a real exported model. What is checked is what a user of the
window would see: messages, refusals, and what ends up in the session folder."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

from app.gui.control import LiveControl, LiveObserver, recorder_class
from app.gui.settings import SourceChoice
from app.recording import layout
from models.runtime import AffectSession
from models.spec import SAMPLE_RATE, STEP_SECONDS


class Seen(LiveObserver):
    """What the window would have been told."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.errors: list[tuple[str, str]] = []
        self.markers: list[tuple[float, str]] = []
        self.restarts = 0

    def on_message(self, text: str, ms: int) -> None:
        self.messages.append(text)

    def on_error(self, title: str, text: str) -> None:
        self.errors.append((title, text))

    def on_restart(self) -> None:
        self.restarts += 1

    def on_marker(self, t: float, text: str) -> None:
        self.markers.append((t, text))


@pytest.fixture(scope="module")
def session(tiny_model_path):
    return AffectSession(tiny_model_path, intra_op_threads=1)


def tone(path, seconds):
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SAMPLE_RATE)
    return path


@pytest.fixture(scope="module")
def long_tone(tmp_path_factory):
    return tone(tmp_path_factory.mktemp("media") / "tone.wav", 20.0)


def make_control(session, audio_file, seen=None, lsl_stream=False):
    recorder, _ = recorder_class()
    return LiveControl(session, SourceChoice(audio_file=str(audio_file)), model_path="tiny",
                       marker_labels=["event 1"], recorder_class=recorder, observer=seen,
                       lsl_stream=lsl_stream)


def poll_until(control, condition, timeout_s=15.0):
    """Poll as the window's timer does (~30 Hz) until ``condition()``; the updates seen."""
    updates = []
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        updates.append(control.poll())
        time.sleep(0.03)
    return updates


def test_without_a_model_start_says_to_choose_one(long_tone):
    seen = Seen()
    control = make_control(None, long_tone, seen)
    assert not control.start() and not control.running
    assert seen.errors == [("No model", "Choose a model first (Model ▸ Choose model…).")]


def test_a_marker_needs_a_running_source_and_then_lands_in_the_recording(session, long_tone,
                                                                         tmp_path):
    seen = Seen()
    control = make_control(session, long_tone, seen)
    assert control.add_marker("event 1") is None
    assert seen.messages[-1] == "markers need a running source (Start)"
    assert control.markers == [] and seen.markers == []

    assert control.start()
    poll_until(control, lambda: (control.engine_time() or 0) > 0.3)
    assert control.start_recording(tmp_path / "s", {"participant_id": "p1"})
    poll_until(control, lambda: control.engine_time() > 0.8)
    onset = control.add_marker("event 1", "door")
    assert onset is not None and seen.markers == [(onset, "door")]
    assert seen.messages[-1] == f"marker 'door' at {onset:.2f} s"
    poll_until(control, lambda: control.engine_time() > onset + 0.3)
    control.close()
    events = layout.read_table(tmp_path / "s" / layout.EVENTS, "\t")
    assert [(e["trial_type"], e["value"]) for e in events
            if e["trial_type"] == "event 1"] == [("event 1", "door")]
    info = json.loads((tmp_path / "s" / layout.SESSION_JSON).read_text())
    assert info["participant_id"] == "p1" and info["metadata"]["marker_labels"] == ["event 1"]


def test_stopping_a_recording_twice_is_harmless_and_says_where_it_is(session, long_tone,
                                                                     tmp_path):
    seen = Seen()
    control = make_control(session, long_tone, seen)
    folder = tmp_path / "twice"
    assert control.start_recording(folder, {})  # starts the engine too
    assert control.running and seen.restarts == 1
    assert not control.start_recording(tmp_path / "other", {})
    assert seen.messages[-1] == f"already recording into {folder}"
    poll_until(control, lambda: control.engine_time() > 0.5)
    control.stop_recording()
    said = list(seen.messages)
    control.stop_recording()
    assert seen.messages == said and seen.errors == []
    assert said[-1] == f"session saved in {folder}"
    assert control.running  # the engine keeps running without the recording
    assert json.loads((folder / layout.SESSION_JSON).read_text())["status"] == layout.COMPLETE
    assert not (tmp_path / "other").exists()
    control.close()


def test_a_baseline_needs_a_recording_and_its_summary_is_shown_once_stored(session,
                                                                          long_tone, tmp_path):
    seen = Seen()
    control = make_control(session, long_tone, seen)
    assert not control.record_baseline(1.0)
    assert seen.messages[-1] == "a baseline is taken while recording: press Record first"
    assert control.start_recording(tmp_path / "b", {}, baseline_s=0.5)
    assert 0 < control.recording.baseline_left_s() <= 0.5  # the countdown beside REC
    poll_until(control, lambda: any(m.startswith("baseline stored") for m in seen.messages))
    assert sum(m.startswith("baseline stored (0.5 s)") for m in seen.messages) == 1
    assert not control.record_baseline(-1.0)
    assert seen.errors[-1][0] == "Cannot take a baseline"
    control.stop_recording()
    stored = json.loads((tmp_path / "b" / layout.SESSION_JSON).read_text())["baseline"]
    assert stored["start_s"] == 0.0 and stored["complete"]
    control.close()


def test_the_rating_input_is_fixed_while_recording_and_ratings_follow_the_clock(
        session, long_tone, tmp_path):
    seen = Seen()
    control = make_control(session, long_tone, seen)
    assert control.set_rating_mode("valence")
    control.set_slider(0.4)
    assert control.start_recording(tmp_path / "r", {})
    assert control.sampler.running  # self-rating runs while recording
    assert not control.set_rating_mode("arousal") and control.rating_mode == "valence"
    assert seen.messages[-1] == "the self-rating input cannot change while recording"
    updates = poll_until(control, lambda: control.ratings_taken >= 10)
    control.nudge_rating(0, 1)  # arrow up raises the slider
    assert control.sampler.valence == pytest.approx(0.45)
    ratings = [r for u in updates for r in u.ratings]
    times = np.array([r.t for r in ratings])
    assert np.allclose(np.diff(times), STEP_SECONDS)  # 25 Hz on the engine clock
    assert {(r.valence, r.arousal) for r in ratings} == {(0.4, 0.0)}
    control.stop_recording()
    info = json.loads((tmp_path / "r" / layout.SESSION_JSON).read_text())
    assert info["metadata"]["self_rating"]["dimensions"] == ["valence"]
    control.close()


def test_when_the_source_ends_the_recording_is_saved_and_start_plays_it_again(
        session, tmp_path):
    seen = Seen()
    control = make_control(session, tone(tmp_path / "short.wav", 1.2), seen)
    assert control.start_recording(tmp_path / "end", {})
    # The recorder (seeing the engine finish) and the control (seeing the last poll) may
    # notice the end in either order; both are said.
    ended = "the source ended; Start plays it again"
    updates = poll_until(control, lambda: control.recording is None and ended in seen.messages)
    assert f"session saved in {tmp_path / 'end'}" in seen.messages and seen.errors == []
    assert not control.running and control.engine_time() is None
    steps = sum(len(u.predictions) for u in updates)
    assert steps == pytest.approx(1.2 / STEP_SECONDS, abs=1)  # every step of the file
    info = json.loads((tmp_path / "end" / layout.SESSION_JSON).read_text())
    assert info["status"] == layout.COMPLETE
    assert control.start() and control.running  # plays it again
    control.close()


def test_a_bad_model_is_refused_and_the_running_engine_keeps_it(session, long_tone, tmp_path):
    seen = Seen()
    control = make_control(session, long_tone, seen)
    assert control.start()
    live = control.live
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert not control.set_model(str(bad))
    assert seen.errors[-1][0] == "Cannot use this model"
    assert control.model is session and control.live is live and control.model_path == "tiny"
    control.close()
    assert not control.running


def test_the_lsl_stream_follows_the_engine_and_a_recording_keeps_it_on(session, long_tone,
                                                                        tmp_path):
    pytest.importorskip("mne_lsl.lsl", reason="the optional LSL extra (mne-lsl) is not installed")
    seen = Seen()
    control = make_control(session, long_tone, seen, lsl_stream=True)  # remembered: on
    assert control.lsl_stream and control.marker_outlet is None  # nothing open before Start
    assert control.start()
    assert control.affect_outlet is not None and control.marker_outlet is not None
    assert control.start_recording(tmp_path / "l", {}, lsl=True)
    assert not control.set_lsl_stream(False)  # refused while a recording streams
    assert seen.messages[-1] == "this recording streams on LSL until it stops"
    assert control.lsl_stream and control.affect_outlet is not None
    control.stop_recording()
    assert control.lsl_stream  # it was on before the recording: it stays on
    assert control.start()  # a restart (new sources or model) reopens Affect
    assert control.affect_outlet is not None
    control.close()
    assert control.affect_outlet is None and control.marker_outlet is None
    assert control.lsl_stream  # the choice is kept for the next run


def test_the_control_loads_no_qt_widgets():
    code = ("import sys, app.gui.control; "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6.QtWidgets', "
            "'PySide6.QtGui', 'pyqtgraph'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
