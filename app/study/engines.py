"""Where the per-file tasks run: in this process, a local process pool, or a Dask cluster.

Each engine takes ``FileTask``s and yields one ``TaskResult`` per task as tasks finish
(in any order). All three call the same ``run_file_task``; only paths travel to the
workers and only small results come back.

* ``run_here``: one file after another in this process (``--workers 1``); reports
  progress within a file.
* ``run_pool``: ``concurrent.futures.ProcessPoolExecutor`` (``--workers N``), started
  with "spawn": forking a process that already runs ONNX Runtime's and MediaPipe's
  thread pools can deadlock the child.
* ``run_cluster``: Dask ``distributed`` (``--cluster ADDRESS``): an existing scheduler
  (``dask scheduler``, ``dask-jobqueue`` on SLURM/PBS, ``LocalCluster``) hands the tasks
  to its workers; a worker that dies is retried there, a task that keeps killing workers
  comes back as a failure. Start the workers with ``DASK_WORKER_SETTINGS`` (as Dask
  configuration, or as ``worker_environment()`` in a job script): Dask's defaults suit
  many small tasks, and cost these long CPU-bound ones a quarter to a half more CPU.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from app.study.task import FileTask, TaskResult, run_file_task

# Dask configuration for a cluster that runs these tasks (one file each: minutes of CPU in
# one thread), set where the workers and the scheduler start: LocalCluster
# (benchmarks/batch.py, the tests), job scripts and the scheduler's process
# (examples/slurm_study.py). With Dask's defaults a 2 x 1-thread cluster ran at 0.71x the
# local pool; with these, 1.01-1.04x (`benchmarks/batch.py --dask-defaults`; the README).
DASK_WORKER_SETTINGS = {
    # The nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's
    # mmap threshold at 128 KiB: every decoded frame (0.5 MB) becomes a fresh mmap whose
    # pages fault in again (10,700 minor faults per media s against 900). Thresholds at
    # glibc's own dynamic maxima instead (the worker's own environment wins over Dask's).
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 64 * 2**20,
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 32 * 2**20,
    # The statistical profiler samples every worker's stack each 10 ms.
    "distributed.worker.profile.enabled": False,
    # Event-loop housekeeping, 50 + 10 + 2 wake-ups a second by default, each taking the
    # GIL from the task's thread; a task lasts minutes, so once a second or two is plenty.
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    # The scheduler looks for work to steal every 100 ms; with one task per free worker
    # (Dask's queuing) there is none to steal.
    "distributed.scheduler.work-stealing": False,
}


def worker_environment() -> dict[str, str]:
    """``DASK_WORKER_SETTINGS`` as environment variables, for workers started by a job
    script or ``dask worker`` (set them before the worker starts)."""
    environment = {}
    for key, value in DASK_WORKER_SETTINGS.items():
        if key.startswith("distributed.nanny.pre-spawn-environ."):
            environment[key.rsplit(".", 1)[1]] = str(value)
        else:
            name = key.upper().replace(".", "__").replace("-", "_")
            environment[f"DASK_{name}"] = str(value)
    return environment


class ClusterError(RuntimeError):
    """The Dask cluster cannot be used (package missing, scheduler unreachable)."""


def run_here(tasks: Sequence[FileTask],
             on_steps: Callable[[FileTask, int], None] | None = None) -> Iterator[TaskResult]:
    for task in tasks:
        report = (lambda n, task=task: on_steps(task, n)) if on_steps else None
        yield run_file_task(task, on_steps=report)


def run_pool(tasks: Sequence[FileTask], workers: int) -> Iterator[TaskResult]:
    pool = ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"))
    return _pool_results(pool, tasks)


def _pool_results(pool: ProcessPoolExecutor, tasks: Sequence[FileTask]) -> Iterator[TaskResult]:
    try:
        futures = {pool.submit(run_file_task, task): task for task in tasks}
        for future in as_completed(futures):
            yield _result(future, futures[future])
    except BaseException:  # Ctrl-C: stop now, not after the files in flight (a re-run
        _terminate(pool)   # redoes them; their unfinished folders are removed then)
        raise
    pool.shutdown(wait=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    if hasattr(pool, "terminate_workers"):  # Python 3.14+
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def run_cluster(tasks: Sequence[FileTask], address: str) -> Iterator[TaskResult]:
    """Connect now (ClusterError if that fails), then yield results as they come."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError("--cluster needs Dask's distributed package: "
                           "pip install 'affect-monitor[cluster]'") from None
    try:
        client = Client(address, timeout="30s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(f"cannot reach a Dask scheduler at {address} ({error}); start "
                           f"one (`dask scheduler`) and its workers first") from None
    return _cluster_results(client, tasks)


def _cluster_results(client, tasks: Sequence[FileTask]) -> Iterator[TaskResult]:
    from distributed import as_completed as dask_completed

    try:
        futures = client.map(run_file_task, list(tasks), pure=False)
        owner = {future.key: task for future, task in zip(futures, tasks)}
        for future in dask_completed(futures, loop=client.loop):
            yield _result(future, owner[future.key])
            future.release()  # done with it: the scheduler may forget the small result
    finally:
        client.close()


def _result(future, task: FileTask) -> TaskResult:
    """The task's own result, or a failure when its worker died or could not run it."""
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001  e.g. BrokenProcessPool, KilledWorker
        text = " ".join(str(error).split()) or type(error).__name__
        return TaskResult(task.name, False,
                          error=f"{task.media}: its worker failed ({type(error).__name__}: "
                                f"{text[:300]})")
