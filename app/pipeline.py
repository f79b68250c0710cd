"""The live engine: 40 ms audio windows on the sample clock, the frame nearest each
window's centre, one model step carrying the LSTM state, everything to subscribers.

Threads and clocks (docs/engine.md): sources fill an ``AudioRing`` and a ``FrameBuffer``
on their own threads; one inference thread turns every ``WINDOW_SAMPLES`` new samples
into a ``Prediction``. What the engine captures and computes reaches other code only
through ``Subscription``s, which never make the publisher wait on a slow reader:

    engine.subscribe()          Prediction, one per 40 ms step
    engine.subscribe_audio()    AudioChunk, every captured sample once, in order
    engine.subscribe_frames()   Frame, every frame the video source delivered
    engine.subscribe_events()   EngineEvent, faults and notes for the user
    engine.timeline             the clocks (engine, capture, monotonic, folder, LSL)

Audio is published by the inference thread (the PortAudio callback only writes into
the ring: no allocation, no lock); frames on the video source's thread. Only a *file*
source waits for a full audio or frame subscriber (as it waits for the model), so
recording a file as fast as possible keeps everything; a device never waits.

``StepPreparer`` is the alignment, face and voice logic on its own, free of threads:
the offline analyser (``app.analyze``) uses the same object, so live and offline feed
the model identical inputs for the same media.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

import numpy as np

from app.sources.base import (AudioRing, AudioSource, CaptureClock, Frame, FrameBuffer, Pacing,
                              SourceError, VideoSource)
from app.sources.silence import SilenceSource
from app.vad import VoiceDetector, load_voice_detector
from models.faces import FaceResult, FaceTracker
from models.media import MAX_FRAME_AGE_S, choose_frame
from models.runtime import AffectSession, AffectStream

log = logging.getLogger(__name__)

_POLL_S = 0.002  # how often the inference thread looks for new samples when idle
_ROOM_S = 0.005  # how often a file source waiting for a full subscriber checks for a stop

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

    t: float  # capture seconds (``Timeline.from_capture`` gives engine seconds)
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
            self._ready.notify_all()

    def put_waiting(self, item: T, stop: threading.Event) -> bool:
        """Wait for room instead of dropping (what a file source does: nothing is lost,
        the file waits); False, nothing queued, once closed or ``stop`` is set."""
        with self._ready:
            while len(self._items) == self._items.maxlen and not self.closed:
                if stop.is_set():
                    return False
                self._ready.wait(_ROOM_S)
            if self.closed:
                return False
            self._items.append(item)
            self._ready.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, waiting up to ``timeout``; None if none came or closed."""
        with self._ready:
            if not self._items and not self.closed:
                self._ready.wait(timeout)
            item = self._items.popleft() if self._items else None
            self._ready.notify_all()  # room for a waiting writer
            return item

    def drain(self) -> list[T]:
        """Everything queued now, oldest first (what a GUI timer tick takes)."""
        with self._ready:
            items = list(self._items)
            self._items.clear()
            self._ready.notify_all()
            return items

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        """No more items will come; what is queued can still be taken."""
        with self._ready:
            self.closed = True
            self._ready.notify_all()


@dataclass(frozen=True)
class AudioChunk:
    """Captured samples ``[start, start + samples.size)`` on the sample clock (sample n is
    at engine time n / sample_rate). Consecutive chunks of one subscription follow each
    other; a gap means samples were lost (the ring overflowed or the queue was full)."""

    start: int
    samples: np.ndarray  # float32, the chunk's own copy

    @property
    def end(self) -> int:
        return self.start + self.samples.size


class Timeline:
    """The engine's clocks and every conversion between them, in one place.

    * engine time: sample n of the audio is at ``n / rate`` seconds (``Prediction.t``,
      ``AudioChunk.start / rate``); 0.0 is the first sample captured.
    * capture time: the sources' ``CaptureClock`` (``Frame.time_s``, ``EngineEvent.t``),
      seconds since ``Engine.start``. Sample n was captured at ``offset + n / rate``,
      ``offset`` being when the audio source delivered sample 0 (0 for files and
      silence; a microphone's first block for a microphone).
    * monotonic: this process's ``time.monotonic()`` = capture time + the clock's start.
    * folder time (a recording): engine time - the recording's origin (its sample 0).
    * LSL: monotonic through an ``LslClock`` (``app.recording.lsl``), measured not assumed.
    """

    def __init__(self, rate: int, captured: Callable[[], int]) -> None:
        self.rate = rate
        self._captured = captured  # samples captured so far
        self._clock: CaptureClock | None = None
        self._audio: AudioSource | None = None  # whose offset places sample 0

    def _begin(self, clock: CaptureClock, audio: AudioSource) -> None:
        self._clock, self._audio = clock, audio

    def _follow(self, audio: AudioSource) -> None:
        self._audio = audio  # silence in a failed microphone's place, same offset

    @property
    def started(self) -> bool:
        return self._clock is not None

    @property
    def _offset(self) -> float:
        return self._audio.offset_s if self._audio is not None else 0.0

    def now(self) -> float:
        """Engine seconds now (the clock of ``Prediction.t``); 0.0 before the start."""
        if self._clock is None:
            return 0.0
        return max(0.0, self._clock.now() - self._offset)

    def capture_now(self) -> float:
        """Capture seconds now; 0.0 before the start."""
        return self._clock.now() if self._clock is not None else 0.0

    def placed(self, sample: int = 0) -> bool:
        """Whether sample ``sample``'s capture time is known: the engine has started and,
        for a live source, captured past it (a microphone anchors on its first block)."""
        if self._clock is None:
            return False
        return not self._audio.live or self._captured() > sample

    def from_capture(self, capture_s: float) -> float:
        """A frame's or event's capture time -> engine seconds."""
        return capture_s - self._offset

    def to_capture(self, engine_s: float) -> float:
        return engine_s + self._offset

    def to_monotonic(self, engine_s: float) -> float | None:
        """``time.monotonic()`` at engine time ``engine_s``; None before the start."""
        if self._clock is None:
            return None
        return self._clock.start + self._offset + engine_s

    def from_monotonic(self, monotonic_s: float) -> float | None:
        if self._clock is None:
            return None
        return monotonic_s - self._clock.start - self._offset

    @staticmethod
    def to_folder(engine_s: float, origin_s: float) -> float:
        """Engine seconds -> seconds in a recording whose sample 0 is at ``origin_s``."""
        return engine_s - origin_s

    def to_lsl(self, engine_s: float, lsl_clock) -> float | None:
        """Engine seconds -> LSL ``local_clock`` seconds (``lsl_clock``: an ``LslClock``)."""
        monotonic_s = self.to_monotonic(engine_s)
        return None if monotonic_s is None else lsl_clock.to_lsl(monotonic_s)


class _Topic(Generic[T]):
    """The subscriptions of one kind of item. The list is swapped, never changed in
    place, so publishing takes no lock on it."""

    def __init__(self) -> None:
        self.subscriptions: tuple[Subscription[T], ...] = ()

    def add(self, maxsize: int) -> Subscription[T]:
        subscription: Subscription[T] = Subscription(maxsize)
        self.subscriptions = (*self.subscriptions, subscription)
        return subscription

    def remove(self, subscription: Subscription) -> None:
        self.subscriptions = tuple(s for s in self.subscriptions if s is not subscription)

    def publish(self, item: T, wait: threading.Event | None = None) -> None:
        """To every subscriber; ``wait``: wait for room (a file source) until it is set."""
        for subscription in self.subscriptions:
            if wait is None:
                subscription.put(item)
            else:
                subscription.put_waiting(item, wait)

    def close(self) -> None:
        for subscription in self.subscriptions:
            subscription.close()


@dataclass(frozen=True)
class StepInput:
    audio: np.ndarray  # [WINDOW_SAMPLES] float32, finite, in [-1, 1]
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
    a camera that fails just leaves the steps without a face. Faults are events.

    Public surface: ``model``, ``spec``, ``timeline``, the ``subscribe*`` methods and
    ``unsubscribe``, ``start``/``wait``/``stop``, ``running``, ``failure``, ``stats()``,
    ``samples_captured``, ``audio_source``/``video_source``, ``latest_frame()``,
    ``latest_audio(n)`` and ``face_box()``. Everything else is the engine's own.
    """

    def __init__(self, model: AffectSession, audio: AudioSource | None = None,
                 video: VideoSource | None = None, *, vad: VoiceDetector | None = None,
                 tracker: FaceTracker | None = None, ring_seconds: float = 10.0,
                 stall_s: float = 1.0, video_wait_s: float = 2.0) -> None:
        self.model = model  # the ONNX Runtime model (models.runtime.AffectSession)
        self._audio = audio if audio is not None else SilenceSource()
        self._video = video
        if tracker is None and video is not None:
            tracker = FaceTracker(model.spec.face)
        self._preparer = StepPreparer(tracker, vad if vad is not None else load_voice_detector())
        self._stream = AffectStream(model)
        self._rate = model.spec.sample_rate
        self._window = model.spec.window_samples
        self._ring = AudioRing(int(ring_seconds * self._rate))
        self._frames = FrameBuffer(on_frame=self._publish_frame)
        self._timeline = Timeline(self._rate, lambda: self._ring.written)
        self._stall_s = stall_s
        self._video_wait_s = video_wait_s
        self._predictions: _Topic[Prediction] = _Topic()
        self._audio_topic: _Topic[AudioChunk] = _Topic()
        self._frame_topic: _Topic[Frame] = _Topic()
        self._events: _Topic[EngineEvent] = _Topic()
        self._published = 0  # next sample index to publish to audio subscribers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._steps = self._dropped = self._no_face = 0
        self._bad_audio_reported = False
        self._audio_started = 0.0
        self.failure: str | None = None  # why the inference thread ended by an error

    # -- what the engine shows ------------------------------------------------------------
    @property
    def spec(self):
        """The model's ``models.spec.ModelSpec`` (sample rate, window, ...)."""
        return self.model.spec

    @property
    def timeline(self) -> Timeline:
        return self._timeline

    @property
    def audio_source(self) -> AudioSource:
        """The audio source now: silence once a failed microphone was replaced."""
        return self._audio

    @property
    def video_source(self) -> VideoSource | None:
        """The video source; None without video (or once it failed to open)."""
        return self._video

    @property
    def samples_captured(self) -> int:
        """Audio samples the source has delivered since start (the engine's sample clock)."""
        return self._ring.written

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> EngineStats:
        return EngineStats(steps=self._steps, dropped_windows=self._dropped,
                           device_overflows=self._ring.device_overflows,
                           frames_received=self._frames.received, no_face_steps=self._no_face,
                           provider=self.model.provider,
                           voice_detector=self._preparer.vad.name)

    def latest_frame(self) -> Frame | None:
        """The newest frame the video source delivered, or None (no video yet)."""
        frames = self._frames.frames_until(math.inf)
        return frames[-1] if frames else None

    def latest_audio(self, samples: int) -> np.ndarray | None:
        """The newest ``samples`` captured (a copy), or None when fewer were captured."""
        start = self._ring.written - samples
        return self._ring.read(start, samples) if start >= 0 else None

    def face_box(self) -> tuple[float, float, float, float] | None:
        """The face tracker's current smoothed box (x, y, w, h) in pixels, or None."""
        tracker = self._preparer.tracker
        return tracker.box if tracker is not None else None

    # -- subscribers ----------------------------------------------------------------------
    def subscribe(self, maxsize: int = 256) -> Subscription[Prediction]:
        """Every ``Prediction`` from now on; a full queue drops its oldest."""
        return self._predictions.add(maxsize)

    def subscribe_audio(self, maxsize: int = 1500) -> Subscription[AudioChunk]:
        """Every audio sample captured from now on, in ``AudioChunk``s (from the next
        step on, about one a step). A file source waits for room; a device does not."""
        return self._audio_topic.add(maxsize)

    def subscribe_frames(self, maxsize: int = 90) -> Subscription[Frame]:
        """Every frame the video source delivers from now on. A file waits for room."""
        return self._frame_topic.add(maxsize)

    def subscribe_events(self, maxsize: int = 100) -> Subscription[EngineEvent]:
        """Faults and notes for the user (a device lost, the model in use, the end)."""
        return self._events.add(maxsize)

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering to ``subscription`` (of any kind) and close it."""
        for topic in (self._predictions, self._audio_topic, self._frame_topic, self._events):
            topic.remove(subscription)
        subscription.close()

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Open the sources and start stepping. SourceError if the chosen audio device
        cannot be opened at all (a failing camera only produces an event)."""
        if self._thread is not None:
            raise RuntimeError("an Engine runs once; make a new one")
        clock = CaptureClock()
        self._timeline._begin(clock, self._audio)
        self._report("model", f"{self.model.spec.name} on {self.model.provider}; voice "
                              f"activity by {self._preparer.vad.name}")
        if self._video is not None:
            try:
                self._video.start(self._frames, clock, self._report)
            except SourceError as error:
                self._report(self._video.name, f"{error}; continuing without video")
                self._video = None
        self._audio.start(self._ring, clock, self._report)
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

    # -- inference thread -----------------------------------------------------------------
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
            self._publish_audio()  # what the sources delivered until they stopped
            self._report("engine", f"stopped after {self._steps} steps")
            for topic in (self._predictions, self._audio_topic, self._frame_topic,
                          self._events):
                topic.close()

    def _loop(self) -> None:
        start = 0  # first sample of the next window
        ring, window = self._ring, self._window
        while not self._stop.is_set():
            self._publish_audio()
            if start < ring.oldest():
                # We fell more than the ring behind: skip to the oldest whole window held.
                skipped = -(-(ring.oldest() - start) // window)
                self._dropped += skipped
                start += skipped * window
                self._report("pipeline", f"fell behind: dropped {skipped} audio windows")
            audio = ring.read(start, window)
            if audio is not None:
                self._step(start, audio)
                start += window
                self._publish_audio()  # before the ring may overwrite what was read
                ring.read_until = start
            elif self._audio_exhausted(start):
                if ring.written > start:  # the last partial window of a file, padded
                    audio = np.zeros(window, np.float32)
                    tail = ring.read(start, ring.written - start)
                    audio[:tail.size] = tail
                    self._step(start, audio, captured=tail.size)
                return
            else:
                self._check_stall()
                self._stop.wait(_POLL_S)

    def _publish_audio(self) -> None:
        """Everything captured since the last call, to the audio subscribers, on this
        thread (never on the capture callback). Samples the ring lost leave a gap."""
        ring = self._ring
        written = ring.written  # read first: a new subscriber gets everything after it
        if not self._audio_topic.subscriptions:
            self._published = written
            return
        wait = None if self._audio.live else self._stop
        while self._published < written:
            begin = max(self._published, ring.oldest())
            if begin >= written:  # lapped by more than the ring: those samples are gone
                self._published = begin
                return
            samples = ring.read(begin, written - begin)
            if samples is None:
                continue  # lapped while copying: take what is still held
            self._published = begin + samples.size
            self._audio_topic.publish(AudioChunk(begin, samples), wait)

    def _publish_frame(self, frame: Frame) -> None:
        """On the video source's thread, after the frame reached the engine's buffer."""
        video = self._video
        wait = None if video is None or video.live else self._stop
        self._frame_topic.publish(frame, wait)

    def _step(self, start: int, audio: np.ndarray, captured: int | None = None) -> None:
        began = time.monotonic()
        timeline = self._timeline
        end_s = timeline.to_capture((start + self._window) / self._rate)
        centre_s = end_s - self._window / (2 * self._rate)
        frames: list[Frame] = []
        if self._video is not None:
            self._frames.reader_time = end_s
            self._wait_for_frames(end_s)
            frames = self._frames.frames_until(end_s)
        prepared = self._preparer.prepare(audio, centre_s, frames)
        if prepared.bad_audio and not self._bad_audio_reported:
            self._bad_audio_reported = True
            self._report(self._audio.name, "delivered NaN/infinite samples; such windows are "
                                           "treated as silence")
        arousal, valence = self._stream.step(prepared.audio, prepared.face)
        if self._realtime():
            captured_s = (start + (captured or self._window)) / self._rate
            latency = (timeline.now() - captured_s) * 1000.0
        else:
            latency = (time.monotonic() - began) * 1000.0
        prediction = Prediction(t=start / self._rate, arousal=arousal, valence=valence,
                                face_found=prepared.face_found, face_score=prepared.face_score,
                                voice_active=prepared.voice_active, latency_ms=latency)
        self._steps += 1
        self._no_face += not prepared.face_found
        self._predictions.publish(prediction)

    def _wait_for_frames(self, end_s: float) -> None:
        """File video: wait until every frame up to ``end_s`` is delivered (live: never)."""
        frames = self._frames
        if frames.complete_until is None:
            return
        deadline = time.monotonic() + self._video_wait_s
        while (frames.complete_until <= end_s and not frames.finished
               and not self._video.ended and not self._stop.is_set()):
            if time.monotonic() > deadline:
                self._report(self._video.name, f"no frame for {end_s:.2f} s after "
                                               f"{self._video_wait_s:.0f} s; going on without")
                return
            self._stop.wait(_POLL_S)

    def _realtime(self) -> bool:
        return self._audio.live or getattr(self._audio, "pacing", None) is Pacing.REALTIME

    def _audio_exhausted(self, start: int) -> bool:
        return (self._audio.ended and not self._audio.live
                and self._ring.written < start + self._window)

    def _check_stall(self) -> None:
        """A live microphone that stopped or went quiet is replaced by silence."""
        if not self._audio.live or isinstance(self._audio, SilenceSource):
            return
        last = max(self._ring.last_write, self._audio_started)
        if not self._audio.ended and time.monotonic() - last < self._stall_s:
            return
        dead = self._audio
        self._report(dead.name, "stopped delivering audio; continuing with silence")
        dead.stop()
        if dead.offset_s == 0.0 and self._ring.written == 0:
            dead.offset_s = self._timeline.capture_now()  # never delivered: time starts now
        self._audio = SilenceSource(offset_s=dead.offset_s)
        self._timeline._follow(self._audio)
        self._audio.start(self._ring, self._timeline._clock, self._report)

    def _stop_sources(self) -> None:
        for source in (self._audio, self._video):
            if source is not None:
                source.stop()

    def _report(self, source: str, message: str) -> None:
        level = logging.INFO if source in ("model", "engine") else logging.WARNING
        log.log(level, "%s: %s", source, message)
        self._events.publish(EngineEvent(self._timeline.capture_now(), source, message))
