"""The live session without the window: which model and sources, the running engine,
the recording, the LSL stream, the neutral baseline, self-rating and markers.

``LiveControl`` holds that state and changes it only through its commands (start/stop,
record, baseline, stream on LSL, mark, rate, choose a model or sources); whoever shows
it (the window, a test) is told through a ``LiveObserver`` and reads the state back.
``poll()``, called ~30 times a second, drains the engine, samples the self-rating and
watches the recorder, and returns what is new to draw. No Qt here: the window is layout
and wiring (``app.gui.main_window``), and this module is tested without a display.

It lives in ``app.gui`` beside the other Qt-free parts it drives (``app.gui.live``'s
``LiveEngine``, ``app.gui.rating``'s sampler).
"""
from __future__ import annotations

import logging
import socket
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from app.gui.live import LiveEngine, MediaError, ModelLoadError, SourceError, load_model
from app.gui.rating import (ARROW_STEP, CIRCUMPLEX, Rating, RatingSampler, rating_metadata,
                            set_slider_rating, slider_rating)
from app.sources.choice import SourceChoice
from app.pipeline import Prediction
from app.recording.lsl import AffectOutlet, MarkerOutlet, lsl_not_installed, marker_text
from app.sources import Pacing
from models.runtime import AffectSession
from models.spec import STEPS_PER_SECOND

log = logging.getLogger(__name__)

MAX_BASELINE_S = 600.0
STATS_EVERY_S = 0.5
LSL_STREAMS = (f"'Affect' (arousal, valence, face_found, voice_active at {STEPS_PER_SECOND} "
               "Hz) and 'Markers' (event markers)")


def recorder_class():
    """(SessionRecorder, None), or (None, the reason recording is unavailable)."""
    try:
        from app.recording.recorder import SessionRecorder
    except ImportError as error:
        return None, f"recording is not available in this build ({error})"
    return SessionRecorder, None


def baseline_summary(baseline: dict) -> str:
    """What a stored baseline (the recorder's ``baseline``) measured, in a line for the
    status bar."""
    short = "" if baseline["complete"] else f" of the {baseline['requested_s']:g} s asked for"
    return (f"baseline stored ({baseline['duration_s']:.1f} s{short}): arousal "
            f"{baseline['arousal']['mean']:+.2f}, valence {baseline['valence']['mean']:+.2f}; "
            "exports add baseline-corrected columns")


class Recording:
    """A running recorder, whether it turned the LSL stream on (so stopping turns it
    off), when it started (for the elapsed-time indicator) and its baseline as last
    shown."""

    def __init__(self, recorder, out_dir: Path, started_stream: bool = False) -> None:
        self.recorder = recorder
        self.out_dir = out_dir
        self.started_stream = started_stream
        self.started = time.monotonic()
        self.baseline_ends: float | None = None  # monotonic end of a baseline being taken
        self.baseline_shown: dict | None = None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def take_baseline(self, seconds: float) -> None:
        """Count down a baseline of ``seconds`` from now (the caller tells the recorder)."""
        self.baseline_ends = time.monotonic() + seconds

    def baseline_left_s(self) -> float | None:
        """Seconds of the baseline still to record, or None when none is being taken."""
        if self.baseline_ends is None:
            return None
        left = self.baseline_ends - time.monotonic()
        if left <= 0:
            self.baseline_ends = None
            return None
        return left

    def new_baseline(self) -> dict | None:
        """The recorder's baseline when it is one not shown yet."""
        baseline = getattr(self.recorder, "baseline", None)
        if baseline is None or baseline is self.baseline_shown:
            return None
        self.baseline_shown = baseline
        return baseline

    @property
    def on_lsl(self) -> bool:
        return bool(getattr(self.recorder, "lsl", False))


class LiveObserver:
    """What a ``LiveControl`` tells whoever shows it; each method is a no-op here."""

    def on_error(self, title: str, text: str) -> None:
        """A command failed, or the recording stopped by itself: say so prominently."""

    def on_message(self, text: str, ms: int) -> None:
        """A passing note (status bar) for ``ms`` milliseconds; 0: until the next one."""

    def on_change(self) -> None:
        """Running, recording, LSL, rating, model or sources changed: read them again."""

    def on_restart(self) -> None:
        """A new engine started: what was drawn belongs to the previous one."""

    def on_marker(self, t: float, text: str) -> None:
        """A marker at ``t`` on the engine clock."""

    def on_choice(self) -> None:
        """The model or the sources were chosen (worth remembering for the next run)."""


@dataclass
class Update:
    """What one ``poll()`` found: predictions to draw and self-ratings sampled."""

    predictions: list[Prediction] = field(default_factory=list)
    ratings: list[Rating] = field(default_factory=list)
    now: float | None = None  # engine time while it runs


class RateMeter:
    """Steps per second and median step latency, at most every ``STATS_EVERY_S``."""

    def __init__(self) -> None:
        self.latencies: deque[float] = deque(maxlen=STEPS_PER_SECOND)  # about a second
        self.reset()

    def reset(self) -> None:
        self.latencies.clear()
        self.steps_at, self.at = 0, time.monotonic()

    def rates(self, steps: int, dropped: int) -> tuple[float, float | None, int] | None:
        """(steps/s, p50 latency in ms, dropped windows), or None when not yet due."""
        elapsed = time.monotonic() - self.at
        if elapsed < STATS_EVERY_S:
            return None
        rate = (steps - self.steps_at) / elapsed
        self.steps_at, self.at = steps, time.monotonic()
        latency = statistics.median(self.latencies) if self.latencies else None
        return rate, latency, dropped


class LiveControl:
    """The live session's state and commands (see the module docstring)."""

    def __init__(self, model: AffectSession | None, sources: SourceChoice, *,
                 model_path: str = "", marker_labels: list[str] | None = None,
                 lsl_stream: bool = False, pacing: Pacing = Pacing.REALTIME,
                 recorder_class=None, observer: LiveObserver | None = None) -> None:
        self.model = model  # the ONNX model (AffectSession), None until one loads
        self.model_path = model_path
        self.sources = sources
        self.pacing = pacing
        self.recorder_class = recorder_class  # SessionRecorder; None: recording unavailable
        self.observer = observer or LiveObserver()
        self.marker_labels = list(marker_labels or [])
        self.live: LiveEngine | None = None
        self.recording: Recording | None = None
        # The user's choice of streaming on LSL. While on, Affect follows the engine
        # through restarts; Markers is shared with a recording on LSL.
        self.lsl_stream = bool(lsl_stream) and lsl_not_installed() is None
        self.affect_outlet: AffectOutlet | None = None
        self.marker_outlet: MarkerOutlet | None = None
        self.sampler = RatingSampler()
        self.rating_mode = CIRCUMPLEX  # or "arousal"/"valence": a 1-D slider
        self.markers: list[tuple[float, str, str]] = []  # (engine time, label, value)
        self.ratings_taken = 0
        self.meter = RateMeter()
        self._stopped: Update | None = None  # the last predictions of a stopped engine

    # -- state ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.live is not None and self.live.running

    def engine_time(self) -> float | None:
        """Now on the engine clock (that of ``Prediction.t``); None when nothing runs."""
        return self.live.now() if self.running else None

    def has_video(self) -> bool:
        return self.sources.video_file is not None or self.sources.camera is not None

    def source_names(self) -> tuple[str, str]:
        """(video, audio) in words: the running sources, else the chosen ones."""
        if self.live is not None:
            return self.live.source_names()
        return self.sources.describe()

    # -- model and sources --------------------------------------------------------------
    def set_model(self, path: str) -> bool:
        """Load and check a model; on failure say why and keep the previous one running."""
        try:
            model = load_model(path)
        except ModelLoadError as error:
            self.observer.on_error("Cannot use this model", str(error))
            return False
        self.model, self.model_path = model, str(path)
        self.observer.on_choice()
        self.observer.on_change()
        if self.live is not None or not self.sources.empty:
            self.start()  # (re)start on the new model
        return True

    def open_file(self, path: str) -> bool:
        """Play a video file (with its sound), or an audio file beside the chosen camera."""
        from models.media import probe

        try:
            info = probe(path)
        except MediaError as error:
            self.observer.on_error("Cannot open this file", str(error))
            return False
        if info.has_video:
            return self.set_sources(SourceChoice(video_file=path))
        if info.has_audio:
            return self.set_sources(SourceChoice(camera=self.sources.camera, audio_file=path))
        self.observer.on_error("Cannot open this file", f"{path} holds neither audio nor video")
        return False

    def set_sources(self, choice: SourceChoice) -> bool:
        self.sources = choice
        self.observer.on_choice()
        self.observer.on_change()
        if self.model is not None and not choice.empty:
            return self.start()
        self.stop()
        return True

    # -- running ---------------------------------------------------------------------------
    def toggle_running(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()

    def start(self) -> bool:
        """(Re)start the engine on the chosen model and sources."""
        if self.model is None:
            self.observer.on_error("No model", "Choose a model first (Model ▸ Choose model…).")
            return False
        self.stop()
        try:
            live = LiveEngine(self.model, self.sources, self.pacing)
            live.start()
        except (SourceError, MediaError) as error:
            self.observer.on_error("Cannot start", str(error))
            return False
        self.live, self._stopped = live, None
        self.meter.reset()
        if self.sampler.running:
            self.sampler.start(0.0)
        self.observer.on_restart()
        if self.lsl_stream:
            self.set_lsl_stream(True)  # the stream follows the engine through restarts
        self.observer.on_change()
        return True

    def stop(self) -> None:
        """Stop the engine (finishing a recording first); its last predictions still
        come out of the next ``poll()``."""
        self.stop_recording()
        self._close_affect_outlet()
        if self.live is not None:
            live, self.live = self.live, None
            live.stop()
            self._stopped = self._drain(live)
        self.observer.on_change()

    def close(self) -> None:
        """Stop everything and close the LSL outlets (``lsl_stream`` keeps the choice)."""
        self.stop()
        self._close_marker_outlet()

    # -- polling: everything periodic ---------------------------------------------------------
    def poll(self) -> Update:
        """Drain the engine, sample the self-rating, watch the recorder."""
        live = self.live
        if live is None:
            update, self._stopped = self._stopped or Update(), None
        else:
            update = self._drain(live)
            update.now = live.now() if live.running else None
            update.ratings = self._sample_ratings(update.now)
        if self.recording is not None:
            self._check_recording()
        return update

    def rates(self) -> tuple[float, float | None, int] | None:
        """(steps/s, p50 latency ms, dropped windows) every ``STATS_EVERY_S``, else None."""
        if self.live is None:
            return None
        stats = self.live.stats()
        return self.meter.rates(stats.steps, stats.dropped_windows)

    def _drain(self, live: LiveEngine) -> Update:
        poll = live.poll()
        for event in poll.events:
            if event.source not in ("model",):
                self.observer.on_message(f"{event.source}: {event.message}", 8000)
        self.meter.latencies.extend(p.latency_ms for p in poll.predictions)
        if poll.finished and live is self.live:
            self.observer.on_message("the source ended; Start plays it again", 0)
            self.stop_recording()
            self.observer.on_change()
        return Update(poll.predictions)

    def _sample_ratings(self, now: float | None) -> list[Rating]:
        if now is None or not self.sampler.running:
            return []
        ratings = self.sampler.sample(now)
        self.ratings_taken += len(ratings)
        if self.recording is not None:
            for r in ratings:
                self.recording.recorder.add_rating(r.t, r.arousal, r.valence)
        return ratings

    def _check_recording(self) -> None:
        """Pass on the recorder's messages and a newly stored baseline; when it stopped by
        itself (device lost, disk full), finish the session and say why, keeping what
        was written."""
        recorder = self.recording.recorder
        for message in recorder.messages.drain():
            self.observer.on_message(f"recording: {message}", 10_000)
        stored = self.recording.new_baseline()
        if stored is not None:
            self.observer.on_message(baseline_summary(stored), 15_000)
        if recorder.running:
            return
        reason = recorder.error
        self.stop_recording()
        if reason:
            self.observer.on_error("Recording stopped", f"{reason}\n\nEverything recorded "
                                   "until then is saved and readable.")

    # -- recording -------------------------------------------------------------------------
    def start_recording(self, out_dir: Path, metadata: dict, baseline_s: float | None = None,
                        lsl: bool = False) -> bool:
        """Record into ``out_dir`` (starting the engine if needed); ``baseline_s``: the
        first seconds are the neutral baseline; ``lsl``: stream Affect and Markers on
        LSL and record other apps' markers. Self-rating runs while recording."""
        if self.recorder_class is None:
            return False
        if self.recording is not None:
            self.observer.on_message(f"already recording into {self.recording.out_dir}", 5000)
            return False
        if not self.running and not self.start():
            return False
        metadata = {**metadata, "model": self.model_path,
                    "sources": dict(zip(("video", "audio"), self.live.source_names())),
                    "marker_labels": list(self.marker_labels),
                    "self_rating": rating_metadata(self.rating_mode)}
        starts_stream = lsl and not self.lsl_stream
        if starts_stream and not self.set_lsl_stream(True):
            return False
        try:
            recorder = self.recorder_class(out_dir, metadata, self.live.engine,
                                           baseline_s=baseline_s, lsl=lsl,
                                           lsl_marker_outlet=self.marker_outlet if lsl else None)
            recorder.start()
        except (OSError, ValueError, RuntimeError) as error:
            if starts_stream:
                self.set_lsl_stream(False)
            self.observer.on_error("Cannot record", str(error))
            return False
        self.recording = Recording(recorder, Path(out_dir), starts_stream)
        if baseline_s:
            self.recording.take_baseline(baseline_s)
        if not self.sampler.running:
            self.set_rating(True)
        self.observer.on_change()
        return True

    def stop_recording(self) -> None:
        """Finish the recording, if any (harmless otherwise), and say where it is."""
        if self.recording is None:
            return
        recording, self.recording = self.recording, None
        try:
            recording.recorder.stop()
        except (OSError, ValueError, RuntimeError) as error:
            self.observer.on_error("Recording did not finish cleanly", str(error))
        if recording.started_stream:
            self.set_lsl_stream(False)
        stored = recording.new_baseline()  # one that ended with the recording
        self.observer.on_change()
        self.observer.on_message(f"session saved in {recording.out_dir}"
                                 + (f"; {baseline_summary(stored)}" if stored else ""), 0)

    def record_baseline(self, seconds: float) -> bool:
        """Take the next ``seconds`` of the recording as the neutral baseline (a later one
        replaces an earlier one in session.json; both stay in events.tsv)."""
        if self.recording is None:
            self.observer.on_message("a baseline is taken while recording: press Record "
                                     "first", 5000)
            return False
        try:
            self.recording.recorder.record_baseline(seconds)
        except ValueError as error:
            self.observer.on_error("Cannot take a baseline", str(error))
            return False
        self.recording.take_baseline(seconds)
        self.observer.on_change()
        return True

    # -- LSL ------------------------------------------------------------------------------------
    def set_lsl_stream(self, on: bool) -> bool:
        """Stream on LSL, with or without a recording: ``Affect`` (the predictions, while
        the engine runs, through restarts) and ``Markers`` (event markers)."""
        if not on and self.recording is not None and self.recording.on_lsl:
            self.observer.on_message("this recording streams on LSL until it stops", 5000)
            self.observer.on_change()
            return False
        self.lsl_stream = bool(on)
        self._close_affect_outlet()
        if not on:
            self._close_marker_outlet()
            self.observer.on_change()
            return True
        try:
            if self.marker_outlet is None:
                self.marker_outlet = MarkerOutlet(
                    source_id=f"affect-monitor-markers-{socket.gethostname()}")
            if self.running:
                self.affect_outlet = AffectOutlet(self.live.engine)
                self.affect_outlet.start()
        except (OSError, RuntimeError) as error:
            self._close_affect_outlet()
            self._close_marker_outlet()
            self.lsl_stream = False
            self.observer.on_change()
            self.observer.on_error("Cannot stream on LSL", f"cannot open the LSL outlets: {error}")
            return False
        self.observer.on_message(f"streaming on LSL: {LSL_STREAMS}", 5000)
        self.observer.on_change()
        return True

    def _close_affect_outlet(self) -> None:
        if self.affect_outlet is not None:
            outlet, self.affect_outlet = self.affect_outlet, None
            outlet.stop()

    def _close_marker_outlet(self) -> None:
        if self.marker_outlet is not None:
            outlet, self.marker_outlet = self.marker_outlet, None
            outlet.close()

    # -- markers --------------------------------------------------------------------------
    def add_marker(self, label: str, value: str = "") -> float | None:
        """Stamp a marker with the engine clock: to the recording and the LSL stream.
        Refused with a message (None) when nothing is running."""
        t = self.engine_time()
        if t is None:
            self.observer.on_message("markers need a running source (Start)", 8000)
            return None
        self.markers.append((t, label, value))
        self.observer.on_marker(t, value or label)
        recording_on_lsl = self.recording is not None and self.recording.on_lsl
        if self.recording is not None:
            self.recording.recorder.add_event(t, label, value)
        if self.marker_outlet is not None and not recording_on_lsl:
            self._push_marker(label, value)  # a recording on LSL pushes its own events
        self.observer.on_message(f"marker '{value or label}' at {t:.2f} s", 3000)
        return t

    def _push_marker(self, label: str, value: str) -> None:
        try:
            self.marker_outlet.push(marker_text(label, value))  # push() cleans the text
        except Exception as error:  # noqa: BLE001 - LSL must never stop the app
            log.warning("pushing an LSL marker failed: %s", error)

    # -- self-rating -----------------------------------------------------------------------
    def set_rating(self, on: bool) -> None:
        if on:
            self.sampler.start(self.engine_time() or 0.0)
        else:
            self.sampler.stop()
        self.observer.on_change()

    def set_rating_mode(self, mode: str) -> bool:
        """Rate on the circumplex, or one dimension ("arousal"/"valence") on a slider.
        Fixed while recording: session.json says which input made ratings.csv."""
        if mode != self.rating_mode and self.recording is not None:
            self.observer.on_message("the self-rating input cannot change while recording",
                                     3000)
            self.observer.on_change()
            return False
        self.rating_mode = mode
        if mode != CIRCUMPLEX:
            set_slider_rating(self.sampler, mode, slider_rating(self.sampler, mode))
        self.observer.on_change()
        return True

    def move_rating(self, valence: float, arousal: float) -> None:
        """The circumplex position (clipped to -1..1)."""
        self.sampler.move_to(valence, arousal)

    def set_slider(self, value: float) -> None:
        """The slider position, when the input is a slider."""
        if self.rating_mode != CIRCUMPLEX:
            set_slider_rating(self.sampler, self.rating_mode, value)

    def nudge_rating(self, d_valence: int, d_arousal: int) -> None:
        """An arrow key while rating: a slider goes up with up/right, down with down/left."""
        if not self.sampler.running:
            return
        if self.rating_mode != CIRCUMPLEX:
            self.set_slider(slider_rating(self.sampler, self.rating_mode)
                            + (d_valence + d_arousal) * ARROW_STEP)
        else:
            self.move_rating(self.sampler.valence + d_valence * ARROW_STEP,
                             self.sampler.arousal + d_arousal * ARROW_STEP)

    def set_focused(self, focused: bool) -> None:
        """Ratings pause while the rater's window is not focused."""
        self.sampler.set_focused(focused, self.engine_time() or 0.0)


__all__ = ["LiveControl", "LiveObserver", "MAX_BASELINE_S", "Recording", "Update",
           "baseline_summary", "recorder_class"]
