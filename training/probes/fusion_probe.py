"""How much does a fused model listen to the voice while it sees a face?

On synthetic multimodal sequences from held-out identities (FER2013Valid faces, RAVDESS
actors 17-20) in which face and voice are both present and show different emotions
(``SyntheticConfig(p_mismatch=1)``), the exported model runs three times: as is, with the
voice masked (face reading) and with the face masked (voice reading). A least-squares fit
``fused = a * face reading + b * voice reading + c`` per step and dimension gives the
weight each reading gets; the CCC of each against the target (the mean of what is seen and
heard) shows what weighing both could gain. A model that ignores the voice whenever a face
is in view has a = 1, b = 0.

    python -m training.probes.fusion_probe --model models/default.onnx --data ../shared/data
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from models.runtime import AffectSession, ModelLoadError
from models.spec import OUTPUT_DIMENSIONS
from training.evaluate import EvalSet, score, synthetic_eval_set
from training.losses import regression_metrics


def mismatched_sequences(data_root: Path, crop, count: int, seed: int) -> EvalSet:
    """``count`` 20 s held-out sequences, every segment with a face and a voice that disagree."""
    from training.data.sequences import SyntheticConfig

    config = SyntheticConfig(p_face_missing=0.0, p_silence=0.0, p_mismatch=1.0)
    return synthetic_eval_set(data_root, "valid", crop, seed, config, count,
                              "40 ms step, face and voice disagreeing")


def reading_weights(fused: np.ndarray, face: np.ndarray, voice: np.ndarray) -> np.ndarray:
    """[N,2] outputs -> [2, 3]: per dimension (face weight, voice weight, offset)."""
    weights = []
    for k in range(fused.shape[1]):
        design = np.column_stack([face[:, k], voice[:, k], np.ones(len(fused))])
        weights.append(np.linalg.lstsq(design, fused[:, k], rcond=None)[0])
    return np.array(weights)


def probe(model: Path, data_root: Path, count: int = 16, seed: int = 5) -> dict:
    session = AffectSession(model)
    eval_set = mismatched_sequences(data_root, session.spec.face, count, seed)
    fused, target = score(session, eval_set)
    face, _ = score(session, eval_set, mask_voice=True)
    voice, _ = score(session, eval_set, mask_face=True)
    weights = reading_weights(fused, face, voice)
    readings = {"fused": fused, "face": face, "voice": voice}
    return {name: {"face_weight": float(weights[k, 0]), "voice_weight": float(weights[k, 1]),
                   **{f"ccc_{reading}": regression_metrics(output, target)[name]["ccc"]
                      for reading, output in readings.items()}}
            for k, name in enumerate(OUTPUT_DIMENSIONS)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.probes.fusion_probe",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="folder holding ferplus/ and ravdess-speech-16k/")
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        result = probe(args.model, args.data, args.sequences, args.seed)
    except (ModelLoadError, ValueError, OSError) as error:
        print(f"fusion_probe: {error}", file=sys.stderr)
        return 1
    for name, row in result.items():
        print(f"{name}: fused = {row['face_weight']:.2f} x face + {row['voice_weight']:.2f} x "
              f"voice; CCC fused {row['ccc_fused']:.3f}, face only {row['ccc_face']:.3f}, "
              f"voice only {row['ccc_voice']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
