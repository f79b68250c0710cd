"""Lab Streaming Layer (optional: ``pip install 'affect-monitor[lsl]'``, i.e. mne-lsl, which
bundles liblsl on Linux).

* ``AffectOutlet(engine)``: a stream named ``Affect`` (type ``Affect``, 4 channels arousal,
  valence, face_found, voice_active at 25 Hz nominal, labels and units in its
  description), pushed from its own thread, each sample stamped with the LSL clock time
  of the window's capture; arousal/valence stay numbers, face_found/voice_active are 0/1.
* ``MarkerOutlet``: a stream named ``Markers`` (type ``Markers``, one string channel,
  irregular rate). The recorder pushes every event it logs to events.tsv (GUI markers,
  free text, baseline, device faults) as ``"trial_type"`` or ``"trial_type: value"``,
  stamped with the event's onset on the LSL clock (not the time it was pushed).
* ``MarkerInlet``: records the markers of every *other* LSL stream of type ``Markers``
  (PsychoPy, OpenSesame, another affect-monitor, ...), found again every second so an app
  started mid-session is picked up. Each marker reaches ``on_marker(monotonic_s, text,
  stream_name)``; the recorder writes it to events.tsv (trial_type = the marker text,
  value = ``lsl:<stream name>``).

Clocks. A remote timestamp ``ts`` (the sender's ``local_clock()``) is brought to this
machine's LSL clock with ``inlet.time_correction()`` (LSL's own clock-offset estimate:
0 on the same machine, the NTP-like offset across machines), then to this process's
``time.monotonic()`` with ``LslClock`` (``local_clock`` and ``time.monotonic`` read side
by side; on Linux both are CLOCK_MONOTONIC and the offset is ~0, but it is measured, not
assumed). The session folder's time 0.0 is ``start.monotonic_s`` in session.json, so::

    onset (s, session clock) = ts + time_correction + (monotonic - local_clock)
                               - session.json start.monotonic_s

and the other way (``MarkerOutlet``): LSL stamp = start.monotonic_s + onset -
(monotonic - local_clock).

Without mne-lsl every class here raises ``LslUnavailable`` (a RuntimeError) saying what
to install; ``lsl_missing()`` says so without raising, and ``lsl_not_installed()`` says
whether the package is there without importing it (which takes seconds).
"""
from __future__ import annotations

import importlib.util
import logging
import threading
import time
from typing import Callable

import numpy as np

from app.pipeline import Engine

log = logging.getLogger(__name__)

CHANNELS = (("arousal", "a.u. (-1..1)"), ("valence", "a.u. (-1..1)"),
            ("face_found", "boolean"), ("voice_active", "boolean"))
MARKER_TYPE = "Markers"
INSTALL = ("LSL needs the optional extra: pip install 'affect-monitor[lsl]' (mne-lsl, which "
           "bundles liblsl)")


class LslUnavailable(RuntimeError):
    """mne-lsl (or its liblsl) cannot be loaded; the message says what to install."""


def _lsl():
    try:
        from mne_lsl import lsl
    except ImportError:
        raise LslUnavailable(INSTALL) from None
    except (OSError, RuntimeError) as error:  # the bundled liblsl did not load
        raise LslUnavailable(f"{INSTALL}; loading liblsl failed: {error}") from None
    return lsl


def lsl_missing() -> str | None:
    """None when LSL can be used, else why not (what to install)."""
    try:
        _lsl()
    except LslUnavailable as error:
        return str(error)
    return None


def lsl_not_installed() -> str | None:
    """None when mne-lsl is installed, else what to install; cheap enough for start-up
    (a broken liblsl still shows when a stream is opened: ``LslUnavailable``)."""
    return None if importlib.util.find_spec("mne_lsl") is not None else INSTALL


class LslClock:
    """This process's ``time.monotonic()`` <-> this machine's LSL ``local_clock()``."""

    def __init__(self, reads: int = 7) -> None:
        local_clock = _lsl().local_clock
        best = None
        for _ in range(reads):  # the narrowest bracket gives the best pairing
            before = time.monotonic()
            lsl_now = local_clock()
            after = time.monotonic()
            if best is None or after - before < best[0]:
                best = (after - before, (before + after) / 2 - lsl_now)
        self.offset_s = best[1]  # monotonic = lsl + offset_s
        self.local_clock = local_clock

    def to_monotonic(self, lsl_s: float) -> float:
        return lsl_s + self.offset_s

    def to_lsl(self, monotonic_s: float) -> float:
        return monotonic_s - self.offset_s


def marker_text(trial_type: str, value: str = "") -> str:
    """An events.tsv row as one marker string (the ELAN export shows events the same way)."""
    return f"{trial_type}: {value}" if value else str(trial_type)


def clean(text: str) -> str:
    """One line without tabs or control characters, fit for a TSV cell and a one-channel
    marker (``app.recording.layout.clean_text``)."""
    from app.recording.layout import clean_text

    return clean_text(text)


class AffectOutlet:
    def __init__(self, engine: Engine, name: str = "Affect", source_id: str = "affect-monitor"):
        lsl = _lsl()
        self.engine = engine
        self._timeline = engine.timeline
        self._step_s = engine.spec.window_samples / engine.spec.sample_rate
        rate = 1.0 / self._step_s
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
        if self._thread.is_alive():
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
            captured = self._timeline.to_monotonic(prediction.t + self._step_s)
            stamp = self._clock() - (engine_now - captured)
            sample = np.array([prediction.arousal, prediction.valence,
                               float(prediction.face_found), float(prediction.voice_active)],
                              np.float32)
            self._outlet.push_sample(sample, stamp)
            self.pushed += 1


class MarkerOutlet:
    """The ``Markers`` stream: one string channel, irregular rate."""

    def __init__(self, name: str = "Markers", source_id: str | None = None) -> None:
        lsl = _lsl()
        self.name = name
        self.source_id = source_id or f"affect-monitor-markers-{id(self):x}"
        info = lsl.StreamInfo(name, MARKER_TYPE, 1, 0.0, "string", self.source_id)
        info.set_channel_names(["marker"])
        self._outlet = lsl.StreamOutlet(info)
        self.clock = LslClock()
        self._lock = threading.Lock()
        self.pushed = 0

    def push(self, text: str, monotonic_s: float | None = None) -> None:
        """Push ``text`` stamped at ``monotonic_s`` (this process's clock; None: now)."""
        stamp = (self.clock.local_clock() if monotonic_s is None
                 else self.clock.to_lsl(monotonic_s))
        with self._lock:
            self._outlet.push_sample([clean(text)], stamp)
            self.pushed += 1

    def close(self) -> None:
        with self._lock:
            self._outlet = None


MarkerHandler = Callable[[float, str, str], None]  # (monotonic_s, text, stream name)


class MarkerInlet:
    """Every LSL stream of type ``Markers`` except ``exclude`` (source ids) -> ``on_marker``.

    Its own thread resolves the network every ``resolve_every_s`` and keeps one inlet per
    stream (LSL reconnects a stream whose sender restarts). ``streams``: names connected.
    """

    def __init__(self, on_marker: MarkerHandler, *, exclude: tuple[str, ...] = (),
                 stype: str = MARKER_TYPE, resolve_every_s: float = 1.0,
                 poll_s: float = 0.01) -> None:
        self._lsl = _lsl()
        self.on_marker = on_marker
        self.exclude = set(exclude)
        self.stype = stype
        self.resolve_every_s = resolve_every_s
        self.poll_s = poll_s
        self.clock = LslClock()
        self._inlets: dict[str, tuple] = {}  # uid -> (inlet, name, correction, refreshed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lsl-markers-in", daemon=True)
        self.received = 0
        self.errors: list[str] = []
        self._seen: set[str] = set()

    @property
    def streams(self) -> list[str]:
        """Names of the streams connected now."""
        return sorted(name for _, name, _, _ in list(self._inlets.values()))

    @property
    def streams_seen(self) -> list[str]:
        """Names of every stream connected since ``start``."""
        return sorted(self._seen)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        for inlet, *_ in self._inlets.values():
            try:
                inlet.close_stream()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._inlets.clear()

    def _run(self) -> None:
        next_resolve = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_resolve:
                self._resolve()
                next_resolve = time.monotonic() + self.resolve_every_s
            self._pull()
            self._stop.wait(self.poll_s)
        self._pull()  # what arrived while stopping

    def _resolve(self) -> None:
        lsl = self._lsl
        try:  # a large minimum: wait the whole timeout and list every stream found
            found = lsl.resolve_streams(timeout=0.3, stype=self.stype, minimum=1 << 16)
        except Exception as error:  # noqa: BLE001 - a network hiccup must not end the session
            self._note(f"resolving LSL streams failed: {error}")
            return
        for info in found:
            if info.uid in self._inlets or info.source_id in self.exclude:
                continue
            try:
                inlet = lsl.StreamInlet(info)
                inlet.open_stream(timeout=2.0)
                correction = inlet.time_correction(timeout=2.0)
            except Exception as error:  # noqa: BLE001
                self._note(f"cannot open LSL stream {info.name!r}: {error}")
                continue
            self._inlets[info.uid] = (inlet, info.name, correction, time.monotonic())
            self._seen.add(info.name)
            log.info("recording LSL markers from %r (%s)", info.name, info.hostname)

    def _pull(self) -> None:
        for uid, (inlet, name, correction, refreshed) in list(self._inlets.items()):
            try:
                if time.monotonic() - refreshed > 5.0:  # follow slow clock drift
                    correction = inlet.time_correction(timeout=0.5)
                    refreshed = time.monotonic()
                    self._inlets[uid] = (inlet, name, correction, refreshed)
                data, stamps = inlet.pull_chunk(timeout=0.0)
            except Exception as error:  # noqa: BLE001 - a stream lost for good
                self._note(f"LSL stream {name!r} lost: {error}")
                self._inlets.pop(uid, None)
                continue
            for values, stamp in zip(data, stamps):
                text = clean("/".join(_cell(v) for v in np.atleast_1d(values)))
                self.received += 1
                self.on_marker(self.clock.to_monotonic(float(stamp) + correction), text, name)

    def _note(self, message: str) -> None:
        log.warning("%s", message)
        if len(self.errors) < 100:
            self.errors.append(message)


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)
