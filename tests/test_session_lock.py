"""One recording per session folder: an exclusive OS lock taken before the folder is
looked at, held until the last file is closed. Recorders racing on one folder, in one
process (many trials) and as real `affect-monitor record` processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from app.pipeline import Engine
from app.recording import layout
from app.recording.recorder import RecorderError, SessionRecorder
from app.recording.repair import RepairError, repair
from models.runtime import AffectSession
from test_session_recorder import long_clip, read_rows  # noqa: F401

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def session(tiny_model_path):
    return AffectSession(tiny_model_path, intra_op_threads=1)


def test_recorders_started_together_on_one_folder_never_both_record(session, tmp_path):
    """50 trials: two recorders start on one folder at the same instant (a barrier);
    exactly one records, the other is refused with a message, every time."""
    for trial in range(50):
        out = tmp_path / f"trial{trial}"
        recorders = [SessionRecorder(out, {}, Engine(session, None, None), store_media=False)
                     for _ in range(2)]
        barrier = threading.Barrier(2)
        outcomes: list = [None, None]

        def start(index):
            barrier.wait()
            try:
                recorders[index].start()
                outcomes[index] = "recording"
            except RecorderError as error:
                outcomes[index] = str(error)

        threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert outcomes.count("recording") == 1, (trial, outcomes)
        refusal = next(o for o in outcomes if o != "recording")
        assert "in use by another" in refusal or "already holds" in refusal
        for recorder, outcome in zip(recorders, outcomes):
            if outcome == "recording":
                assert recorder.stop()["status"] == layout.COMPLETE


def test_the_lock_is_held_while_recording_and_released_at_the_end(session, tmp_path):
    out = tmp_path / "s"
    recorder = SessionRecorder(out, {}, Engine(session, None, None), store_media=False)
    recorder.start()
    with pytest.raises(RecorderError, match="in use by another"):
        SessionRecorder(out, {}, Engine(session, None, None)).start()
    with pytest.raises(RepairError, match="in use by another"):
        repair(out, force=True)  # not even --force repairs a folder being recorded
    recorder.stop()
    layout.lock_folder(out).release()  # free again
    with pytest.raises(RecorderError, match="already holds a recorded session"):
        SessionRecorder(out, {}, Engine(session, None, None)).start()


def test_two_record_processes_on_one_folder(long_clip, tiny_model_path, tmp_path):  # noqa: F811
    """Real processes, started together: one records, the other exits 2 saying why; the
    folder holds one whole recording (no interleaved rows)."""
    for trial in range(3):
        out = tmp_path / f"s{trial}"
        command = [sys.executable, "-m", "app.cli", "record", "--out", str(out), "--video",
                   str(long_clip), "--fast", "--seconds", "4", "--no-media", "--vad", "energy",
                   "--model", str(tiny_model_path)]
        env = dict(os.environ, PYTHONPATH=PROJECT)
        processes = [subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 2], results
        loser = next(err for code, err in results if code == 2)
        assert "Traceback" not in loser
        assert "in use by another" in loser or "already holds a recorded session" in loser
        rows = read_rows(out / layout.PREDICTIONS)
        assert len(rows) == 100 == json.loads((out / layout.SESSION_JSON).read_text())[
            "counts"]["predictions"]
        assert [float(r["time_s"]) for r in rows] == pytest.approx(
            [i * 0.04 for i in range(100)], abs=1e-6)
