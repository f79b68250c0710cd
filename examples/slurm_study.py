"""A whole study on a SLURM cluster: dask-jobqueue starts the workers, `affect-monitor
analyze --cluster` hands them the files.

    pip install -e '.[cpu,cluster]'     # once, in an environment on the shared filesystem
    python examples/slurm_study.py /shared/study --out /shared/results --jobs 10
    python examples/slurm_study.py /shared/study --out /shared/results --dry-run

Run it on the login node (inside tmux or screen: the scheduler lives in this process) or
as a small one-core sbatch job of its own. It starts a Dask scheduler here, asks SLURM for
``--jobs`` jobs of ``--cores`` cores, each running ``--cores`` single-threaded Dask
workers (one file per core, one thread per file for ONNX Runtime, OpenCV and FFmpeg;
started with the worker settings of app/study/engines.py), and runs the analysis against
them. Inputs and --out must be on a filesystem the nodes share: workers read the
media and write the results there; only file names pass through the scheduler. When this
script ends the jobs are cancelled. Killed, timed out, or new participants recorded? Run
the same command again: finished files are skipped, the rest are analysed.

PBS/Torque: ``from dask_jobqueue import PBSCluster`` and use it in place of SLURMCluster
(same arguments; ``account`` is called ``project`` there). ``--dry-run`` prints the job
script the scheduler would get and submits nothing.
"""
from __future__ import annotations

import argparse
import sys

import dask
from dask_jobqueue import SLURMCluster

from app.study.cli import main as analyze
from app.study.engines import DASK_WORKER_SETTINGS, worker_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="as for `affect-monitor analyze`")
    parser.add_argument("--out", required=True, help="results folder (shared filesystem)")
    parser.add_argument("--model", help="exported .onnx model (default: the shipped one)")
    parser.add_argument("--jobs", type=int, default=4, help="SLURM jobs (default: 4)")
    parser.add_argument("--cores", type=int, default=8, help="cores per job (default: 8)")
    parser.add_argument("--memory", default="16GB",
                        help="memory per job (default: 16GB; a worker needs about 1 GB)")
    parser.add_argument("--walltime", default="04:00:00")
    parser.add_argument("--partition", help="SLURM partition (queue)")
    parser.add_argument("--account", help="SLURM account to charge")
    parser.add_argument("--interface", help="network interface the nodes reach this "
                                            "machine on, e.g. ib0 (default: the hostname's)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the job script and exit")
    args = parser.parse_args(argv)

    # The scheduler runs in this process: it takes the same settings (no work stealing).
    dask.config.set(DASK_WORKER_SETTINGS)
    cluster = SLURMCluster(
        cores=args.cores, processes=args.cores,  # workers of one thread: a file per core
        memory=args.memory, walltime=args.walltime, queue=args.partition,
        account=args.account, interface=args.interface, job_name="affect-monitor",
        python=sys.executable,  # this environment, on the shared filesystem
        # Worker settings for long CPU-bound tasks (no profiler, glibc's own malloc
        # thresholds, a quieter event loop): about a fifth less CPU than Dask's defaults
        # (app/study/engines.py, benchmarks/batch.py).
        job_script_prologue=[f"export {name}={value}"
                             for name, value in worker_environment().items()],
    )
    try:
        if args.dry_run:
            print(cluster.job_script())
            return 0
        cluster.scale(jobs=args.jobs)
        model = ["--model", args.model] if args.model else []
        return analyze([*args.inputs, "--out", args.out, *model,
                        "--cluster", cluster.scheduler_address])
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
