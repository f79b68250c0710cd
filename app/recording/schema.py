"""What a session folder may hold, with a bound on every number a reader uses: the one
validation that export, review and repair read through.

session.json is checked against a JSON Schema (draft-07, compiled by ``fastjsonschema``:
pure Python, no dependencies); the CSV/TSV columns against ``COLUMNS`` (vectorised, as
files reach millions of rows). Each problem is one ``SessionFormatError`` line naming
the file, the field (and the row) and the bound, e.g.
``session.json: rates.requested.predictions_hz must be bigger than or equal to 1 (found 0)``.

The bounds are wide enough for any real recording and tight enough that no tampered or
damaged file can make a reader run away (a week at most, 1-100 predictions a second, no
gap between predictions over a minute: exports stay proportional to what was recorded).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import fastjsonschema
import numpy as np

from app.recording import layout
from app.recording.layout import SessionFormatError

MAX_SESSION_S = 7 * 24 * 3600.0  # the longest recording any reader accepts (a week)
MAX_GAP_S = 60.0  # the longest gap between two predictions (a minute dropped under load)
MAX_JSON_BYTES = 10_000_000
MAX_TEXT = 100_000


def _number(low: float, high: float, null: bool = False) -> dict:
    return {"type": ["number", "null"] if null else "number", "minimum": low, "maximum": high}


def _integer(low: int, high: int) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high}


_TEXT = {"type": ["string", "null"], "maxLength": MAX_TEXT}
_STEPS = _integer(0, int(MAX_SESSION_S * 100))
_MOMENTS = {"type": ["object", "null"], "required": ["mean", "std"],
            "properties": {"mean": _number(-2, 2), "std": _number(0, 4)}}

SESSION_JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["format", "format_version", "status", "rates"],
    "properties": {
        "format": {"const": layout.FORMAT_NAME},
        "format_version": _integer(1, layout.FORMAT_VERSION),
        "status": {"enum": [layout.RECORDING, layout.COMPLETE, layout.STOPPED,
                            layout.INTERRUPTED]},
        "stop_reason": _TEXT,
        "participant_id": _TEXT, "session_id": _TEXT, "condition": _TEXT, "notes": _TEXT,
        "duration_s": _number(0, MAX_SESSION_S),
        "wall_s": _number(0, 10 * MAX_SESSION_S, null=True),
        "start": {"type": "object", "properties": {
            "utc": _TEXT, "monotonic_s": {"type": ["number", "null"]},
            "engine_time_s": _number(0, 1e9)}},
        "rates": {"type": "object", "required": ["requested"], "properties": {
            "requested": {"type": "object", "required": ["predictions_hz"], "properties": {
                "predictions_hz": _number(1, 100),
                "audio_hz": _number(1000, 384_000),
                "video_fps": _number(0, 1000, null=True)}}}},
        "model": {"type": "object", "properties": {"name": _TEXT, "file": _TEXT,
                                                   "sha256": _TEXT}},
        "software": {"type": "object", "properties": {"affect-monitor": _TEXT}},
        "media": {"type": "object", "properties": {
            "audio": {"type": ["object", "null"], "properties": {
                "seconds": _number(0, MAX_SESSION_S * 2, null=True),
                "samples": _integer(0, int(MAX_SESSION_S * 2 * 384_000))}},
            "video": {"type": ["object", "null"], "properties": {
                "frames": {"type": ["integer", "null"], "minimum": 0,
                           "maximum": int(MAX_SESSION_S * 1000)},
                "placeholder_frame_at_0": {"type": "boolean"}}}}},
        "baseline": {"type": ["object", "null"], "properties": {
            "start_s": _number(0, MAX_SESSION_S), "requested_s": _number(0, MAX_SESSION_S),
            "duration_s": _number(0, MAX_SESSION_S), "steps": _STEPS,
            "complete": {"type": "boolean"}, "arousal": _MOMENTS, "valence": _MOMENTS}},
        "counts": {"type": "object", "properties": {
            "predictions": _STEPS, "ratings": _STEPS, "events": _STEPS}},
        "repaired": {"type": "array", "maxItems": 1000},
    },
}
_validate_session_json = fastjsonschema.compile(SESSION_JSON_SCHEMA)


def _not_json_number(token: str):
    raise ValueError(f"{token} is not a number JSON allows")


def parse_session_json(path: Path) -> dict:
    """session.json's content, validated; SessionFormatError naming the field otherwise."""
    if path.stat().st_size > MAX_JSON_BYTES:
        raise SessionFormatError(f"{path}: larger than {MAX_JSON_BYTES // 1_000_000} MB; "
                                 "not a session file")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"),
                          parse_constant=_not_json_number)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise SessionFormatError(f"{path}: unreadable ({_short(error)})") from None
    if isinstance(data, dict) and data.get("format") != layout.FORMAT_NAME:
        raise SessionFormatError(f"{path}: not an affect-monitor session file")
    try:
        _validate_session_json(data)
    except fastjsonschema.JsonSchemaValueException as error:
        field = error.name.removeprefix("data").lstrip(".") or "the file"
        message = error.message.replace(error.name, field, 1)
        found = "" if error.rule == "required" else f" (found {_short(error.value)})"
        raise SessionFormatError(f"{path}: {message}{found}") from None
    return data


# -- the tables -----------------------------------------------------------------------------
# column -> (low, high, integral); a column a reader does not use is not listed.
COLUMNS: dict[str, dict[str, tuple[float, float, bool]]] = {
    layout.PREDICTIONS: {"time_s": (0, MAX_SESSION_S, False), "arousal": (-2, 2, False),
                         "valence": (-2, 2, False), "face_found": (0, 1, True),
                         "face_score": (0, 1, False), "voice_active": (0, 1, True)},
    layout.RATINGS: {"time_s": (-MAX_SESSION_S, MAX_SESSION_S, False),
                     "arousal": (-1, 1, False), "valence": (-1, 1, False)},
    layout.EVENTS: {"onset": (0, MAX_SESSION_S, False), "duration": (0, MAX_SESSION_S, False)},
    layout.FRAMES: {"frame": (0, MAX_SESSION_S * 1000, True),
                    "time_s": (0, MAX_SESSION_S, False),
                    "source_frame": (0, 1e12, True)},
}
OPTIONAL = {(layout.EVENTS, "duration")}  # "", "n/a": no duration (BIDS)


def column(path: Path, rows: list[dict], name: str) -> np.ndarray:
    """Column ``name`` of ``rows`` (read from ``path``) as float64, within its bounds;
    SessionFormatError naming the file, the row (1 = the first after the header) and the
    column otherwise. An optional column's blanks read as NaN."""
    low, high, integral = COLUMNS[path.name][name]
    optional = (path.name, name) in OPTIONAL
    values = np.empty(len(rows), np.float64)
    for index, row in enumerate(rows):
        text = row.get(name)
        if optional and text in ("", "n/a", None):
            values[index] = math.nan
            continue
        try:
            values[index] = float(text)
        except (TypeError, ValueError):
            raise SessionFormatError(f"{path}: row {index + 1}: {name} {_short(text)} is "
                                     "missing or not a number") from None
    checked = values[~np.isnan(values)] if optional else values
    bad = ~((checked >= low) & (checked <= high))  # NaN fails too
    if integral:
        bad |= checked != np.round(checked)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        if optional:
            index = int(np.flatnonzero(~np.isnan(values))[index])
        kind = "a whole number " if integral else ""
        raise SessionFormatError(f"{path}: row {index + 1}: {name} {values[index]!r} is not "
                                 f"{kind}within {low:g}..{high:g}")
    return values


def prediction_times(path: Path, rows: list[dict], step_s: float) -> np.ndarray:
    """predictions.csv's time_s: in bounds, increasing, no gap over ``MAX_GAP_S``."""
    times = column(path, rows, "time_s")
    steps = np.diff(np.concatenate([[-step_s], times]))
    wrong = np.flatnonzero((steps <= 0) | (steps > MAX_GAP_S + step_s))
    if wrong.size:
        index = int(wrong[0])
        what = ("does not increase" if steps[index] <= 0
                else f"follows a gap of {steps[index]:.1f} s (at most {MAX_GAP_S:g} s)")
        raise SessionFormatError(f"{path}: row {index + 1}: time_s {times[index]!r} {what}")
    return times


def check_table(path: Path, rows: list[dict]) -> None:
    """Every bounded column of a table read from ``path``."""
    for name in COLUMNS[path.name]:
        column(path, rows, name)


def _short(value, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, BaseException) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."
