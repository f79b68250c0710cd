"""Emotion categories and crowd votes -> (arousal, valence) targets on a [-1, 1] scale.

None of our corpora has continuous labels, so every target comes from ONE published
table of per-word ratings, applied to the category names:

    Saif M. Mohammad (2018). "Obtaining Reliable Human Ratings of Valence, Arousal,
    and Dominance for 20,000 English Words". Proceedings of the 56th Annual Meeting
    of the Association for Computational Linguistics (ACL 2018), Melbourne, pp. 174-184.
    The NRC Valence, Arousal, and Dominance (NRC-VAD) Lexicon, version 1.0 (4 May 2018),
    file ``NRC-VAD-Lexicon.txt``, https://saifmohammad.com/WebPages/nrc-vad.html
    (free for research and education; cite it in the model card).

The lexicon gives each word a valence, arousal and dominance score in [0, 1], obtained by
best-worst scaling of crowd judgements. ``NRC_VAD_V1`` below copies the valence and
arousal columns verbatim for the nine category words we need (dominance is unused);
the only transformation is the linear map ``x -> 2x - 1`` onto the model's [-1, 1] scale
(``models.spec.ModelSpec.output_range``). The noun forms are used throughout (the FER+
column names), so RAVDESS "happy", "sad", "angry", "fearful" and "surprised" are looked
up as happiness, sadness, anger, fear and surprise.

Caveat worth knowing: these are ratings of the *words*, not of faces or voices. In
particular "neutral" sits at arousal -0.63 (the word reads as unexciting), below
"sadness" (-0.42); a circumplex-style mapping would put a neutral face near the origin.
We keep the published numbers rather than invent our own.

Arrays produced here are ordered (arousal, valence), as ``models.spec.OUTPUT_DIMENSIONS``.
"""
from __future__ import annotations

from types import MappingProxyType

import numpy as np

from models.spec import OUTPUT_DIMENSIONS

# NRC-VAD Lexicon v1.0 rows (word: valence, arousal), both on the lexicon's 0..1 scale.
# Looked up one by one in NRC-VAD-Lexicon.txt; dominance column omitted.
NRC_VAD_V1: MappingProxyType = MappingProxyType({
    "neutral": (0.469, 0.184),
    "calm": (0.875, 0.100),
    "happiness": (0.960, 0.732),
    "surprise": (0.875, 0.875),
    "sadness": (0.052, 0.288),
    "anger": (0.167, 0.865),
    "disgust": (0.052, 0.775),
    "fear": (0.073, 0.840),
    "contempt": (0.206, 0.635),
})

# FER+ label.csv vote columns, in file order; the first eight are emotions.
FERPLUS_EMOTIONS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                    "fear", "contempt")
FERPLUS_COLUMNS = FERPLUS_EMOTIONS + ("unknown", "NF")

# RAVDESS file-name codes (Livingstone & Russo 2018), mapped onto the table's words.
RAVDESS_EMOTIONS: MappingProxyType = MappingProxyType({
    1: "neutral", 2: "calm", 3: "happiness", 4: "sadness",
    5: "anger", 6: "fear", 7: "disgust", 8: "surprise",
})
RAVDESS_NORMAL, RAVDESS_STRONG = 1, 2  # intensity codes

# Project choice, not from the literature: a RAVDESS "normal" intensity clip gets the
# table arousal times this factor (pulled towards 0), "strong" gets the table value.
# Valence is left alone: the actors vary loudness and effort, not how pleasant it is.
# Neutral has only one (normal) level and no intensity to speak of: it keeps the table value.
NORMAL_INTENSITY_AROUSAL_SCALE = 0.7

# FER+ faces have no "calm" category: a calm voice is paired with a neutral face.
FACE_CATEGORY_FOR_VOICE: MappingProxyType = MappingProxyType({
    "neutral": "neutral", "calm": "neutral", "happiness": "happiness",
    "sadness": "sadness", "anger": "anger", "fear": "fear", "disgust": "disgust",
    "surprise": "surprise",
})

# The categories of the training-only classification head (train.py --category-weight):
# FER+'s eight. A RAVDESS clip is one-hot on its FACE_CATEGORY_FOR_VOICE word.
CATEGORIES = FERPLUS_EMOTIONS


def category_distribution(category: str) -> np.ndarray:
    """Table word (a RAVDESS category included) -> float32 [len(CATEGORIES)] one-hot."""
    word = FACE_CATEGORY_FOR_VOICE.get(category, category)
    if word not in CATEGORIES:
        raise KeyError(f"category {category!r} has no class among {CATEGORIES}")
    distribution = np.zeros(len(CATEGORIES), np.float32)
    distribution[CATEGORIES.index(word)] = 1.0
    return distribution


_AROUSAL, _VALENCE = OUTPUT_DIMENSIONS.index("arousal"), OUTPUT_DIMENSIONS.index("valence")


def category_target(category: str) -> np.ndarray:
    """Table word -> float32 [2] (arousal, valence) in [-1, 1]."""
    try:
        valence, arousal = NRC_VAD_V1[category]
    except KeyError:
        raise KeyError(f"no valence/arousal for category {category!r}; "
                       f"known: {sorted(NRC_VAD_V1)}") from None
    target = np.empty(2, np.float32)
    target[_AROUSAL] = 2.0 * arousal - 1.0
    target[_VALENCE] = 2.0 * valence - 1.0
    return target


# [8, 2] (arousal, valence) of the FER+ emotions, in FER+ column order.
FERPLUS_TARGETS = np.stack([category_target(name) for name in FERPLUS_EMOTIONS])
FERPLUS_TARGETS.setflags(write=False)


def _as_votes(votes: np.ndarray) -> np.ndarray:
    votes = np.asarray(votes)
    if votes.shape[-1:] != (len(FERPLUS_COLUMNS),):
        raise ValueError(f"FER+ votes must have {len(FERPLUS_COLUMNS)} columns "
                         f"{FERPLUS_COLUMNS}, got shape {votes.shape}")
    if np.any(votes < 0):
        raise ValueError("FER+ vote counts cannot be negative")
    return votes.astype(np.float64)


def clean_votes(votes: np.ndarray) -> np.ndarray:
    """Drop single stray votes, as the FER+ reference code does ("outlier removal").

    Barsoum et al. (ICMI 2016) collected 10 votes per image; their released loader zeroes
    every column with only one vote before using the rest. [..., 10] -> float64 [..., 10].
    """
    votes = _as_votes(votes).copy()
    votes[votes <= 1.0] = 0.0
    return votes


def usable_face(votes: np.ndarray) -> np.ndarray:
    """True where the emotion votes outnumber unknown + not-a-face after outlier removal.

    An image whose cleaned votes are mostly "unknown" or "NF" (or that has no emotion vote
    left) is not a usable face: its label would be mostly noise.
    """
    votes = clean_votes(votes)
    emotion = votes[..., :len(FERPLUS_EMOTIONS)].sum(axis=-1)
    other = votes[..., len(FERPLUS_EMOTIONS):].sum(axis=-1)
    return (emotion > other) & (emotion > 0)


def ferplus_probabilities(votes: np.ndarray) -> np.ndarray:
    """[..., 10] vote counts -> float32 [..., 8] distribution over the FER+ emotions.

    Votes are cleaned (``clean_votes``) and unknown/NF dropped before normalising. Rows
    without any emotion vote left get all zeros; ``usable_face`` filters those out.
    """
    emotion = clean_votes(votes)[..., :len(FERPLUS_EMOTIONS)]
    total = emotion.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        probabilities = np.where(total > 0, emotion / total, 0.0)
    return probabilities.astype(np.float32)


def ferplus_targets(probabilities: np.ndarray) -> np.ndarray:
    """[..., 8] emotion distribution -> float32 [..., 2] vote-weighted (arousal, valence).

    The expectation of the table point under the crowd's distribution, so an image half
    happy, half surprised lands between the two.
    """
    probabilities = np.asarray(probabilities, np.float32)
    if probabilities.shape[-1:] != (len(FERPLUS_EMOTIONS),):
        raise ValueError(f"expected [..., {len(FERPLUS_EMOTIONS)}] probabilities, "
                         f"got shape {probabilities.shape}")
    return (probabilities @ FERPLUS_TARGETS).astype(np.float32)


def ferplus_majority(probabilities: np.ndarray) -> np.ndarray:
    """[..., 8] distribution -> int64 index of the most voted emotion (ties: lower index)."""
    return np.argmax(np.asarray(probabilities), axis=-1).astype(np.int64)


def ravdess_category(emotion_code: int) -> str:
    """RAVDESS emotion code (1..8) -> table word."""
    try:
        return RAVDESS_EMOTIONS[int(emotion_code)]
    except KeyError:
        raise ValueError(f"RAVDESS emotion code must be 1..8, got {emotion_code!r}") from None


def ravdess_target(emotion_code: int, intensity_code: int) -> np.ndarray:
    """RAVDESS emotion (1..8) and intensity (1 normal, 2 strong) -> float32 [2].

    (arousal, valence): strong = table point; normal = arousal x
    ``NORMAL_INTENSITY_AROUSAL_SCALE``; neutral (code 1) exists only at normal intensity
    and keeps the table point.
    """
    category = ravdess_category(emotion_code)
    if intensity_code not in (RAVDESS_NORMAL, RAVDESS_STRONG):
        raise ValueError(f"RAVDESS intensity code must be 1 (normal) or 2 (strong), "
                         f"got {intensity_code!r}")
    if category == "neutral" and intensity_code == RAVDESS_STRONG:
        raise ValueError("RAVDESS neutral has no strong intensity (code 02)")
    target = category_target(category)
    if intensity_code == RAVDESS_NORMAL and category != "neutral":
        target[_AROUSAL] *= NORMAL_INTENSITY_AROUSAL_SCALE
    return target
