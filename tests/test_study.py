"""`affect-monitor analyze` over a study: the same bytes from one process, a 2-process
pool and a real 2-worker Dask cluster; a killed run resumes; bad files are reported.

Real media (CREMA-D clips with real faces, plus generated videos and sounds), a real
exported ONNX model, real processes. Kept small: the whole module runs in well under a
minute on two cores.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.study.cli import main
from app.study.engines import DASK_WORKER_SETTINGS
from app.study.inputs import StudyInputError, find_study_files
from app.study.table import STUDY_COLUMNS
from models.media import write_media

PROJECT = Path(__file__).resolve().parents[1]
RATE = 16_000
TIMING = ("seconds_taken", "speed_vs_realtime")  # the only summary fields allowed to differ


def make_video(path: Path, seconds: float, seed: int, *, sound: bool = True,
               fps: int = 25) -> Path:
    """A moving gradient with noise and (optionally) a tone that comes and goes: H.264 +
    AAC in MP4, 160x120."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, 160, dtype=np.float32)[None, :, None]
    images = (np.clip(np.roll(ramp, 3 * i, axis=1) + rng.normal(0, 12, (120, 160, 3)), 0, 255)
              .astype(np.uint8) for i in range(int(seconds * fps)))
    write_media(path, images, tone(seconds, seed) if sound else None, fps=fps, rate=RATE)
    return path


def tone(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    on = (np.sin(2 * np.pi * 0.7 * t + seed) > 0).astype(np.float32)  # on and off
    return (0.3 * on * np.sin(2 * np.pi * (180 + 20 * seed) * t)).astype(np.float32)


def make_session(folder: Path, seconds: float, participant: str, session: str) -> Path:
    """A recorded session folder as `affect-monitor record` leaves it: silent video.mp4
    and audio.wav on one clock, ids in session.json."""
    folder.mkdir(parents=True)
    make_video(folder / "video.mp4", seconds - 0.4, seed=7, sound=False)  # camera ends first
    soundfile.write(folder / "audio.wav", tone(seconds, 7), RATE, subtype="PCM_16")
    (folder / "session.json").write_text(json.dumps({
        "format": "affect-monitor-session", "format_version": 1,
        "participant_id": participant, "session_id": session, "status": "complete",
        "rates": {"requested": {"predictions_hz": 25}}}))
    return folder


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def outputs(out: Path) -> dict[str, bytes]:
    """Every CSV the run wrote, and each summary.json without its timing fields."""
    found = {}
    for path in sorted(out.rglob("*")):
        if path.suffix == ".csv":
            found[str(path.relative_to(out))] = path.read_bytes()
        elif path.name == "summary.json":
            summary = json.loads(path.read_text())
            for key in TIMING:
                summary.pop(key)
            found[str(path.relative_to(out))] = json.dumps(summary, sort_keys=True).encode()
    return found


def run(*args) -> int:
    return main([*map(str, args), "--no-progress"])


# -- the same bytes from every engine -----------------------------------------------------
@pytest.fixture(scope="module")
def study(cremad_dir, tmp_path_factory) -> Path:
    """Six CREMA-D clips (real faces and voices) and three generated files, in sub-folders."""
    root = tmp_path_factory.mktemp("study")
    (root / "cremad").mkdir()
    for clip in sorted(cremad_dir.glob("*.flv")):
        shutil.copy(clip, root / "cremad" / clip.name)
    (root / "generated").mkdir()
    make_video(root / "generated" / "moving.mp4", 3.0, seed=1)
    make_video(root / "generated" / "silent.mp4", 2.0, seed=2, sound=False)
    soundfile.write(root / "generated" / "voice.wav", tone(2.5, 3), RATE)
    (root / "generated" / "notes.txt").write_text("not media: ignored")
    return root


@pytest.fixture(scope="module")
def serial(study, tiny_model_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serial")
    assert run(study, "--out", out, "--model", tiny_model_path) == 0
    return out


def test_serial_run_writes_a_folder_per_file_and_the_study_table(serial):
    rows = read_rows(serial / "study.csv")
    assert tuple(rows[0]) == STUDY_COLUMNS
    names = [row["name"] for row in rows]
    assert names == sorted(names) and len(names) == 9
    assert "generated_moving" in names and "cremad_1001_DFA_ANG_XX" in names
    assert all(row["status"] == "ok" and row["model"] == "tiny" for row in rows)
    for row in rows:
        predictions = read_rows(serial / row["name"] / "predictions.csv")
        assert int(row["steps"]) == len(predictions)
        arousal = np.array([float(r["arousal"]) for r in predictions])
        assert float(row["arousal_mean"]) == pytest.approx(arousal.mean(), abs=1e-6)
        p10, p90 = np.percentile(arousal, [10, 90])
        assert float(row["arousal_p10"]) == pytest.approx(p10, abs=2e-6)
        assert float(row["arousal_p90"]) == pytest.approx(p90, abs=2e-6)
        summary = json.loads((serial / row["name"] / "summary.json").read_text())
        assert summary["inputs"][0]["sha256"] and summary["inputs"][0]["size"] > 0
        assert len(summary["model"]["sha256"]) == 64
        if row["name"].startswith("cremad"):
            assert float(row["face_share"]) >= 0.95 and float(row["voice_share"]) > 0.2
    by_name = {row["name"]: row for row in rows}
    assert by_name["generated_voice"]["face_share"] == "0.000000"
    assert read_rows(serial / "failures.csv") == []


def test_two_local_processes_write_the_same_bytes(study, serial, tiny_model_path, tmp_path):
    assert run(study, "--out", tmp_path, "--model", tiny_model_path, "--workers", 2) == 0
    assert outputs(tmp_path) == outputs(serial)


def test_a_dask_cluster_of_two_worker_processes_writes_the_same_bytes(study, serial,
                                                                       tiny_model_path,
                                                                       tmp_path, capsys):
    import dask
    from distributed import LocalCluster

    with dask.config.set(DASK_WORKER_SETTINGS), LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            dashboard_address=None) as cluster:
        assert run(study, "--out", tmp_path, "--model", tiny_model_path,
                   "--cluster", cluster.scheduler_address) == 0
    assert "on the Dask cluster at tcp://" in capsys.readouterr().out
    assert outputs(tmp_path) == outputs(serial)


def test_study_parquet_holds_the_csv_table(serial):
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    table = pyarrow_parquet.read_table(serial / "study.parquet").to_pylist()
    rows = read_rows(serial / "study.csv")
    assert [t["name"] for t in table] == [r["name"] for r in rows]
    assert all(t["steps"] == int(r["steps"]) and f"{t['valence_sd']:.6f}" == r["valence_sd"]
               for t, r in zip(table, rows))


# -- resuming -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    for index in range(8):
        make_video(root / f"clip{index}.mp4", 3.0, seed=index)
    return root


def finished_summaries(out: Path) -> list[Path]:
    """summary.json of finished folders (not of a .name.partial-* one being written)."""
    return [p for p in out.glob("*/summary.json") if not p.parent.name.startswith(".")]


def test_a_killed_run_resumes_skipping_finished_files(generated, tiny_model_path, tmp_path,
                                                      capsys):
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "analyze", str(generated), "--out", str(out),
         "--model", str(tiny_model_path), "--no-progress"],
        cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if len(finished_summaries(out)) >= 2:
                break
            time.sleep(0.01)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in finished_summaries(out)}
    assert 2 <= len(finished) < 8, "the run should have been killed mid-way"
    for name in finished:  # what is there is whole
        summary = json.loads((out / name / "summary.json").read_text())
        assert len(read_rows(out / name / "predictions.csv")) == summary["steps"] >= 75
    assert not (out / "study.csv").exists()
    (out / ".clip7.partial-deadbeef").mkdir()  # as a kill during the final rename leaves

    assert run(generated, "--out", out, "--model", tiny_model_path) == 0
    said = capsys.readouterr().out
    assert f"{len(finished)} up to date, {8 - len(finished)} to analyse" in said
    assert "unfinished output folder(s) left by an interrupted run" in said
    for name, mtime in finished.items():  # not redone
        assert (out / name / "summary.json").stat().st_mtime_ns == mtime
    rows = read_rows(out / "study.csv")
    assert [r["name"] for r in rows] == [f"clip{i}" for i in range(8)]
    assert all(r["status"] == "ok" and int(r["steps"]) >= 75 for r in rows)
    assert not list(out.glob(".*"))


def test_a_changed_input_or_option_is_redone_a_touched_one_is_not(generated, tiny_model_path,
                                                                    tmp_path, capsys):
    files = tmp_path / "files"
    shutil.copytree(generated, files)
    out = tmp_path / "out"
    args = (files / "clip0.mp4", files / "clip1.mp4", "--out", out, "--model", tiny_model_path)
    assert run(*args) == 0
    before = (out / "clip0" / "predictions.csv").read_bytes()
    os.utime(files / "clip0.mp4", ns=(1, 1))  # same bytes, new mtime: sha256 says same
    make_video(files / "clip1.mp4", 2.0, seed=9)  # new content
    capsys.readouterr()
    assert run(*args) == 0
    assert "1 up to date, 1 to analyse" in capsys.readouterr().out
    assert len(read_rows(out / "clip1" / "predictions.csv")) < 60  # the new 2 s, not 3 s
    assert (out / "clip0" / "predictions.csv").read_bytes() == before
    assert run(*args, "--chunk", 100) == 0  # another option: both redone
    assert "0 up to date, 2 to analyse" in capsys.readouterr().out


# -- bad input ----------------------------------------------------------------------------
def test_a_bad_file_gets_a_failures_row_and_no_output(generated, tiny_model_path, tmp_path,
                                                      capsys):
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(generated / "clip0.mp4", files / "good.mp4")
    (files / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    out = tmp_path / "out"
    code = run(files, tmp_path / "missing.wav", "--out", out, "--model", tiny_model_path,
               "--workers", 2)
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    failures = read_rows(out / "failures.csv")
    assert [f["name"] for f in failures] == ["broken", "missing"]
    assert "broken.mp4" in failures[0]["error"] and "missing.wav" in failures[1]["error"]
    assert all("\n" not in f["error"] for f in failures)
    assert "broken.mp4" in captured.err and "missing.wav" in captured.err
    written = {p.name for p in out.iterdir()} - {"study.parquet"}  # with pyarrow
    assert written == {"failures.csv", "good", "study.csv"}  # nothing of the bad files
    rows = {r["name"]: r for r in read_rows(out / "study.csv")}
    assert rows["good"]["status"] == "ok" and rows["broken"]["status"] == "failed"
    assert rows["broken"]["steps"] == "" and rows["broken"]["arousal_mean"] == ""


def test_a_bad_manifest_or_empty_folder_is_one_clear_line(tmp_path, tiny_model_path, capsys):
    manifest = tmp_path / "list.csv"
    manifest.write_text("file,participant\na.mp4,P1\n")
    assert run(manifest, "--out", tmp_path / "out", "--model", tiny_model_path) == 2
    err = capsys.readouterr().err
    assert "list.csv" in err and "'media' column" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert run(tmp_path / "empty", "--out", tmp_path / "out", "--model", tiny_model_path) == 2
    err = capsys.readouterr().err
    assert "no media files" in err and "Traceback" not in err


# -- manifests and recorded sessions ------------------------------------------------------
def test_manifest_and_session_folders_fill_participant_and_session(generated, tiny_model_path,
                                                                   tmp_path):
    sessions = tmp_path / "sessions"
    make_session(sessions / "P07-2", 2.2, "P07", "2")
    (sessions / "P08-1").mkdir(parents=True)  # a --no-media recording: nothing to analyse
    (sessions / "P08-1" / "session.json").write_text(json.dumps(
        {"format": "affect-monitor-session", "format_version": 1, "status": "complete",
         "rates": {"requested": {"predictions_hz": 25}}, "participant_id": "P08",
         "session_id": "1"}))
    manifest = tmp_path / "study.csv"
    manifest.write_text(f"media,participant,session\n{generated / 'clip2.mp4'},P01,a\n"
                        "sessions/P07-2,,\n")  # relative to the manifest
    files = find_study_files([manifest, sessions])
    assert [(f.name, f.participant, f.session) for f in files] == [
        ("P01_a_clip2", "P01", "a"), ("P07-2", "P07", "2"), ("P07-2_2", "P07", "2"),
        ("P08-1", "P08", "1")]
    assert files[1].media.name == "video.mp4" and files[1].audio.name == "audio.wav"
    assert "without media" in files[3].problem

    out = tmp_path / "out"
    assert run(manifest, "--out", out, "--model", tiny_model_path, "--vad", "energy") == 0
    rows = {r["name"]: r for r in read_rows(out / "study.csv")}
    assert (rows["P01_a_clip2"]["participant"], rows["P01_a_clip2"]["session"]) == ("P01", "a")
    assert (rows["P07-2"]["participant"], rows["P07-2"]["session"]) == ("P07", "2")
    predictions = read_rows(out / "P07-2" / "predictions.csv")
    assert len(predictions) == -(-int(2.2 * RATE) // 640)  # the WAV's length, 40 ms steps
    assert any(r["voice_active"] == "1" for r in predictions)  # the tone in audio.wav
    summary = json.loads((out / "P07-2" / "summary.json").read_text())
    assert [i["role"] for i in summary["inputs"]] == ["media", "audio"]


def test_folders_are_searched_by_extension(generated, tmp_path):
    root = tmp_path / "root"
    (root / "P1" / ".hidden").mkdir(parents=True)
    shutil.copy(generated / "clip0.mp4", root / "P1" / "task.mp4")
    shutil.copy(generated / "clip1.mp4", root / "P1" / ".hidden" / "x.mp4")
    soundfile.write(root / "P1" / "task.WAV", tone(1.0, 1), RATE)
    (root / "P1" / "task.txt").write_text("")
    assert [f.name for f in find_study_files([root])] == ["P1_task", "P1_task_2"]
    only_wav = find_study_files([root], frozenset({".wav"}))
    assert [(f.name, f.media.name) for f in only_wav] == [("P1_task", "task.WAV")]
    with pytest.raises(StudyInputError, match="no media files"):
        find_study_files([root], frozenset({".mkv"}))


def test_help_shows_the_study_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    said = capsys.readouterr().out
    for option in ("--workers", "--cluster", "--threads", "--ext", "manifest", "study.csv"):
        assert option in said


def test_the_slurm_example_asks_for_single_threaded_workers_one_per_core(capsys):
    pytest.importorskip("dask_jobqueue")
    import importlib.util

    spec = importlib.util.spec_from_file_location("slurm_study",
                                                  PROJECT / "examples" / "slurm_study.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["study/", "--out", "results/", "--cores", "4", "--partition",
                         "short", "--dry-run"]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --cpus-per-task=4" in script and "#SBATCH -p short" in script
    assert "--nthreads 1" in script and "--nworkers 4" in script
    assert sys.executable in script  # the nodes run this environment
    # the workers start with the settings measured for these tasks
    assert "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False" in script
    assert "export MALLOC_TRIM_THRESHOLD_=67108864" in script


def test_a_damaged_session_folder_is_reported_not_analysed_as_a_plain_folder(tmp_path):
    """A session.json that fails the schema makes the folder one failure line naming it."""
    folder = tmp_path / "P09-1"
    folder.mkdir()
    (folder / "session.json").write_text("[]")
    files = find_study_files([folder])
    assert len(files) == 1 and "session.json" in files[0].problem
