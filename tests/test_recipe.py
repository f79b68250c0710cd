"""Recipe files (training/recipe.py): every shipped recipe reads, a checkpoint gives back the
config it was trained from, --set overrides one key or says in one line what is wrong, and
the experts trainer runs end to end from a tiny recipe through affect-train."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from training.checkpoint import load_checkpoint
from training.recipe import RecipeError, read_recipe, recipe_of
from training.train import main

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "training" / "recipes").glob("*.toml"))
TINY = Path(__file__).parent / "recipes" / "tiny.toml"
TINY_EXPERTS = Path(__file__).parent / "recipes" / "tiny_experts.toml"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECT_CACHE_DIR", str(tmp_path / "cache"))
    yield
    # Training flushes denormal floats to zero for the whole process (a CPU speed-up);
    # later tests in this process (hypothesis's float strategies) need IEEE subnormals.
    torch.set_flush_denormal(False)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_reads_and_survives_a_checkpoint(path, tmp_path):
    recipe = read_recipe(path)
    # what a checkpoint stores must load with weights_only (no code runs on load)
    torch.save({"recipe": recipe.to_dict()}, tmp_path / "c.pt")
    assert recipe_of(torch.load(tmp_path / "c.pt", weights_only=True)) == recipe


def test_the_trainer_is_chosen_by_the_network():
    from training import train, train_experts

    assert type(read_recipe(ROOT / "training" / "recipes" / "default.toml")) is train_experts.RECIPE
    assert type(read_recipe(ROOT / "training" / "recipes" / "paper.toml")) is train.RECIPE
    assert read_recipe(ROOT / "training" / "recipes" / "paper.toml").network_config.face_size == 96


def test_a_checkpoint_says_how_it_was_made(tiny_corpora, tmp_path):
    sets = (f"data.root={tiny_corpora}", 'stages=["face"]', "face.lr=2e-3", "network.lstm_hidden=16")
    arguments = ["--config", str(TINY), "--out", str(tmp_path / "run")]
    assert main([*arguments, *(f"--set={item}" for item in sets)]) == 0
    _, checkpoint = load_checkpoint(tmp_path / "run" / "face" / "best.pt")
    recipe = recipe_of(checkpoint)
    assert recipe == read_recipe(TINY, sets)  # file -> config -> checkpoint -> the same config
    assert recipe.face.lr == 2e-3 and recipe.data.root == str(tiny_corpora)
    assert checkpoint["config"]["lstm_hidden"] == 16  # the override built the network
    assert checkpoint["stage"] == "face" and "--set=face.lr=2e-3" in \
        checkpoint["card"]["training_command"]


def test_set_overrides_one_key_with_a_value_of_its_type():
    recipe = read_recipe(TINY, ("fused.epochs=3", "fused.lr=1", 'fused.freeze=["audio"]',
                                "fused.per_modality_ccc=true", "data.root=../elsewhere",
                                "name=42", "seed=7"))
    assert recipe.fused.epochs == 3 and recipe.fused.lr == 1.0
    assert recipe.fused.freeze == ("audio",) and recipe.fused.per_modality_ccc is True
    assert recipe.data.root == "../elsewhere" and recipe.name == "42" and recipe.seed == 7
    assert recipe.voice == read_recipe(TINY).voice  # nothing else moved


@pytest.mark.parametrize("item, message", [
    ("fused.epoch=3", "unknown key 'fused.epoch': fused has"),
    ("fused.speed=0.1", "unknown key 'fused.speed'"),  # a voice-stage option
    ("network.lstm_hiden=3", "unknown key 'network.lstm_hiden'"),
    ("fused.epochs=many", "'many' is not a value"),
    ("fused.epochs=2.5", "fused.epochs: 2.5 is not int"),
    ("fused.schedule=sine", "fused.schedule: 'sine' is not one of 'constant', 'cosine'"),
    ('stages=["fusion"]', "stages: ('fusion',) is not a list, each one of 'face'"),
    ("preset=huge", "unknown preset 'huge'"),
    ("fused", "write KEY=VALUE"),
])
def test_a_bad_override_is_one_clear_line_and_trains_nothing(item, message, tmp_path, capsys):
    assert main(["--config", str(TINY), "--out", str(tmp_path / "run"), "--set", item]) == 1
    error = capsys.readouterr().err
    assert error.startswith("affect-train: ") and message in error, error
    assert error.count("\n") == 1 and "Traceback" not in error
    assert not (tmp_path / "run").exists()


def test_a_bad_recipe_file_is_one_clear_line(tmp_path, capsys):
    for text, message in (('name = "x"\npreset = "tiny"\n[voice]\nepoch = 3\n',
                           "unknown key 'voice.epoch'"),
                          ('name = "x\n', "is not TOML"),
                          ('preset = "tiny"\n', "has no name")):
        (tmp_path / "r.toml").write_text(text)
        assert main(["--config", str(tmp_path / "r.toml"), "--out", str(tmp_path / "o")]) == 1
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error
    assert main(["--config", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o")]) == 1
    assert "cannot read the recipe" in capsys.readouterr().err


def test_a_checkpoint_from_before_recipes_says_so():
    with pytest.raises(RecipeError, match="predates recipe files"):
        recipe_of({"config": {}, "model": {}})


def test_the_experts_trainer_runs_from_a_tiny_recipe(tiny_model_path, tiny_corpora, tmp_path,
                                                     capsys):
    from training.export import export_checkpoint

    out = tmp_path / "run"
    arguments = ["--config", str(TINY_EXPERTS), "--out", str(out),
                 "--set", f"face.source={tiny_model_path}", "--set", f"data.root={tiny_corpora}"]
    assert main(arguments) == 0
    assert "face: expert from" in capsys.readouterr().out
    model, checkpoint = load_checkpoint(out / "experts.pt")
    assert recipe_of(checkpoint) == read_recipe(
        TINY_EXPERTS, (f"face.source={tiny_model_path}", f"data.root={tiny_corpora}"))
    figures = json.loads((out / "train.json").read_text())
    assert set(figures) == {"voice", "fusion"} and figures["voice"]["epoch"]
    report = export_checkpoint(out / "experts.pt", tmp_path / "m.onnx", steps=20)
    assert max(report.torch_vs_onnx, report.stepped_vs_whole) <= 1e-4
    assert main([*arguments, "--resume"]) == 1
    assert "takes no --init or --resume" in capsys.readouterr().err


def test_the_face_source_can_come_from_git_history(tmp_path):
    from training.train_experts import face_source_file

    v5 = "git:d630e61:models/default.onnx"  # the recipe's: affect-small-v5
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", "d630e61"],
                           capture_output=True).returncode == 0
    if known:
        path = face_source_file(v5, tmp_path)
        assert path.parent == tmp_path and path.read_bytes()[:2] == b"\x08\x08"  # ONNX
    with pytest.raises(RecipeError, match="not in this checkout's git history"):
        face_source_file("git:0000000:models/default.onnx", tmp_path)
    assert face_source_file("some/model.onnx", tmp_path) == Path("some/model.onnx")
