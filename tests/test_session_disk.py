"""A disk that is full, at the start or mid-recording: a one-line message, what was
recorded kept with its stop reason (also through `repair`), and no leftovers in the way
of a retry. A real full disk is a small tmpfs (needs root, as on CI; skipped otherwise);
the start-up case also runs everywhere under a per-process file size limit."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import uuid

import pytest

from app.recording import layout
from test_session_recorder import long_clip, read_rows  # noqa: F401

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def record(out, clip, model, preexec_fn=None, *extra):
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "record", "--out", str(out), "--video", str(clip),
         "--fast", "--vad", "energy", "--model", str(model), *extra],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, preexec_fn=preexec_fn)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs; skipped where mounting is not allowed."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_no_room_for_session_json_at_start_is_a_message_and_leaves_nothing(
        long_clip, tiny_model_path, tmp_path):  # noqa: F811
    out = tmp_path / "s"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))  # session.json is ~6 kB

    result = record(out, long_clip, tiny_model_path, small_files)
    assert result.returncode == 2, result.stderr
    assert "cannot record into" in result.stderr and "size limit" in result.stderr
    assert "Traceback" not in result.stderr
    assert not [p.name for p in out.iterdir() if not p.name == layout.LOCK]
    result = record(out, long_clip, tiny_model_path, None, "--seconds", "1", "--no-media")
    assert result.returncode == 0, result.stderr  # the same folder, once there is room


def test_a_disk_full_at_start_and_mid_recording(small_disk, long_clip, tiny_model_path):  # noqa: F811
    filler = small_disk / "filler"
    filler.write_bytes(bytes(1024 * 1000))  # ~24 kB left
    result = record(small_disk / "s", long_clip, tiny_model_path)
    assert result.returncode == 2 and "the disk is full" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    filler.unlink()

    out = small_disk / "s"  # 1 MB: full after a few seconds of video
    result = record(out, long_clip, tiny_model_path)
    assert result.returncode == 1, result.stderr
    assert "the disk is full" in result.stderr and "Traceback" not in result.stderr
    info = json.loads((out / layout.SESSION_JSON).read_text())
    assert info["status"] == layout.STOPPED and "the disk is full" in info["stop_reason"]
    # repair, on the disk still full: the reason stays, the counts become what is on disk
    result = subprocess.run([sys.executable, "-m", "app.cli", "repair", str(out)], cwd=PROJECT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 2) and "Traceback" not in result.stderr, result.stderr
    assert not list(out.glob("*.tmp")) and not (out / layout.RESERVE).exists()
    info = json.loads((out / layout.SESSION_JSON).read_text())
    assert info["status"] == layout.STOPPED and "the disk is full" in info["stop_reason"]
    if result.returncode == 0:
        rows = read_rows(out / layout.PREDICTIONS)
        assert info["counts"]["predictions"] == len(rows) > 25
        assert info["duration_s"] == pytest.approx(len(rows) * 0.04, abs=1e-6)
