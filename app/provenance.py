"""Where a result came from: the model file, its sha256 and this software's version.

One home for these so the recorder, the one-file analysis, the study runner and the window
all write the same provenance, and all find the shipped model the same way.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
from pathlib import Path


def default_model_path() -> Path:
    """The shipped model, found as package data of `models` (works installed or from a checkout)."""
    return Path(str(importlib.resources.files("models") / "default.onnx"))


DEFAULT_MODEL = default_model_path()


def software_version() -> str:
    try:
        return importlib.metadata.version("affect-monitor")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
