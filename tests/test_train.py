"""affect-train end to end on tiny corpora in the real layouts (CPU, tiny preset)."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from training.checkpoint import load_checkpoint
from training.network import AffectNet, preset
from training.train import (REHEARSAL_STEPS, build_datasets, main, mean_ccc,
                            seed_everything)

TINY_RUN = ["--preset", "tiny", "--steps", "10", "--train-sequences", "8",
            "--valid-sequences", "4", "--batch-size", "4", "--lr", "1e-3"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("stage", ["face", "voice", "fused"])
def test_each_stage_trains_and_writes_checkpoints(stage, tiny_corpora, tmp_path, capsys):
    out = tmp_path / "run"
    augment = (["--voice-speed", "0.1", "--voice-gain-db", "6", "--face-rehearsal", "0.3",
                "--per-modality-ccc"]
               if stage == "voice" else [])
    assert main([*TINY_RUN, "--stage", stage, "--data-root", str(tiny_corpora),
                 "--out", str(out), "--epochs", "2", *augment]) == 0
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and last["step"] == 4
    assert set(last["card"]["validation"]) >= {"arousal", "valence", "n"}
    assert list((out / "tensorboard").iterdir())
    printed = capsys.readouterr().out
    assert "epoch 2:" in printed and "valid CCC arousal" in printed


def test_voice_stage_rehearses_faces_in_training_only(tiny_corpora):
    crop = preset("tiny").face_crop
    train_set, valid_set = build_datasets("voice", tiny_corpora, crop, 40, 10, steps=10,
                                          seed=0, face_rehearsal=0.5)
    train_faces = [s for s in train_set if s.face_mask.any()]
    assert 8 <= len(train_faces) <= 32
    assert all(s.steps == REHEARSAL_STEPS and s.face_mask.all() for s in train_faces)
    assert not any(s.face_mask.any() for s in valid_set)  # the bar stays voice only
    plain, _ = build_datasets("voice", tiny_corpora, crop, 40, 10, steps=10, seed=0)
    assert not any(s.face_mask.any() for s in plain)
    with pytest.raises(ValueError, match="voice and fused stages, not 'face'"):
        build_datasets("face", tiny_corpora, crop, 4, 4, steps=2, seed=0, face_rehearsal=0.3)
    with pytest.raises(ValueError, match="fused stage, not 'voice'"):
        build_datasets("voice", tiny_corpora, crop, 4, 4, steps=2, seed=0, voice_rehearsal=0.3)


def test_fused_stage_rehearses_each_modality_alone_in_training_only(tiny_corpora):
    crop = preset("tiny").face_crop
    train_set, valid_set = build_datasets("fused", tiny_corpora, crop, 200, 10, steps=60,
                                          seed=0, face_rehearsal=0.3, voice_rehearsal=0.2)
    synthetic = [s for s in train_set if s.steps == 60]
    faces_alone = [s for s in train_set if s.steps == REHEARSAL_STEPS and s.face_mask.all()]
    voices_alone = [s for s in train_set if s.steps < 60 and not s.face_mask.any()]
    assert 40 <= len(faces_alone) <= 80 and 25 <= len(voices_alone) <= 60  # ~60 and ~40
    assert len(synthetic) + len(faces_alone) + len(voices_alone) == 200
    assert all(s.face_mask.any() for s in valid_set)  # validation stays multimodal
    with pytest.raises(ValueError, match="below 1"):
        build_datasets("fused", tiny_corpora, crop, 4, 4, steps=2, seed=0,
                       face_rehearsal=0.6, voice_rehearsal=0.4)
    with pytest.raises(ValueError, match="--p-mismatch is for the fused stage, not 'voice'"):
        build_datasets("voice", tiny_corpora, crop, 4, 4, steps=2, seed=0, p_mismatch=0.3)


def test_voice_augmentation_outside_the_voice_stage_is_refused(tiny_corpora, tmp_path, capsys):
    # silently ignoring --voice-speed in the fused stage would mislabel the recorded command
    assert main([*TINY_RUN, "--stage", "fused", "--voice-speed", "0.1", "--data-root",
                 str(tiny_corpora), "--out", str(tmp_path / "run")]) == 1
    error = capsys.readouterr().err
    assert "--voice-speed" in error and "voice stage" in error and "fused" in error
    assert not (tmp_path / "run" / "last.pt").exists()
    assert main([*TINY_RUN, "--stage", "recordings", "--dataset", f"sessions:{tmp_path}",
                 "--face-rehearsal", "0.3", "--out", str(tmp_path / "run")]) == 1
    assert ("--face-rehearsal is for the voice and fused stages, not 'recordings'"
            in capsys.readouterr().err)


def test_category_head_learns_only_when_weighted_and_sequence_selection_is_scored(
        tiny_corpora, tmp_path):
    heads = {}
    for weight in ("0", "1.0"):
        out = tmp_path / f"run{weight}"
        assert main([*TINY_RUN, "--stage", "face", "--data-root", str(tiny_corpora),
                     "--out", str(out), "--epochs", "1", "--category-weight", weight,
                     "--select", "sequence"]) == 0
        last = torch.load(out / "last.pt", weights_only=True)
        heads[weight] = last["model"]["category_head.weight"]
        per_sequence = last["card"]["validation"]["per_sequence"]
        assert per_sequence["n"] == 4 and -1 <= per_sequence["valence"]["ccc"] <= 1
    seed_everything(0)  # as train() does before building the model
    initial = AffectNet(preset("tiny")).category_head.weight.detach()
    # with weight 0 nothing reaches the head; with weight 1 the FER+ votes train it
    torch.testing.assert_close(heads["0"], initial)
    assert not torch.allclose(heads["1.0"], initial)


def test_resume_continues_where_it_stopped(tiny_corpora, tmp_path, capsys):
    out = tmp_path / "run"
    common = [*TINY_RUN, "--stage", "voice", "--data-root", str(tiny_corpora), "--out", str(out)]
    assert main([*common, "--epochs", "1"]) == 0
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and last["step"] == 4  # 2 batches per epoch, 2 epochs in all


def weights_before_and_after_fused(first_stage, frozen, corpora, tmp_path):
    """Train FIRST_STAGE one epoch, then fused from it with FROZEN fixed -> both state dicts."""
    first = tmp_path / first_stage
    assert main([*TINY_RUN, "--stage", first_stage, "--data-root", str(corpora),
                 "--out", str(first), "--epochs", "1"]) == 0
    fused = tmp_path / "fused"
    assert main([*TINY_RUN, "--stage", "fused", "--data-root", str(corpora),
                 "--out", str(fused), "--epochs", "1", "--init", str(first / "last.pt"),
                 "--freeze", frozen]) == 0
    return (torch.load(first / "last.pt", weights_only=True)["model"],
            torch.load(fused / "last.pt", weights_only=True)["model"])


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


def face_then_voice_stage(tiny_corpora, tmp_path, *voice_args: str):
    """One face epoch, then one voice epoch from it with voice_args; -> (face, voice) dirs."""
    face, voice = tmp_path / "face", tmp_path / "voice"
    assert main([*TINY_RUN, "--stage", "face", "--data-root", str(tiny_corpora),
                 "--out", str(face), "--epochs", "1", "--freeze", "audio"]) == 0
    assert main([*TINY_RUN, "--stage", "voice", "--data-root", str(tiny_corpora),
                 "--out", str(voice), "--epochs", "1", "--init", str(face / "last.pt"),
                 "--freeze", "visual", *voice_args]) == 0
    return face, voice


def test_voice_stage_can_switch_to_time_pooled_audio_and_keeps_the_face_stage(
        tiny_corpora, tmp_path, capsys):
    face, voice = face_then_voice_stage(tiny_corpora, tmp_path, "--audio-pooling", "time")
    assert "audio branch: pooling filters -> time" in capsys.readouterr().out
    model, _ = load_checkpoint(voice / "best.pt")
    assert model.config.audio_pooling == "time" and model.audio.out_features == 20
    before = torch.load(face / "last.pt", weights_only=True)["model"]
    after = model.state_dict()
    assert torch.equal(before["visual.stem.0.weight"], after["visual.stem.0.weight"])
    # the audio branch and its new LSTM columns learned; the LSTM is 4x32 gates wide
    assert after["lstm.weight_ih_l0"].shape == (128, 20 + 8 * 8 + 1)
    assert not torch.equal(before["audio.conv2.weight"], after["audio.conv2.weight"])


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert main([*TINY_RUN, "--stage", "face", "--data-root", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "run")]) == 1
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
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "training.train", *TINY_RUN,
         "--stage", "fused", "--data-root", str(tiny_corpora), "--out", str(out),
         "--epochs", "2"], capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checksums = torch.load(out / "last.pt", weights_only=True)["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]


def test_train_export_evaluate_end_to_end(tiny_corpora, tmp_path):
    """The whole toolkit on CPU: train (tiny preset), export to ONNX, evaluate the ONNX file."""
    import json

    from training.evaluate import main as evaluate
    from training.export import main as export

    out = tmp_path / "run"
    assert main([*TINY_RUN, "--stage", "fused", "--data-root", str(tiny_corpora),
                 "--out", str(out), "--epochs", "1"]) == 0
    assert export([str(out / "best.pt"), "-o", str(tmp_path / "m.onnx"), "--steps", "50"]) == 0
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


def test_fresh_face_input_needs_an_earlier_stage(tiny_corpora, tmp_path, capsys):
    assert main([*TINY_RUN, "--stage", "fused", "--fresh-face-input", "--data-root",
                 str(tiny_corpora), "--out", str(tmp_path / "run")]) == 1
    assert "--fresh-face-input restarts weights an earlier stage trained" in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_descriptor_dropout_needs_descriptors_and_a_chance(tiny_corpora, tmp_path, capsys):
    run = [*TINY_RUN, "--stage", "voice", "--data-root", str(tiny_corpora)]
    assert main([*run, "--descriptor-dropout", "0.5", "--out", str(tmp_path / "a")]) == 1
    assert "this network has none: add --audio-descriptors" in capsys.readouterr().err
    assert main([*run, "--audio-descriptors", "--descriptor-dropout", "1.5",
                 "--out", str(tmp_path / "b")]) == 1
    assert "--descriptor-dropout is a chance in [0, 1), not 1.5" in capsys.readouterr().err
    assert not (tmp_path / "a" / "last.pt").exists()


def test_evaluate_rejects_bad_dataset_argument(tiny_model_path, tmp_path, capsys):
    from training.evaluate import main as evaluate

    assert evaluate(["--model", str(tiny_model_path), "--dataset", f"audioset:{tmp_path}",
                     "--out", str(tmp_path / "e")]) == 1
    assert "unknown dataset kind 'audioset'" in capsys.readouterr().err
    assert evaluate(["--model", str(tmp_path / "none.onnx"), "--dataset", f"ferplus:{tmp_path}",
                     "--out", str(tmp_path / "e")]) == 1
    assert "model file not found" in capsys.readouterr().err


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
    assert main(["--preset", "tiny", "--stage", "recordings", "--dataset",
                 f"manifest:{root / 'manifest.csv'}", "--steps", "25", "--batch-size", "2",
                 "--out", str(out), "--epochs", "1"]) == 0
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["step"] >= 1 and last["card"]["validation"]["n"] > 0
    assert main(["--preset", "tiny", "--stage", "recordings", "--out", str(out)]) == 1
    assert "needs --dataset" in capsys.readouterr().err


def test_cosine_schedule_warms_up_then_decays():
    from training.train import learning_rate

    rates = [learning_rate(step, 1000, 1e-3, "cosine") for step in range(1000)]
    assert rates[0] < rates[19] == pytest.approx(1e-3)  # 2% warm-up
    assert all(a >= b for a, b in zip(rates[20:], rates[21:]))  # then never rises
    assert rates[-1] == pytest.approx(5e-5, rel=0.05)
    assert learning_rate(500, 1000, 1e-4, "constant") == 1e-4


def test_weight_average_moves_a_decay_share_towards_the_trained_weights():
    from training.train import WeightAverage

    model = AffectNet(preset("tiny"))
    average = WeightAverage(model, 0.9)
    before = model.head.weight.detach().clone()
    with torch.no_grad():
        model.head.weight.add_(1.0)
    average.update(model)
    assert torch.allclose(average.model.head.weight, before + 0.1)
    average.update(model)
    assert torch.allclose(average.model.head.weight, before + 0.19)
    assert not average.model.head.weight.requires_grad


def test_ema_run_saves_the_average_as_best_and_the_raw_weights_to_resume(
        tiny_corpora, tmp_path, capsys):
    out = tmp_path / "run"
    # a decay this close to 1 keeps the average at the starting weights, so the test can
    # tell "resumed the average" from "restarted it at the raw weights"
    common = [*TINY_RUN, "--stage", "voice", "--data-root", str(tiny_corpora), "--out", str(out),
              "--ema", "0.999999"]
    assert main([*common, "--epochs", "1"]) == 0
    last = torch.load(out / "last.pt", weights_only=True)
    best = torch.load(out / "best.pt", weights_only=True)
    name = "audio.conv1.weight"
    assert torch.equal(best["model"][name], last["ema"][name])  # one epoch: best is the average
    assert not torch.allclose(last["model"][name], last["ema"][name], atol=1e-4)
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    resumed = torch.load(out / "last.pt", weights_only=True)
    assert torch.allclose(resumed["ema"][name], last["ema"][name], atol=1e-5)
    assert not torch.allclose(resumed["ema"][name], last["model"][name], atol=1e-4)
    assert main([*common, "--epochs", "1", "--ema", "1.5"]) == 1
    assert "--ema must be between 0 and 1" in capsys.readouterr().err


def test_voice_stage_can_add_the_acoustic_descriptors(tiny_corpora, tmp_path, capsys):
    _, voice = face_then_voice_stage(tiny_corpora, tmp_path, "--audio-pooling", "time",
                                     "--audio-descriptors")
    assert "descriptors False -> True" in capsys.readouterr().out
    model, _ = load_checkpoint(voice / "best.pt")
    assert model.config.audio_descriptors and model.audio.out_features == 20 + 43
    assert model.state_dict()["lstm.weight_ih_l0"].shape == (128, 20 + 43 + 8 * 8 + 1)
    # a later stage started from it keeps them without being asked again
    fused = tmp_path / "fused"
    assert main([*TINY_RUN, "--stage", "fused", "--data-root", str(tiny_corpora),
                 "--out", str(fused), "--epochs", "1", "--init", str(voice / "best.pt"),
                 "--freeze", "visual", "audio"]) == 0
    assert load_checkpoint(fused / "best.pt")[0].config.audio_descriptors


def voice_stage_in_bfloat16(tiny_corpora, tmp_path, monkeypatch, native: bool):
    """(float32 voice stage, the same with --audio-bfloat16) on a CPU with or without
    native bfloat16; emulated bfloat16 computes the same as native, only slower."""
    monkeypatch.setattr("training.train.cpu_has_native_bfloat16", lambda: native)
    face, exact = face_then_voice_stage(tiny_corpora, tmp_path, "--audio-pooling", "time")
    reduced = tmp_path / "voice-bf16"
    assert main([*TINY_RUN, "--stage", "voice", "--data-root", str(tiny_corpora),
                 "--out", str(reduced), "--epochs", "1", "--init", str(face / "last.pt"),
                 "--freeze", "visual", "--audio-pooling", "time", "--audio-bfloat16"]) == 0
    return exact, reduced


def test_voice_stage_in_bfloat16_trains_differently_but_saves_float32(tiny_corpora, tmp_path,
                                                                      monkeypatch):
    exact, reduced = voice_stage_in_bfloat16(tiny_corpora, tmp_path, monkeypatch, native=True)
    exact_model, _ = load_checkpoint(exact / "last.pt")
    model, _ = load_checkpoint(reduced / "last.pt")
    weights, exact_weights = model.state_dict(), exact_model.state_dict()
    assert all(value.dtype == torch.float32 for value in weights.values()
               if value.is_floating_point())
    # same seed and data: the option changed the arithmetic, not the training run
    conv = "audio.conv2.weight"
    assert not torch.equal(weights[conv], exact_weights[conv])
    assert torch.allclose(weights[conv], exact_weights[conv], atol=1e-2)
    # a training setting, not part of the network a checkpoint rebuilds
    assert not model.audio.train_in_bfloat16


def test_voice_stage_by_fft_trains_as_direct_convolution_does(tiny_corpora, tmp_path):
    face, exact = face_then_voice_stage(tiny_corpora, tmp_path, "--audio-pooling", "time")
    by_fft = tmp_path / "voice-fft"
    assert main([*TINY_RUN, "--stage", "voice", "--data-root", str(tiny_corpora),
                 "--out", str(by_fft), "--epochs", "1", "--init", str(face / "last.pt"),
                 "--freeze", "visual", "--audio-pooling", "time", "--audio-fft"]) == 0
    weights = load_checkpoint(by_fft / "last.pt")[0].state_dict()
    exact_weights = load_checkpoint(exact / "last.pt")[0].state_dict()
    conv = "audio.conv2.weight"
    # float rounding only: the same training run, unlike bfloat16's visible difference
    assert not torch.equal(weights[conv], exact_weights[conv])
    assert all(torch.allclose(weights[name], exact_weights[name], atol=1e-4)
               for name in exact_weights if exact_weights[name].is_floating_point())


def test_fft_and_bfloat16_together_are_refused(tiny_corpora, tmp_path, capsys):
    assert main([*TINY_RUN, "--stage", "voice", "--data-root", str(tiny_corpora),
                 "--out", str(tmp_path / "run"), "--audio-fft", "--audio-bfloat16"]) == 1
    assert "choose one" in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_bfloat16_falls_back_to_float32_on_a_cpu_without_it(tiny_corpora, tmp_path,
                                                            monkeypatch, capsys):
    exact, reduced = voice_stage_in_bfloat16(tiny_corpora, tmp_path, monkeypatch, native=False)
    assert "no native bfloat16" in capsys.readouterr().out
    weights = load_checkpoint(reduced / "last.pt")[0].state_dict()
    exact_weights = load_checkpoint(exact / "last.pt")[0].state_dict()
    assert all(torch.equal(weights[name], exact_weights[name]) for name in exact_weights)


def scores(arousal: float, valence: float) -> dict:
    return {"arousal": {"ccc": arousal}, "valence": {"ccc": valence}}


def test_balanced_selection_weighs_fusion_and_each_modality_alone_equally():
    metrics = {**scores(0.8, 0.6), "per_sequence": scores(0.0, 0.0),
               "alone": {"voice alone": {"per_sequence": scores(0.7, 0.3)},
                         "face alone": {"per_sequence": scores(0.9, 0.9)}}}
    assert mean_ccc(metrics, "step") == pytest.approx(0.7)
    assert mean_ccc(metrics, "balanced") == pytest.approx((0.7 + 0.5 + 0.9) / 3)
    with pytest.raises(ValueError, match="single-modality validation sets"):
        mean_ccc(scores(0.8, 0.6), "balanced")


def test_fused_stage_can_select_on_fusion_and_each_modality_alone(tiny_corpora, tmp_path,
                                                                   capsys, monkeypatch):
    monkeypatch.setattr("training.train.ALONE_VALID_SEQUENCES", 16)  # 240 in real runs
    out = tmp_path / "fused"
    assert main([*TINY_RUN, "--stage", "fused", "--data-root", str(tiny_corpora),
                 "--out", str(out), "--epochs", "2", "--select", "balanced"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("voice alone, per clip: CCC arousal") == 2
    assert printed.count("face alone, per clip: CCC arousal") == 2
    best = torch.load(out / "best.pt", weights_only=True)["best"]
    alone = best["metrics"]["alone"]
    assert alone["voice alone"]["per_sequence"]["n"] == 8  # every held-out clip once
    assert best["score"] == pytest.approx(mean_ccc(best["metrics"], "balanced"))
    # the other stages validate on one modality already: refused there
    assert main([*TINY_RUN, "--stage", "voice", "--data-root", str(tiny_corpora),
                 "--out", str(tmp_path / "voice"), "--select", "balanced"]) == 1
    assert "--select balanced is for the fused stage" in capsys.readouterr().err


def test_voice_stage_can_select_on_every_held_out_clip_whole(tiny_corpora, tmp_path, capsys):
    crop = preset("tiny").face_crop
    _, valid_set = build_datasets("voice", tiny_corpora, crop, 8, 3, steps=10, seed=0,
                                  whole_valid_clips=True)
    # the 8 clips of actors 17-18, each once and whole (2 s = 50 steps), not 3 stretches
    clips = [valid_set[i] for i in range(len(valid_set))]
    assert len(clips) == 8 and {clip.steps for clip in clips} == {50}
    # 2 actors x angry/sad, both present (tiny corpora: the 2 statements are one tone)
    assert len({clip.audio[10].tobytes() for clip in clips}) == 4
    out = tmp_path / "voice"
    assert main([*TINY_RUN, "--stage", "voice", "--data-root", str(tiny_corpora),
                 "--out", str(out), "--epochs", "1", "--select", "clip"]) == 0
    best = torch.load(out / "best.pt", weights_only=True)["best"]
    assert best["metrics"]["per_sequence"]["n"] == 8
    assert best["score"] == pytest.approx(mean_ccc(best["metrics"], "clip"))
    assert main([*TINY_RUN, "--stage", "face", "--data-root", str(tiny_corpora),
                 "--out", str(tmp_path / "face"), "--select", "clip"]) == 1
    assert "--select clip is for the voice stage" in capsys.readouterr().err
