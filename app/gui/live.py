"""The GUI's handle on the headless engine: build sources, load and swap models, and
read what the window shows without ever waiting on the inference thread.

Everything here is called on the GUI thread and is cheap: ``poll()`` drains the
engine's bounded queues; ``latest_frame()`` and ``face_box()`` read references the
source and tracker threads already hold; ``audio_level()`` copies the newest 40 ms of
the ring (640 floats). Model loading is the one slow call, made only when the user asks.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.pipeline import Engine, EngineEvent, EngineStats, Prediction, Subscription
from app.sources import (AudioFileSource, CameraSource, MicrophoneSource, Pacing,
                         SourceError, open_file)
from app.sources.base import Frame
from app.gui.settings import SourceChoice
from models.media import MediaError
from models.runtime import AffectSession, ModelLoadError

log = logging.getLogger(__name__)

LEVEL_WINDOW = 640  # samples behind the audio level meter (40 ms)


@dataclass(frozen=True)
class Poll:
    predictions: list[Prediction]
    events: list[EngineEvent]
    finished: bool  # the engine stopped by itself (end of file, fault)


def load_model(path: str | Path) -> AffectSession:
    """An AffectSession checked against its spec; ModelLoadError with a readable reason."""
    return AffectSession(path)


def build_sources(choice: SourceChoice, pacing: Pacing = Pacing.REALTIME):
    """(audio, video) sources for ``choice``; SourceError/MediaError saying what is wrong."""
    audio = video = None
    if choice.video_file:
        file_audio, video = open_file(choice.video_file, pacing)
        if choice.microphone is None and not choice.audio_file:
            audio = file_audio
    elif choice.camera is not None:
        video = CameraSource(choice.camera)
    if choice.audio_file:
        audio = AudioFileSource(choice.audio_file, pacing)
    elif choice.microphone is not None:
        audio = MicrophoneSource(choice.microphone)
    return audio, video


class LiveEngine:
    """One running Engine plus the subscription the window drains."""

    def __init__(self, session: AffectSession, choice: SourceChoice,
                 pacing: Pacing = Pacing.REALTIME, queue_size: int = 4096) -> None:
        audio, video = build_sources(choice, pacing)
        self.session = session
        self.choice = choice
        self.engine = Engine(session, audio, video)
        self.subscription: Subscription[Prediction] = self.engine.subscribe(queue_size)
        self._finished_reported = False

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.stop()
        self.engine.unsubscribe(self.subscription)

    @property
    def running(self) -> bool:
        return self.engine.running

    def poll(self) -> Poll:
        predictions = self.subscription.drain()
        events = self.engine.events.drain()
        finished = False
        if not self.engine.running and not self._finished_reported and not predictions:
            self._finished_reported = True
            finished = True
        return Poll(predictions, events, finished)

    def stats(self) -> EngineStats:
        return self.engine.stats()

    def now(self) -> float:
        """Seconds on the engine's sample clock (the clock of ``Prediction.t``).

        Sample n of the audio source is at session time ``offset_s + n / rate``; a
        prediction's ``t`` is ``n / rate``. So the sample-clock time of *now* is the
        session clock minus the audio offset. Zero before the engine starts.
        """
        clock = self.engine.clock
        if clock is None:
            return 0.0
        return max(0.0, clock.now() - self.engine.audio.offset_s)

    def latest_frame(self) -> Frame | None:
        """The newest frame the video source delivered, or None (no video yet)."""
        frames = self.engine.frames.frames_until(math.inf)
        return frames[-1] if frames else None

    def face_box(self) -> tuple[float, float, float, float] | None:
        """The tracker's current smoothed box (x, y, w, h) in pixels, or None."""
        tracker = self.engine.preparer.tracker
        return tracker.box if tracker is not None else None

    def audio_level(self) -> float:
        """RMS of the newest 40 ms in dBFS, clipped to [-60, 0]; -60 when silent."""
        ring = self.engine.ring
        start = ring.written - LEVEL_WINDOW
        samples = ring.read(start, LEVEL_WINDOW) if start >= 0 else None
        if samples is None:
            return -60.0
        rms = float(np.sqrt(np.mean(samples * samples)))
        return max(-60.0, min(0.0, 20.0 * math.log10(rms))) if rms > 1e-6 else -60.0

    def source_names(self) -> tuple[str, str]:
        video = self.engine.video.name if self.engine.video is not None else "no video"
        return video, self.engine.audio.name


__all__ = ["LiveEngine", "MediaError", "ModelLoadError", "Poll", "SourceError",
           "build_sources", "load_model"]
