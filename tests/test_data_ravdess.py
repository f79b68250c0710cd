"""RAVDESS reader (training/data/ravdess.py): synthesised clips plus two real actors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from models.spec import OUTPUT_DIMENSIONS, SAMPLE_RATE
from training.data import ravdess
from training.data.labels import ravdess_target
from training.data.ravdess import (RavdessFormatError, load_ravdess, parse_name, split_actors,
                                   to_model_rate)

AROUSAL = OUTPUT_DIMENSIONS.index("arousal")


def tone(seconds: float, rate: int, frequency: float = 440.0, channels: int = 1,
         amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * frequency * t)
    return np.repeat(wave[:, None], channels, axis=1)


def write_clip(root: Path, name: str, seconds=0.5, rate=16_000, channels=1, folder=None,
               **kwargs) -> Path:
    actor = int(Path(name).stem.split("-")[-1])
    folder = root / (folder or f"Actor_{actor:02d}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    soundfile.write(path, tone(seconds, rate, channels=channels, **kwargs), rate,
                    subtype="PCM_16")
    return path


def dominant_frequency(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


def test_a_44k_stereo_wav_becomes_16k_mono(tmp_path):
    write_clip(tmp_path, "03-01-05-02-01-01-03.wav", seconds=0.5, rate=44_100, channels=2)
    write_clip(tmp_path, "03-01-05-01-01-01-03.flac", seconds=0.25, rate=16_000)
    clips = load_ravdess(tmp_path, cache_dir=tmp_path / "cache")
    assert len(clips) == 2 and clips.n_skipped == 0
    assert clips.names == ("03-01-05-01-01-01-03.flac", "03-01-05-02-01-01-03.wav")
    audio = clips.audio(1)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == 8_000  # 0.5 s at 16 kHz
    assert dominant_frequency(audio) == pytest.approx(440, abs=5)
    assert np.abs(audio[1000:-1000]).max() == pytest.approx(0.5, abs=0.01)
    assert len(clips.audio(0)) == 4_000
    np.testing.assert_array_equal(clips.emotion, [5, 5])
    np.testing.assert_array_equal(clips.intensity, [1, 2])
    np.testing.assert_array_equal(clips.actor, [3, 3])
    assert clips.category(0) == "anger"
    np.testing.assert_array_equal(clips.targets[1], ravdess_target(5, 2))
    assert clips.targets[1, AROUSAL] > clips.targets[0, AROUSAL]


@pytest.mark.parametrize("rate", [48_000, 22_050, 8_000, 16_000])
def test_any_rate_is_resampled_to_the_model_rate(rate):
    audio = to_model_rate(tone(1.0, rate, frequency=300, amplitude=0.99), rate)
    assert audio.dtype == np.float32 and len(audio) == SAMPLE_RATE
    assert dominant_frequency(audio) == pytest.approx(300, abs=3)
    assert np.abs(audio).max() <= 1.0


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    write_clip(tmp_path, "03-01-03-01-01-01-01.wav")
    first = load_ravdess(tmp_path, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("ravdess-Actor_01-*.npz"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(ravdess, "_decode", no_decoding)
    second = load_ravdess(tmp_path, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.samples, second.samples)
    assert first.names == second.names


def test_corrupt_audio_is_skipped_counted_and_warned(tmp_path):
    write_clip(tmp_path, "03-01-03-01-01-01-01.wav")
    broken = tmp_path / "Actor_01" / "03-01-04-01-01-01-01.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    with pytest.warns(RuntimeWarning, match=r"skipped 1 unreadable.*03-01-04-01-01-01-01"):
        clips = load_ravdess(tmp_path, cache_dir=tmp_path / "cache")
    assert len(clips) == 1 and clips.n_skipped == 1


def test_song_clips_are_ignored_with_a_warning(tmp_path):
    write_clip(tmp_path, "03-01-03-01-01-01-01.wav")
    write_clip(tmp_path, "03-02-03-01-01-01-01.wav")
    with pytest.warns(RuntimeWarning, match="ignored 1 song"):
        clips = load_ravdess(tmp_path, cache_dir=tmp_path / "cache")
    assert clips.names == ("03-01-03-01-01-01-01.wav",)


@pytest.mark.parametrize("name, message", [
    ("angry.wav", "MM-VC-EE-II-SS-RR-AA"),
    ("03-01-09-01-01-01-01.wav", "emotion 09"),
    ("03-01-01-02-01-01-01.wav", "neutral .* no strong"),
    ("03-01-03-03-01-01-01.wav", "intensity 03"),
    ("03-01-03-01-01-01-30.wav", "actor 30"),
])
def test_malformed_names_are_rejected_with_the_file(name, message):
    with pytest.raises(RavdessFormatError, match=message):
        parse_name(Path("/data/Actor_01") / name)


def test_actor_code_must_match_its_folder(tmp_path):
    write_clip(tmp_path, "03-01-03-01-01-01-02.wav", folder="Actor_01")
    with pytest.raises(RavdessFormatError, match="does not match its folder Actor_01"):
        load_ravdess(tmp_path, actors=[1], cache_dir=tmp_path / "cache")


def test_missing_root_and_actors_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_ravdess(tmp_path / "nowhere")
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no Actor_XX folders"):
        load_ravdess(tmp_path / "empty")
    write_clip(tmp_path / "data", "03-01-03-01-01-01-01.wav")
    with pytest.raises(FileNotFoundError, match="Actor_05"):
        load_ravdess(tmp_path / "data", actors=[1, 5], cache_dir=tmp_path / "cache")


def test_split_actors_is_disjoint(tmp_path):
    for actor in (1, 2, 17):
        write_clip(tmp_path, f"03-01-03-01-01-01-{actor:02d}.wav")
    clips = load_ravdess(tmp_path, cache_dir=tmp_path / "cache")
    train, valid = split_actors(clips)
    assert set(train.actor) == {1, 2} and set(valid.actor) == {17}
    np.testing.assert_array_equal(valid.audio(0), clips.audio(2))
    with pytest.raises(ValueError, match="actor-disjoint"):
        split_actors(clips, train=[1, 2], valid=[2, 17])


def test_real_actors(ravdess_dir, tmp_path):
    clips = load_ravdess(ravdess_dir, actors=[1, 17], cache_dir=tmp_path)
    assert len(clips) == 120 and clips.n_skipped == 0
    assert set(clips.actor) == {1, 17}
    durations = np.diff(clips.offsets) / SAMPLE_RATE
    assert 2.5 < durations.min() and durations.max() < 6.0
    assert np.abs(clips.samples).max() <= 1.0
    # every code appears: 8 emotions, strong only for 2..8 (4 clips each per actor)
    assert sorted(set(clips.emotion)) == list(range(1, 9))
    assert not np.any((clips.emotion == 1) & (clips.intensity == 2))

    angry = clips.emotion == 5
    strong, normal = angry & (clips.intensity == 2), angry & (clips.intensity == 1)
    assert clips.targets[strong, AROUSAL].min() > clips.targets[normal, AROUSAL].max()

    # the labels agree with the sound: strong anger is louder than normal anger
    def rms(index):
        return float(np.sqrt(np.mean(clips.audio(index) ** 2)))

    assert (np.mean([rms(i) for i in np.flatnonzero(strong)])
            > np.mean([rms(i) for i in np.flatnonzero(normal)]))
    train, valid = split_actors(clips)
    assert set(train.actor) == {1} and set(valid.actor) == {17}
