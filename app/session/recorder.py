"""SessionRecorder: an engine's predictions, media, self-ratings and events -> a session
folder (``app.session.layout``), on its own thread.

    recorder = SessionRecorder(out_dir, {"participant_id": "P01", "session_id": "1"}, engine)
    recorder.start()                      # before or after engine.start()
    recorder.add_event(t, "stimulus", "film 3")   # t on the engine's clock (Prediction.t)
    recorder.add_rating(t, arousal, valence)      # -1..1
    recorder.record_baseline(60.0)        # the next minute is the neutral baseline
    recorder.stop()                       # -> the final session.json as a dict

Times handed in are on the engine's clock, the ``t`` of ``Prediction`` (what the GUI
plots); the folder's clock starts at the first 40 ms window the recorder sees, so a
recording started on a running engine begins at 0.0 s. ``add_*`` only append to a
queue; the engine only appends to the recorder's queues: nothing waits on the disk
except the recorder's thread, which writes everything and hands it to the OS every
``FLUSH_S`` (a killed process loses at most that, plus the video fragment in progress).

A full disk, a folder that stops being writable, or (``stop_on_device_loss``) a camera
or microphone lost mid-session stop the recording with a message in ``error`` and on
``messages``; everything written until then stays readable. A device counts as lost on
the sources' own state, not on the wording of their messages: the engine replaced the
microphone by silence (``engine.audio`` is no longer the source it started with), or a
live source's thread ended (``Source.ended``) while the engine went on stepping (an
engine being stopped ends its sources too, but takes no step after that). The source's
last fault message says why.

One recording per folder: an exclusive OS lock (``layout.lock_folder``) is taken before
the folder is looked at and held until the last file is closed (the OS drops it if the
process dies). ``RESERVE_BYTES`` of the disk are kept while recording and given back at
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
session clock (see ``app.session.lsl`` for the conversion). ``lsl_marker_outlet``: an
open ``MarkerOutlet`` to push on instead of a new one (the GUI's, which streams markers
with or without a recording: LabRecorder then sees one Markers stream); left open at stop.
"""
from __future__ import annotations

import errno
import logging
import math
import os
import platform
import threading
import time
from array import array
from bisect import bisect_left
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np

from app.provenance import sha256_of, software_version
from app.pipeline import Engine, EngineEvent, Prediction, Subscription
from app.session import layout
from app.session.lsl import clean, marker_text
from app.session.tables import RowWriter, rewrite_table, tidy_ratings
from app.session.taps import EngineTap
from app.session.video import VideoWriter
from app.session.wav import WavWriter

log = logging.getLogger(__name__)

JSON_EVERY_S = 5.0  # session.json (counters) is rewritten this often while recording
CATCH_UP_S = 10.0  # how long stop() waits for the engine to predict what was captured
RESERVE_BYTES = 256 * 1024  # disk kept for the last session.json (about 5 kB) and closing
SYNC_EVERY_S = 10.0  # fsync: survive a power cut, not only a crash, losing <= this
_ENGINE_SOURCES = ("model", "engine")


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
        self.store_media = store_media
        self.duration_s = duration_s
        self.stop_on_device_loss = stop_on_device_loss
        self.video_fps = video_fps or getattr(engine.video, "fps", None) or 30.0
        self.messages: Subscription[str] = Subscription(100)
        self.error: str | None = None  # why the recording stopped early
        self.rate = engine.rate
        self.step_s = engine.window / engine.rate
        self._tap = EngineTap(engine, media=store_media)
        self._user: deque[tuple] = deque()  # ("event", ...) / ("rating", ...) from any thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._predictions: Subscription[Prediction] | None = None
        self._t0_sample = 0
        self._pending_frames: list = []
        self._faults: list[str] = []
        self._status = layout.RECORDING
        self._stop_reason: str | None = None
        self._video: VideoWriter | None = None
        self._wav: WavWriter | None = None
        self._tables: dict[str, RowWriter] = {}
        self._next_sample = 0  # next audio sample (ring index) that audio.wav expects
        self._audio_gap = 0  # samples filled with silence where none were tapped
        self._frames_before_start = self._frames_unordered = 0
        self._first_frame_s: float | None = None
        self._last_frame_s: float | None = None
        self._placeholder = False
        self.predictions_written = 0
        self._reached_limit = False
        self.baseline_s = baseline_s
        self.baseline: dict | None = None  # the last baseline recorded (session.json's)
        self._baseline_span: tuple[float, float] | None = None  # pending, folder seconds
        # Every written prediction, for baselines over any span (24 bytes a step).
        self._times, self._arousal, self._valence = array("d"), array("d"), array("d")
        self._face, self._voice = array("b"), array("b")
        self._last_end_s = 0.0  # end of the last window written (folder seconds)
        # Device loss from the sources' state (see the module docstring).
        self._audio0 = engine.audio
        self._video0 = engine.video
        self._last_fault: dict[str, tuple[float, str]] = {}  # source -> (onset, message)
        self._ended_at_step: dict[str, int] = {}  # live source seen ended -> engine steps
        self.lsl = lsl
        self.lsl_markers_name = lsl_markers_name
        self.marker_outlet = None  # app.session.lsl.MarkerOutlet while recording with lsl
        self._shared_outlet = lsl_marker_outlet  # the caller's: pushed on, never closed
        self._pushed_before = 0  # the shared outlet's pushes before this recording
        self.marker_inlet = None  # app.session.lsl.MarkerInlet
        self._unplaced: list[tuple] = []  # LSL markers waiting for the clock's origin
        self._ratings_merged = 0
        self._markers_pushed = 0
        self._lsl_streams: list[str] = []
        self._lock = None  # the folder's OS lock, held from start until every file is closed
        self._anchored = False  # session.json holds start.monotonic_s (time 0 is known)

    # -- the interface the GUI and `affect-monitor record` use -------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RecorderError("a SessionRecorder records once; make a new one")
        if self.lsl:
            from app.session.lsl import lsl_missing

            missing = lsl_missing()
            if missing:
                raise RecorderError(f"cannot record with LSL: {missing}")
        self._open_folder()
        if self.lsl:
            self._open_lsl()
        try:
            self._begin()
        except OSError as error:  # e.g. the disk is already full: session.json cannot be written
            self._tap.detach()
            self._close_lsl(drain=False)
            self._close_quietly()
            self._remove_files()
            self._release_lock()
            raise RecorderError(f"cannot record into {self.out_dir}: {_describe(error)}") from None

    def _begin(self) -> None:
        self._stats0 = self.engine.stats()
        self._model_sha = sha256_of(self.engine.session.path)
        self._started_wall = time.monotonic()
        self._started_utc = datetime.now(timezone.utc)
        self._tap.attach()
        if self.engine.running:  # begin at the next whole window of the running engine
            window = self.engine.window
            self._t0_sample = -(-self.engine.samples_captured // window) * window
        self._next_sample = self._t0_sample
        self._predictions = self.engine.subscribe(maxsize=1500)  # a minute of slack
        self._audio0, self._video0 = self.engine.audio, self.engine.video
        if self.baseline_s is not None:
            self._user.append(("baseline", self._t0_sample / self.rate, self.baseline_s))
        self._write_session_json()
        self._hold_reserve()
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
    def origin_monotonic(self) -> float | None:
        """``time.monotonic()`` at the folder's 0.0 s (audio.wav sample 0); None until
        the sources have started (a microphone anchors its clock on its first block)."""
        engine = self.engine
        if engine.clock is None or (engine.audio.live and engine.samples_captured <= self._t0_sample):
            return None
        return engine.clock.start + engine.audio.offset_s + self._t0_sample / self.rate

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
        clock = self.engine.clock
        return 0.0 if clock is None else max(0.0, clock.now() - self.engine.audio.offset_s)

    # -- opening -------------------------------------------------------------------------
    def _open_folder(self) -> None:
        out = self.out_dir
        try:
            out.mkdir(parents=True, exist_ok=True)
            # Lock first, then look: two recorders started at once cannot both see an
            # empty folder. The lock is released when the last file is closed.
            self._lock = layout.lock_folder(out)
            if any((out / name).exists() for name in layout.FILES):
                self._release_lock()
                raise RecorderError(f"{out} already holds a recorded session; choose a new "
                                    "folder")
            tables = {
                layout.PREDICTIONS: RowWriter(out / layout.PREDICTIONS, layout.PREDICTION_COLUMNS),
                layout.RATINGS: RowWriter(out / layout.RATINGS, layout.RATING_COLUMNS),
                layout.EVENTS: RowWriter(out / layout.EVENTS, layout.EVENT_COLUMNS, "\t"),
            }
            self._tables = tables
            if self.store_media:
                self._wav = WavWriter(out / layout.AUDIO, self.rate)
                if self.engine.video is not None:
                    tables[layout.FRAMES] = RowWriter(out / layout.FRAMES, layout.FRAME_COLUMNS)
        except layout.FolderBusy as error:
            raise RecorderError(str(error)) from None
        except OSError as error:
            self._close_quietly()
            self._remove_files()
            self._release_lock()
            raise RecorderError(f"cannot record into {out}: {_describe(error)}") from None

    def _hold_reserve(self) -> None:
        """Keep ``RESERVE_BYTES`` of the disk (a file of zeros): when the disk fills up
        mid-recording it is given back, so the final session.json (status, stop reason)
        can still be written. No room for it at start: the disk is full (OSError)."""
        with open(self.out_dir / layout.RESERVE, "wb") as handle:
            handle.write(bytes(RESERVE_BYTES))
            handle.flush()
            os.fsync(handle.fileno())

    def _free_reserve(self) -> None:
        try:
            (self.out_dir / layout.RESERVE).unlink(missing_ok=True)
        except OSError:
            pass

    def _remove_files(self) -> None:
        """Undo a start that failed: the (empty) files it made, so the folder can be used
        once the problem is fixed (the folder was checked to hold none of them)."""
        if self._lock is None:
            return  # not ours: another recorder's, or never checked
        for name in (*layout.FILES, layout.RESERVE):
            try:
                (self.out_dir / name).unlink(missing_ok=True)
            except OSError:
                pass

    def _open_lsl(self) -> None:
        from app.session.lsl import LslUnavailable, MarkerInlet, MarkerOutlet

        try:
            if self._shared_outlet is not None:
                self.marker_outlet = self._shared_outlet
                self.lsl_markers_name = self._shared_outlet.name
                self._pushed_before = self._shared_outlet.pushed
            else:
                self.marker_outlet = MarkerOutlet(self.lsl_markers_name,
                                                  f"affect-monitor-markers-{id(self):x}")
            self.marker_inlet = MarkerInlet(self._lsl_marker,
                                            exclude=(self.marker_outlet.source_id,))
            self.marker_inlet.start()
        except (LslUnavailable, RuntimeError, OSError) as error:
            self._close_lsl(drain=False)
            self._close_quietly()
            self._release_lock()
            raise RecorderError(f"cannot open the LSL streams: {error}") from None

    def _lsl_marker(self, monotonic_s: float, text: str, stream: str) -> None:
        self.add_event_at_monotonic(monotonic_s, text, f"lsl:{stream}")

    def _close_lsl(self, drain: bool = True) -> None:
        inlet, outlet = self.marker_inlet, self.marker_outlet
        if inlet is not None:
            inlet.stop()
            self._lsl_streams = inlet.streams_seen
            if drain:
                self._user_entries()  # markers that came while the inlet stopped
        if outlet is not None:
            self._markers_pushed = outlet.pushed - self._pushed_before
            if outlet is not self._shared_outlet:
                outlet.close()
        self.marker_inlet = self.marker_outlet = None

    # -- the recorder thread -------------------------------------------------------------
    def _run(self) -> None:
        last_flush = last_json = last_sync = time.monotonic()
        try:
            while True:
                first = self._predictions.get(timeout=0.05)
                batch = ([first] if first is not None else []) + self._predictions.drain()
                self._write_batch(batch)
                self._check_devices()
                if not self._anchored and self.origin_monotonic is not None:
                    self._write_session_json()  # time 0's anchor, at once: a crash keeps it
                    self._anchored = True
                now = time.monotonic()
                if now - last_flush >= layout.FLUSH_S:
                    self._flush(sync=now - last_sync >= SYNC_EVERY_S)
                    last_flush = now
                    last_sync = now if now - last_sync >= SYNC_EVERY_S else last_sync
                if now - last_json >= JSON_EVERY_S:
                    self._write_session_json()
                    last_json = now
                if self._stop_reason is not None:
                    break  # a device was lost
                if self._stop.is_set() or self._reached_limit:
                    break
                if self._predictions.closed and not self._tap.pending():
                    break  # the engine finished (end of the files) or was stopped
            self._tap.detach()  # sources no longer wait for us; take what is left
            self._write_batch(self._predictions.drain())
            self._close_lsl()
            self._finish()
        except (OSError, av.FFmpegError) as error:
            self._fail(error)
        except Exception as error:  # a bug: still close every file, say it in one line
            log.debug("recorder failed", exc_info=True)
            self._fail(error)
        finally:
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _write_batch(self, predictions: list[Prediction]) -> None:
        t0 = self._t0_sample / self.rate
        limit = self.duration_s
        writer = self._tables[layout.PREDICTIONS]
        for p in predictions:
            time_s = p.t - t0
            if time_s < -1e-9:
                continue
            if limit is not None and time_s + self.step_s > limit + 1e-6:
                self._reached_limit = True
                continue
            writer.write(layout.prediction_row(time_s, p.arousal, p.valence, p.face_found,
                                               p.face_score, p.voice_active, p.latency_ms))
            self.predictions_written += 1
            self._times.append(time_s)
            self._arousal.append(p.arousal)
            self._valence.append(p.valence)
            self._face.append(bool(p.face_found))
            self._voice.append(bool(p.voice_active))
            self._last_end_s = max(self._last_end_s, time_s + self.step_s)
        if self.store_media:
            self._write_audio(self._tap.audio())
            self._pending_frames += self._tap.frames()
            self._write_frames()
        for event in self._tap.events():
            self._engine_event(event)
        self._user_entries()
        self._check_baseline()

    def _user_entries(self) -> None:
        while self._user:
            self._user_entry(self._user.popleft())
        origin = self.origin_monotonic
        if self._unplaced and origin is not None:
            waiting, self._unplaced = self._unplaced, []
            for monotonic_s, duration, label, value in waiting:
                self._log_event(monotonic_s - origin, duration, label, value, push=False)

    def _write_audio(self, chunks: list[tuple[int, np.ndarray]]) -> None:
        end = (None if self.duration_s is None
               else self._t0_sample + round(self.duration_s * self.rate))
        for index, samples in chunks:
            if index > self._next_sample:  # samples we never saw: keep the clock, say so
                gap = index - self._next_sample
                if end is not None:
                    gap = min(gap, max(0, end - self._next_sample))
                self._wav.write(np.zeros(gap, np.float32))
                self._audio_gap += gap
                self._next_sample += gap
            skip = self._next_sample - index
            if skip >= samples.size:
                continue
            samples = samples[max(0, skip):]
            if end is not None:
                samples = samples[:max(0, end - self._next_sample)]
            self._wav.write(samples)
            self._next_sample += samples.size

    def _write_frames(self) -> None:
        engine = self.engine
        if engine.audio.live and engine.samples_captured <= self._t0_sample:
            self._pending_frames = self._pending_frames[-self._tap.max_frames:]
            return  # the microphone has not started: the frames' times are not known yet
        origin = engine.audio.offset_s + self._t0_sample / self.rate
        for frame in self._pending_frames:
            time_s = frame.time_s - origin
            if time_s < 0:
                self._frames_before_start += 1
                continue
            if self.duration_s is not None and time_s >= self.duration_s:
                continue
            if self._video is None:
                self._open_video(frame.rgb, time_s)
            if not self._video.write(frame.rgb, time_s):
                self._frames_unordered += 1
                continue
            self._tables[layout.FRAMES].write((self._video.frames - 1, f"{time_s:.6f}",
                                               frame.index))
            self._first_frame_s = self._first_frame_s if self._first_frame_s is not None else time_s
            self._last_frame_s = time_s
        self._pending_frames = []

    def _open_video(self, rgb: np.ndarray, first_s: float) -> None:
        height, width = rgb.shape[:2]
        self._video = VideoWriter(self.out_dir / layout.VIDEO, width, height, self.video_fps)
        if first_s > 1e-3:  # video.mp4 starts at 0.0 s like audio.wav (see layout)
            self._video.write(np.zeros_like(rgb), 0.0)
            self._placeholder = True

    def _engine_event(self, event: EngineEvent) -> None:
        if event.source in _ENGINE_SOURCES:
            return
        origin = self.engine.audio.offset_s + self._t0_sample / self.rate
        onset = max(0.0, event.t - origin)
        text = f"{event.source}: {event.message}"
        self._faults.append(f"{onset:.2f} s {text}")
        self._last_fault[event.source] = (onset, event.message)
        self._log_event(onset, 0.0, "fault", text)

    def _check_devices(self) -> None:
        """Stop when a live device is gone (see the module docstring): structured state,
        not the wording of the fault messages."""
        if not self.stop_on_device_loss or self._stop_reason is not None:
            return
        engine, lost = self.engine, None
        audio, video = self._audio0, self._video0
        if audio is not None and audio.live and engine.audio is not audio:
            lost = audio  # the engine put silence in the microphone's place
        elif video is not None and video.live and video.ended:
            steps = engine.stats().steps
            seen = self._ended_at_step.setdefault(video.name, steps)
            if steps > seen:  # ... and the engine stepped on after the camera ended
                lost = video
        if lost is None:
            return
        onset, why = self._last_fault.get(lost.name, (self._last_end_s, "no longer delivers"))
        self._stop_reason = (f"{lost.name} was lost at {onset:.1f} s ({why}); recording "
                             f"stopped at {self._last_end_s:.1f} s")
        self._say(self._stop_reason)

    def _user_entry(self, entry: tuple) -> None:
        t0 = self._t0_sample / self.rate
        kind = entry[0]
        if kind == "event":
            _, onset, duration, label, value = entry
            self._log_event(max(0.0, onset - t0), duration, label, value)
        elif kind == "mono_event":  # an LSL marker: not pushed back to LSL
            _, monotonic_s, duration, label, value = entry
            origin = self.origin_monotonic
            if origin is None:
                self._unplaced.append((monotonic_s, duration, label, value))
            else:
                self._log_event(monotonic_s - origin, duration, label, value, push=False)
        elif kind == "baseline":
            _, onset, seconds = entry
            start = max(0.0, onset - t0)
            self._baseline_span = (start, start + seconds)
        else:
            _, t, arousal, valence = entry
            self._tables[layout.RATINGS].write((f"{t - t0:.3f}", f"{arousal:.4f}",
                                                f"{valence:.4f}"))

    def _log_event(self, onset: float, duration: float, trial_type: str, value: str = "",
                   push: bool = True) -> None:
        """One events.tsv row (onset in folder seconds, clamped at 0), also pushed on the
        LSL Markers outlet stamped at its onset."""
        onset = max(0.0, onset)
        trial_type, value = clean(trial_type), clean(value)
        self._tables[layout.EVENTS].write((f"{onset:.3f}", f"{duration:g}", trial_type, value))
        outlet = self.marker_outlet
        if push and outlet is not None:
            origin = self.origin_monotonic
            try:
                outlet.push(marker_text(trial_type, value),
                            None if origin is None else origin + onset)
            except Exception as error:  # noqa: BLE001 - LSL must never stop a recording
                log.warning("pushing an LSL marker failed: %s", error)

    # -- baseline --------------------------------------------------------------------------
    def _check_baseline(self, final: bool = False) -> None:
        span = self._baseline_span
        if span is None or not (final or self._last_end_s >= span[1] - 1e-6):
            return
        self._baseline_span = None
        start, end = span
        times = self._times
        first = bisect_left(times, start - 1e-6)
        last = bisect_left(times, end - self.step_s + 1e-6)  # windows wholly inside
        steps = max(0, last - first)
        baseline = {"start_s": round(start, 3), "requested_s": round(end - start, 3),
                    "duration_s": round(steps * self.step_s, 3), "steps": steps,
                    "complete": self._last_end_s >= end - 1e-6,
                    "statistics": "mean and population std (ddof 0) of the model's "
                                  "40 ms predictions wholly inside the span"}
        if steps == 0:
            baseline.update(complete=False, arousal=None, valence=None)
            self._say_note(f"no prediction fell inside the baseline {start:.1f}-{end:.1f} s; "
                           "no baseline stored")
            return
        arousal = np.frombuffer(self._arousal, np.float64)[first:last]
        valence = np.frombuffer(self._valence, np.float64)[first:last]
        baseline.update(
            arousal={"mean": round(float(arousal.mean()), 6), "std": round(float(arousal.std()), 6)},
            valence={"mean": round(float(valence.mean()), 6), "std": round(float(valence.std()), 6)},
            face_found_fraction=round(float(np.frombuffer(self._face, np.int8)[first:last].mean()), 4),
            voice_active_fraction=round(float(np.frombuffer(self._voice, np.int8)[first:last]
                                              .mean()), 4))
        self.baseline = baseline
        self._log_event(start, baseline["duration_s"], "baseline",
                        f"arousal mean {baseline['arousal']['mean']:+.4f} sd "
                        f"{baseline['arousal']['std']:.4f}; valence mean "
                        f"{baseline['valence']['mean']:+.4f} sd {baseline['valence']['std']:.4f}")
        if not final:
            self._flush()
            self._write_session_json()  # stored now: a crash later keeps it

    def _say_note(self, message: str) -> None:
        log.warning("%s", message)
        self.messages.put(message)

    def _flush(self, sync: bool = False) -> None:
        for table in self._tables.values():
            table.flush(sync)
        if self._wav is not None:
            self._wav.flush(sync)

    # -- the end -------------------------------------------------------------------------
    def _finish(self) -> None:
        self._free_reserve()
        failure = getattr(self.engine, "failure", None)
        if failure and self._stop_reason is None and not self._reached_limit:
            self._stop_reason = f"recording stopped at {self.recorded_s:.1f} s: {failure}"
            self._say(self._stop_reason)
        if self._stop_reason is not None:
            self._status = layout.STOPPED
        else:
            self._status = layout.COMPLETE
        for monotonic_s, duration, label, value in self._unplaced:  # the sources never began
            self._log_event(0.0, duration, label, value, push=False)
        self._unplaced = []
        self._check_baseline(final=True)
        self._close()
        self._sort_events()
        self._ratings_merged = tidy_ratings(self.out_dir / layout.RATINGS)
        self._write_session_json()
        self.messages.close()

    def _fail(self, error: BaseException) -> None:
        self._tap.detach()
        try:
            self._close_lsl(drain=False)
        except Exception:  # noqa: BLE001 - the disk error is what must be reported
            log.exception("closing LSL failed")
        message = (f"recording stopped at {self.recorded_s:.1f} s: {_describe(error)}; "
                   f"everything until then is saved in {self.out_dir}")
        self.error = message
        self._stop_reason = message
        self._status = layout.STOPPED
        self._say(message)
        self._close_quietly()
        self._free_reserve()  # room for the final session.json, on a full disk too
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

    def _close(self) -> None:
        if self._video is not None:
            self._video.close()
        if self._wav is not None:
            self._wav.close()
        for table in self._tables.values():
            table.close()
        if self._predictions is not None:
            self.engine.unsubscribe(self._predictions)

    def _close_quietly(self) -> None:
        for closer in ([self._video, self._wav, *self._tables.values()]):
            if closer is None:
                continue
            try:
                closer.close()
            except (OSError, av.FFmpegError, ValueError):
                pass
        if self._predictions is not None:
            self.engine.unsubscribe(self._predictions)

    def _sort_events(self) -> None:
        path = self.out_dir / layout.EVENTS
        rows = layout.read_table(path, "\t")
        ordered = sorted(rows, key=lambda r: float(r["onset"]))
        if ordered != rows:
            rewrite_table(path, layout.EVENT_COLUMNS,
                          ([r[c] for c in layout.EVENT_COLUMNS] for r in ordered), "\t")

    # -- session.json --------------------------------------------------------------------
    def session_info(self) -> dict:
        engine, md = self.engine, self.metadata
        stats, base = engine.stats(), self._stats0
        spec = engine.session.spec
        wall_s = time.monotonic() - self._started_wall
        origin = None
        if engine.clock is not None:
            origin = engine.clock.start + engine.audio.offset_s + self._t0_sample / self.rate
        start_utc = self._started_utc if origin is None else (
            datetime.now(timezone.utc) - timedelta(seconds=time.monotonic() - origin))
        frames = self._video.frames if self._video is not None else 0
        audio_s = self._wav.frames / self.rate if self._wav is not None else None
        span = (None if self._first_frame_s is None or self._last_frame_s is None
                else self._last_frame_s - self._first_frame_s)
        real_frames = frames - self._placeholder
        import onnxruntime

        return {
            "format": layout.FORMAT_NAME, "format_version": layout.FORMAT_VERSION,
            "status": self._status, "stop_reason": self._stop_reason,
            "participant_id": md.get("participant_id", md.get("participant")) or None,
            "session_id": md.get("session_id", md.get("session")) or None,
            "condition": md.get("condition") or None,
            "notes": md.get("notes") or "",
            "metadata": md,
            "start": {"utc": start_utc.isoformat(timespec="milliseconds"),
                      "monotonic_s": origin,
                      "engine_time_s": self._t0_sample / self.rate,
                      "clock": "time 0.0 = audio.wav sample 0; monotonic_s is "
                               "time.monotonic() at that sample in the recording process"},
            "duration_s": round(self.recorded_s, 3),
            "wall_s": round(wall_s, 3),
            "devices": {"audio": engine.audio.name, "audio_live": engine.audio.live,
                        "video": engine.video.name if engine.video is not None else None,
                        "video_live": engine.video.live if engine.video is not None else None},
            "rates": {
                "requested": {"audio_hz": self.rate, "predictions_hz": 1 / self.step_s,
                              "video_fps": self.video_fps if engine.video else None},
                "measured": {
                    "predictions_per_wall_s": _ratio(self.predictions_written, wall_s),
                    "audio_samples_per_wall_s": (_ratio(self._wav.frames, wall_s)
                                                 if self._wav is not None else None),
                    "video_fps": (_ratio(real_frames - 1, span) if span else None)}},
            "model": {"name": spec.name, "file": engine.session.path.name,
                      "sha256": self._model_sha, "provider": engine.session.provider,
                      "voice_detector": stats.voice_detector,
                      "spec": _spec_dict(spec)},
            "software": {"affect-monitor": software_version(),
                         "python": platform.python_version(),
                         "onnxruntime": onnxruntime.__version__, "av": av.__version__,
                         "platform": platform.platform()},
            "media": {"stored": self.store_media,
                      "audio": None if self._wav is None else {
                          "file": layout.AUDIO, "samples": self._wav.frames,
                          "seconds": audio_s, "format": "PCM 16-bit mono"},
                      "video": None if self._video is None else {
                          "file": layout.VIDEO, "codec": "h264", "frames": frames,
                          "width": self._video.width, "height": self._video.height,
                          "placeholder_frame_at_0": self._placeholder}},
            "baseline": self.baseline,
            "lsl": None if not self.lsl else {
                "markers_outlet": self.lsl_markers_name,
                "markers_pushed": (self.marker_outlet.pushed - self._pushed_before
                                   if self.marker_outlet else self._markers_pushed),
                "marker_streams_recorded": (self.marker_inlet.streams_seen if self.marker_inlet
                                            else self._lsl_streams),
                "onset_conversion": "onset = LSL timestamp + inlet time_correction + "
                                    "(time.monotonic - lsl local_clock) - start.monotonic_s"},
            "counts": {"predictions": self.predictions_written,
                       "ratings": self._tables[layout.RATINGS].rows if self._tables else 0,
                       "events": self._tables[layout.EVENTS].rows if self._tables else 0},
            "quality": {
                "dropped_windows": stats.dropped_windows - base.dropped_windows,
                "audio_overflows": stats.device_overflows - base.device_overflows,
                "frames_received": stats.frames_received - base.frames_received,
                "no_face_steps": stats.no_face_steps - base.no_face_steps,
                "predictions_dropped": self._predictions.dropped if self._predictions else 0,
                "frames_dropped": self._tap.frames_lost,
                "frames_before_start": self._frames_before_start,
                "frames_out_of_order": self._frames_unordered,
                "ratings_merged_same_time": self._ratings_merged,
                "audio_samples_dropped": self._tap.audio_lost,
                "audio_samples_filled_with_silence": self._audio_gap,
                "faults": list(self._faults)},
        }

    def _write_session_json(self) -> None:
        layout.write_json_atomic(self.out_dir / layout.SESSION_JSON, self.session_info())


def _ratio(a: float, b: float | None) -> float | None:
    return round(a / b, 3) if b and b > 0 and math.isfinite(b) else None


def _spec_dict(spec) -> dict:
    import json

    return json.loads(spec.to_json())


def _describe(error: BaseException) -> str:
    number = getattr(error, "errno", None)
    if number == errno.ENOSPC:
        return "the disk is full"
    if number == errno.EFBIG:
        return "a file reached the size limit allowed for this process"
    if number in (errno.ENODEV, errno.EIO):
        return f"the storage device is gone ({error.strerror})"
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the folder is not writable ({error.strerror})"
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    return str(error) or type(error).__name__
