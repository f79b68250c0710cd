"""Shared test fixtures: where the real data lives, and offscreen Qt."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The real corpora sit beside the project (../shared/data), read-only; override with
# AFFECT_DATA_DIR. Tests that need them skip cleanly when they are absent.
DATA_DIR = Path(os.environ.get("AFFECT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """Path under the shared data folder, or skip the calling test when it is absent."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (see README: 'Data')")
    return path


@pytest.fixture
def ferplus_dir() -> Path:
    return data_path("ferplus")


@pytest.fixture
def ravdess_dir() -> Path:
    return data_path("ravdess-speech-16k")


@pytest.fixture
def cremad_dir() -> Path:
    return data_path("cremad-sample")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A real exported ONNX model of the 'tiny' preset (random weights, seed 0)."""
    import torch

    from training.checkpoint import save_checkpoint
    from training.export import export_checkpoint
    from training.network import AffectNet, preset

    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    save_checkpoint(folder / "tiny.pt", AffectNet(preset("tiny")).eval(), "tiny")
    export_checkpoint(folder / "tiny.pt", folder / "tiny.onnx", steps=50)
    return folder / "tiny.onnx"
