"""Read a recorded session folder back: one validated loader for exports and review.

Malformed files raise ``SessionFormatError`` naming the file and what is wrong, so a user
sees a message, never a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.recording import layout, schema
from app.recording.layout import SessionFormatError


@dataclass(frozen=True)
class RecordedSession:
    """A session folder's tables; times are on the session clock (seconds)."""

    folder: Path
    info: dict
    time_s: np.ndarray
    arousal: np.ndarray
    valence: np.ndarray
    face_found: np.ndarray  # bool
    face_score: np.ndarray
    voice_active: np.ndarray  # bool
    rating_time_s: np.ndarray
    rating_arousal: np.ndarray
    rating_valence: np.ndarray
    events: tuple[dict, ...]  # events.tsv rows, as written (onset sorted)

    @property
    def step_s(self) -> float:
        return 1.0 / self.info["rates"]["requested"]["predictions_hz"]

    @property
    def baseline(self) -> dict | None:
        """session.json's baseline when it holds statistics, else None."""
        baseline = self.info.get("baseline")
        if not baseline or not baseline.get("steps") or not baseline.get("arousal"):
            return None
        return baseline

    def corrected(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(arousal_bc, valence_bc) = raw minus the baseline mean; None without one."""
        baseline = self.baseline
        if baseline is None:
            return None
        return (self.arousal - float(baseline["arousal"]["mean"]),
                self.valence - float(baseline["valence"]["mean"]))


def read_session(folder: str | Path) -> RecordedSession:
    """Read a session folder; SessionFormatError with a message when it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SessionFormatError(f"{folder}: not a folder")
    info = layout.read_session_json(folder)
    step_s = 1.0 / info["rates"]["requested"]["predictions_hz"]
    try:
        path = folder / layout.PREDICTIONS
        rows = layout.read_table(path)
        predictions = {name: schema.column(path, rows, name) for name in
                       ("arousal", "valence", "face_found", "face_score", "voice_active")}
        predictions["time_s"] = schema.prediction_times(path, rows, step_s)
        path = folder / layout.RATINGS
        rows = layout.read_table(path)
        ratings = {name: schema.column(path, rows, name) for name in ("time_s", "arousal", "valence")}
        path = folder / layout.EVENTS
        events = layout.read_table(path, "\t")
        onsets = schema.column(path, events, "onset")
        schema.column(path, events, "duration")
    except OSError as error:
        raise SessionFormatError(f"{folder}: cannot be read ({error})") from None
    events = [{name: layout.clean_text(events[i].get(name) or "")
               for name in layout.EVENT_COLUMNS} for i in np.argsort(onsets, kind="stable")]
    return RecordedSession(
        folder, info, predictions["time_s"], predictions["arousal"], predictions["valence"],
        predictions["face_found"] > 0, predictions["face_score"], predictions["voice_active"] > 0,
        ratings["time_s"], ratings["arousal"], ratings["valence"], tuple(events))
