"""Study-scale throughput: media seconds analysed per wall second, by engine.

    python benchmarks/batch.py [--model models/default.onnx] [--minutes 10] [--files 10]
                               [--dask-defaults]

Makes ``--files`` videos of ``--minutes``/``--files`` minutes each (the CREMA-D clips of
../shared/data/cremad-sample looped: 480x360, 25 fps, with sound; cached) and analyses
them with `affect-monitor analyze`'s runner, each time into a fresh folder:

* 1 worker: this process, on all cores (the default ``--workers 1``);
* 1 worker on one core's share (``--threads 1``): one of the workers below, alone. The
  scaling bar compares with this one: the all-core run is itself partly parallel;
* 2 workers: a local process pool, one thread each;
* a Dask LocalCluster of 2 worker processes x 1 thread, started with the settings of
  ``app.study.engines.DASK_WORKER_SETTINGS`` (with ``--dask-defaults``: first with Dask's
  own defaults too, to show what the settings change).

Each run is the command a user types, `python -m app.cli analyze FOLDER --out ...`, timed
from start to end: Python's start and imports, the pool's processes and every worker's
model count every time; the cluster's own start-up does not (a cluster is started once
for many runs). Each line gives
CPU seconds (user + system, this process and all its children) and minor page faults per
media second: on a shared machine the wall-clock ratios say as much about the other
processes as about these, the CPU cost much less so; and the load average (1 min) before
and after. Finally checks that every run wrote the same study.csv and predictions.
"""
from __future__ import annotations

import argparse
import csv
import filecmp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil  # comes with distributed
from live_engine import looped_video  # benchmarks/ is the script's folder

from app.study.engines import DASK_WORKER_SETTINGS
from app.study.run import available_cores

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


def usage() -> tuple[float, int]:
    """CPU seconds (user + system) and minor page faults of this process, its reaped
    children (the pool's, after shutdown) and its live descendants (the Dask workers)."""
    total, faults = 0.0, 0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        used = resource.getrusage(who)
        total += used.ru_utime + used.ru_stime
        faults += used.ru_minflt
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            with open(f"/proc/{child.pid}/stat") as handle:
                faults += int(handle.read().rsplit(")", 1)[1].split()[7])
        except (psutil.NoSuchProcess, OSError):
            continue
        total += times.user + times.system
    return total, faults


def timed(label: str, study: Path, out: Path, model: Path, *options: str) -> float:
    """Run `affect-monitor analyze` once, as a user would (a fresh Python that imports the
    app, plans, runs), and print media s per wall s, CPU cost, cores busy and the load."""
    command = [sys.executable, "-m", "app.cli", "analyze", str(study), "--out", str(out),
               "--model", str(model.absolute()), "--no-progress", *options]
    load, (cpu, faults), started = os.getloadavg()[0], usage(), time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=PROJECT)
    wall = time.monotonic() - started
    cpu, faults = (after - before for after, before in zip(usage(), (cpu, faults)))
    with open(out / "study.csv", newline="") as handle:
        media = sum(float(row["duration_s"]) for row in csv.DictReader(handle))
    print(f"{label:<36} {media:5.0f} s of media in {wall:6.1f} s = {media / wall:5.2f} "
          f"media s per wall s; {cpu / media:.4f} CPU s and {faults / media:.0f} minor page "
          f"faults per media s; {cpu / wall:.2f} cores busy; load {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    return media / wall


def on_dask(label: str, study: Path, out: Path, model: Path, settings: dict) -> float:
    """``timed`` on a fresh 2 x 1-thread LocalCluster started with ``settings``."""
    import dask
    from distributed import LocalCluster

    environment = dict(os.environ)  # the nannies write their settings into ours
    try:
        with dask.config.set(settings), LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True,
                dashboard_address=None) as cluster:
            return timed(label, study, out, model, "--cluster", cluster.scheduler_address)
    finally:
        os.environ.clear()
        os.environ.update(environment)


def same_outputs(a: Path, b: Path) -> bool:
    names = [p.relative_to(a) for p in sorted(a.glob("*/predictions.csv"))]
    return (filecmp.cmp(a / "study.csv", b / "study.csv", shallow=False)
            and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=PROJECT / "models" / "default.onnx")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--dask-defaults", action="store_true",
                        help="also run the cluster with Dask's default worker settings")
    args = parser.parse_args()
    cache = Path(os.environ.get("AFFECT_CACHE_DIR", Path.home() / ".cache" / "affect-monitor"))
    study = make_study(cache / f"batch-{args.minutes:g}min-{args.files}files", args.minutes,
                       args.files, cache)
    print(f"{args.files} files, {args.minutes:g} min of video in all; {available_cores()} "
          f"cores; model {args.model.name}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        every = timed("1 worker, all cores (default)", study, scratch / "all", args.model)
        one = timed("1 worker, one core's share", study, scratch / "one", args.model,
                    "--threads", "1")
        two = timed("2 workers (local processes)", study, scratch / "two", args.model,
                    "--workers", "2")
        runs = ["all", "one", "two", "dask"]
        if args.dask_defaults:
            on_dask("Dask 2 x 1 thread, Dask's defaults", study, scratch / "dask-defaults",
                    args.model, {})
            runs.append("dask-defaults")
        dask = on_dask("Dask 2 x 1 thread, our settings", study, scratch / "dask", args.model,
                       DASK_WORKER_SETTINGS)
        print(f"2 workers / 1 worker on one core's share: {two / one:.2f}x (bar: >= 1.7x); "
              f"2 workers / 1 worker on all cores: {two / every:.2f}x; Dask cluster / 2 "
              f"workers: {dask / two:.2f}x (bar: >= 0.9x)")
        identical = all(same_outputs(scratch / "all", scratch / run) for run in runs[1:])
        print(f"outputs identical across the runs: {identical}")


if __name__ == "__main__":
    main()
