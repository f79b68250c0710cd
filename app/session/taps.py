"""Copies of what the engine's sources deliver (samples, frames, events) for the recorder.

The engine publishes only predictions, so the raw media are taken where the sources
hand them over: the tap wraps ``engine.ring.write``, ``engine.frames.put`` and
``engine.events.put`` on those objects (the classes are untouched) and queues a copy.
Whatever thread delivers (PortAudio's callback, the camera's) only appends to a deque:
nothing waits on the disk. Exception: a *file* video source waits for room in the frame
queue, as it already waits for the pipeline, so recording a file as fast as possible
keeps every frame; a live camera's frames are dropped, oldest first, and counted.

(The engine could offer this itself: ``Engine.tap(on_audio, on_frame, on_event)``.)
"""
from __future__ import annotations

import threading
from collections import deque

import numpy as np

from app.pipeline import Engine, EngineEvent
from app.sources.base import Frame

_WAIT_S = 0.005


class EngineTap:
    def __init__(self, engine: Engine, *, media: bool = True, max_audio_s: float = 30.0,
                 max_frames: int = 90) -> None:
        self.engine = engine
        self.media = media
        self.max_audio = int(max_audio_s * engine.rate)
        self.max_frames = max_frames
        self._audio: deque[tuple[int, np.ndarray]] = deque()  # (index of first sample, samples)
        self._audio_queued = 0
        self._audio_lock = threading.Lock()
        self._frames: deque[Frame] = deque()
        self._events: deque[EngineEvent] = deque(maxlen=1000)
        self._room = threading.Condition()
        self._closed = False
        self.audio_lost = 0  # samples dropped because the recorder fell 30 s behind
        self.frames_lost = 0
        self.first_sample: int | None = None  # ring index of the first sample tapped
        self._attached = False

    # -- on the sources' threads ---------------------------------------------------------
    def attach(self) -> None:
        engine = self.engine
        if self.media:
            ring, frames = engine.ring, engine.frames
            write, put = ring.write, frames.put

            def tapped_write(samples: np.ndarray) -> None:
                before = ring.written
                write(samples)
                self._take_audio(before, samples, ring.written - before)

            def tapped_put(frame: Frame) -> None:
                put(frame)
                self._take_frame(frame)

            ring.write, frames.put = tapped_write, tapped_put
        events_put = engine.events.put

        def tapped_event(event: EngineEvent) -> None:
            events_put(event)
            self._events.append(event)

        engine.events.put = tapped_event
        self._attached = True

    def detach(self) -> None:
        if not self._attached:
            return
        self._attached = False
        for owner, name in ((self.engine.ring, "write"), (self.engine.frames, "put"),
                            (self.engine.events, "put")):
            owner.__dict__.pop(name, None)  # back to the class's own method
        with self._room:
            self._closed = True
            self._room.notify_all()

    def _take_audio(self, before: int, samples: np.ndarray, count: int) -> None:
        if count <= 0 or self._closed:
            return
        if self.first_sample is None:
            self.first_sample = before
        chunk = np.array(samples[-count:], np.float32)  # the caller may reuse its buffer
        with self._audio_lock:  # held for a few appends, never across I/O
            self._audio.append((before + len(samples) - count, chunk))
            self._audio_queued += count
            while self._audio_queued > self.max_audio and len(self._audio) > 1:
                _, dropped = self._audio.popleft()
                self._audio_queued -= dropped.size
                self.audio_lost += dropped.size

    def _take_frame(self, frame: Frame) -> None:
        wait = not getattr(self.engine.video, "live", True)
        with self._room:
            while wait and len(self._frames) >= self.max_frames and not self._closed:
                self._room.wait(_WAIT_S)
            if self._closed:
                return
            if len(self._frames) >= self.max_frames:
                self._frames.popleft()
                self.frames_lost += 1
            self._frames.append(frame)

    # -- on the recorder's thread ----------------------------------------------------------
    def audio(self) -> list[tuple[int, np.ndarray]]:
        with self._audio_lock:
            chunks = list(self._audio)
            self._audio.clear()
            self._audio_queued = 0
        return chunks

    def frames(self) -> list[Frame]:
        with self._room:
            frames = list(self._frames)
            self._frames.clear()
            self._room.notify_all()
        return frames

    def events(self) -> list[EngineEvent]:
        events = []
        while self._events:
            events.append(self._events.popleft())
        return events

    def pending(self) -> bool:
        return bool(self._audio or self._frames or self._events)
