"""affect-train end to end on tiny corpora in the real layouts (CPU, tiny preset), from the
test recipe tests/recipes/tiny.toml with --set overrides."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.checkpoint import load_checkpoint
from training.network import AffectNet, preset
from training.stage_data import REHEARSAL_STEPS, stage_sets
from training.train import FusedStage, VoiceStage, main, seed_everything

TINY_RECIPE = Path(__file__).parent / "recipes" / "tiny.toml"


def tiny_args(corpora, out, *sets: str, stages: str = "fused") -> list[str]:
    """affect-train's arguments for the tiny recipe: its STAGES, data from CORPORA."""
    arguments = ["--config", str(TINY_RECIPE), "--out", str(out), "--set", f"data.root={corpora}",
                 "--set", f"stages={json.dumps(stages.split())}"]
    for item in sets:
        arguments += ["--set", item]
    return arguments


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECT_CACHE_DIR", str(tmp_path / "cache"))
    yield
    # Training flushes denormal floats to zero for the whole process (a CPU speed-up);
    # later tests in this process (hypothesis's float strategies) need IEEE subnormals.
    torch.set_flush_denormal(False)


@pytest.mark.parametrize("stage", ["face", "voice", "fused"])
def test_each_stage_trains_and_writes_checkpoints(stage, tiny_corpora, tmp_path, capsys):
    out = tmp_path / "run"
    augment = (["voice.speed=0.1", "voice.gain_db=6", "voice.face_rehearsal=0.3",
                "voice.per_modality_ccc=true"] if stage == "voice" else [])
    assert main(tiny_args(tiny_corpora, out, f"{stage}.epochs=2", *augment,
                          stages=stage)) == 0
    folder = out / stage
    assert (folder / "best.pt").is_file() and (folder / "last.pt").is_file()
    assert int((folder / "seconds").read_text()) >= 0  # the stage finished
    last = torch.load(folder / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and last["step"] == 4
    assert set(last["card"]["validation"]) >= {"arousal", "valence", "n"}
    assert last["stage"] == stage and last["recipe"][stage]["epochs"] == 2
    assert list((folder / "tensorboard").iterdir())
    printed = capsys.readouterr().out
    assert "epoch 2:" in printed and "valid CCC arousal" in printed


def test_voice_stage_rehearses_faces_in_training_only(tiny_corpora):
    crop = preset("tiny").face_crop
    sizes = dict(train_sequences=40, valid_sequences=10, steps=10)
    train_set, valid_set = stage_sets("voice", VoiceStage(**sizes, face_rehearsal=0.5),
                                      tiny_corpora, crop, seed=0)
    train_faces = [s for s in train_set if s.face_mask.any()]
    assert 8 <= len(train_faces) <= 32
    assert all(s.steps == REHEARSAL_STEPS and s.face_mask.all() for s in train_faces)
    assert not any(s.face_mask.any() for s in valid_set)  # the bar stays voice only
    plain, _ = stage_sets("voice", VoiceStage(**sizes), tiny_corpora, crop, seed=0)
    assert not any(s.face_mask.any() for s in plain)


def test_fused_stage_rehearses_each_modality_alone_in_training_only(tiny_corpora):
    crop = preset("tiny").face_crop
    train_set, valid_set = stage_sets(
        "fused", FusedStage(train_sequences=200, valid_sequences=10, steps=60,
                            face_rehearsal=0.3, voice_rehearsal=0.2), tiny_corpora, crop, 0)
    synthetic = [s for s in train_set if s.steps == 60]
    faces_alone = [s for s in train_set if s.steps == REHEARSAL_STEPS and s.face_mask.all()]
    voices_alone = [s for s in train_set if s.steps < 60 and not s.face_mask.any()]
    assert 40 <= len(faces_alone) <= 80 and 25 <= len(voices_alone) <= 60  # ~60 and ~40
    assert len(synthetic) + len(faces_alone) + len(voices_alone) == 200
    assert all(s.face_mask.any() for s in valid_set)  # validation stays multimodal
    with pytest.raises(ValueError, match="below 1"):
        stage_sets("fused", FusedStage(steps=2, face_rehearsal=0.6, voice_rehearsal=0.4),
                   tiny_corpora, crop, 0)


def test_stage_options_elsewhere_are_refused_before_training(tiny_corpora, tmp_path, capsys):
    # a voice augmentation in the fused stage would be silently ignored and mislabel the run
    assert main(tiny_args(tiny_corpora, tmp_path / "run", "fused.speed=0.1")) == 1
    error = capsys.readouterr().err
    assert "affect-train:" in error and "unknown key 'fused.speed'" in error
    assert not (tmp_path / "run").exists()
    assert main(tiny_args(tiny_corpora, tmp_path / "run", "recordings.face_rehearsal=0.3",
                          stages="recordings")) == 1
    assert "unknown key 'recordings.face_rehearsal'" in capsys.readouterr().err
    # a bad setting of a later stage fails before the earlier stages train
    assert main(tiny_args(tiny_corpora, tmp_path / "run", "fused.face_rehearsal=0.6",
                          "fused.voice_rehearsal=0.4", stages="face fused")) == 1
    assert "must stay below 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_category_head_learns_only_when_weighted_and_sequence_selection_is_scored(
        tiny_corpora, tmp_path):
    heads = {}
    for weight in ("0", "1.0"):
        out = tmp_path / f"run{weight}"
        assert main(tiny_args(tiny_corpora, out, f"face.category_weight={weight}",
                              "face.select=sequence", stages="face")) == 0
        last = torch.load(out / "face" / "last.pt", weights_only=True)
        heads[weight] = last["model"]["category_head.weight"]
        per_sequence = last["card"]["validation"]["per_sequence"]
        assert per_sequence["n"] == 4 and -1 <= per_sequence["valence"]["ccc"] <= 1
    seed_everything(0)  # as train() does before building the model
    initial = AffectNet(preset("tiny")).category_head.weight.detach()
    # with weight 0 nothing reaches the head; with weight 1 the FER+ votes train it
    torch.testing.assert_close(heads["0"], initial)
    assert not torch.allclose(heads["1.0"], initial)


def test_resume_keeps_finished_stages_and_continues_an_interrupted_one(tiny_corpora, tmp_path,
                                                                       capsys):
    out = tmp_path / "run"
    assert main(tiny_args(tiny_corpora, out, stages="face voice")) == 0
    face_weights = (out / "face" / "best.pt").read_bytes()
    (out / "voice" / "seconds").unlink()  # as if the voice stage was stopped after epoch 1
    capsys.readouterr()
    assert main([*tiny_args(tiny_corpora, out, "voice.epochs=2", stages="face voice"),
                 "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "stage face: kept" in printed and "resumed from" in printed
    assert (out / "face" / "best.pt").read_bytes() == face_weights
    last = torch.load(out / "voice" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and last["step"] == 4  # 2 batches per epoch, 2 epochs in all
    assert last["init"] == str(out / "face" / "best.pt")  # the stage it started from


def weights_before_and_after_fused(first_stage, frozen, corpora, tmp_path):
    """Train FIRST_STAGE one epoch, then fused from it with FROZEN fixed -> both state dicts."""
    out = tmp_path / "run"
    assert main(tiny_args(corpora, out, f'fused.freeze=["{frozen}"]',
                          stages=f"{first_stage} fused")) == 0
    return (torch.load(out / first_stage / "last.pt", weights_only=True)["model"],
            torch.load(out / "fused" / "last.pt", weights_only=True)["model"])


def test_staged_training_starts_from_previous_stage(tiny_corpora, tmp_path):
    before, after = weights_before_and_after_fused("voice", "audio", tiny_corpora, tmp_path)
    assert torch.equal(before["audio.conv1.weight"], after["audio.conv1.weight"])  # frozen
    assert not torch.equal(before["head.weight"], after["head.weight"])  # trained


def test_frozen_visual_branch_keeps_its_batchnorm_statistics(tiny_corpora, tmp_path):
    before, after = weights_before_and_after_fused("face", "visual", tiny_corpora, tmp_path)
    visual = [name for name in before if name.startswith("visual.")]
    assert any(name.endswith("running_mean") for name in visual)
    # fused batches show the ResNet faces; frozen means its statistics do not move either
    assert all(torch.equal(before[name], after[name]) for name in visual)
    assert not torch.equal(before["head.weight"], after["head.weight"])


def test_voice_stage_can_switch_to_time_pooled_audio_and_keeps_the_face_stage(
        tiny_corpora, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(tiny_corpora, out, 'face.freeze=["audio"]', 'voice.freeze=["visual"]',
                          "voice.audio_pooling=time", stages="face voice")) == 0
    assert "audio branch: pooling filters -> time" in capsys.readouterr().out
    model, _ = load_checkpoint(out / "voice" / "best.pt")
    assert model.config.audio_pooling == "time" and model.audio.out_features == 20
    before = torch.load(out / "face" / "last.pt", weights_only=True)["model"]
    after = model.state_dict()
    assert torch.equal(before["visual.stem.0.weight"], after["visual.stem.0.weight"])
    # the audio branch and its new LSTM columns learned; the LSTM is 4x32 gates wide
    assert after["lstm.weight_ih_l0"].shape == (128, 20 + 8 * 8 + 1)
    assert not torch.equal(before["audio.conv2.weight"], after["audio.conv2.weight"])


def test_the_recipes_network_can_add_the_acoustic_descriptors(tiny_corpora, tmp_path):
    out = tmp_path / "run"
    assert main(tiny_args(tiny_corpora, out, "network.audio_pooling=time",
                          "network.audio_descriptors=true", 'fused.freeze=["audio"]',
                          stages="voice fused")) == 0
    model, _ = load_checkpoint(out / "voice" / "best.pt")
    assert model.config.audio_descriptors and model.audio.out_features == 20 + 43
    assert model.state_dict()["lstm.weight_ih_l0"].shape == (128, 20 + 43 + 8 * 8 + 1)
    # the later stage, started from it, keeps them
    assert load_checkpoint(out / "fused" / "best.pt")[0].config.audio_descriptors


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(tiny_args(tmp_path / "nowhere", tmp_path / "run", stages="face")) == 1
    error = capsys.readouterr().err
    assert "affect-train:" in error and "nowhere" in error


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun not installed")
def test_two_process_ddp_ends_with_identical_weights(tiny_corpora, tmp_path):
    out = tmp_path / "ddp"
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    environment = {**os.environ, "AFFECT_CACHE_DIR": str(tmp_path / "cache"),
                   "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "training.train",
         *tiny_args(tiny_corpora, out, "fused.epochs=2")],
        capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checksums = torch.load(out / "fused" / "last.pt", weights_only=True)["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]


def test_train_export_evaluate_end_to_end(tiny_corpora, tmp_path):
    """The whole toolkit on CPU: train (tiny preset), export to ONNX, evaluate the ONNX file."""
    from training.evaluate import main as evaluate
    from training.export import main as export

    out = tmp_path / "run"
    assert main(tiny_args(tiny_corpora, out)) == 0
    assert export([str(out / "fused" / "best.pt"), "-o", str(tmp_path / "m.onnx"),
                   "--steps", "50"]) == 0
    for kind, path, unit in (("ferplus", tiny_corpora / "ferplus", "image"),
                             ("ravdess", tiny_corpora / "ravdess-speech-16k", "clip"),
                             ("synthetic", tiny_corpora, "step")):
        result = tmp_path / kind
        assert evaluate(["--model", str(tmp_path / "m.onnx"), "--dataset", f"{kind}:{path}",
                         "--out", str(result)]) == 0
        metrics = json.loads((result / "metrics.json").read_text())
        assert unit in metrics["unit"]
        for name in ("arousal", "valence"):
            assert -1.0 <= metrics[name]["ccc"] <= 1.0 and metrics[name]["rmse"] >= 0
        assert (result / "time.png").stat().st_size > 1000
        assert (result / "scatter.png").stat().st_size > 1000
    assert json.loads((tmp_path / "ferplus" / "metrics.json").read_text())["n"] == 6
    assert json.loads((tmp_path / "ravdess" / "metrics.json").read_text())["n"] == 8


def test_recordings_stage_trains_on_a_users_manifest(tmp_path, capsys):
    """A user's own annotated data (manifest + label CSVs at 10 Hz) trains end to end."""
    import numpy as np
    import soundfile

    root = tmp_path / "mine"
    root.mkdir()
    rows = ["media,labels,speaker"]
    for index, speaker in enumerate(("ann", "bob", "cat")):
        seconds = np.arange(16000 * 3) / 16000
        soundfile.write(root / f"{speaker}.wav",
                        (0.1 * (index + 1) * np.sin(2 * np.pi * 200 * seconds)).astype("float32"),
                        16000)
        times = np.arange(0, 3.01, 0.1)
        (root / f"{speaker}.csv").write_text("time_s,arousal,valence\n" + "".join(
            f"{t:.1f},{np.sin(t) * 0.5:.3f},{0.2 * index:.3f}\n" for t in times))
        rows.append(f"{speaker}.wav,{speaker}.csv,{speaker}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(tiny_args(tmp_path, out, f"recordings.dataset=manifest:{root / 'manifest.csv'}",
                          stages="recordings")) == 0
    last = torch.load(out / "recordings" / "last.pt", weights_only=True)
    assert last["step"] >= 1 and last["card"]["validation"]["n"] > 0
    assert main(tiny_args(tmp_path, out, stages="recordings")) == 1
    assert "needs recordings.dataset" in capsys.readouterr().err


def test_ravdess_evaluation_scores_each_held_out_actor_alone(tiny_model_path, tiny_corpora,
                                                             tmp_path, capsys):
    import numpy as np

    from training.evaluate import main as evaluate
    from training.losses import ccc

    out = tmp_path / "ravdess"
    assert evaluate(["--model", str(tiny_model_path), "--dataset",
                     f"ravdess:{tiny_corpora / 'ravdess-speech-16k'}", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    by_speaker = metrics["by_speaker"]
    assert sorted(by_speaker) == ["actor 17", "actor 18"]  # the held-out actors only
    assert [s["n"] for s in by_speaker.values()] == [4, 4] and metrics["n"] == 8
    saved = np.load(out / "predictions.npz")  # clips in file order: actor 17's, then 18's
    for rows, actor in ((slice(0, 4), 17), (slice(4, 8), 18)):
        for index, name in enumerate(("arousal", "valence")):
            assert by_speaker[f"actor {actor}"][name]["ccc"] == pytest.approx(
                ccc(saved["predictions"][rows, index], saved["targets"][rows, index]))
    assert by_speaker["actor 17"]["arousal"]["ccc"] != by_speaker["actor 18"]["arousal"]["ccc"]
    assert "actor 17 (4): arousal CCC" in capsys.readouterr().out


def test_streamed_evaluation_carries_the_state_from_clip_to_clip(tiny_model_path, tiny_corpora,
                                                                 tmp_path, capsys):
    import numpy as np

    from models.runtime import AffectSession
    from training.evaluate import load_eval_set, main as evaluate, predict_sequence, \
        predict_streamed

    session = AffectSession(tiny_model_path)
    eval_set = load_eval_set("ravdess", tiny_corpora / "ravdess-speech-16k", "valid",
                             session.spec.face, 10, 0)
    clips = eval_set.sequences
    fresh = [predict_sequence(session, clip) for clip in clips]
    streamed = predict_streamed(session, clips, 4, seed=0)
    order = np.random.default_rng(0).permutation(len(clips))
    assert [len(s) for s in streamed] == [len(f) for f in fresh]
    for first in order[::4]:  # a run's first clip starts from a fresh state
        np.testing.assert_allclose(streamed[first], fresh[first], atol=1e-5)
    later = [i for i in range(len(clips)) if i not in set(order[::4])]
    assert all(np.abs(streamed[i][0] - fresh[i][0]).max() > 1e-4 for i in later)

    out = tmp_path / "streamed"
    assert evaluate(["--model", str(tiny_model_path), "--dataset",
                     f"ravdess:{tiny_corpora / 'ravdess-speech-16k'}", "--stream", "4",
                     "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stream"] == 4 and "back to back in runs of 4" in metrics["unit"]
    assert evaluate(["--model", str(tiny_model_path), "--dataset", f"synthetic:{tiny_corpora}",
                     "--stream", "4", "--out", str(tmp_path / "s")]) == 1
    assert "--stream is for datasets scored per clip" in capsys.readouterr().err


def test_evaluate_rejects_bad_dataset_argument(tiny_model_path, tmp_path, capsys):
    from training.evaluate import main as evaluate

    assert evaluate(["--model", str(tiny_model_path), "--dataset", f"audioset:{tmp_path}",
                     "--out", str(tmp_path / "e")]) == 1
    assert "unknown dataset kind 'audioset'" in capsys.readouterr().err
    assert evaluate(["--model", str(tmp_path / "none.onnx"), "--dataset", f"ferplus:{tmp_path}",
                     "--out", str(tmp_path / "e")]) == 1
    assert "model file not found" in capsys.readouterr().err


def test_cosine_schedule_warms_up_then_decays():
    from training.train import learning_rate

    rates = [learning_rate(step, 1000, 1e-3, "cosine") for step in range(1000)]
    assert rates[0] < rates[19] == pytest.approx(1e-3)  # 2% warm-up
    assert all(a >= b for a, b in zip(rates[20:], rates[21:]))  # then never rises
    assert rates[-1] == pytest.approx(5e-5, rel=0.05)
    assert learning_rate(500, 1000, 1e-4, "constant") == 1e-4
