"""The folder of one recording: claimed with an exclusive OS lock before it is looked
at (two recorders started at once cannot both see it empty), held until the last file
is closed (the OS drops it if the process dies), and a disk reserve kept while
recording so the final session.json can always be written.
"""
from __future__ import annotations

import os
from pathlib import Path

from app.recording import layout

RESERVE_BYTES = 256 * 1024  # disk kept for the last session.json (about 5 kB) and closing


class FolderInUse(RuntimeError):
    """The folder already holds a recording, or another process records into it."""


class RecordingFolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = None

    def claim(self) -> None:
        """Create and lock the folder; ``FolderInUse`` if it is taken, OSError if it
        cannot be created."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock = layout.lock_folder(self.path)
        except layout.FolderBusy as error:
            raise FolderInUse(str(error)) from None
        if any((self.path / name).exists() for name in layout.FILES):
            self.release()
            raise FolderInUse(f"{self.path} already holds a recorded session; choose a new "
                              "folder")

    def hold_reserve(self) -> None:
        """Keep ``RESERVE_BYTES`` of the disk (a file of zeros): when the disk fills up
        mid-recording it is given back, so the final session.json (status, stop reason)
        can still be written. No room for it at start: the disk is full (OSError)."""
        with open(self.path / layout.RESERVE, "wb") as handle:
            handle.write(bytes(RESERVE_BYTES))
            handle.flush()
            os.fsync(handle.fileno())

    def free_reserve(self) -> None:
        try:
            (self.path / layout.RESERVE).unlink(missing_ok=True)
        except OSError:
            pass

    def remove_files(self) -> None:
        """Undo a start that failed: the (empty) files it made, so the folder can be used
        once the problem is fixed (the folder was checked to hold none of them)."""
        if self._lock is None:
            return  # not ours: another recorder's, or never checked
        for name in (*layout.FILES, layout.RESERVE):
            try:
                (self.path / name).unlink(missing_ok=True)
            except OSError:
                pass

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
