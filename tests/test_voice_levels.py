"""training.probes.voice_levels: the speech level of a clip, and what it shows on RAVDESS."""
from __future__ import annotations

import numpy as np
import pytest

from training.data.ravdess import load_ravdess
from training.probes.voice_levels import actor_levels, main, speech_level_db

RATE = 16_000


def tone_in_silence(amplitude: float) -> np.ndarray:
    """0.5 s silence, 1 s of a 200 Hz tone, 0.5 s silence."""
    t = np.arange(RATE) / RATE
    tone = amplitude * np.sin(2 * np.pi * 200 * t)
    silence = np.zeros(RATE // 2)
    return np.concatenate([silence, tone, silence]).astype(np.float32)


def test_the_level_is_the_speech_not_the_silence_around_it():
    level = speech_level_db(tone_in_silence(0.1))
    assert level == pytest.approx(20 * np.log10(0.1 / np.sqrt(2)), abs=0.1)  # -23.0 dB
    assert speech_level_db(tone_in_silence(0.2)) - level == pytest.approx(6.02, abs=0.05)


def test_a_clip_shorter_than_one_window_is_refused():
    with pytest.raises(ValueError, match="shorter than one 40 ms window"):
        speech_level_db(np.zeros(100, np.float32))


def test_a_missing_corpus_is_a_message_not_a_traceback(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nowhere")]) == 2
    assert "voice_levels:" in capsys.readouterr().err


def test_on_ravdess_anger_is_louder_and_actor_17_speaks_in_a_narrow_range(ravdess_dir):
    clips = load_ravdess(ravdess_dir, actors=[1, 5, 17])
    levels = np.array([speech_level_db(clips.audio(i)) for i in range(len(clips))])
    table = actor_levels(levels, clips.emotion, clips.actor)
    for everything, calm, angry in table.values():
        assert angry > calm + 5  # angry speech is louder than neutral and calm speech
    ranges = {actor: angry - calm for actor, (_, calm, angry) in table.items()}
    # Actor 17 (held out) spans 9 dB from calm to angry, actors 1 and 5 about 20-24 dB:
    # a voice that reads arousal from level reads him flat.
    assert ranges[17] < 12 < min(ranges[1], ranges[5])
