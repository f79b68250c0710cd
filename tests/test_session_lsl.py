"""app.session.lsl: a real LSL outlet read by a real inlet on this machine."""
from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from app.pipeline import Engine
from app.vad import EnergyVoiceDetector
from models.runtime import AffectSession

lsl = pytest.importorskip("mne_lsl.lsl", reason="the optional LSL extra (mne-lsl) is not installed")


def test_affect_outlet_streams_every_prediction_to_an_inlet(tiny_model_path):
    from app.session.lsl import AffectOutlet

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
