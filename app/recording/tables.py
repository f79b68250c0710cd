"""CSV/TSV files written a row at a time and handed to the OS on every flush."""
from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from app.recording import layout


class RowWriter:
    """A header, then rows. ``flush`` makes them survive the process being killed;
    ``flush(sync=True)`` also asks the disk to keep them through a power cut."""

    def __init__(self, path: str | Path, columns: Sequence[str], delimiter: str = ",") -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self._file = open(self.path, "w", newline="")
        self._writer = csv.writer(self._file, delimiter=delimiter, lineterminator="\n")
        self._writer.writerow(self.columns)
        self._file.flush()
        self.rows = 0

    def write(self, row: Iterable) -> None:
        self._writer.writerow(row)
        self.rows += 1

    def flush(self, sync: bool = False) -> None:
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self.flush(sync=True)
        finally:
            self._file.close()


def rewrite_table(path: Path, columns: Sequence[str], rows: Iterable[Sequence],
                  delimiter: str = ",") -> None:
    """Replace ``path`` in one step (sorting events, dropping a torn row)."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # a full disk leaves no 0-byte .tmp behind
        raise


def tidy_ratings(path: Path) -> int:
    """Sort ratings.csv by time and keep one rating per time (the last given), so that it
    reads as a label track (times strictly increasing, what training needs). Ratings
    given within the same millisecond collide once written with 3 decimals. Returns how
    many rows were merged away; the file is rewritten only when something changed."""
    rows = layout.read_table(path)
    if not rows:
        return 0
    keyed = sorted(enumerate(rows), key=lambda item: (float(item[1]["time_s"]), item[0]))
    kept: dict[float, dict] = {}
    for _, row in keyed:
        kept[float(row["time_s"])] = row  # a later rating at the same time wins
    tidy = list(kept.values())
    if tidy != rows:
        rewrite_table(path, layout.RATING_COLUMNS,
                      ([r[c] for c in layout.RATING_COLUMNS] for r in tidy))
    return len(rows) - len(tidy)


def sort_events(path: Path) -> None:
    """events.tsv in onset order (markers can arrive out of order; the sort is stable)."""
    rows = layout.read_table(path, "\t")
    ordered = sorted(rows, key=lambda r: float(r["onset"]))
    if ordered != rows:
        rewrite_table(path, layout.EVENT_COLUMNS,
                      ([r[c] for c in layout.EVENT_COLUMNS] for r in ordered), "\t")
