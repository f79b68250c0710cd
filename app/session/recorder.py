"""SessionRecorder: an engine's predictions, media, self-ratings and events -> a session
folder (``app.session.layout``), on its own thread.

    recorder = SessionRecorder(out_dir, {"participant_id": "P01", "session_id": "1"}, engine)
    recorder.start()                      # before or after engine.start()
    recorder.add_event(t, "stimulus", "film 3")   # t on the engine's clock (Prediction.t)
    recorder.add_rating(t, arousal, valence)      # -1..1
    recorder.stop()                       # -> the final session.json as a dict

Times handed in are on the engine's clock, the ``t`` of ``Prediction`` (what the GUI
plots); the folder's clock starts at the first 40 ms window the recorder sees, so a
recording started on a running engine begins at 0.0 s. ``add_*`` only append to a
queue; the engine only appends to the recorder's queues: nothing waits on the disk
except the recorder's thread, which writes everything and hands it to the OS every
``FLUSH_S`` (a killed process loses at most that, plus the video fragment in progress).

A full disk, a folder that stops being writable, or (``stop_on_device_loss``) a camera
or microphone lost mid-session stop the recording with a message in ``error`` and on
``messages``; everything written until then stays readable.
"""
from __future__ import annotations

import errno
import logging
import math
import platform
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np

from app.analyze import sha256_of, software_version
from app.pipeline import Engine, EngineEvent, Prediction, Subscription
from app.session import layout
from app.session.tables import RowWriter, rewrite_table
from app.session.taps import EngineTap
from app.session.video import VideoWriter
from app.session.wav import WavWriter

log = logging.getLogger(__name__)

JSON_EVERY_S = 5.0  # session.json (counters) is rewritten this often while recording
SYNC_EVERY_S = 10.0  # fsync: survive a power cut, not only a crash, losing <= this
_ENGINE_SOURCES = ("model", "engine")
_LOSS_WORDS = ("stopped", "failed", "continuing without", "continuing with silence",
               "unplugged")


class RecorderError(RuntimeError):
    """The recording cannot start (folder not writable, already used, ...)."""


class SessionRecorder:
    def __init__(self, out_dir: str | Path, metadata: dict, engine: Engine, *,
                 store_media: bool = True, duration_s: float | None = None,
                 stop_on_device_loss: bool = True, video_fps: float | None = None) -> None:
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

    # -- the interface the GUI and `affect-monitor record` use -------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RecorderError("a SessionRecorder records once; make a new one")
        self._open_folder()
        self._stats0 = self.engine.stats()
        self._model_sha = sha256_of(self.engine.session.path)
        self._started_wall = time.monotonic()
        self._started_utc = datetime.now(timezone.utc)
        self._tap.attach()
        if self.engine.running:  # begin at the next whole window of the running engine
            window = self.engine.window
            self._t0_sample = -(-self.engine.ring.written // window) * window
        self._next_sample = self._t0_sample
        self._predictions = self.engine.subscribe(maxsize=1500)  # a minute of slack
        self._write_session_json()
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

    def stop(self, timeout: float = 30.0) -> dict:
        """Write what is queued, close every file, return the final session.json."""
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
            if (out / layout.SESSION_JSON).exists():
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
        except OSError as error:
            self._close_quietly()
            raise RecorderError(f"cannot record into {out}: {_describe(error)}") from None

    # -- the recorder thread -------------------------------------------------------------
    def _run(self) -> None:
        last_flush = last_json = last_sync = time.monotonic()
        try:
            while True:
                first = self._predictions.get(timeout=0.05)
                batch = ([first] if first is not None else []) + self._predictions.drain()
                self._write_batch(batch)
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
            self._finish()
        except (OSError, av.FFmpegError) as error:
            self._fail(error)
        except Exception as error:  # a bug: still close every file
            log.exception("recorder failed")
            self._fail(error)

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
        if self.store_media:
            self._write_audio(self._tap.audio())
            self._pending_frames += self._tap.frames()
            self._write_frames()
        for event in self._tap.events():
            self._engine_event(event)
        while self._user:
            self._user_entry(self._user.popleft())

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
        if engine.audio.live and engine.ring.written <= self._t0_sample:
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
        self._tables[layout.EVENTS].write((f"{onset:.3f}", "0", "fault", text))
        lost = event.source != "pipeline" and any(w in event.message for w in _LOSS_WORDS)
        if lost and self.stop_on_device_loss and self._stop_reason is None:
            self._stop_reason = f"{text}; recording stopped at {onset:.1f} s"
            self._say(self._stop_reason)

    def _user_entry(self, entry: tuple) -> None:
        t0 = self._t0_sample / self.rate
        if entry[0] == "event":
            _, onset, duration, label, value = entry
            self._tables[layout.EVENTS].write((f"{max(0.0, onset - t0):.3f}", f"{duration:g}",
                                               label, value))
        else:
            _, t, arousal, valence = entry
            self._tables[layout.RATINGS].write((f"{t - t0:.3f}", f"{arousal:.4f}",
                                                f"{valence:.4f}"))

    def _flush(self, sync: bool = False) -> None:
        for table in self._tables.values():
            table.flush(sync)
        if self._wav is not None:
            self._wav.flush(sync)

    # -- the end -------------------------------------------------------------------------
    def _finish(self) -> None:
        if self._stop_reason is not None:
            self._status = layout.STOPPED
        else:
            self._status = layout.COMPLETE
        self._close()
        self._sort_events()
        self._write_session_json()
        self.messages.close()

    def _fail(self, error: BaseException) -> None:
        self._tap.detach()
        message = (f"recording stopped at {self.recorded_s:.1f} s: {_describe(error)}; "
                   f"everything until then is saved in {self.out_dir}")
        self.error = message
        self._stop_reason = message
        self._status = layout.STOPPED
        self._say(message)
        self._close_quietly()
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
