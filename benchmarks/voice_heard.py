"""Does the model hear the voice while it sees a face? The CREMA-D clips three ways.

    python benchmarks/voice_heard.py [--data ../shared/data/cremad-sample] [--model M ...]

Each audio-visual clip (one actor, six emotions) is analysed exactly as
`affect-monitor analyze` does, with its own audio, with the audio replaced by digital
silence, and with the audio 20 dB louder (clipped to full scale, as an overdriven
microphone). Printed: each clip's mean arousal / valence in the three conditions. A model
that ignores the voice whenever a face is in view gives the same numbers in all three.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.analyze import analyze_file  # noqa: E402
from models.runtime import AffectSession  # noqa: E402

CONDITIONS = {
    "own audio": None,
    "silent": lambda window: np.zeros_like(window),
    "+20 dB": lambda window: np.clip(window * 10.0, -1.0, 1.0),
}


def clip_means(session: AffectSession, path: Path) -> dict[str, tuple[float, float]]:
    means = {}
    for name, transform in CONDITIONS.items():
        result = analyze_file(path, session, audio_transform=transform)
        means[name] = (float(result.arousal.mean()), float(result.valence.mean()))
    return means


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cremad-sample")
    parser.add_argument("--model", type=Path, action="append")
    args = parser.parse_args(argv)
    clips = sorted(args.data.glob("*.flv"))
    if not clips:
        print(f"voice_heard: no .flv clips in {args.data}", file=sys.stderr)
        return 2
    for model in args.model or [ROOT / "models" / "default.onnx"]:
        session = AffectSession(model, intra_op_threads=2)
        print(f"{session.spec.name}: mean arousal / valence per clip")
        print(f"  {'clip':<24}" + "".join(f"{name:>18}" for name in CONDITIONS))
        for path in clips:
            means = clip_means(session, path)
            print(f"  {path.stem:<24}" + "".join(f"{a:>9.3f}{v:>9.3f}" for a, v in means.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
