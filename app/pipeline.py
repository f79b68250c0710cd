"""The live engine: 40 ms audio windows on the sample clock, the frame nearest each
window's centre, one model step carrying the LSTM state, predictions to subscribers.

Threads (see docs/ARCHITECTURE.md): sources fill an ``AudioRing`` and a ``FrameBuffer``
on their own threads; one inference thread turns every 640 new samples into a
``Prediction`` and hands it to each ``Subscription`` without ever waiting on one.

``StepPreparer`` is the alignment, face and voice logic on its own, free of threads:
the offline analyser (``app.analyze``) uses the same object, so live and offline feed
the model identical inputs for the same media.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from app.sources.base import (AudioRing, AudioSource, Frame, FrameBuffer, Pacing,
                              SessionClock, SourceError, VideoSource)
from app.sources.silence import SilenceSource
from app.vad import VoiceDetector, load_voice_detector
from models.faces import FaceResult, FaceTracker
from models.media import MAX_FRAME_AGE_S, choose_frame
from models.runtime import AffectSession, AffectStream

log = logging.getLogger(__name__)

_POLL_S = 0.002  # how often the inference thread looks for new samples when idle

T = TypeVar("T")


@dataclass(frozen=True)
class Prediction:
    """One 40 ms step. ``t``: start of the window in seconds on the sample clock.

    ``latency_ms``: live or real-time paced, from the capture of the window's last
    sample to publication; paced as fast as possible, the step's own compute time.
    """

    t: float
    arousal: float
    valence: float
    face_found: bool
    face_score: float
    voice_active: bool
    latency_ms: float


@dataclass(frozen=True)
class EngineEvent:
    """Something a user should be told: a device fault, a switch to silence, the end."""

    t: float  # session seconds
    source: str
    message: str


@dataclass(frozen=True)
class EngineStats:
    steps: int
    dropped_windows: int  # 40 ms windows lost because the ring overflowed
    device_overflows: int  # blocks the sound card reported as overflowed
    frames_received: int
    no_face_steps: int
    provider: str
    voice_detector: str


class Subscription(Generic[T]):
    """A bounded queue for one consumer. ``put`` never blocks: when full, the oldest
    item is dropped and counted, so a slow consumer only loses its own items."""

    def __init__(self, maxsize: int = 256) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._items: deque[T] = deque(maxlen=maxsize)
        self._ready = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, item: T) -> None:
        with self._ready:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1  # deque(maxlen) discards the oldest on append
            self._items.append(item)
            self._ready.notify()

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, waiting up to ``timeout``; None if none came or closed."""
        with self._ready:
            if not self._items and not self.closed:
                self._ready.wait(timeout)
            return self._items.popleft() if self._items else None

    def drain(self) -> list[T]:
        """Everything queued now, oldest first (what a GUI timer tick takes)."""
        with self._ready:
            items = list(self._items)
            self._items.clear()
            return items

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()


@dataclass(frozen=True)
class StepInput:
    audio: np.ndarray  # [640] float32, finite, in [-1, 1]
    face: np.ndarray | None  # [C, H, W] or None -> face_mask 0
    face_found: bool
    face_score: float
    voice_active: bool
    bad_audio: bool  # the window held NaN/inf and was replaced by silence


class StepPreparer:
    """Audio window + candidate frames -> the model's inputs, face and voice flags.

    State: the face tracker's (smoothed box, last frame: a frame chosen for two windows
    is tracked once) and the voice detector's. ``reset()`` clears both. The frame
    choice is ``models.media.choose_frame``, the rule training uses too.
    """

    def __init__(self, tracker: FaceTracker | None, vad: VoiceDetector,
                 max_frame_age_s: float = MAX_FRAME_AGE_S) -> None:
        self.tracker = tracker
        self.vad = vad
        self.max_frame_age_s = max_frame_age_s

    def reset(self) -> None:
        if self.tracker is not None:
            self.tracker.reset()
        self.vad.reset()

    def prepare(self, audio: np.ndarray, centre_s: float, frames: Sequence[Frame]) -> StepInput:
        audio = np.asarray(audio, np.float32)
        bad = not np.isfinite(audio).all()
        if bad:
            audio = np.zeros_like(audio)
        audio = np.clip(audio, -1.0, 1.0)
        voice = self.vad.process(audio)
        face = self._face(frames, centre_s)
        return StepInput(audio=audio, face=face.face if face.found else None,
                         face_found=face.found, face_score=face.score, voice_active=voice,
                         bad_audio=bad)

    def _face(self, frames: Sequence[Frame], centre_s: float) -> FaceResult | _NoFace:
        if self.tracker is None:
            return _NO_FACE
        frame = choose_frame(frames, centre_s, self.max_frame_age_s)
        if frame is None:
            return _NO_FACE
        return self.tracker.process(frame.rgb, key=frame.index)


@dataclass(frozen=True)
class _NoFace:
    found: bool = False
    score: float = 0.0
    face: None = None


_NO_FACE = _NoFace()


class Engine:
    """Sources -> aligned steps -> model -> subscribers, on one inference thread.

    ``audio=None`` runs on silence (no microphone); ``video=None`` runs without faces.
    A live microphone that stalls or stops is replaced by silence on the same clock;
    a camera that fails just leaves the steps without a face. Faults go to ``events``.
    """

    def __init__(self, session: AffectSession, audio: AudioSource | None = None,
                 video: VideoSource | None = None, *, vad: VoiceDetector | None = None,
                 tracker: FaceTracker | None = None, ring_seconds: float = 10.0,
                 stall_s: float = 1.0, video_wait_s: float = 2.0) -> None:
        self.session = session
        self.audio = audio if audio is not None else SilenceSource()
        self.video = video
        if tracker is None and video is not None:
            tracker = FaceTracker(session.spec.face)
        self.preparer = StepPreparer(tracker, vad if vad is not None else load_voice_detector())
        self.stream = AffectStream(session)
        self.rate = session.spec.sample_rate
        self.window = session.spec.window_samples
        self.ring = AudioRing(int(ring_seconds * self.rate))
        self.frames = FrameBuffer()
        self.clock: SessionClock | None = None
        self.events: Subscription[EngineEvent] = Subscription(100)
        self.stall_s = stall_s
        self.video_wait_s = video_wait_s
        self._subscribers: list[Subscription[Prediction]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._steps = self._dropped = self._no_face = 0
        self._bad_audio_reported = False
        self.failure: str | None = None  # why the inference thread ended by an error

    # -- subscribers -------------------------------------------------------------------
    def subscribe(self, maxsize: int = 256) -> Subscription[Prediction]:
        subscription: Subscription[Prediction] = Subscription(maxsize)
        self._subscribers = [*self._subscribers, subscription]  # swap: no lock on publish
        return subscription

    def unsubscribe(self, subscription: Subscription[Prediction]) -> None:
        self._subscribers = [s for s in self._subscribers if s is not subscription]
        subscription.close()

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Open the sources and start stepping. SourceError if the chosen audio device
        cannot be opened at all (a failing camera only produces an event)."""
        if self._thread is not None:
            raise RuntimeError("an Engine runs once; make a new one")
        self.clock = SessionClock()
        self._report("model", f"{self.session.spec.name} on {self.session.provider}; voice "
                              f"activity by {self.preparer.vad.name}")
        if self.video is not None:
            try:
                self.video.start(self.frames, self.clock, self._report)
            except SourceError as error:
                self._report(self.video.name, f"{error}; continuing without video")
                self.video = None
        self.audio.start(self.ring, self.clock, self._report)
        self._audio_started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the sources to run out (files); True if the engine has finished."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._stop_sources()

    @property
    def samples_captured(self) -> int:
        """Audio samples the source has delivered since start (the engine's sample clock)."""
        return self.ring.written

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> EngineStats:
        return EngineStats(steps=self._steps, dropped_windows=self._dropped,
                           device_overflows=self.ring.device_overflows,
                           frames_received=self.frames.received, no_face_steps=self._no_face,
                           provider=self.session.provider,
                           voice_detector=self.preparer.vad.name)

    # -- inference thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except Exception as error:  # the model (or a step) failed: end as a stop, say why
            first = (str(error).strip().splitlines() or [""])[0][:300]
            self.failure = (f"the model failed after {self._steps} steps "
                            f"({type(error).__name__}: {first})")
            log.error("%s", self.failure)
            log.debug("inference failed", exc_info=True)
            self._report("engine", self.failure)
        finally:
            self._stop_sources()
            self._report("engine", f"stopped after {self._steps} steps")
            for subscription in self._subscribers:
                subscription.close()

    def _loop(self) -> None:
        start = 0  # first sample of the next window
        while not self._stop.is_set():
            if start < self.ring.oldest():
                # We fell more than the ring behind: skip to the oldest whole window held.
                skipped = -(-(self.ring.oldest() - start) // self.window)
                self._dropped += skipped
                start += skipped * self.window
                self._report("pipeline", f"fell behind: dropped {skipped} audio windows")
            audio = self.ring.read(start, self.window)
            if audio is None:
                if self._audio_exhausted(start):
                    if self.ring.written <= start:
                        return
                    # The last partial window of a file, padded with silence.
                    audio = np.zeros(self.window, np.float32)
                    tail = self.ring.read(start, self.ring.written - start)
                    audio[:tail.size] = tail
                    self._step(start, audio, captured=tail.size)
                    return
                else:
                    self._check_stall()
                    self._stop.wait(_POLL_S)
                    continue
            self._step(start, audio)
            start += self.window
            self.ring.read_until = start

    def _step(self, start: int, audio: np.ndarray, captured: int | None = None) -> None:
        began = time.monotonic()
        offset = self.audio.offset_s
        end_s = offset + (start + self.window) / self.rate
        centre_s = end_s - self.window / (2 * self.rate)
        frames: list[Frame] = []
        if self.video is not None:
            self.frames.reader_time = end_s
            self._wait_for_frames(end_s)
            frames = self.frames.frames_until(end_s)
        prepared = self.preparer.prepare(audio, centre_s, frames)
        if prepared.bad_audio and not self._bad_audio_reported:
            self._bad_audio_reported = True
            self._report(self.audio.name, "delivered NaN/infinite samples; such windows are "
                                          "treated as silence")
        arousal, valence = self.stream.step(prepared.audio, prepared.face)
        if self._realtime():
            captured_s = offset + (start + (captured or self.window)) / self.rate
            latency = (self.clock.now() - captured_s) * 1000.0
        else:
            latency = (time.monotonic() - began) * 1000.0
        prediction = Prediction(t=start / self.rate, arousal=arousal, valence=valence,
                                face_found=prepared.face_found, face_score=prepared.face_score,
                                voice_active=prepared.voice_active, latency_ms=latency)
        self._steps += 1
        self._no_face += not prepared.face_found
        for subscription in self._subscribers:
            subscription.put(prediction)

    def _wait_for_frames(self, end_s: float) -> None:
        """File video: wait until every frame up to ``end_s`` is delivered (live: never)."""
        if self.frames.complete_until is None:
            return
        deadline = time.monotonic() + self.video_wait_s
        while (self.frames.complete_until <= end_s and not self.frames.finished
               and not self.video.ended and not self._stop.is_set()):
            if time.monotonic() > deadline:
                self._report(self.video.name, f"no frame for {end_s:.2f} s after "
                                              f"{self.video_wait_s:.0f} s; going on without")
                return
            self._stop.wait(_POLL_S)

    def _realtime(self) -> bool:
        return self.audio.live or getattr(self.audio, "pacing", None) is Pacing.REALTIME

    def _audio_exhausted(self, start: int) -> bool:
        return self.audio.ended and not self.audio.live and self.ring.written < start + self.window

    def _check_stall(self) -> None:
        """A live microphone that stopped or went quiet is replaced by silence."""
        if not self.audio.live or isinstance(self.audio, SilenceSource):
            return
        last = max(self.ring.last_write, self._audio_started)
        if not self.audio.ended and time.monotonic() - last < self.stall_s:
            return
        dead = self.audio
        self._report(dead.name, "stopped delivering audio; continuing with silence")
        dead.stop()
        if dead.offset_s == 0.0 and self.ring.written == 0:
            dead.offset_s = self.clock.now()  # never delivered: time starts now
        self.audio = SilenceSource(offset_s=dead.offset_s)
        self.audio.start(self.ring, self.clock, self._report)

    def _stop_sources(self) -> None:
        for source in (self.audio, self.video):
            if source is not None:
                source.stop()

    def _report(self, source: str, message: str) -> None:
        level = logging.INFO if source in ("model", "engine") else logging.WARNING
        log.log(level, "%s: %s", source, message)
        now = self.clock.now() if self.clock is not None else 0.0
        self.events.put(EngineEvent(now, source, message))
