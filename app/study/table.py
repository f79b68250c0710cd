"""The study table (``study.csv``, and ``study.parquet`` with pyarrow) and ``failures.csv``.

One row per study file, in study order, built from each file's ``summary.json``, so a
file analysed now and one skipped as up to date give the same row: the table is the
same whatever ran it, whichever worker, however many re-runs.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from app.study.inputs import StudyFile
from app.study.task import SUMMARY

STUDY_CSV = "study.csv"
STUDY_PARQUET = "study.parquet"
FAILURES_CSV = "failures.csv"

STATS = tuple(f"{dimension}_{stat}" for dimension in ("arousal", "valence")
              for stat in ("mean", "sd", "p10", "p90"))
STUDY_COLUMNS = ("participant", "session", "name", "media", "duration_s", "steps",
                 "face_share", "voice_share", *STATS, "model", "model_sha256", "status")
FAILURE_COLUMNS = ("name", "media", "error")
_FLOATS = ("duration_s", "face_share", "voice_share", *STATS)
OK, FAILED = "ok", "failed"


def study_row(item: StudyFile, out: Path, failed: bool) -> dict:
    """The table row of one file: its summary's figures, or only who/what when failed."""
    row = {column: None for column in STUDY_COLUMNS}
    row.update(participant=item.participant, session=item.session, name=item.name,
               media=str(item.media), status=FAILED)
    if failed:
        return row
    try:
        summary = json.loads((out / item.name / SUMMARY).read_text())
    except (OSError, ValueError):
        return row
    row.update({key: summary.get(key) for key in ("duration_s", "steps", "face_share",
                                                  "voice_share", *STATS)})
    model = summary.get("model") or {}
    row.update(model=model.get("name"), model_sha256=model.get("sha256"), status=OK)
    return row


def write_study_table(rows: list[dict], out: Path) -> list[Path]:
    """study.csv, and study.parquet when pyarrow is installed; the paths written."""
    written = [out / STUDY_CSV]
    _write_csv(out / STUDY_CSV, STUDY_COLUMNS, [_formatted(row) for row in rows])
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return written
    types = {"steps": pyarrow.int64(), **{c: pyarrow.float64() for c in _FLOATS}}
    table = pyarrow.table({c: pyarrow.array([row[c] for row in rows],
                                            types.get(c, pyarrow.string()))
                           for c in STUDY_COLUMNS})
    temporary = out / f".{STUDY_PARQUET}.tmp"
    pyarrow.parquet.write_table(table, temporary)
    os.replace(temporary, out / STUDY_PARQUET)
    return [*written, out / STUDY_PARQUET]


def write_failures(failures: list[tuple[StudyFile, str]], out: Path) -> Path:
    """failures.csv: one line per file that failed in this run (header only: none)."""
    rows = [{"name": item.name, "media": str(item.media), "error": error}
            for item, error in failures]
    _write_csv(out / FAILURES_CSV, FAILURE_COLUMNS, rows)
    return out / FAILURES_CSV


def _formatted(row: dict) -> dict:
    """Fixed decimals: the same numbers always give the same bytes."""
    text = dict(row)
    for column in _FLOATS:
        value = row[column]
        places = 3 if column == "duration_s" else 6
        text[column] = "" if value is None else f"{value:.{places}f}"
    text["steps"] = "" if row["steps"] is None else str(int(row["steps"]))
    return {key: "" if value is None else value for key, value in text.items()}


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    """Written beside and renamed over: a reader never sees half a table."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)
