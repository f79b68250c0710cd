"""Lab Streaming Layer outlet for the live predictions (optional: ``pip install mne-lsl``,
which bundles liblsl on Linux).

``AffectOutlet(engine)`` publishes a stream named ``Affect`` (type ``Affect``, 4 channels
arousal, valence, face_found, voice_active at 25 Hz nominal, labels and units in its
description) from its own thread, stamping each sample with the LSL clock time of the
window's capture; arousal/valence stay numbers, face_found/voice_active are 0/1.

Not done yet (see the recording issue): the ``Markers`` outlet and the inlet that writes
other apps' markers into events.tsv.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from app.pipeline import Engine

CHANNELS = (("arousal", "a.u. (-1..1)"), ("valence", "a.u. (-1..1)"),
            ("face_found", "boolean"), ("voice_active", "boolean"))


def _lsl():
    try:
        from mne_lsl import lsl
    except ImportError:
        raise RuntimeError("LSL needs the optional extra: pip install 'affect-monitor[lsl]' "
                           "(mne-lsl)") from None
    return lsl


class AffectOutlet:
    def __init__(self, engine: Engine, name: str = "Affect", source_id: str = "affect-monitor"):
        lsl = _lsl()
        self.engine = engine
        rate = engine.rate / engine.window
        info = lsl.StreamInfo(name, "Affect", len(CHANNELS), rate, "float32", source_id)
        info.set_channel_names([c for c, _ in CHANNELS])
        info.set_channel_units([u for _, u in CHANNELS])
        self._outlet = lsl.StreamOutlet(info)
        self._clock = lsl.local_clock
        self._subscription = engine.subscribe(maxsize=250)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lsl", daemon=True)
        self.pushed = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.engine.unsubscribe(self._subscription)
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            prediction = self._subscription.get(timeout=0.1)
            if prediction is None:
                if self._subscription.closed:
                    return
                continue
            # Capture time of the window's last sample, on LSL's clock (same monotonic base
            # on Linux, but go through "now" to stay correct on any platform).
            engine_now = time.monotonic()
            captured = (self.engine.clock.start + self.engine.audio.offset_s
                        + prediction.t + self.engine.window / self.engine.rate)
            stamp = self._clock() - (engine_now - captured)
            sample = np.array([prediction.arousal, prediction.valence,
                               float(prediction.face_found), float(prediction.voice_active)],
                              np.float32)
            self._outlet.push_sample(sample, stamp)
            self.pushed += 1
