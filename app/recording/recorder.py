"""SessionRecorder: an engine's predictions, media, self-ratings and events -> a session
folder (``app.recording.layout``), on its own thread.

    recorder = SessionRecorder(out_dir, {"participant_id": "P01", "session_id": "1"}, engine)
    recorder.start()                      # before or after engine.start()
    recorder.add_event(t, "stimulus", "film 3")   # t on the engine's clock (Prediction.t)
    recorder.add_rating(t, arousal, valence)      # -1..1
    recorder.record_baseline(60.0)        # the next minute is the neutral baseline
    recorder.stop()                       # -> the final session.json as a dict

Times handed in are on the engine's clock, the ``t`` of ``Prediction`` (what the GUI
plots); the folder's clock starts at the first 40 ms window the recorder sees, so a
recording started on a running engine begins at 0.0 s (``Engine.timeline`` converts).
``add_*`` only append to a queue; the engine reaches the recorder only through its
subscriptions (``app.recording.feeds``): nothing waits on the disk except the recorder's
thread, which writes everything (``app.recording.writers``) and hands it to the OS every
``FLUSH_S`` (a killed process loses at most that, plus the video fragment in progress).

The recorder coordinates; each concern has its own piece:

* ``feeds.EngineFeeds``: the engine's predictions, events, audio chunks and frames;
* ``writers.RecordingFiles``: every file but session.json;
* ``baseline.BaselineTracker``: the neutral baseline;
* ``devices.DeviceWatcher``: whether a live camera or microphone was lost;
* ``lsl_bridge.MarkerBridge``: events out on LSL, other apps' markers in.

A full disk, a folder that stops being writable, or (``stop_on_device_loss``) a camera
or microphone lost mid-session (``DeviceWatcher``) stop the recording with a message in
``error`` and on ``messages``; everything written until then stays readable.

One recording per folder: an exclusive OS lock (``layout.lock_folder``) is taken before
the folder is looked at and held until the last file is closed (the OS drops it if the
process dies). ``folder.RESERVE_BYTES`` of the disk are kept while recording and given back at
the end, or when the disk fills up, so the final session.json (status, stop reason) is
always written. A model that fails ends the recording as "stopped", saying so.

Baseline: ``baseline_s=N`` (``affect-monitor record --baseline N``) takes the first N
seconds as the neutral baseline; ``record_baseline(seconds, onset_s)`` takes any span
(a later call replaces an earlier baseline; both stay in events.tsv). Once the span is
recorded, session.json gets ``baseline`` (start, duration, steps, mean and population
std of arousal and valence, face/voice fractions) and events.tsv a ``baseline`` row
spanning it; the exports add ``arousal_bc``/``valence_bc`` = raw - baseline mean. A
recording that ends inside the span stores what it has (``complete: false``).

LSL (``lsl=True``, needs mne-lsl; ``RecorderError`` saying what to install otherwise):
every row written to events.tsv is also pushed on an LSL ``Markers`` outlet, and the
markers of other LSL apps' ``Markers`` streams are written to events.tsv
(trial_type = marker, value = ``lsl:<stream>``) at their LSL timestamp converted to the
session clock (see ``app.recording.lsl`` for the conversion). ``lsl_marker_outlet``: an
open ``MarkerOutlet`` to push on instead of a new one (the GUI's, which streams markers
with or without a recording: LabRecorder then sees one Markers stream); left open at stop.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

from app.pipeline import Engine, EngineEvent, Prediction, Subscription
from app.provenance import sha256_of
from app.recording import layout
from app.recording.baseline import BaselineTracker, describe
from app.recording.devices import DeviceWatcher
from app.recording.events import EventLog
from app.recording.feeds import FRAMES_QUEUE, EngineFeeds
from app.recording.folder import FolderInUse, RecordingFolder
from app.recording.info import describe_error, session_json
from app.recording.tables import sort_events, tidy_ratings
from app.recording.writers import RecordingFiles

log = logging.getLogger(__name__)

JSON_EVERY_S = 5.0  # session.json (counters) is rewritten this often while recording
CATCH_UP_S = 10.0  # how long stop() waits for the engine to predict what was captured
SYNC_EVERY_S = 10.0  # fsync: survive a power cut, not only a crash, losing <= this
_ENGINE_SOURCES = ("model", "engine")
_EPS = 1e-6


class RecorderError(RuntimeError):
    """The recording cannot start (folder not writable, already used, ...)."""


class SessionRecorder:
    def __init__(self, out_dir: str | Path, metadata: dict, engine: Engine, *,
                 store_media: bool = True, duration_s: float | None = None,
                 stop_on_device_loss: bool = True, video_fps: float | None = None,
                 baseline_s: float | None = None, lsl: bool = False,
                 lsl_markers_name: str = "Markers", lsl_marker_outlet=None) -> None:
        if baseline_s is not None and not (baseline_s > 0 and math.isfinite(baseline_s)):
            raise ValueError(f"baseline_s must be a positive number of seconds, got {baseline_s}")
        self.out_dir = Path(out_dir)
        self.metadata = dict(metadata)
        self.engine = engine
        self.timeline = engine.timeline
        self.store_media = store_media
        self.duration_s = duration_s
        self.stop_on_device_loss = stop_on_device_loss
        self.video_fps = video_fps or getattr(engine.video_source, "fps", None) or 30.0
        self.messages: Subscription[str] = Subscription(100)
        self.error: str | None = None  # why the recording stopped early
        self.rate = engine.spec.sample_rate
        self.step_s = engine.spec.window_samples / self.rate
        self.baseline_s = baseline_s
        self.baseline: dict | None = None  # the last baseline recorded (session.json's)
        self.predictions_written = 0
        self.lsl = lsl
        self.lsl_markers_name = lsl_markers_name
        self._shared_outlet = lsl_marker_outlet  # the caller's: pushed on, never closed
        self.bridge = None  # lsl_bridge.MarkerBridge while recording with lsl
        self.feeds: EngineFeeds | None = None
        self.files: RecordingFiles | None = None
        self._tracker = BaselineTracker(self.step_s)
        self._devices: DeviceWatcher | None = None  # from the start on
        self._user: deque[tuple] = deque()  # ("event", ...) / ("rating", ...) from any thread
        self._events: EventLog | None = None  # events.tsv, mirrored on LSL
        self._pending_frames: list = []  # frames waiting for the clock's origin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0_sample = 0  # the engine sample at the folder's 0.0 s
        self.faults: list[str] = []
        self.status = layout.RECORDING
        self.stop_reason: str | None = None
        self._reached_limit = False
        self.ratings_merged = 0
        self.folder = RecordingFolder(self.out_dir)  # locked from start until all is closed
        self._anchored = False  # session.json holds start.monotonic_s (time 0 is known)

    # -- the interface the GUI and `affect-monitor record` use -------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RecorderError("a SessionRecorder records once; make a new one")
        if self.lsl:
            from app.recording.lsl import lsl_missing

            missing = lsl_missing()
            if missing:
                raise RecorderError(f"cannot record with LSL: {missing}")
        self._open_folder()
        if self.lsl:
            self._open_lsl()
        try:
            self._begin()
        except OSError as error:  # e.g. the disk is already full: session.json cannot be written
            self._abandon()
            raise RecorderError(f"cannot record into {self.out_dir}: "
                                f"{describe_error(error)}") from None

    def _begin(self) -> None:
        engine = self.engine
        self.stats_at_start = engine.stats()
        self.model_sha = sha256_of(engine.model.path)
        self.started_wall = time.monotonic()
        self.started_utc = datetime.now(timezone.utc)
        self.feeds = EngineFeeds(engine, self.store_media)
        if engine.running:  # begin at the next whole window of the running engine
            window = engine.spec.window_samples
            self._t0_sample = -(-engine.samples_captured // window) * window
        self.files.next_sample = self._t0_sample
        self._devices = DeviceWatcher(engine)  # the sources the recording starts with
        if self.baseline_s is not None:
            self._user.append(("baseline", self.origin_s, self.baseline_s))
        self._write_session_json()
        self.folder.hold_reserve()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def add_event(self, onset_s: float | None, label: str, value: str = "",
                  duration: float = 0.0) -> None:
        """A marker at ``onset_s`` on the engine's clock (None: now) -> events.tsv."""
        onset = self.now() if onset_s is None else float(onset_s)
        self._user.append(("event", onset, float(duration), str(label), str(value)))

    def add_rating(self, t_s: float | None, arousal: float, valence: float) -> None:
        """A self-rating (-1..1 each) at ``t_s`` on the engine's clock -> ratings.csv."""
        arousal, valence = float(arousal), float(valence)
        if not (-1.0 <= arousal <= 1.0 and -1.0 <= valence <= 1.0):
            raise ValueError(f"ratings are -1..1; got arousal {arousal}, valence {valence}")
        t = self.now() if t_s is None else float(t_s)
        self._user.append(("rating", t, arousal, valence))

    def record_baseline(self, seconds: float, onset_s: float | None = None) -> None:
        """Take ``seconds`` from ``onset_s`` (engine clock; None: now) as the neutral
        baseline; stored (session.json, events.tsv) once that span has been recorded."""
        seconds = float(seconds)
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"a baseline lasts a positive number of seconds, got {seconds}")
        onset = self.now() if onset_s is None else float(onset_s)
        self._user.append(("baseline", onset, seconds))

    def add_event_at_monotonic(self, monotonic_s: float, label: str, value: str = "",
                               duration: float = 0.0) -> None:
        """A marker at ``monotonic_s`` (``time.monotonic()`` of this process) ->
        events.tsv; placed on the session clock once its origin is known."""
        self._user.append(("mono_event", float(monotonic_s), float(duration), str(label),
                           str(value)))

    @property
    def origin_s(self) -> float:
        """The folder's 0.0 s on the engine's clock (``Prediction.t``)."""
        return self._t0_sample / self.rate

    @property
    def origin_monotonic(self) -> float | None:
        """``time.monotonic()`` at the folder's 0.0 s (audio.wav sample 0); None until
        the sources have started (a microphone anchors its clock on its first block)."""
        if not self.timeline.placed(self._t0_sample):
            return None
        return self.timeline.to_monotonic(self.origin_s)

    @property
    def marker_outlet(self):  # the LSL MarkerOutlet pushed on while recording with lsl
        return self.bridge.outlet if self.bridge is not None else None

    @property
    def marker_inlet(self):  # the LSL MarkerInlet recording other apps' markers
        return self.bridge.inlet if self.bridge is not None else None

    def stop(self, timeout: float = 30.0) -> dict:
        """End the recording as a time limit reached now would: the predictions for all
        the audio captured until now are awaited (``CATCH_UP_S`` at most, while the engine
        runs: a loaded machine may run behind), written with the audio and video up to
        the same time; every file closed. Returns the final session.json."""
        if self.running and self.engine.running:
            captured_s = (self.engine.samples_captured - self._t0_sample) / self.rate
            limit = self.duration_s
            # One float assignment: the recorder thread sees the old or the new limit.
            self.duration_s = captured_s if limit is None else min(limit, captured_s)
            deadline = time.monotonic() + CATCH_UP_S
            while self.running and self.engine.running and time.monotonic() < deadline:
                self._thread.join(0.05)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RecorderError(f"the recorder did not finish writing within {timeout:.0f} s")
        return self.session_info()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the recording has ended by itself (engine finished, ``duration_s``
        reached, or a fault) or was stopped."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def recorded_s(self) -> float:
        return self.predictions_written * self.step_s

    def now(self) -> float:
        """Now on the engine's clock (the clock of ``Prediction.t``)."""
        return self.timeline.now()

    # -- opening and abandoning -----------------------------------------------------------
    def _open_folder(self) -> None:
        try:
            self.folder.claim()
            self.files = RecordingFiles(self.out_dir, self.rate, media=self.store_media,
                                        video=self.engine.video_source is not None,
                                        fps=self.video_fps)
            self._events = EventLog(self.files, lambda: self.origin_monotonic)
        except FolderInUse as error:
            raise RecorderError(str(error)) from None
        except OSError as error:
            self.folder.remove_files()
            self.folder.release()
            raise RecorderError(f"cannot record into {self.out_dir}: "
                                f"{describe_error(error)}") from None

    def _open_lsl(self) -> None:
        from app.recording.lsl_bridge import MarkerBridge

        self.bridge = MarkerBridge(self.lsl_markers_name, self._lsl_marker,
                                    self._shared_outlet)
        self.lsl_markers_name = self.bridge.name
        try:
            self.bridge.open()
            self._events.bridge = self.bridge
        except (RuntimeError, OSError) as error:
            self.files.close_quietly()
            self.folder.release()
            raise RecorderError(f"cannot open the LSL streams: {error}") from None

    def _abandon(self) -> None:
        """Undo a start that failed half way: nothing is left behind but the folder."""
        if self.feeds is not None:
            self.feeds.close()
        if self.bridge is not None:
            self.bridge.close()
        self.files.close_quietly()
        self.folder.remove_files()
        self.folder.release()

    def _lsl_marker(self, monotonic_s: float, text: str, stream: str) -> None:
        self.add_event_at_monotonic(monotonic_s, text, f"lsl:{stream}")

    # -- the recorder thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._record()
            self.feeds.close()  # sources no longer wait for us; take what is left
            self._write_batch(self.feeds.predictions.drain())
            if self.bridge is not None:
                self.bridge.stop_inlet()
                self._user_entries()  # markers that came while the inlet stopped
                self.bridge.close()
            self._finish()
        except Exception as error:  # the disk, or a bug: still close every file, say why
            log.debug("recorder failed", exc_info=True)
            self._fail(error)
        finally:
            self.folder.release()

    def _record(self) -> None:
        """Write until stopped, the time limit, a lost device or the engine's end."""
        last_flush = last_json = last_sync = time.monotonic()
        predictions = self.feeds.predictions
        while True:
            first = predictions.get(timeout=0.05)
            self._write_batch(([first] if first is not None else []) + predictions.drain())
            self._check_devices()
            if not self._anchored and self.origin_monotonic is not None:
                self._write_session_json()  # time 0's anchor, at once: a crash keeps it
                self._anchored = True
            now = time.monotonic()
            if now - last_flush >= layout.FLUSH_S:
                sync = now - last_sync >= SYNC_EVERY_S
                self.files.flush(sync=sync)
                last_flush, last_sync = now, now if sync else last_sync
            if now - last_json >= JSON_EVERY_S:
                self._write_session_json()
                last_json = now
            if self.stop_reason is not None or self._stop.is_set() or self._reached_limit:
                return  # a device was lost, stop() or the time limit
            if predictions.closed and not self.feeds.pending():
                return  # the engine finished (end of the files) or was stopped

    def _write_batch(self, predictions: list[Prediction]) -> None:
        t0, limit = self.origin_s, self.duration_s
        for p in predictions:
            time_s = p.t - t0
            if time_s < -1e-9:
                continue
            if limit is not None and time_s + self.step_s > limit + _EPS:
                self._reached_limit = True
                continue
            self.files.write_prediction(time_s, p)
            self.predictions_written += 1
            self._tracker.add(time_s, p.arousal, p.valence, p.face_found, p.voice_active)
        if self.store_media:
            chunks, dropped = self.feeds.take_audio()
            end = (None if self.duration_s is None
                   else self._t0_sample + round(self.duration_s * self.rate))
            self.files.write_audio(chunks, end, dropped)
            self._pending_frames += self.feeds.take_frames()
            self._write_frames()
        for event in self.feeds.events.drain():
            self._engine_event(event)
        self._user_entries()
        self._check_baseline()

    def _write_frames(self) -> None:
        if not self.timeline.placed(self._t0_sample):
            self._pending_frames = self._pending_frames[-FRAMES_QUEUE:]
            return  # the microphone has not started: the frames' times are not known yet
        timeline, t0 = self.timeline, self.origin_s
        timed = [(timeline.from_capture(f.time_s) - t0, f) for f in self._pending_frames]
        self._pending_frames = []
        self.files.write_frames(timed, self.duration_s)

    def _engine_event(self, event: EngineEvent) -> None:
        if event.source in _ENGINE_SOURCES:
            return
        onset = max(0.0, self.timeline.from_capture(event.t) - self.origin_s)
        text = f"{event.source}: {event.message}"
        self.faults.append(f"{onset:.2f} s {text}")
        self._devices.fault(event.source, onset, event.message)
        self._events.log(onset, 0.0, "fault", text)

    def _check_devices(self) -> None:
        """Stop when a live device is gone (``DeviceWatcher``)."""
        if not self.stop_on_device_loss or self.stop_reason is not None:
            return
        end_s = self._tracker.end_s
        lost = self._devices.lost(end_s)
        if lost is not None:
            self.stop_reason = f"{lost}; recording stopped at {end_s:.1f} s"
            self._say(self.stop_reason)

    def _user_entries(self) -> None:
        while self._user:
            self._user_entry(self._user.popleft())
        self._events.place_waiting()

    def _user_entry(self, entry: tuple) -> None:
        kind, t0 = entry[0], self.origin_s
        if kind == "event":
            _, onset, duration, label, value = entry
            self._events.log(onset - t0, duration, label, value)
        elif kind == "mono_event":  # an LSL marker: not pushed back to LSL
            self._events.at_monotonic(*entry[1:])
        elif kind == "baseline":
            _, onset, seconds = entry
            self._tracker.request(onset - t0, seconds)
        else:
            _, t, arousal, valence = entry
            self.files.write_rating(t - t0, arousal, valence)

    def _check_baseline(self, final: bool = False) -> None:
        baseline = self._tracker.check(final)
        if baseline is None:
            return
        start = baseline["start_s"]
        if baseline["arousal"] is None:
            message = (f"no prediction fell inside the baseline {start:.1f}-"
                       f"{start + baseline['requested_s']:.1f} s; no baseline stored")
            log.warning("%s", message)
            self.messages.put(message)
            return
        self.baseline = baseline
        self._events.log(start, baseline["duration_s"], "baseline", describe(baseline))
        if not final:
            self.files.flush()
            self._write_session_json()  # stored now: a crash later keeps it

    # -- the end -------------------------------------------------------------------------
    def _finish(self) -> None:
        self.folder.free_reserve()
        failure = self.engine.failure
        if failure and self.stop_reason is None and not self._reached_limit:
            self.stop_reason = f"recording stopped at {self.recorded_s:.1f} s: {failure}"
            self._say(self.stop_reason)
        self.status = layout.STOPPED if self.stop_reason is not None else layout.COMPLETE
        self._events.place_waiting(at_zero=True)  # the sources never began
        self._check_baseline(final=True)
        self.files.close()
        sort_events(self.out_dir / layout.EVENTS)
        self.ratings_merged = tidy_ratings(self.out_dir / layout.RATINGS)
        self._write_session_json()
        self.messages.close()

    def _fail(self, error: BaseException) -> None:
        self.feeds.close()
        if self.bridge is not None:
            try:
                self.bridge.close()
            except Exception:  # noqa: BLE001 - the disk error is what must be reported
                log.exception("closing LSL failed")
        message = (f"recording stopped at {self.recorded_s:.1f} s: {describe_error(error)}; "
                   f"everything until then is saved in {self.out_dir}")
        self.error = message
        self.stop_reason = message
        self.status = layout.STOPPED
        self._say(message)
        self.files.close_quietly()
        self.folder.free_reserve()  # room for the final session.json, on a full disk too
        try:
            self._write_session_json()
        except OSError:
            pass  # the disk is full: session.json keeps its last complete version
        self.messages.close()

    def _say(self, message: str) -> None:
        log.error("%s", message)
        self.messages.put(message)
        if self.error is None:
            self.error = message

    # -- session.json --------------------------------------------------------------------
    def session_info(self) -> dict:
        """What session.json holds now (``app.recording.info.session_json``)."""
        return session_json(self)

    def _write_session_json(self) -> None:
        layout.write_json_atomic(self.out_dir / layout.SESSION_JSON, self.session_info())
