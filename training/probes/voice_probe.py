"""How much of RAVDESS valence can a linear read-out find in a model's voice features?

Diagnoses the voice bars: per clip, the statistics (mean, std, 90th percentile over the
louder 60% of its 40 ms windows) of
  - the exported model's audio-branch features (weights read from the ONNX file), and
  - a reference: 40 log-mel bands, pitch (autocorrelation peak), voicing and energy,
go into ridge regressions fitted on actors 1-16; the CCC on actors 17-20 is printed for
several ridge strengths. If the reference reads valence better than the model's features,
the audio front end, not the LSTM, is what loses it.

    python -m training.probes.voice_probe --model models/default.onnx --data ../shared/data/ravdess-speech-16k
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from models.runtime import read_spec
from models.spec import SAMPLE_RATE, WINDOW_SAMPLES
from training.audio_descriptors import PITCH_RANGE_HZ, mel_filterbank
from training.data.ravdess import TRAIN_ACTORS, load_ravdess
from training.losses import ccc
from training.network import AudioCNN, NetworkConfig, preset

RIDGE_STRENGTHS = (1.0, 10.0, 100.0, 1000.0)


def windows(audio: np.ndarray) -> np.ndarray:
    """Whole 40 ms windows of a clip: [n, 640]."""
    n = len(audio) // WINDOW_SAMPLES
    return audio[:n * WINDOW_SAMPLES].reshape(n, WINDOW_SAMPLES)


def clip_statistics(features: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Mean, std and 90th percentile of each feature over the clip's louder 60% of windows
    (the speech, not the silence around it)."""
    speech = features[energy >= np.percentile(energy, 40)]
    return np.concatenate([speech.mean(0), speech.std(0), np.percentile(speech, 90, axis=0)])


def model_audio_branch(model_path: str) -> AudioCNN:
    """The exported model's audio branch as a torch module (eval mode)."""
    spec = read_spec(model_path)
    # models exported before the spec carried the network: their preset's
    config = (NetworkConfig.from_dict(spec.network) if spec.network else preset(spec.preset))
    if config.fusion != "lstm":
        raise ValueError(f"{model_path} has no learned audio branch (its voice reads fixed "
                         "descriptors: training/voice_expert.py); probe a one-LSTM model, "
                         "e.g. `git show d630e61:models/default.onnx > out/v5.onnx`")
    branch = AudioCNN(config.audio_filters, 0.0, config.audio_gain, config.audio_pooling,
                      config.audio_kernel, config.audio_descriptors).eval()
    trained = branch.state_dict().keys()  # not the descriptors' fixed matrices
    weights = {init.name[len("audio."):]: torch.from_numpy(numpy_helper.to_array(init).copy())
               for init in onnx.load(model_path).graph.initializer
               if init.name[len("audio."):] in trained and init.name.startswith("audio.")}
    branch.load_state_dict(weights)
    return branch


def model_features(branch: AudioCNN, audio: np.ndarray) -> np.ndarray:
    x = windows(audio)
    with torch.no_grad():
        features = branch(torch.from_numpy(np.array(x))).numpy()  # np.array: a writable copy
    return clip_statistics(features, (x ** 2).mean(1))


def pitch(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window: F0 in Hz at the highest normalised autocorrelation peak within
    PITCH_RANGE_HZ, and that peak's height (voicing, 0..1)."""
    x = x - x.mean(1, keepdims=True)
    spectrum = np.fft.rfft(x, 2 * WINDOW_SAMPLES, axis=1)  # zero-padded: no circular wrap
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)
    autocorrelation = autocorrelation / (autocorrelation[:, :1] + 1e-10)
    shortest = int(SAMPLE_RATE / PITCH_RANGE_HZ[1])
    longest = int(SAMPLE_RATE / PITCH_RANGE_HZ[0])
    lag = shortest + autocorrelation[:, shortest:longest].argmax(1)
    return SAMPLE_RATE / lag, autocorrelation[np.arange(len(x)), lag]


def reference_features(audio: np.ndarray, bank: np.ndarray) -> np.ndarray:
    x = windows(audio)
    power = np.abs(np.fft.rfft(x * np.hanning(WINDOW_SAMPLES), axis=1)) ** 2
    f0, voicing = pitch(x)
    energy = (x ** 2).mean(1)
    per_window = np.column_stack([np.log(power @ bank + 1e-8), np.log(f0), voicing,
                                  np.log(energy + 1e-10)])
    return clip_statistics(per_window, energy)


def ridge_ccc(features: np.ndarray, targets: np.ndarray, train: np.ndarray,
              strength: float) -> tuple[np.ndarray, np.ndarray]:
    """CCC (arousal, valence) of a ridge fit on ``train`` rows, on train and on the rest."""
    mean, std = features[train].mean(0), features[train].std(0) + 1e-6
    z = (features - mean) / std
    offset = targets[train].mean(0)
    a = z[train]
    weights = np.linalg.solve(a.T @ a + strength * np.eye(a.shape[1]),
                              a.T @ (targets[train] - offset))
    predicted = z @ weights + offset
    scores = [np.array([ccc(predicted[rows, d], targets[rows, d]) for d in range(2)])
              for rows in (train, ~train)]
    return scores[0], scores[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="exported .onnx model")
    parser.add_argument("--data", required=True, help="RAVDESS folder (Actor_01 ... Actor_20)")
    args = parser.parse_args(argv)
    try:
        clips = load_ravdess(args.data)
        branch = model_audio_branch(args.model)
    except (OSError, ValueError) as error:
        print(f"voice_probe: {error}", file=sys.stderr)
        return 2
    train = np.isin(clips.actor, TRAIN_ACTORS)
    if train.all() or not train.any():
        print("voice_probe: need clips of actors 1-16 and of other actors", file=sys.stderr)
        return 2
    bank = mel_filterbank().double().numpy()  # [321 bins, 40 bands]
    sets = {
        f"model audio features ({args.model})":
            np.array([model_features(branch, clips.audio(i)) for i in range(len(clips))]),
        "reference: log-mel, pitch, voicing, energy":
            np.array([reference_features(clips.audio(i), bank) for i in range(len(clips))]),
    }
    print(f"ridge on clip statistics, actors 1-16 -> others ({train.sum()} / {(~train).sum()} "
          "clips); CCC arousal / valence")
    for name, features in sets.items():
        print(f"{name}: {features.shape[1]} features")
        for strength in RIDGE_STRENGTHS:
            fit, held_out = ridge_ccc(features, clips.targets, train, strength)
            print(f"  ridge {strength:g}: held-out {held_out[0]:.3f} / {held_out[1]:.3f}"
                  f"   (train {fit[0]:.3f} / {fit[1]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
