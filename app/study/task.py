"""The per-file task: one input -> its output folder, complete or absent.

``run_file_task(task)`` is the one function the local process pool and the Dask cluster
run (and a one-worker run calls directly). It takes only paths and options, writes only
under ``task.out`` and returns a small ``TaskResult``, so no media passes through a
scheduler and the result cannot depend on which worker ran it.

Safe to kill at any moment: outputs are written into ``.<name>.partial-<random>`` beside
the final folder and renamed into place when complete, so ``out/<name>/`` is either a
finished analysis or not there. ``summary.json`` records each input's size, mtime and
sha256 and the model's sha256; ``up_to_date`` compares them with the files on disk.

Each worker thread keeps one ONNX Runtime session, face tracker and voice detector
between files (building them costs about a second); ``analyze_file`` resets the tracker
and the detector for every file, so a file's numbers never depend on what ran before.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2

from app.analyze import CHUNK_STEPS, analyze_file, summarise, write_predictions
from app.provenance import sha256_of
from app.vad import load_voice_detector, voice_detector_name
from models.faces import FaceTracker
from models.runtime import AffectSession

SUMMARY = "summary.json"
PREDICTIONS = "predictions.csv"
PARTIAL = ".partial-"  # in the names of unfinished output folders: .<name>.partial-<hex>


@dataclass(frozen=True)
class FileTask:
    """Everything one file's analysis depends on. Paths absolute (shared filesystem)."""

    name: str
    media: str
    out: str  # the final output folder
    model: str
    model_sha256: str
    audio: str | None = None
    vad: str = "silero"
    chunk_steps: int = CHUNK_STEPS
    # The worker's share of the cores: threads for ONNX Runtime, OpenCV and FFmpeg's
    # decoders each (one file runs them in turn, not at once); None: their defaults.
    threads: int | None = None


@dataclass(frozen=True)
class TaskResult:
    name: str
    ok: bool
    error: str = ""  # one line, naming the file, when not ok
    duration_s: float = 0.0
    steps: int = 0
    seconds_taken: float = 0.0
    warning: str = ""  # e.g. the file ended before its stated duration


def run_file_task(task: FileTask, on_steps=None) -> TaskResult:
    """Analyse ``task.media`` into ``task.out``, replacing what was there only when done.

    Never raises for a bad file: the failure comes back as ``TaskResult.error`` and no
    partial output is left. ``on_steps(n)`` (in-process runs only) reports progress.
    """
    final = Path(task.out)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}{PARTIAL}{uuid.uuid4().hex[:8]}")
    try:
        inputs = [fingerprint(Path(task.media), "media")]
        if task.audio:
            inputs.append(fingerprint(Path(task.audio), "audio"))
        worker = _worker(task)
        result = analyze_file(task.media, worker.session, audio_path=task.audio,
                              vad=worker.vad, tracker=worker.tracker,
                              chunk_steps=task.chunk_steps, on_steps=on_steps,
                              decoder_threads=task.threads)
        for before in inputs:  # e.g. a file still being copied in when the run started
            now = os.stat(before["path"])
            if (now.st_size, now.st_mtime_ns) != (before["size"], before["mtime_ns"]):
                raise RuntimeError(f"{before['path']}: changed while being analysed; run "
                                   f"again once it is complete")
        partial.mkdir()
        write_predictions(result, partial / PREDICTIONS)
        summary = summarise(result, worker.session, task.model_sha256, worker.vad.name)
        summary.update(inputs=inputs, options={"chunk_steps": task.chunk_steps})
        _write_text(partial / SUMMARY, json.dumps(summary, indent=1) + "\n")
        _fsync(partial / PREDICTIONS)
        _replace_folder(partial, final)
    except Exception as error:  # noqa: BLE001  one file's failure must not stop the study
        shutil.rmtree(partial, ignore_errors=True)
        return TaskResult(task.name, False, error=_one_line(error, task.media))
    except BaseException:  # Ctrl-C, a cancelled worker: leave nothing half-written
        shutil.rmtree(partial, ignore_errors=True)
        raise
    warning = (f"{Path(task.media).name}: {result.ended_early}; only the "
               f"{result.duration_s:.1f} s read were analysed" if result.ended_early else "")
    return TaskResult(task.name, True, duration_s=result.duration_s, steps=result.steps,
                      seconds_taken=result.seconds_taken, warning=warning)


def up_to_date(task: FileTask) -> bool:
    """True when ``task.out`` holds a finished analysis of these very inputs: same model
    sha256, same options and voice detector, and each input of the same size and either
    the same mtime or (a copied or touched file) the same sha256."""
    final = Path(task.out)
    try:
        summary = json.loads((final / SUMMARY).read_text())
    except (OSError, ValueError):
        return False
    if not (final / PREDICTIONS).is_file():
        return False
    if (summary.get("model", {}).get("sha256") != task.model_sha256
            or summary.get("options") != {"chunk_steps": task.chunk_steps}
            or summary.get("voice_detector") != voice_detector_name(task.vad)):
        return False
    paths = [task.media] + ([task.audio] if task.audio else [])
    recorded = summary.get("inputs") or []
    if len(recorded) != len(paths):
        return False
    for path, before in zip(paths, recorded):
        try:
            now = os.stat(path)
        except OSError:
            return False
        if now.st_size != before.get("size"):
            return False
        if now.st_mtime_ns != before.get("mtime_ns") and sha256_of(Path(path)) != before.get(
                "sha256"):
            return False
    return True


def fingerprint(path: Path, role: str) -> dict:
    """What summary.json records of an input (and ``up_to_date`` compares)."""
    status = os.stat(path)  # FileNotFoundError names the file; becomes the task's error
    mtime = datetime.fromtimestamp(status.st_mtime_ns / 1e9, timezone.utc)
    return {"role": role, "path": str(path), "size": status.st_size,
            "mtime": mtime.isoformat(timespec="seconds"), "mtime_ns": status.st_mtime_ns,
            "sha256": sha256_of(path)}


def remove_partials(out: Path) -> int:
    """Delete unfinished output folders a killed run left in ``out``; how many."""
    removed = 0
    for leftover in out.glob(f".*{PARTIAL}*"):
        shutil.rmtree(leftover, ignore_errors=True)
        removed += 1
    for leftover in out.glob(".*.old-*"):  # killed between the two renames below
        shutil.rmtree(leftover, ignore_errors=True)
    return removed


def _replace_folder(partial: Path, final: Path) -> None:
    """``partial`` becomes ``final``; an existing ``final`` (stale) is removed after."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, final)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _one_line(error: Exception, media: str) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if media not in text:  # MediaError names the file itself; others may not
        text = f"{media}: {type(error).__name__}: {text}"
    return text


# -- per-thread worker state -------------------------------------------------------------
class _Worker:
    """One thread's model session, face tracker and voice detector, kept between files."""

    def __init__(self, task: FileTask) -> None:
        self.key = (task.model, task.model_sha256, task.threads, task.vad)
        if sha256_of(Path(task.model)) != task.model_sha256:
            raise RuntimeError(f"{task.model} on this machine is not the model the run "
                               f"started with (sha256 differs); copy the same file")
        if task.threads:  # process-wide; a worker process runs one file at a time
            cv2.setNumThreads(task.threads)
        self.session = AffectSession(task.model, intra_op_threads=task.threads)
        self.vad = load_voice_detector(task.vad)
        self.tracker = FaceTracker(self.session.spec.face)

    def close(self) -> None:
        self.tracker.close()


_local = threading.local()


def _worker(task: FileTask) -> _Worker:
    worker = getattr(_local, "worker", None)
    if worker is None or worker.key != (task.model, task.model_sha256, task.threads, task.vad):
        if worker is not None:
            worker.close()
        worker = _local.worker = _Worker(task)
    return worker
