"""app.recording.lsl: real LSL outlets read by real inlets on this machine (the Affect
outlet, the recorder's Markers outlet, other apps' markers recorded into events.tsv),
and a clear message, not a crash, when LSL is asked for without mne-lsl."""
from __future__ import annotations

import sys
import time
import uuid

import numpy as np
import pytest

from app.cli import main as cli_main
from app.pipeline import Engine
from app.recording import layout
from app.recording.recorder import RecorderError, SessionRecorder
from app.vad import EnergyVoiceDetector
from models.runtime import AffectSession
from test_session_recorder import read_rows


@pytest.fixture(scope="module")
def lsl():
    return pytest.importorskip("mne_lsl.lsl",
                               reason="the optional LSL extra (mne-lsl) is not installed")


def test_affect_outlet_streams_every_prediction_to_an_inlet(tiny_model_path, lsl):
    from app.recording.lsl import AffectOutlet

    engine = Engine(AffectSession(tiny_model_path), vad=EnergyVoiceDetector())  # silence
    name = f"Affect-{uuid.uuid4().hex[:8]}"
    outlet = AffectOutlet(engine, name=name, source_id=name)
    streams = lsl.resolve_streams(timeout=5, name=name)
    assert len(streams) == 1 and streams[0].sfreq == 25.0
    inlet = lsl.StreamInlet(streams[0])
    inlet.open_stream(timeout=5)
    full = inlet.get_sinfo(timeout=5)  # the description travels with the full info
    assert full.get_channel_names() == ["arousal", "valence", "face_found", "voice_active"]
    assert full.get_channel_units()[0] == "a.u. (-1..1)"
    mine = engine.subscribe(1000)
    outlet.start()
    engine.start()
    time.sleep(1.0)
    engine.stop()
    ended = lsl.local_clock()
    time.sleep(0.3)
    outlet.stop()
    data, stamps = inlet.pull_chunk(timeout=2)
    published = mine.drain()
    assert len(published) >= 15 and data.shape == (len(published), 4)
    assert np.allclose(data[:, 0], [p.arousal for p in published], atol=1e-6)
    assert np.allclose(np.diff(stamps), 0.04, atol=0.03)  # capture times, 40 ms apart
    assert 0 <= ended - stamps[-1] < 0.5  # LSL time of capture, not of reading


def wait_for(condition, timeout=8.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_markers_in_and_out_on_the_session_clock(tiny_model_path, lsl, tmp_path):
    """Another app's Markers stream (a PsychoPy stand-in: a separate outlet) lands in
    events.tsv at its LSL timestamp on the session clock; every event the recorder logs
    goes out on its Markers outlet, stamped at its onset; nothing is echoed back."""
    tag = uuid.uuid4().hex[:8]
    other = lsl.StreamOutlet(lsl.StreamInfo(f"PsychoPy-{tag}", "Markers", 1, 0.0, "string",
                                            f"psychopy-{tag}"))
    engine = Engine(AffectSession(tiny_model_path, intra_op_threads=1),
                    vad=EnergyVoiceDetector())  # no devices: real-time silence
    recorder = SessionRecorder(tmp_path / "s", {}, engine, lsl=True,
                               lsl_markers_name=f"Markers-{tag}")
    recorder.start()
    engine.start()
    mine = lsl.resolve_streams(timeout=5, name=f"Markers-{tag}")
    assert len(mine) == 1 and mine[0].stype == "Markers" and mine[0].sfreq == 0.0
    reader = lsl.StreamInlet(mine[0])
    reader.open_stream(timeout=5)
    assert wait_for(lambda: f"PsychoPy-{tag}" in recorder.marker_inlet.streams)
    assert wait_for(lambda: recorder.origin_monotonic is not None)
    time.sleep(0.3)

    pushed_at = time.monotonic()
    other.push_sample(["stim_on"])  # stamped now by LSL
    recorder.add_event(None, "button", "space")  # the GUI's way, at the same moment
    other.push_sample(["trial\t3 start"], lsl.local_clock() - 0.5)  # sent late, stamped earlier
    recorder.add_event(None, "free text note")
    time.sleep(0.5)
    out, stamps = reader.pull_chunk(timeout=2)
    info = recorder.stop()
    engine.stop()
    del other

    origin = info["start"]["monotonic_s"]
    events = read_rows(tmp_path / "s" / layout.EVENTS, "\t")
    onsets = {(e["trial_type"], e["value"]): float(e["onset"]) for e in events}
    expected = pushed_at - origin
    assert onsets[("stim_on", f"lsl:PsychoPy-{tag}")] == pytest.approx(expected, abs=0.05)
    assert onsets[("trial 3 start", f"lsl:PsychoPy-{tag}")] == pytest.approx(expected - 0.5,
                                                                             abs=0.05)
    assert onsets[("button", "space")] == pytest.approx(expected, abs=0.05)
    assert info["lsl"]["marker_streams_recorded"] == [f"PsychoPy-{tag}"]

    # Out: the recorder's own events only (not the markers it received), at their onsets.
    texts = [row[0] for row in out]
    assert texts == ["button: space", "free text note"], texts
    clock_offset = time.monotonic() - lsl.local_clock()
    assert stamps[0] + clock_offset - origin == pytest.approx(onsets[("button", "space")],
                                                              abs=0.01)
    assert info["lsl"]["markers_pushed"] == 2


def test_asking_for_lsl_without_mne_lsl_is_a_clear_message(tiny_model_path, tmp_path,
                                                          monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mne_lsl", None)  # as if not installed
    from app.recording.lsl import LslUnavailable, MarkerOutlet, lsl_missing

    assert "pip install 'affect-monitor[lsl]'" in lsl_missing()
    with pytest.raises(LslUnavailable, match="mne-lsl"):
        MarkerOutlet()
    engine = Engine(AffectSession(tiny_model_path), vad=EnergyVoiceDetector())
    with pytest.raises(RecorderError, match="affect-monitor\\[lsl\\]"):
        SessionRecorder(tmp_path / "api", {}, engine, lsl=True).start()
    assert not (tmp_path / "api").exists()  # refused before anything was created
    code = cli_main(["record", "--out", str(tmp_path / "cli"), "--lsl", "--no-media",
                     "--seconds", "1", "--model", str(tiny_model_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--lsl" in err and "mne-lsl" in err and "Traceback" not in err
    assert not (tmp_path / "cli").exists()
