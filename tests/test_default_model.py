"""The shipped default model: loads, carries an honest spec, behaves sensibly on real data."""
from pathlib import Path

import numpy as np
import pytest

from models.runtime import AffectSession, AffectStream
from training.model_card import EVALUATIONS

MODEL = Path(__file__).resolve().parents[1] / "models" / "default.onnx"


@pytest.fixture(scope="module")
def session():
    assert MODEL.is_file(), "models/default.onnx is missing: the app has no default model"
    return AffectSession(MODEL, intra_op_threads=2)


def test_loads_through_the_runtime_with_a_complete_spec(session):
    spec = session.spec
    assert spec.sample_rate == 16_000 and spec.window_samples == 640
    assert "CC BY-NC-SA" in spec.licence and spec.training_data
    assert set(spec.metrics) >= set(EVALUATIONS)
    assert MODEL.stat().st_size < 50e6
    assert MODEL.with_suffix(".md").is_file()
    stream = AffectStream(session)
    arousal, valence = stream.step(np.zeros(640, np.float32), None)
    assert -2 < arousal < 2 and -2 < valence < 2


@pytest.mark.parametrize("name", list(EVALUATIONS))
def test_card_metrics_match_a_fresh_evaluation(name, session, tmp_path):
    """What the card and the spec claim is what affect-eval measures today (within 0.01)."""
    from conftest import data_path
    from training.evaluate import evaluate_model

    data = data_path()
    _, command = EVALUATIONS[name]
    kind = command.split("--dataset ")[1].split(":")[0]
    folder = {"ferplus": "ferplus", "ravdess": "ravdess-speech-16k", "synthetic": ""}[kind]
    split = command.split("--split ")[1].split()[0]
    metrics = evaluate_model(MODEL, kind, data / folder if folder else data, split, tmp_path,
                             mask_face="--mask-face" in command,
                             mask_voice="--mask-voice" in command)
    claimed = session.spec.metrics[name]
    assert metrics["n"] == claimed["n"]
    for dimension in ("arousal", "valence"):
        assert metrics[dimension]["ccc"] == pytest.approx(claimed[dimension]["ccc"], abs=0.01)
    card = MODEL.with_suffix(".md").read_text()
    assert f"**{claimed['arousal']['ccc']:.3f}**" in card


def test_happy_faces_get_higher_valence_than_sad_and_angry_ones(session, tmp_path):
    from conftest import data_path
    from training.data.labels import FERPLUS_EMOTIONS
    from training.evaluate import load_eval_set, score

    folder = data_path("ferplus")
    eval_set = load_eval_set("ferplus", folder, "FER2013Valid", session.spec.face, 10, 0)
    predictions, _ = score(session, eval_set, mask_voice=True)
    from training.data.ferplus import load_ferplus

    majority = load_ferplus(folder, "FER2013Valid").majority
    valence = {name: predictions[majority == FERPLUS_EMOTIONS.index(name), 1].mean()
               for name in ("happiness", "sadness", "anger")}
    assert valence["happiness"] > valence["sadness"] and valence["happiness"] > valence["anger"]


def test_angry_strong_voices_get_higher_arousal_than_calm_and_neutral(session):
    from conftest import data_path
    from training.data.ravdess import load_ravdess, split_actors
    from training.evaluate import load_eval_set, score

    folder = data_path("ravdess-speech-16k")
    eval_set = load_eval_set("ravdess", folder, "valid", session.spec.face, 10, 0)
    predictions, _ = score(session, eval_set, mask_face=True)
    clips = split_actors(load_ravdess(folder))[1]
    angry_strong = predictions[(clips.emotion == 5) & (clips.intensity == 2), 0].mean()
    calm_or_neutral = predictions[np.isin(clips.emotion, [1, 2]), 0].mean()
    assert angry_strong > calm_or_neutral


def test_the_same_voice_reads_the_same_at_any_microphone_gain(session):
    """RAVDESS held-out clips (one per actor and emotion) at -30 and +20 dB against 0 dB:
    each clip's mean output moves by under 0.05 on average (issue 27's bar)."""
    from conftest import data_path
    from training.data.ravdess import load_ravdess, split_actors
    from training.evaluate import voice_clip_means

    clips = split_actors(load_ravdess(data_path("ravdess-speech-16k")))[1]
    _, first = np.unique(np.stack([clips.actor, clips.emotion], 1), axis=0, return_index=True)
    clips = clips.subset(np.sort(first))
    reference = voice_clip_means(session, clips, 0.0)
    for gain_db in (-30.0, 20.0):
        change = np.abs(voice_clip_means(session, clips, gain_db) - reference)
        assert change.mean() < 0.05, (gain_db, change.mean(axis=0))


def test_the_voice_moves_the_reading_while_a_face_is_seen(session):
    """CREMA-D clips with a face in view: own audio against digital silence."""
    from conftest import data_path

    from app.analyze import analyze_file

    clips = sorted(data_path("cremad-sample").glob("*.flv"))
    assert clips
    changes = []
    for path in clips:
        heard = analyze_file(path, session)
        silent = analyze_file(path, session, audio_transform=np.zeros_like)
        assert heard.face_found.mean() > 0.5  # the face is in view
        assert np.all(np.abs(heard.arousal) <= 1) and np.all(np.abs(heard.valence) <= 1)
        changes.append(max(abs(heard.arousal.mean() - silent.arousal.mean()),
                           abs(heard.valence.mean() - silent.valence.mean())))
    assert min(changes) > 0.01 and np.mean(changes) > 0.05, changes
