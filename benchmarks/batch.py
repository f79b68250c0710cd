"""Study-scale throughput: media seconds analysed per wall second, by engine.

    python benchmarks/batch.py [--model models/default.onnx] [--minutes 10] [--files 10]

Makes ``--files`` videos of ``--minutes``/``--files`` minutes each (the CREMA-D clips of
../shared/data/cremad-sample looped: 480x360, 25 fps, with sound; cached) and analyses
them with `affect-monitor analyze`'s runner four times, each into a fresh folder:

* 1 worker: this process, ONNX Runtime on all cores (the default), and on 1 thread;
* 2 workers: a local process pool, one ONNX Runtime thread each;
* a Dask LocalCluster of 2 worker processes x 1 thread (started before the clock runs).

Each time includes starting the workers' models; the cluster's own start-up is not
counted (a cluster is started once for many runs). Finally checks that the 1-worker,
2-worker and cluster runs wrote the same study.csv and predictions.
"""
from __future__ import annotations

import argparse
import csv
import filecmp
import os
import shutil
import tempfile
import time
from pathlib import Path

import psutil  # comes with distributed
from live_engine import looped_video  # benchmarks/ is the script's folder

from app.study.inputs import find_study_files
from app.study.run import available_cores, run_study

PROJECT = Path(__file__).resolve().parents[1]


def make_study(folder: Path, minutes: float, files: int, cache: Path) -> Path:
    """``files`` links to one looped video of minutes/files minutes."""
    seconds = minutes * 60 / files
    source = looped_video(seconds, cache / f"bench-cremad-{seconds:g}s.mkv")
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        target = folder / f"clip{index:02d}.mkv"
        if not target.exists():
            try:
                os.link(source, target)
            except OSError:  # another filesystem
                shutil.copy(source, target)
    return folder


def cpu_seconds() -> float:
    """CPU time (user + system) of this process, its reaped children (the pool's, after
    shutdown) and its live descendants (the Dask nannies' workers)."""
    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += child_times.user + child_times.system
    return total


def timed(label: str, study: Path, out: Path, model: Path, **engine) -> float:
    """Run once; print media s per wall s, and CPU s per media s (what load cannot hide:
    on a busy machine the wall time says more about the others than about us)."""
    files = find_study_files([study])
    cpu, started = cpu_seconds(), time.monotonic()
    run_study(files, out, model, progress=False, echo=lambda *_: None, **engine)
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu
    with open(out / "study.csv", newline="") as handle:
        media = sum(float(row["duration_s"]) for row in csv.DictReader(handle))
    print(f"{label:<34} {media:6.0f} s of media in {wall:6.1f} s = {media / wall:5.1f} "
          f"media s per wall s; {cpu / media:.3f} CPU s per media s; {cpu / wall:.2f} cores "
          f"busy", flush=True)
    return media / wall


def same_outputs(a: Path, b: Path) -> bool:
    names = [p.relative_to(a) for p in sorted(a.glob("*/predictions.csv"))]
    return (filecmp.cmp(a / "study.csv", b / "study.csv", shallow=False)
            and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=PROJECT / "models" / "default.onnx")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    cache = Path(os.environ.get("AFFECT_CACHE_DIR", Path.home() / ".cache" / "affect-monitor"))
    study = make_study(cache / f"batch-{args.minutes:g}min-{args.files}files", args.minutes,
                       args.files, cache)
    print(f"{args.files} files, {args.minutes:g} min of video in all; {available_cores()} "
          f"cores; model {args.model.name}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        one = timed("1 worker (this process, all cores)", study, scratch / "one", args.model,
                    workers=1)
        timed("1 worker, 1 ONNX Runtime thread", study, scratch / "one-thread", args.model,
              workers=1, threads=1)
        two = timed("2 workers (local processes)", study, scratch / "two", args.model,
                    workers=2)
        from distributed import LocalCluster

        # Dask's statistical profiler samples every worker's stack every 10 ms; for long
        # CPU-bound tasks it only costs time (cluster / pool 0.72x with it, 0.84x without,
        # 2026-12-04), so the workers run without it, as examples/slurm_study.py does.
        os.environ["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"] = "False"
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            dask = timed("Dask LocalCluster, 2 x 1 thread", study, scratch / "dask",
                         args.model, cluster=cluster.scheduler_address)
        print(f"2 workers / 1 worker: {two / one:.2f}x; Dask cluster / 2 workers: "
              f"{dask / two:.2f}x")
        identical = same_outputs(scratch / "one", scratch / "two") and same_outputs(
            scratch / "one", scratch / "dask")
        print(f"outputs identical across the three runs: {identical}")


if __name__ == "__main__":
    main()
