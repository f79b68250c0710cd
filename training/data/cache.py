"""Where decoded corpora are cached, and how a cache file is named, written and read.

Readers decode a corpus once and keep the raw arrays (pixels, samples, vote counts) in
an uncompressed .npz, so the second load is a memory copy. Labels are recomputed from
the raw votes/codes on every load, so changing ``labels.py`` never needs a cache purge.
A cache file's name carries a fingerprint of its source files (path, size, mtime), so an
edited or replaced corpus is decoded again instead of silently served stale.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

CACHE_ENV = "AFFECT_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/affect-monitor")
CACHE_FORMAT = 1  # bump when the layout of the cached arrays changes


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``override``, else $AFFECT_CACHE_DIR, else ~/.cache/affect-monitor."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR.expanduser()


def fingerprint(files: Iterable[Path], *extra: str) -> str:
    """Short hash of the files' resolved paths, sizes and modification times, plus ``extra``."""
    digest = hashlib.sha1(f"format={CACHE_FORMAT}".encode())
    for part in extra:
        digest.update(b"\0" + part.encode())
    for path in files:
        try:
            stat = path.stat()
            digest.update(f"\0{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        except OSError:
            digest.update(f"\0{path.resolve()}:missing".encode())  # reader reports it
    return digest.hexdigest()[:16]


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when it is absent or unreadable (then re-decode)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError) as error:
        warnings.warn(f"ignoring unreadable cache file {path} ({error}); decoding again",
                      RuntimeWarning, stacklevel=2)
        return None


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write atomically (temp file + rename), so a crash never leaves a half-written cache.

    A cache that cannot be written (read-only home, full disk) only costs speed: warn.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **arrays)
            os.chmod(temp_name, 0o644)  # mkstemp makes 0600; a cache is not a secret
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    except OSError as error:
        warnings.warn(f"could not write cache file {path} ({error}); continuing without it",
                      RuntimeWarning, stacklevel=2)
