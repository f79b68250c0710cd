"""app.vad: Silero's ONNX model run without torch, and the plainly named energy gate."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.vad import EnergyVoiceDetector, SileroVoiceDetector, find_silero_model, \
    load_voice_detector
from models.media import read_audio

RATE = 16_000


def per_window(detector, audio):
    usable = audio[:audio.size // 640 * 640]
    return np.array([detector.process(w) for w in usable.reshape(-1, 640)])


@pytest.fixture
def silero():
    path = find_silero_model()
    if path is None:
        pytest.skip("silero-vad not installed (pip install --no-deps silero-vad==6.2.3)")
    return SileroVoiceDetector(path)


def test_silero_finds_speech_in_a_real_clip_and_not_in_the_pauses(silero, ravdess_dir):
    audio = read_audio(sorted(ravdess_dir.glob("Actor_02/*.flac"))[0])
    active = per_window(silero, audio)
    assert not active[:5].any()  # RAVDESS clips open with ~0.5 s of room tone
    assert 0.3 < active.mean() < 0.9
    silero.reset()
    assert not per_window(silero, np.zeros(RATE, np.float32)).any()


def test_silero_is_found_and_run_without_importing_torch(silero):
    code = ("import sys, numpy as np; from app.vad import load_voice_detector; "
            "v = load_voice_detector(); v.process(np.zeros(1024, np.float32)); "
            "print(v.name, 'torch' in sys.modules, 'silero_vad' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], check=True)
    assert result.stdout.split() == ["silero-vad", "False", "False"]


def test_silero_result_does_not_depend_on_how_samples_are_fed(silero, ravdess_dir):
    audio = read_audio(sorted(ravdess_dir.glob("Actor_03/*.flac"))[0])
    in_windows = per_window(silero, audio)
    final = silero.probability
    silero.reset()
    for begin in range(0, audio.size // 640 * 640, 100):  # odd pieces
        silero.process(audio[begin:begin + 100])
    assert silero.probability == pytest.approx(final, abs=1e-6)
    silero.reset()
    assert per_window(silero, audio).tolist() == in_windows.tolist()  # reset forgets


def test_energy_gate_follows_loudness_and_is_named_as_such():
    gate = EnergyVoiceDetector(threshold_db=-40, hangover=2)
    tone = (0.1 * np.sin(np.arange(640) / 3)).astype(np.float32)
    quiet = np.zeros(640, np.float32)
    assert [gate.process(w) for w in (quiet, tone, quiet, quiet, quiet)] == [
        False, True, True, True, False]
    assert gate.name == "energy-gate"
    assert load_voice_detector("energy").name == "energy-gate"
    with pytest.raises(ValueError, match="unknown voice detector"):
        load_voice_detector("webrtc")
