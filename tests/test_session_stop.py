"""A real `affect-monitor record` process stopped politely (SIGTERM, or SIGINT as Ctrl+C
sends) at different moments: it must finish as the time limit does, with every row on
disk, session.json final and true, and exit 0."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from app.recording import layout
from test_session_recorder import analysed, check_session, long_clip, read_rows  # noqa: F401

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_recording(out, clip, model, *extra):
    env = dict(os.environ, PYTHONPATH=PROJECT)
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "record", "--out", str(out), "--video", str(clip),
         "--model", str(model), "--seconds", "40", *extra],
        cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_rows(process, out, rows: int, timeout: float = 90.0) -> None:
    path = out / layout.PREDICTIONS
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") > rows:
            return
        if process.poll() is not None:
            raise AssertionError(f"the recording ended early: {process.stderr.read()}")
        time.sleep(0.02)
    process.kill()
    raise AssertionError("the recording never got going")


@pytest.mark.parametrize("signum, rows", [(signal.SIGTERM, 0), (signal.SIGINT, 0),
                                          (signal.SIGTERM, 60), (signal.SIGINT, 60)],
                         ids=["term-at-once", "int-at-once", "term-after-2s", "int-after-2s"])
def test_a_polite_stop_finishes_like_the_time_limit(signum, rows, long_clip, tiny_model_path,  # noqa: F811
                                                     analysed, tmp_path):  # noqa: F811
    out = tmp_path / "s"
    process = start_recording(out, long_clip, tiny_model_path)
    try:
        wait_for_rows(process, out, rows)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "stopping..." in err
    info = json.loads((out / layout.SESSION_JSON).read_text())
    assert info["status"] == layout.COMPLETE and info["stop_reason"] is None
    on_disk = read_rows(out / layout.PREDICTIONS)
    assert info["counts"]["predictions"] == len(on_disk) >= rows
    assert info["duration_s"] == pytest.approx(len(on_disk) * 0.04, abs=1e-6)
    assert f"complete: {info['duration_s']:.2f} s, {len(on_disk)} predictions" in err
    # Files are whole and agree with the offline analysis, and end together as at a time
    # limit: the predictions for all the audio captured before the stop were awaited.
    if on_disk:
        check_session(out, analysed, long_clip)


def test_a_second_signal_while_stopping_changes_nothing(long_clip, tiny_model_path,  # noqa: F811
                                                        tmp_path):
    out = tmp_path / "s"
    process = start_recording(out, long_clip, tiny_model_path)
    try:
        wait_for_rows(process, out, 25)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
            process.send_signal(signum)
            time.sleep(0.01)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "Traceback" not in err, err
    info = json.loads((out / layout.SESSION_JSON).read_text())
    assert info["status"] == layout.COMPLETE
    assert info["counts"]["predictions"] == len(read_rows(out / layout.PREDICTIONS))
