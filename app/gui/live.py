"""The GUI's handle on the headless engine: build sources, load and swap models, and
read what the window shows without ever waiting on the inference thread.

Everything here is called on the GUI thread and is cheap, and uses only the engine's
public surface (``app.pipeline.Engine``): ``poll()`` drains two bounded subscriptions
(predictions, events); ``latest_frame()`` and ``face_box()`` read references the source
and tracker threads already hold; ``audio_level()`` copies the newest 40 ms of audio.
Model loading is the one slow call, made only when the user asks.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from app.pipeline import Engine, EngineEvent, EngineStats, Prediction, Subscription
from app.sources import Pacing, SourceError
from app.sources.base import Frame
from app.sources.choice import SourceChoice, build_sources
from models.media import MediaError
from models.runtime import AffectSession, ModelLoadError
from models.spec import WINDOW_SAMPLES

log = logging.getLogger(__name__)

LEVEL_WINDOW = WINDOW_SAMPLES  # samples behind the audio level meter (one 40 ms step)
SILENT_DB = -60.0  # the level meter's floor


@dataclass(frozen=True)
class Poll:
    predictions: list[Prediction]
    events: list[EngineEvent]
    finished: bool  # the engine stopped by itself (end of file, fault)


def load_model(path: str | Path) -> AffectSession:
    """An AffectSession checked against its spec; ModelLoadError with a readable reason."""
    return AffectSession(path)


class LiveEngine:
    """One running Engine plus the subscriptions the window drains."""

    def __init__(self, model: AffectSession, choice: SourceChoice,
                 pacing: Pacing = Pacing.REALTIME, queue_size: int = 4096) -> None:
        audio, video = build_sources(choice, pacing)
        self.model = model
        self.choice = choice
        self.engine = Engine(model, audio, video)
        self.subscription: Subscription[Prediction] = self.engine.subscribe(queue_size)
        self.events: Subscription[EngineEvent] = self.engine.subscribe_events()
        self._finished_reported = False

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.stop()
        self.engine.unsubscribe(self.subscription)
        self.engine.unsubscribe(self.events)

    @property
    def running(self) -> bool:
        return self.engine.running

    def poll(self) -> Poll:
        predictions = self.subscription.drain()
        events = self.events.drain()
        finished = False
        if not self.engine.running and not self._finished_reported and not predictions:
            self._finished_reported = True
            finished = True
        return Poll(predictions, events, finished)

    def stats(self) -> EngineStats:
        return self.engine.stats()

    def now(self) -> float:
        """Seconds on the engine's sample clock (the clock of ``Prediction.t``); zero
        before the engine starts (``Engine.timeline``)."""
        return self.engine.timeline.now()

    def latest_frame(self) -> Frame | None:
        """The newest frame the video source delivered, or None (no video yet)."""
        return self.engine.latest_frame()

    def face_box(self) -> tuple[float, float, float, float] | None:
        """The tracker's current smoothed box (x, y, w, h) in pixels, or None."""
        return self.engine.face_box()

    def audio_level(self) -> float:
        """RMS of the newest 40 ms in dBFS, clipped to [-60, 0]; -60 when silent."""
        samples = self.engine.latest_audio(LEVEL_WINDOW)
        if samples is None:
            return SILENT_DB
        rms = float(math.sqrt(float((samples * samples).mean())))
        return max(SILENT_DB, min(0.0, 20.0 * math.log10(rms))) if rms > 1e-6 else SILENT_DB

    def source_names(self) -> tuple[str, str]:
        video = self.engine.video_source
        return (video.name if video is not None else "no video"), self.engine.audio_source.name


__all__ = ["LiveEngine", "MediaError", "ModelLoadError", "Poll", "SourceError",
           "build_sources", "load_model"]
