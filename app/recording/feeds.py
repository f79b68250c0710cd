"""What a recorder takes from an engine: its subscriptions (``Engine.subscribe*``).

Predictions and events always; with media, audio chunks and frames too. Nothing here
runs on a capture thread: the engine publishes audio from its inference thread and
frames from the video source's thread, and never waits on a device's behalf. A *file*
source waits for room, as it waits for the model, so recording a file as fast as
possible keeps every sample and frame; a live device's items are dropped, oldest first,
and counted (``Subscription.dropped``).
"""
from __future__ import annotations

from app.pipeline import AudioChunk, Engine, EngineEvent, Prediction, Subscription
from app.sources.base import Frame

PREDICTIONS_QUEUE = 1500  # a minute of 40 ms steps
AUDIO_QUEUE = 1500  # chunks: about 30 s of a microphone's 20 ms blocks
FRAMES_QUEUE = 90  # three seconds of a 30 fps camera
EVENTS_QUEUE = 1000


class EngineFeeds:
    def __init__(self, engine: Engine, media: bool) -> None:
        self.engine = engine
        self.predictions: Subscription[Prediction] = engine.subscribe(PREDICTIONS_QUEUE)
        self.events: Subscription[EngineEvent] = engine.subscribe_events(EVENTS_QUEUE)
        self.audio: Subscription[AudioChunk] | None = None
        self.frames: Subscription[Frame] | None = None
        if media:
            self.audio = engine.subscribe_audio(AUDIO_QUEUE)
            self.frames = engine.subscribe_frames(FRAMES_QUEUE)
        self._audio_dropped_seen = 0

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(s for s in (self.predictions, self.events, self.audio, self.frames)
                     if s is not None)

    def take_audio(self) -> tuple[list[AudioChunk], bool]:
        """The chunks queued now, and whether the queue dropped any since the last call."""
        if self.audio is None:
            return [], False
        chunks = self.audio.drain()
        dropped = self.audio.dropped > self._audio_dropped_seen
        self._audio_dropped_seen = self.audio.dropped
        return chunks, dropped

    def take_frames(self) -> list[Frame]:
        return self.frames.drain() if self.frames is not None else []

    def pending(self) -> bool:
        """Media or events still queued (the engine may have finished already)."""
        return any(s is not self.predictions and len(s) > 0 for s in self.subscriptions)

    @property
    def frames_lost(self) -> int:
        return self.frames.dropped if self.frames is not None else 0

    def close(self) -> None:
        """Unsubscribe: no source waits for this recorder any more; what is queued stays."""
        for subscription in self.subscriptions:
            self.engine.unsubscribe(subscription)
