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


@pytest.fixture(scope="session")
def ferplus_dir() -> Path:
    return data_path("ferplus")


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    return data_path("ravdess-speech-16k")


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def tiny_corpora(tmp_path_factory) -> Path:
    """A data root in the real layouts (ferplus/, ravdess-speech-16k/), a few files each.

    Faces: bright vs dark squares voted happy vs sad. Voices: loud vs quiet tones, angry
    vs sad. Enough to exercise readers, training, export and evaluation end to end.
    """
    import cv2
    import numpy as np
    import soundfile

    root = tmp_path_factory.mktemp("corpora")
    rng = np.random.default_rng(0)
    votes = {"happy": "0,9,0,0,0,0,0,0,1,0", "sad": "1,0,0,9,0,0,0,0,0,0"}
    for split, count in (("FER2013Train", 12), ("FER2013Valid", 6)):
        folder = root / "ferplus" / split
        folder.mkdir(parents=True)
        rows = []
        for index in range(count):
            mood = "happy" if index % 2 == 0 else "sad"
            level = 200 if mood == "happy" else 40
            image = np.clip(rng.normal(level, 10, (48, 48)), 0, 255).astype(np.uint8)
            name = f"fer{split[-5:]}{index:04d}.png"
            cv2.imwrite(str(folder / name), image)
            rows.append(f'{name},"(0, 0, 48, 48)",{votes[mood]}')
        (folder / "label.csv").write_text("\n".join(rows) + "\n")
    for actor in (1, 2, 17, 18):
        folder = root / "ravdess-speech-16k" / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for emotion, loudness in ((5, 0.5), (4, 0.05)):  # angry loud, sad quiet
            for statement in (1, 2):
                time = np.arange(16000 * 2) / 16000
                tone = loudness * np.sin(2 * np.pi * (150 + 40 * actor) * time)
                name = f"03-01-{emotion:02d}-02-{statement:02d}-01-{actor:02d}.flac"
                soundfile.write(folder / name, tone.astype(np.float32), 16000)
    return root
