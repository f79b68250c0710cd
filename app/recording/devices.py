"""Whether a live camera or microphone was lost during a recording.

Judged on the sources' own state, not on the wording of their messages: the engine
replaced the microphone by silence (``Engine.audio_source`` is no longer the source it
started with), or a live source's thread ended (``Source.ended``) while the engine went
on stepping (an engine being stopped ends its sources too, but takes no step after
that). The source's last fault message says why.
"""
from __future__ import annotations

from app.pipeline import Engine


class DeviceWatcher:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.audio = engine.audio_source  # the sources the recording started with
        self.video = engine.video_source
        self.faults: dict[str, tuple[float, str]] = {}  # source -> (onset, message)
        self._ended_at_step: dict[str, int] = {}  # live source seen ended -> engine steps

    def fault(self, source: str, onset_s: float, message: str) -> None:
        """A source's fault message at ``onset_s`` (folder seconds): the reason if lost."""
        self.faults[source] = (onset_s, message)

    def lost(self, now_s: float) -> str | None:
        """Why a live device is gone ("<name> was lost at <s> s (<why>)"), else None."""
        source = self._lost_source()
        if source is None:
            return None
        onset, why = self.faults.get(source.name, (now_s, "no longer delivers"))
        return f"{source.name} was lost at {onset:.1f} s ({why})"

    def _lost_source(self):
        audio, video = self.audio, self.video
        if audio is not None and audio.live and self.engine.audio_source is not audio:
            return audio  # the engine put silence in the microphone's place
        if video is not None and video.live and video.ended:
            steps = self.engine.stats().steps
            seen = self._ended_at_step.setdefault(video.name, steps)
            if steps > seen:  # ... and the engine stepped on after the camera ended
                return video
        return None
