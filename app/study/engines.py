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
  comes back as a failure.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from app.study.task import FileTask, TaskResult, run_file_task


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
