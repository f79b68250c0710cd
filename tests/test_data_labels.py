"""Category and vote -> (arousal, valence) mapping (training/data/labels.py)."""
from __future__ import annotations

import numpy as np
import pytest

from models.spec import OUTPUT_DIMENSIONS
from training.data import labels
from training.data.labels import (FERPLUS_EMOTIONS, FERPLUS_TARGETS, NRC_VAD_V1,
                                  category_target, clean_votes, ferplus_majority,
                                  ferplus_probabilities, ferplus_targets, ravdess_target,
                                  usable_face)

AROUSAL, VALENCE = OUTPUT_DIMENSIONS.index("arousal"), OUTPUT_DIMENSIONS.index("valence")


def votes(**counts) -> np.ndarray:
    row = np.zeros(len(labels.FERPLUS_COLUMNS), np.int64)
    for name, count in counts.items():
        row[labels.FERPLUS_COLUMNS.index(name)] = count
    return row


def test_table_covers_the_categories_on_the_model_scale():
    needed = {"neutral", "calm", "happiness", "surprise", "sadness", "anger", "disgust",
              "fear", "contempt"}
    assert set(NRC_VAD_V1) == needed
    for name in needed:
        target = category_target(name)
        assert target.dtype == np.float32 and target.shape == (2,)
        assert np.all(np.abs(target) <= 1.0)
        valence, arousal = NRC_VAD_V1[name]  # lexicon rows are (valence, arousal) in 0..1
        assert target[AROUSAL] == pytest.approx(2 * arousal - 1)
        assert target[VALENCE] == pytest.approx(2 * valence - 1)


def test_table_orders_categories_as_a_reader_expects():
    happy, sad = category_target("happiness"), category_target("sadness")
    angry, calm = category_target("anger"), category_target("calm")
    assert happy[VALENCE] > 0.5 > -0.5 > sad[VALENCE]
    assert angry[AROUSAL] > 0.5 and calm[AROUSAL] < -0.5
    assert angry[AROUSAL] > sad[AROUSAL]
    for negative in ("anger", "disgust", "fear", "contempt", "sadness"):
        assert category_target(negative)[VALENCE] < 0


def test_unknown_category_names_the_known_ones():
    with pytest.raises(KeyError, match="happiness"):
        category_target("joy")


def test_ferplus_targets_follow_column_order_and_are_frozen():
    assert FERPLUS_TARGETS.shape == (8, 2)
    for k, name in enumerate(FERPLUS_EMOTIONS):
        np.testing.assert_array_equal(FERPLUS_TARGETS[k], category_target(name))
    with pytest.raises(ValueError):
        FERPLUS_TARGETS[0, 0] = 0.0


def test_single_votes_are_outliers():
    row = votes(neutral=4, sadness=1, anger=3, disgust=2)
    cleaned = clean_votes(row)
    assert cleaned[labels.FERPLUS_COLUMNS.index("sadness")] == 0
    probabilities = ferplus_probabilities(row)
    assert probabilities.dtype == np.float32
    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities[FERPLUS_EMOTIONS.index("neutral")] == pytest.approx(4 / 9)
    assert probabilities[FERPLUS_EMOTIONS.index("anger")] == pytest.approx(3 / 9)
    assert probabilities[FERPLUS_EMOTIONS.index("sadness")] == 0


def test_usable_face_rule():
    rows = np.stack([
        votes(happiness=8, unknown=2),  # clear face
        votes(unknown=6, neutral=4),  # mostly unknown
        votes(NF=10),  # not a face
        votes(neutral=1, happiness=1, surprise=1, sadness=1, anger=1, disgust=1, fear=1,
              contempt=1, unknown=1, NF=1),  # every vote a stray: nothing left
        votes(neutral=3, unknown=2, NF=2),  # 3 emotion vs 4 other
        votes(neutral=5, unknown=3, NF=2),  # 5 vs 5 is not a majority
    ])
    np.testing.assert_array_equal(usable_face(rows), [True, False, False, False, False, False])


def test_vote_weighted_targets_place_mixed_faces_between_categories():
    rows = np.stack([votes(happiness=10), votes(sadness=10),
                     votes(happiness=5, surprise=5)])
    probabilities = ferplus_probabilities(rows)
    targets = ferplus_targets(probabilities)
    assert targets.shape == (3, 2) and targets.dtype == np.float32
    np.testing.assert_allclose(targets[0], category_target("happiness"))
    assert targets[0, VALENCE] > targets[1, VALENCE]
    np.testing.assert_allclose(
        targets[2], (category_target("happiness") + category_target("surprise")) / 2, atol=1e-6)
    np.testing.assert_array_equal(ferplus_majority(probabilities),
                                  [FERPLUS_EMOTIONS.index("happiness"),
                                   FERPLUS_EMOTIONS.index("sadness"),
                                   FERPLUS_EMOTIONS.index("happiness")])  # tie: lower index


def test_vote_shape_and_sign_are_checked():
    with pytest.raises(ValueError, match="10 columns"):
        ferplus_probabilities(np.zeros(8))
    with pytest.raises(ValueError, match="negative"):
        usable_face(votes(neutral=-1))
    with pytest.raises(ValueError, match=r"\[\.\.\., 8\]"):
        ferplus_targets(np.zeros(10))


def test_strong_intensity_has_more_arousal_than_normal():
    normal, strong = ravdess_target(5, 1), ravdess_target(5, 2)  # angry
    assert strong[AROUSAL] > normal[AROUSAL] > 0
    assert normal[AROUSAL] == pytest.approx(labels.NORMAL_INTENSITY_AROUSAL_SCALE
                                            * strong[AROUSAL])
    assert normal[VALENCE] == strong[VALENCE]
    np.testing.assert_array_equal(strong, category_target("anger"))
    # calm is low arousal: a strong calm clip is calmer still
    assert ravdess_target(2, 2)[AROUSAL] < ravdess_target(2, 1)[AROUSAL] < 0
    np.testing.assert_array_equal(ravdess_target(1, 1), category_target("neutral"))


def test_ravdess_codes_map_to_the_table_words():
    assert [labels.ravdess_category(code) for code in range(1, 9)] == [
        "neutral", "calm", "happiness", "sadness", "anger", "fear", "disgust", "surprise"]
    assert labels.FACE_CATEGORY_FOR_VOICE["calm"] == "neutral"


@pytest.mark.parametrize("emotion, intensity, message", [
    (9, 1, "1..8"), (0, 1, "1..8"), (3, 3, "intensity"), (1, 2, "neutral has no strong")])
def test_bad_ravdess_codes_are_rejected(emotion, intensity, message):
    with pytest.raises(ValueError, match=message):
        ravdess_target(emotion, intensity)
