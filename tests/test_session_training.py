"""A recorded session with self-ratings fine-tunes the model: `affect-train --config
training/recipes/sessions.toml --set recordings.dataset=sessions:FOLDER` on a folder the
recorder wrote (real A/V file, real decoders, the tiny preset on CPU)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.pipeline import Engine
from app.recording import layout
from app.recording.recorder import SessionRecorder
from app.sources import Pacing, open_file
from app.vad import EnergyVoiceDetector
from models.runtime import AffectSession
from session_media import make_long_clip
from test_session_recorder import read_rows
from training.train import main as train_main

RECIPE = Path(__file__).resolve().parents[1] / "training" / "recipes" / "sessions.toml"

SECONDS = 4.0


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECT_CACHE_DIR", str(tmp_path / "cache"))


def test_a_recorded_session_with_self_ratings_trains_for_a_few_steps(tiny_model_path,
                                                                     cremad_dir, tmp_path):
    clip = make_long_clip(cremad_dir, tmp_path / "clip.mp4", seconds=SECONDS)
    sessions = tmp_path / "sessions"
    folder = sessions / "sub-P01_ses-1"
    engine = Engine(AffectSession(tiny_model_path, intra_op_threads=1),
                    *open_file(clip, Pacing.FAST), vad=EnergyVoiceDetector())
    recorder = SessionRecorder(folder, {"participant_id": "P01"}, engine)
    # A self-rating ramp at 25 Hz over the whole session (the GUI's circumplex slider),
    # plus a duplicate at one time (two clicks in one millisecond): the last one counts.
    times = np.arange(0.0, SECONDS + 1e-9, 0.04)
    for t in times:
        recorder.add_rating(t, -0.9 + 1.8 * t / SECONDS, 0.5 - t / SECONDS)
    recorder.add_rating(1.0, 0.0, 0.0)
    recorder.start()
    engine.start()
    assert recorder.wait(60)
    info = recorder.stop()
    assert info["status"] == layout.COMPLETE and info["duration_s"] == pytest.approx(SECONDS, abs=0.041)
    ratings = read_rows(folder / layout.RATINGS)
    assert len(ratings) == len(times) and info["quality"]["ratings_merged_same_time"] == 1
    assert [float(r["time_s"]) for r in ratings] == sorted({float(r["time_s"]) for r in ratings})
    assert float(next(r["arousal"] for r in ratings if float(r["time_s"]) == 1.0)) == 0.0

    out = tmp_path / "run"
    assert train_main(["--config", str(RECIPE), "--out", str(out), "--set", "preset=tiny",
                       "--set", f"recordings.dataset=sessions:{sessions}",
                       "--set", "recordings.steps=25", "--set", "recordings.batch_size=2",
                       "--set", "recordings.epochs=1"]) == 0
    last = torch.load(out / "recordings" / "last.pt", weights_only=True)
    assert last["step"] >= 1 and last["card"]["validation"]["n"] > 0
