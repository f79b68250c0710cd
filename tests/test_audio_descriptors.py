"""The fixed acoustic descriptors: pitch, voicing, level independence, and their place in
the network."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from training.audio_descriptors import DESCRIPTORS, F0_REFERENCE_HZ, MEL_BANDS, AcousticDescriptors
from training.network import AffectNet, preset, with_audio_branch
from training.probes.voice_probe import pitch

RATE = 16000


def harmonic_window(f0: float, level: float = 0.05) -> np.ndarray:
    t = np.arange(640) / RATE
    return (level * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


def describe(*windows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return AcousticDescriptors()(torch.from_numpy(np.stack(windows))).numpy()


@pytest.mark.parametrize("f0", [95.0, 150.0, 220.0, 330.0])
def test_pitch_of_a_harmonic_tone_within_3_percent_and_voiced(f0):
    log_f0, voicing = describe(harmonic_window(f0))[0, -2:]
    assert F0_REFERENCE_HZ * 2 ** log_f0 == pytest.approx(f0, rel=0.03)
    assert voicing > 0.7


def test_noise_is_unvoiced():
    noise = np.random.default_rng(0).standard_normal((4, 640)).astype(np.float32) * 0.05
    assert describe(*noise)[:, -1].max() < 0.3


def test_matches_the_probes_numpy_pitch_track():
    rng = np.random.default_rng(1)
    windows = np.stack([harmonic_window(f) + 0.01 * rng.standard_normal(640).astype(np.float32)
                        for f in (110.0, 180.0, 260.0)])
    f0, voicing = pitch(windows)
    ours = describe(*windows)
    np.testing.assert_allclose(F0_REFERENCE_HZ * 2 ** ours[:, -2], f0, rtol=1e-3)
    np.testing.assert_allclose(ours[:, -1], voicing, atol=1e-3)


def test_spectral_shape_ignores_level_and_energy_follows_it():
    quiet, loud = describe(harmonic_window(200.0, 0.01), harmonic_window(200.0, 0.1))
    np.testing.assert_allclose(quiet[:MEL_BANDS], loud[:MEL_BANDS], atol=1e-3)
    # 20 dB = a factor 100 in energy = ln(100) / ENERGY_SCALE in the log-energy descriptor
    assert loud[MEL_BANDS] - quiet[MEL_BANDS] == pytest.approx(np.log(100) / 4.0, abs=1e-3)


def test_energy_at_3_khz_shows_in_the_bands_around_3_khz():
    dull = harmonic_window(150.0)
    t = np.arange(640) / RATE
    bright = dull + 0.05 * np.sin(2 * np.pi * 3000 * t).astype(np.float32)
    difference = np.subtract(*describe(bright, dull)[:, :MEL_BANDS])
    centres_hz = 700 * (10 ** (np.linspace(2595 * np.log10(1 + 50 / 700),
                                           2595 * np.log10(1 + 8000 / 700),
                                           MEL_BANDS + 2)[1:-1] / 2595) - 1)
    assert abs(centres_hz[difference.argmax()] - 3000) < 200
    assert difference.max() > 1.0


def test_descriptors_follow_the_learned_audio_features_and_save_no_matrices():
    torch.manual_seed(0)
    plain = AffectNet(replace(preset("tiny"), audio_pooling="time"))
    switched = with_audio_branch(plain, descriptors=True)
    assert switched.audio.out_features == plain.audio.out_features + DESCRIPTORS
    assert not any("descriptors" in name for name in switched.state_dict())
    windows = torch.from_numpy(np.stack([harmonic_window(200.0)] * 2))
    with torch.no_grad():
        features = switched.audio.eval()(windows)
        np.testing.assert_allclose(features[:, :plain.audio.out_features],
                                   plain.audio.eval()(windows), atol=1e-6)
    assert with_audio_branch(switched) is switched
