"""The classic acoustic-feature baseline a reviewer tries first, on the clips our voice bar uses.

    python benchmarks/voice_baseline.py [--data ../shared/data/ravdess-speech-16k]
                                        [--model models/default.onnx] [--gains-db 0]

openSMILE eGeMAPSv02 functionals (88 per clip) + an RBF SVR per dimension (scikit-learn
defaults, C=1), trained on RAVDESS actors 1-16 and scored on actors 17-20 per clip, with
features z-scored over the training set ("pooled") and, as a second row, per speaker. The
same clips then go through the ONNX model, voice only (face masked), each clip scored as the
mean of its 40 ms outputs from a fresh state, exactly as `affect-eval --dataset ravdess`
does. With --gains-db, the model is also scored with every clip's audio scaled by each
gain (clipped to -1..1, as a microphone would): the figures for "same person, any gain".

Needs the dev extra (opensmile, scikit-learn): pip install -e '.[dev]'.
Features are cached under $AFFECT_CACHE_DIR (default ~/.cache/affect-monitor).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.runtime import AffectSession  # noqa: E402
from training.data.ravdess import load_ravdess, split_actors  # noqa: E402
from training.evaluate import voice_clip_means  # noqa: E402
from training.losses import ccc  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ravdess-speech-16k"


def egemaps_features(clips, cache: Path) -> np.ndarray:
    """[N, 88] eGeMAPSv02 functionals of every clip (cached by clip names)."""
    digest = hashlib.sha256("\n".join(clips.names).encode()).hexdigest()[:16]
    key = cache / f"egemaps-{digest}.npy"
    if key.is_file():
        return np.load(key)
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    features = np.stack([smile.process_signal(clips.audio(i), 16000).to_numpy()[0]
                         for i in range(len(clips))]).astype(np.float64)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(key, features)
    return features


def zscore_by(features: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.empty_like(features)
    for group in np.unique(groups):
        rows = groups == group
        mean, std = features[rows].mean(0), features[rows].std(0)
        out[rows] = (features[rows] - mean) / np.where(std > 0, std, 1.0)
    return out


def svr_scores(train_x, train_y, valid_x, valid_y) -> tuple[float, float]:
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    scaler = StandardScaler().fit(train_x)
    scores = []
    for dim in range(2):
        model = SVR(kernel="rbf", C=1.0).fit(scaler.transform(train_x), train_y[:, dim])
        scores.append(ccc(model.predict(scaler.transform(valid_x)), valid_y[:, dim]))
    return scores[0], scores[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, action="append",
                        help="ONNX model(s) to score beside the baseline (default: the shipped one)")
    parser.add_argument("--gains-db", type=float, nargs="*", default=[0.0])
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"voice_baseline: RAVDESS folder not found: {args.data}", file=sys.stderr)
        return 2
    cache = Path(os.environ.get("AFFECT_CACHE_DIR", Path.home() / ".cache" / "affect-monitor"))
    train, valid = split_actors(load_ravdess(args.data))
    train_x, valid_x = egemaps_features(train, cache), egemaps_features(valid, cache)
    print(f"RAVDESS actors 1-16 -> 17-20, {len(valid)} held-out clips, CCC per clip "
          "(arousal / valence)")
    arousal, valence = svr_scores(train_x, train.targets, valid_x, valid.targets)
    print(f"  eGeMAPSv02 + SVR (pooled z-score)       {arousal:.3f} / {valence:.3f}")
    arousal, valence = svr_scores(zscore_by(train_x, train.actor), train.targets,
                                  zscore_by(valid_x, valid.actor), valid.targets)
    print(f"  eGeMAPSv02 + SVR (z-scored per speaker) {arousal:.3f} / {valence:.3f}")
    for model in args.model or [ROOT / "models" / "default.onnx"]:
        session = AffectSession(model, intra_op_threads=2)
        reference = None
        for gain_db in args.gains_db:
            means = voice_clip_means(session, valid, gain_db)
            reference = means if reference is None else reference
            drift = np.abs(means - reference).mean(axis=0)
            print(f"  {session.spec.name} voice only at {gain_db:+.0f} dB           "
                  f"{ccc(means[:, 0], valid.targets[:, 0]):.3f} / "
                  f"{ccc(means[:, 1], valid.targets[:, 1]):.3f}"
                  f"   (mean |change| vs first gain: {drift[0]:.3f} / {drift[1]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
