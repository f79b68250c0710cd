"""How loud each RAVDESS actor speaks, per emotion: a check of how far a voice's arousal
can be read from its level alone.

Level of a clip: the mean energy (dB full scale) of its loudest 30% of 40 ms windows, so
the silence around the speech does not count. Printed per actor: all clips, neutral and
calm, angry, and the angry - neutral/calm range. An actor whose calm speech is as loud
as others' angry speech reads as aroused to a model that learnt arousal from level.

    python -m training.probes.voice_levels --data ../shared/data/ravdess-speech-16k
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from models.spec import WINDOW_SAMPLES
from training.data.ravdess import TRAIN_ACTORS, load_ravdess

LOUDEST_SHARE = 0.3
NEUTRAL_OR_CALM = (1, 2)  # RAVDESS emotion codes
ANGRY = 5


def speech_level_db(audio: np.ndarray, loudest_share: float = LOUDEST_SHARE) -> float:
    """Mean energy (dBFS) of the loudest ``loudest_share`` of the clip's 40 ms windows."""
    count = len(audio) // WINDOW_SAMPLES
    if count == 0:
        raise ValueError(f"a clip of {len(audio)} samples is shorter than one 40 ms window")
    windows = np.asarray(audio[:count * WINDOW_SAMPLES], np.float64).reshape(count, -1)
    energy_db = 10.0 * np.log10((windows ** 2).mean(axis=1) + 1e-12)
    loudest = np.sort(energy_db)[-max(1, int(count * loudest_share)):]
    return float(loudest.mean())


def actor_levels(levels: np.ndarray, emotion: np.ndarray, actor: np.ndarray) -> dict:
    """{actor: (all clips, neutral/calm, angry)} mean levels in dB."""
    table = {}
    for who in np.unique(actor):
        mine = actor == who
        table[int(who)] = (float(levels[mine].mean()),
                           float(levels[mine & np.isin(emotion, NEUTRAL_OR_CALM)].mean()),
                           float(levels[mine & (emotion == ANGRY)].mean()))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="RAVDESS folder (Actor_01 ... Actor_20)")
    args = parser.parse_args(argv)
    try:
        clips = load_ravdess(args.data)
    except (OSError, ValueError) as error:
        print(f"voice_levels: {error}", file=sys.stderr)
        return 2
    levels = np.array([speech_level_db(clips.audio(i)) for i in range(len(clips))])
    table = actor_levels(levels, clips.emotion, clips.actor)
    print(f"speech level (dBFS, loudest {LOUDEST_SHARE:.0%} of 40 ms windows), per actor")
    print("actor  all clips  neutral/calm  angry  range")
    for who, (everything, calm, angry) in table.items():
        print(f"{who:5d}  {everything:9.1f}  {calm:12.1f}  {angry:5.1f}  {angry - calm:5.1f}")
    train = [table[a] for a in TRAIN_ACTORS if a in table]
    if train:
        calm, angry = (float(np.mean([row[k] for row in train])) for k in (1, 2))
        print(f"actors 1-16 on average: neutral/calm {calm:.1f}, angry {angry:.1f}, "
              f"range {angry - calm:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
