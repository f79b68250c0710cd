"""training.model_card: the card of an experts model is generated whole from the evaluation
files and benchmark outputs, stays under 120 lines, and points to the recipe and to
docs/experiments/ (the unshipped experiments live there, not in the packaged card)."""
from __future__ import annotations

import json
import re

import pytest
import torch

from models.runtime import read_spec
from training.checkpoint import save_checkpoint
from training.export import export_checkpoint
from training.model_card import BENCHMARKS, EVALUATIONS, main
from training.network import build_network, preset

# Line counts of the benchmark outputs the shipped card quotes (command line included).
QUOTED_LINES = {"voice_baseline": 10, "voice_heard": 9, "fusion_probe": 3}


@pytest.fixture
def evaluated_experts_model(tmp_path):
    """A tiny experts model exported to ONNX, with an evaluation folder as the recipe
    script leaves it: metrics.json per evaluation, benchmark outputs, CREMA-D analyses."""
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_network(preset("tiny-experts")).eval(),
                    "tiny-experts")
    export_checkpoint(tmp_path / "m.pt", tmp_path / "m.onnx", steps=20)
    evals = tmp_path / "eval"
    for index, name in enumerate(EVALUATIONS):
        (evals / name).mkdir(parents=True)
        score = {"ccc": 0.1 + index / 10, "pcc": 0.5, "rmse": 0.3}
        (evals / name / "metrics.json").write_text(json.dumps(
            {"arousal": score, "valence": score, "n": 240, "unit": "clip"}))
    for name in BENCHMARKS:
        (evals / f"{name}.txt").write_text("\n".join(
            [f"$ python {name} --model m.onnx"] + ["  a line of output"] *
            (QUOTED_LINES[name] - 1)) + "\n")
    for clip in ("ANG", "SAD"):
        (evals / "cremad" / clip).mkdir(parents=True)
        (evals / "cremad" / clip / "summary.json").write_text(json.dumps(
            {"arousal_mean": 0.1, "valence_mean": -0.2, "face_share": 1.0}))
    (tmp_path / "time.txt").write_text("training took 8 min on 2 cores\n")
    return tmp_path


def test_the_experts_card_is_whole_short_and_points_to_the_experiments(
        evaluated_experts_model, tmp_path):
    run = evaluated_experts_model
    out = tmp_path / "shipped" / "default.onnx"
    assert main(["--model", str(run / "m.onnx"), "--evals", str(run / "eval"), "--time",
                 str(run / "time.txt"), "--clips", str(run / "eval" / "cremad"),
                 "--out", str(out)]) == 0
    card = out.with_suffix(".md").read_text()
    assert len(card.splitlines()) < 120, len(card.splitlines())
    assert not re.search(r"\{[a-z_]+\}", card), "a template field was left unfilled"
    assert "affect-train --config\ntraining/recipes/default.toml" in card
    assert "docs/experiments/" in card and "History" not in card
    assert "**0.100**" in card and "training took 8 min" in card
    for name in BENCHMARKS:
        assert f"$ python {name} --model m.onnx" in card
    spec = read_spec(out)  # the same numbers travel in the model file
    assert spec.metrics["ferplus"]["arousal"]["ccc"] == pytest.approx(0.1)
