"""training.probes.voice_probe: the reference pitch track and the model's audio branch read from ONNX."""
from pathlib import Path

import numpy as np
import pytest

from training.probes.voice_probe import model_audio_branch, model_features, pitch, ridge_ccc, windows

ROOT = Path(__file__).resolve().parents[1]


def harmonic_tone(f0: float, seconds: float = 0.4) -> np.ndarray:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)).astype(np.float32)


@pytest.mark.parametrize("f0", [95.0, 150.0, 220.0, 330.0])
def test_pitch_finds_the_fundamental_of_a_voiced_sound(f0):
    estimated, voicing = pitch(windows(harmonic_tone(f0)))
    assert np.all(np.abs(estimated / f0 - 1) < 0.03), estimated
    assert voicing.min() > 0.6  # the peak shrinks with the lag: fewer samples overlap


def test_noise_reads_as_unvoiced():
    noise = np.random.default_rng(0).standard_normal(16_000).astype(np.float32)
    _, voicing = pitch(windows(noise))
    assert voicing.mean() < 0.3


@pytest.fixture(scope="module")
def one_lstm_model(tmp_path_factory) -> Path:
    """An exported one-LSTM model with time-pooled audio, as affect-small-v5 was."""
    from dataclasses import replace

    import torch

    from training.checkpoint import save_checkpoint
    from training.export import export_checkpoint
    from training.network import AffectNet, preset

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("probe")
    model = AffectNet(replace(preset("tiny"), audio_pooling="time", audio_gain=30.0)).eval()
    save_checkpoint(folder / "m.pt", model, "tiny")
    export_checkpoint(folder / "m.pt", folder / "m.onnx", steps=10)
    return folder / "m.onnx"


def test_an_exported_models_audio_branch_loads_from_its_onnx_file(one_lstm_model):
    branch = model_audio_branch(str(one_lstm_model))
    speech_like = harmonic_tone(150.0, 1.0) * 0.05
    features = model_features(branch, speech_like)
    assert features.shape == (3 * branch.out_features,) and np.isfinite(features).all()
    # a louder voice moves the features: the weights were read, not left at zero
    assert not np.allclose(features, model_features(branch, speech_like * 4))


def test_the_shipped_experts_model_is_refused_with_what_to_probe_instead():
    with pytest.raises(ValueError, match="no learned audio branch"):
        model_audio_branch(str(ROOT / "models" / "default.onnx"))


def test_ridge_recovers_a_linear_target_on_held_out_rows():
    rng = np.random.default_rng(1)
    features = rng.standard_normal((200, 5))
    targets = np.column_stack([features[:, 0], -features[:, 1]])
    train = np.arange(200) < 150
    fit, held_out = ridge_ccc(features, targets, train, 1.0)
    assert held_out.min() > 0.95 and fit.min() > 0.95
