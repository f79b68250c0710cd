"""Tampered and damaged session folders: every reader (session.json, the CSVs, events.tsv)
through `affect-monitor export` and `repair` answers with a valid result or one line
naming the file and the field, never a traceback, within bounded time and output size.
The cases found by hand first, then a property-based fuzz test (hypothesis)."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.recording import layout
from app.recording.export import main as export_main
from app.recording.repair import main as repair_main

STEP = 0.04
ROWS = 50
SESSION = {
    "format": layout.FORMAT_NAME, "format_version": 1, "status": "complete",
    "stop_reason": None, "participant_id": "P01", "session_id": "1", "condition": None,
    "notes": "", "duration_s": ROWS * STEP, "wall_s": 2.1,
    "start": {"utc": "2026-01-01T10:00:00.000+00:00", "monotonic_s": 12.5, "engine_time_s": 0.0},
    "rates": {"requested": {"audio_hz": 16000, "predictions_hz": 25.0, "video_fps": 25.0}},
    "model": {"name": "tiny", "file": "tiny.onnx", "sha256": "0" * 64},
    "software": {"affect-monitor": "0.1.0"},
    "media": {"stored": True, "audio": None, "video": None},
    "baseline": {"start_s": 0.0, "requested_s": 1.0, "duration_s": 1.0, "steps": 25,
                 "complete": True, "arousal": {"mean": 0.1, "std": 0.05},
                 "valence": {"mean": -0.1, "std": 0.05}},
    "counts": {"predictions": ROWS, "ratings": 3, "events": 2},
}


def write_folder(folder: Path, info=SESSION, predictions=None, ratings=None, events=None,
                 session_text: str | None = None) -> Path:
    """A whole session folder as the recorder writes it (no media)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / layout.SESSION_JSON).write_text(
        session_text if session_text is not None else json.dumps(info))
    if predictions is None:
        predictions = [[f"{i * STEP:.3f}", f"{(i % 7) / 10:.6f}", f"{-(i % 5) / 10:.6f}",
                        str(i % 2), "0.9000", str(int(i % 3 == 0)), "12.00"] for i in range(ROWS)]
    if ratings is None:
        ratings = [["0.500", "0.2000", "-0.3000"], ["1.000", "0.1000", "0.4000"],
                   ["1.700", "-0.5000", "0.0000"]]
    if events is None:
        events = [["0.000", "1", "baseline", "arousal mean"], ["1.200", "0", "event", "film 3"]]
    for name, columns, rows, sep in ((layout.PREDICTIONS, layout.PREDICTION_COLUMNS, predictions, ","),
                                     (layout.RATINGS, layout.RATING_COLUMNS, ratings, ","),
                                     (layout.EVENTS, layout.EVENT_COLUMNS, events, "\t")):
        lines = [sep.join(columns)] + [sep.join(map(str, row)) for row in rows]
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def run(main, argv) -> tuple[int, str, float]:
    """(exit status, stderr, seconds) of a subcommand run in this process; an exception
    it lets through fails the test with its traceback."""
    err = io.StringIO()
    began = time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue(), time.monotonic() - began


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def check_readers(folder: Path, out: Path) -> dict[str, int]:
    """Export to every format and repair: each a result or one line; returns the codes."""
    codes = {}
    input_bytes = folder_bytes(folder)
    for to in ("elan", "bids", "carma"):
        target = out / to
        code, err, seconds = run(export_main, [str(folder), "--to", to, "--out", str(target)])
        assert code in (0, 2) and seconds < 30, (to, code, seconds)
        if code:
            assert err.count("\n") == 1 and err.startswith("affect-monitor export: "), err
        else:
            assert err == ""
            # Output in proportion to the input: at most a minute of n/a steps per row.
            assert folder_bytes(target) <= 1_000_000 + 2000 * input_bytes
        if code == 0 and to == "elan":
            ElementTree.parse(target / "session.eaf")  # well-formed XML
        codes[to] = code
    before = folder_bytes(folder)
    code, err, seconds = run(repair_main, [str(folder), "--force"])
    assert code in (0, 2) and seconds < 30, (code, err)
    if code:
        assert err.count("\n") == 1 and err.startswith("affect-monitor repair: "), err
    assert folder_bytes(folder) <= before + 100_000  # repair rewrites, never inflates
    assert not list(folder.glob("*.tmp"))
    codes["repair"] = code
    return codes


def test_a_whole_folder_exports_and_needs_no_repair(tmp_path):
    assert check_readers(write_folder(tmp_path / "s"), tmp_path / "out") == {
        "elan": 0, "bids": 0, "carma": 0, "repair": 0}


def one_line_error(folder: Path, out: Path) -> str:
    code, err, _ = run(export_main, [str(folder), "--to", "carma", "--out", str(out)])
    assert code == 2 and err.count("\n") == 1, err
    check_readers(folder, out)
    return err


@pytest.mark.parametrize("change, message", [
    (lambda info: [info], "session.json: the file must be object"),
    (lambda info: {**info, "rates": {"requested": {"predictions_hz": 0}}},
     "session.json: rates.requested.predictions_hz must be bigger than or equal to 1 (found 0)"),
    (lambda info: {**info, "rates": {"requested": {"predictions_hz": 1e-300}}},
     "rates.requested.predictions_hz must be bigger than or equal to 1"),
    (lambda info: {**info, "duration_s": "long"}, "session.json: duration_s must be number"),
    (lambda info: {**info, "status": "done"}, "session.json: status must be one of"),
], ids=["a-list", "hz-0", "hz-1e-300", "duration-text", "status-unknown"])
def test_a_tampered_session_json_is_one_line_naming_the_field(change, message, tmp_path):
    folder = write_folder(tmp_path / "s", change(copy.deepcopy(SESSION)))
    assert message in one_line_error(folder, tmp_path / "out")


def test_nan_in_session_json_is_refused(tmp_path):
    text = json.dumps(SESSION).replace('"predictions_hz": 25.0', '"predictions_hz": NaN')
    folder = write_folder(tmp_path / "s", session_text=text)
    assert "NaN is not a number JSON allows" in one_line_error(folder, tmp_path / "out")


def test_a_time_far_beyond_the_recording_is_refused(tmp_path):
    folder = write_folder(tmp_path / "s")
    path = folder / layout.PREDICTIONS
    lines = path.read_text().splitlines()
    lines[10] = "1000000000" + lines[10][lines[10].index(","):]
    path.write_text("\n".join(lines) + "\n")
    err = one_line_error(folder, tmp_path / "out")
    assert "predictions.csv: row 10: time_s 1000000000.0 is not within 0..604800" in err


def test_a_nul_in_a_marker_still_gives_valid_elan(tmp_path):
    folder = write_folder(tmp_path / "s", events=[["0.500", "0", "event", "a\x00b\x07c"]])
    code, err, _ = run(export_main, [str(folder), "--to", "elan"])
    assert code == 0, err
    tree = ElementTree.parse(folder / "session.eaf")
    values = [v.text for v in tree.iter("ANNOTATION_VALUE")]
    assert "event: abc" in values


# -- the fuzz test ---------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6)
FIELDS = [("rates", "requested", "predictions_hz"), ("rates", "requested"), ("rates",),
          ("duration_s",), ("status",), ("format_version",), ("participant_id",),
          ("session_id",), ("baseline",), ("baseline", "arousal"), ("baseline", "arousal", "mean"),
          ("baseline", "steps"), ("baseline", "start_s"), ("media",), ("model",), ("software",),
          ("start",), ("counts",), ("repaired",)]
NUMBERS_AS_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e9", "-1", "1e-300", "nan", "inf", "", "n/a", "0x10", "1,5", "\x00"]),
    st.text(max_size=12))
TABLES = {layout.PREDICTIONS: (layout.PREDICTION_COLUMNS, ","),
          layout.RATINGS: (layout.RATING_COLUMNS, ","),
          layout.EVENTS: (layout.EVENT_COLUMNS, "\t")}


@st.composite
def damage(draw):
    """1-3 changes to a whole folder: a session.json field (or the whole file), a table
    cell, a raw line appended or the file cut anywhere."""
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["field", "json", "cell", "line", "cut"]))
        if kind == "field":
            changes.append((kind, draw(st.sampled_from(FIELDS)), draw(JSON_VALUES)))
        elif kind == "json":
            changes.append((kind, None, draw(JSON_VALUES | st.text(max_size=40))))
        else:
            name = draw(st.sampled_from(sorted(TABLES) + [layout.SESSION_JSON] * (kind == "cut")))
            columns = TABLES.get(name, ((None,), None))[0]
            changes.append((kind, name, (draw(st.integers(0, ROWS)),
                                         draw(st.sampled_from(columns)),
                                         draw(NUMBERS_AS_TEXT))))
    return changes


def apply(folder: Path, changes) -> None:
    info = copy.deepcopy(SESSION)
    write_folder(folder, info)
    for kind, where, what in changes:
        session = folder / layout.SESSION_JSON
        if kind == "field":
            node = info
            for key in where[:-1]:
                if not isinstance(node.get(key), dict):
                    node[key] = {}
                node = node[key]
            node[where[-1]] = what
            session.write_text(json.dumps(info))
        elif kind == "json":
            session.write_text(what if isinstance(what, str) else json.dumps(what))
        else:
            path = folder / where
            row, column, text = what
            if kind == "cut":
                data = path.read_bytes()
                path.write_bytes(data[:row * len(data) // ROWS])
                continue
            columns, sep = TABLES[where]
            lines = path.read_text().split("\n")
            if kind == "line":
                lines.insert(min(row + 1, len(lines) - 1), text)
            elif row + 1 < len(lines) - 1:
                cells = lines[row + 1].split(sep)
                cells += [""] * (len(columns) - len(cells))  # a line the fuzz inserted
                cells[columns.index(column)] = text.replace("\n", " ")
                lines[row + 1] = sep.join(cells)
            path.write_text("\n".join(lines))


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(changes=damage())
def test_no_damaged_folder_gets_a_traceback_or_runs_away(changes, tmp_path):
    root = tmp_path / "fuzz"
    shutil.rmtree(root, ignore_errors=True)
    apply(root / "s", changes)
    codes = check_readers(root / "s", root / "out")
    event("refused" if codes["carma"] else "exported")  # --hypothesis-show-statistics
