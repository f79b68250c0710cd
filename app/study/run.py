"""A study run: plan (skip what is up to date), run the tasks, show progress, write tables.

The order of work never shows in the outputs: every file's folder is written by its own
task, and the tables are built afterwards, in study order, from the summaries on disk.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from app.analyze import CHUNK_STEPS
from app.provenance import sha256_of
from app.study.engines import run_cluster, run_here, run_pool
from app.study.inputs import StudyFile
from app.study.table import study_row, write_failures, write_study_table
from app.study.task import FileTask, TaskResult, remove_partials, up_to_date
from models.media import MediaError, probe
from models.runtime import read_spec
from models.spec import STEP_SECONDS


@dataclass(frozen=True)
class StudyReport:
    analysed: tuple[str, ...]  # output names analysed in this run
    skipped: tuple[str, ...]  # up to date from an earlier run
    failed: tuple[tuple[StudyFile, str], ...]  # (file, one-line reason)
    written: tuple[Path, ...]  # the study table(s) and failures.csv


def available_cores() -> int:
    """Cores this process may use (a SLURM/PBS job or taskset may allow fewer)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def run_study(files: list[StudyFile], out: Path, model: Path, *, workers: int = 1,
              cluster: str | None = None, threads: int | None = None, vad: str = "silero",
              chunk_steps: int = CHUNK_STEPS, progress: bool = True,
              echo=print) -> StudyReport:
    """Analyse every file not yet up to date in ``out``; then write the study tables.

    Raises ModelLoadError (unusable model), ClusterError (``cluster`` unreachable) and
    OSError (``out`` not writable) before any file is analysed.
    """
    spec = read_spec(model)
    model_sha = sha256_of(model)
    out = out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    if removed := remove_partials(out):
        echo(f"removed {removed} unfinished output folder(s) left by an interrupted run")

    failures = {item.name: item.problem for item in files if item.problem}
    todo, skipped = _plan(files, out, model, model_sha, vad, chunk_steps)
    durations = {task.name: _duration(task) for task in todo}
    todo.sort(key=lambda task: -durations[task.name])  # longest first: workers end together

    workers = max(1, min(workers, len(todo)))
    if threads is None:  # fill the cores, never more threads than cores
        threads = 1 if cluster else max(1, available_cores() // workers)
    todo = [replace(task, threads=threads) for task in todo]
    echo(f"{len(files)} file(s): {len(skipped)} up to date, {len(todo)} to analyse, "
         f"{len(failures)} unusable; model {spec.name}, on {_where(cluster, workers)}, "
         f"{threads} ONNX Runtime thread(s) per file")

    bars = _Bars(progress and bool(todo), len(files), len(files) - len(todo),
                 sum(durations.values()), echo)
    results = _start(todo, cluster, workers, bars)
    analysed = _collect(results, durations, failures, bars)

    rows = [study_row(item, out, item.name in failures) for item in files]
    failed = tuple((item, failures[item.name]) for item in files if item.name in failures)
    written = [*write_study_table(rows, out), write_failures(list(failed), out)]
    echo(f"{len(analysed)} analysed, {len(skipped)} up to date, {len(failed)} failed; "
         f"study table: {written[0]}")
    return StudyReport(tuple(analysed), tuple(t.name for t in skipped), failed, tuple(written))


def _plan(files: list[StudyFile], out: Path, model: Path, model_sha: str, vad: str,
          chunk_steps: int) -> tuple[list[FileTask], list[FileTask]]:
    """One task per usable file, split into (to analyse, already up to date)."""
    todo, skipped = [], []
    for item in files:
        if item.problem:  # unusable: already counted as a failure
            continue
        task = FileTask(name=item.name, media=str(item.media), out=str(out / item.name),
                        model=str(Path(model).absolute()), model_sha256=model_sha,
                        audio=str(item.audio) if item.audio else None, vad=vad,
                        chunk_steps=chunk_steps)
        (skipped if up_to_date(task) else todo).append(task)
    return todo, skipped


def _where(cluster: str | None, workers: int) -> str:
    """Where the files are analysed, for the opening line."""
    return (f"the Dask cluster at {cluster}" if cluster else
            f"{workers} local process(es)" if workers > 1 else "this process")


def _start(todo: list[FileTask], cluster: str | None, workers: int, bars: _Bars):
    """The task results, as they finish, from the engine the options ask for."""
    if not todo:
        return iter(())
    if cluster:
        return run_cluster(todo, cluster)
    if workers > 1:
        return run_pool(todo, workers)
    return run_here(todo, on_steps=bars.steps)


def _collect(results, durations: dict[str, float], failures: dict[str, str],
             bars: _Bars) -> list[str]:
    """Report each result as it comes; record failures; return the names analysed."""
    analysed = []
    try:
        for result in results:
            bars.finished(result, durations[result.name])
            if result.ok:
                analysed.append(result.name)
                bars.write(f"{result.name}: {result.steps} steps, {result.duration_s:.1f} s of "
                           f"media in {result.seconds_taken:.1f} s")
                if result.warning:
                    bars.write(f"warning: {result.warning}")
            else:
                failures[result.name] = result.error
                bars.write(f"failed: {result.error}")
    finally:
        bars.close()  # the bars leave the terminal clean even when interrupted
    return analysed


def _duration(task: FileTask) -> float:
    """Media seconds, from the headers (for the progress bar only)."""
    try:
        return probe(task.audio or task.media).duration_s or 0.0
    except MediaError:
        return 0.0


class _Bars:
    """Two tqdm bars: files, and media seconds (its rate: media seconds per wall second)."""

    def __init__(self, enabled: bool, files: int, files_done: int, media_s: float,
                 echo) -> None:
        self.echo = echo
        self.files = self.media = None
        self._shown: dict[str, float] = {}  # media seconds already counted, per file
        if not enabled:
            return
        from tqdm import tqdm

        self._tqdm = tqdm
        self.files = tqdm(total=files, initial=files_done, desc="files", unit="file",
                          position=0, file=sys.stderr, dynamic_ncols=True)
        self.media = tqdm(total=media_s, desc="media", unit="s", position=1,
                          file=sys.stderr, dynamic_ncols=True,
                          bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} "
                                     "s [{elapsed}<{remaining}, {rate_fmt}]")

    def steps(self, task: FileTask, n: int) -> None:
        """Progress inside a file (in-process runs)."""
        if self.media is not None:
            self._shown[task.name] = self._shown.get(task.name, 0.0) + n * STEP_SECONDS
            self._advance(n * STEP_SECONDS)

    def finished(self, result: TaskResult, duration_s: float) -> None:
        if self.media is None:
            return
        rest = duration_s - self._shown.pop(result.name, 0.0)
        if result.ok:
            self._advance(rest)
        else:  # its remaining media will not be analysed: the total shrinks, ETA stays true
            self.media.total = max(self.media.n, self.media.total - max(0.0, rest))
            self.media.refresh()
        self.files.update(1)

    def _advance(self, seconds: float) -> None:
        # Headers' durations and decoded steps differ by a step or so: stay within total.
        self.media.update(max(0.0, min(seconds, self.media.total - self.media.n)))

    def write(self, line: str) -> None:
        if self.files is not None:
            self._tqdm.write(line)
        else:
            self.echo(line)

    def close(self) -> None:
        for bar in (self.media, self.files):
            if bar is not None:
                bar.close()
