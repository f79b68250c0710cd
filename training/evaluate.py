"""`affect-eval`: score an exported ONNX model on a dataset, through models/runtime.py.

    affect-eval --model MODEL.onnx --dataset KIND:PATH [--split NAME] --out DIR

What users run is what gets measured: the ONNX file in ONNX Runtime, not the PyTorch
model. KIND and what one scored item is:
  ferplus    PATH = FER+ root; one image held still for --face-steps steps with the voice
             silent, scored at the last step (face only)          split: FER2013Valid
  ravdess    PATH = RAVDESS root; one clip, face masked, scored as the mean over the
             clip (voice only)                                    split: valid (actors 17-20)
  synthetic  PATH = folder with ferplus/ and ravdess-speech-16k/; synthetic multimodal
             sequences from held-out identities, scored per 40 ms step   split: valid
  recola     PATH = AVEC 2016 RECOLA root, scored per step        split: dev
  manifest   PATH = manifest CSV, scored per step                 split: valid
--mask-face / --mask-voice remove a modality (for the fusion comparisons of the card).
--stream N (clip-scored sets: ravdess) plays the clips back to back in random runs of N
with the model's state carried, as a live stream does; each clip is still scored as the
mean over its own steps. The default, 1, starts every clip from a fresh state.
Writes DIR/metrics.json ({"arousal": {"ccc","pcc","rmse"}, "valence": {...}, "n", ...};
for ravdess also "by_speaker": the same per actor) and DIR/time.png, DIR/scatter.png.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.runtime import AffectSession, ModelLoadError
from models.spec import OUTPUT_DIMENSIONS, FaceCrop
from training.losses import regression_metrics

CHUNK_STEPS = 500  # long sequences run in chunks of this many steps, state carried


@dataclass(frozen=True)
class EvalSet:
    """Sequences to score and how to reduce each one's predictions to scored items."""

    sequences: list  # of training.data.sequences.Sequence
    reduce: str  # "last" step, "mean" over the sequence, or every "step"
    unit: str  # what one scored item is, for the report
    # The speaker of each scored item (one per sequence), where the corpus names them:
    # metrics.json then also scores each speaker alone, which shows whether a shortfall
    # is spread over every held-out voice or comes from one of them.
    speakers: tuple[str, ...] = ()


def load_eval_set(kind: str, path: Path, split: str | None, crop: FaceCrop,
                  face_steps: int, seed: int) -> EvalSet:
    from training.data import sequences as seq

    if kind == "ferplus":
        from training.data.ferplus import load_ferplus

        faces = load_ferplus(path, split or "FER2013Valid")
        rng = np.random.default_rng(seed)
        items = [seq.face_sequence(faces.images[i], faces.targets[i], face_steps, crop, rng,
                                   seq.NO_JITTER) for i in range(len(faces))]
        return EvalSet(items, "last", f"image (still face, {face_steps} steps, voice silent)")
    if kind == "ravdess":
        from training.data.ravdess import load_ravdess, split_actors

        clips = _ravdess_split(load_ravdess(path), split or "valid", split_actors)
        items = [seq.voice_sequence(clips.audio(i), clips.targets[i], crop)
                 for i in range(len(clips))]
        return EvalSet(items, "mean", "clip (mean over the clip, face masked)",
                       tuple(f"actor {actor}" for actor in clips.actor))
    if kind == "synthetic":
        return synthetic_eval_set(path, split, crop, seed)
    if kind in ("recola", "manifest"):
        return _annotated_recordings(kind, path, split, crop)
    raise ValueError(f"unknown dataset kind {kind!r}: choose ferplus, ravdess, synthetic, "
                     "recola or manifest")


def synthetic_eval_set(path: Path, split: str | None, crop: FaceCrop, seed: int,
                       config=None, count: int = 40,
                       unit: str = "40 ms step of a synthetic multimodal sequence") -> EvalSet:
    """``count`` synthetic multimodal sequences (``config``: SyntheticConfig, default
    dropout) from FER+ faces and RAVDESS voices of one split: held-out identities unless
    ``split`` is "train"."""
    from training.data import sequences as seq
    from training.data.ferplus import load_ferplus
    from training.data.ravdess import load_ravdess, split_actors

    train_split = split == "train"
    faces = load_ferplus(path / "ferplus", "FER2013Train" if train_split else "FER2013Valid")
    voices = split_actors(load_ravdess(path / "ravdess-speech-16k"))[0 if train_split else 1]
    builder = seq.SyntheticBuilder.from_data(faces, voices, crop,
                                             config or seq.SyntheticConfig())
    dataset = seq.SequenceDataset(builder, count, seed)
    return EvalSet([dataset[i] for i in range(count)], "step", unit)


def voice_clip_means(session: AffectSession, clips, gain_db: float = 0.0) -> np.ndarray:
    """[N, 2] per-clip readings of RAVDESS clips scored as `affect-eval --dataset ravdess
    --mask-face` scores them, with the audio scaled by ``gain_db`` and clipped to full scale
    (a louder or quieter microphone)."""
    from training.data import sequences as seq

    gain = 10 ** (gain_db / 20)
    items = [seq.voice_sequence(np.clip(np.asarray(clips.audio(i), np.float32) * gain,
                                        -1.0, 1.0), clips.targets[i], session.spec.face)
             for i in range(len(clips))]
    predictions, _ = score(session, EvalSet(items, "mean", "clip"), mask_face=True)
    return predictions


def _ravdess_split(clips, split: str, split_actors):
    train, valid = split_actors(clips)
    chosen = {"train": train, "valid": valid, "all": clips}.get(split)
    if chosen is None:
        raise ValueError(f"RAVDESS split must be train, valid or all, not {split!r}")
    return chosen


def _annotated_recordings(kind: str, path: Path, split: str | None, crop: FaceCrop) -> EvalSet:
    if kind == "recola":
        from training.data import recola as reader
    else:
        from training.data import manifest as reader
    sequences = reader.evaluation_sequences(path, split, crop)
    return EvalSet(sequences, "step", "40 ms step of an annotated recording")


def mask_modalities(sequence, mask_face: bool, mask_voice: bool):
    from training.data.sequences import NOISE_FLOOR, Sequence, noise_floor

    if not (mask_face or mask_voice):
        return sequence
    audio = sequence.audio
    if mask_voice:
        audio = noise_floor(sequence.steps, np.random.default_rng(0), NOISE_FLOOR)
    face_mask = np.zeros_like(sequence.face_mask) if mask_face else sequence.face_mask
    face = np.zeros_like(sequence.face) if mask_face else sequence.face
    return Sequence(audio=audio, face=face, face_mask=face_mask, target=sequence.target)


def predict_sequence(session: AffectSession, sequence) -> np.ndarray:
    """[T,2] predictions for one sequence, in chunks of CHUNK_STEPS with state carried."""
    state = session.initial_state(1)
    outputs = []
    for start in range(0, sequence.steps, CHUNK_STEPS):
        stop = start + CHUNK_STEPS
        face = sequence.face[start:stop].astype(np.float32) / 255.0
        output, state = session.run(sequence.audio[None, start:stop], face[None],
                                    sequence.face_mask[None, start:stop], state)
        outputs.append(output[0])
    return np.concatenate(outputs)


def predict_streamed(session: AffectSession, sequences: list, run: int,
                     seed: int) -> list[np.ndarray]:
    """Each sequence's [T,2] predictions when they play back to back in random runs of
    ``run`` with the state carried from one to the next; returned in the given order."""
    from training.data.sequences import Sequence

    order = np.random.default_rng(seed).permutation(len(sequences))
    outputs: list = [None] * len(sequences)
    for start in range(0, len(order), run):
        members = [sequences[i] for i in order[start:start + run]]
        joined = Sequence(**{name: np.concatenate([getattr(m, name) for m in members])
                             for name in ("audio", "face", "face_mask", "target")})
        output = predict_sequence(session, joined)
        ends = np.cumsum([m.steps for m in members])
        for index, piece in zip(order[start:start + run], np.split(output, ends[:-1])):
            outputs[index] = piece
    return outputs


def predict_batch(session: AffectSession, sequences: list) -> list[np.ndarray]:
    """Equal-length sequences in one call (stills of FER+): much faster than one by one."""
    audio = np.stack([s.audio for s in sequences])
    face = np.stack([s.face for s in sequences]).astype(np.float32) / 255.0
    mask = np.stack([s.face_mask for s in sequences])
    output, _ = session.run(audio, face, mask, session.initial_state(len(sequences)))
    return list(output)


def score(session: AffectSession, eval_set: EvalSet, mask_face=False, mask_voice=False,
          batch: int = 64, stream: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """-> (predictions [N,2], targets [N,2]) over the scored items; ``stream`` > 1 plays
    clip-scored items back to back in runs of that many (predict_streamed)."""
    if stream < 1:
        raise ValueError(f"--stream must be 1 or more clips, got {stream}")
    if stream > 1 and eval_set.reduce != "mean":
        raise ValueError("--stream is for datasets scored per clip (ravdess); "
                         f"this one is scored per {eval_set.unit}")
    sequences = [mask_modalities(s, mask_face, mask_voice) for s in eval_set.sequences]
    predictions, targets = [], []
    lengths = {s.steps for s in sequences}
    if stream > 1:
        outputs = predict_streamed(session, sequences, stream, seed)
    elif eval_set.reduce == "last" and len(lengths) == 1:
        outputs = [o for i in range(0, len(sequences), batch)
                   for o in predict_batch(session, sequences[i:i + batch])]
    else:
        outputs = [predict_sequence(session, s) for s in sequences]
    for sequence, output in zip(sequences, outputs):
        if eval_set.reduce == "last":
            predictions.append(output[-1:]), targets.append(sequence.target[-1:])
        elif eval_set.reduce == "mean":
            predictions.append(output.mean(0, keepdims=True))
            targets.append(sequence.target.mean(0, keepdims=True))
        else:
            predictions.append(output), targets.append(sequence.target)
    return np.concatenate(predictions), np.concatenate(targets)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plot(predictions: np.ndarray, targets: np.ndarray, out: Path, unit: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = slice(0, min(len(targets), 1500))
    figure, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for index, (axis, name) in enumerate(zip(axes, OUTPUT_DIMENSIONS)):
        axis.plot(targets[shown, index], label="target", color="black", linewidth=1)
        axis.plot(predictions[shown, index], label="predicted", color="tab:red", linewidth=1)
        axis.set_ylabel(name)
        axis.set_ylim(-1.1, 1.1)
        axis.axhline(0, color="grey", linewidth=0.5)
    axes[0].legend(loc="upper right")
    axes[1].set_xlabel(unit)
    figure.tight_layout()
    figure.savefig(out / "time.png", dpi=90)
    plt.close(figure)
    figure, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    for index, (axis, name) in enumerate(zip(axes, OUTPUT_DIMENSIONS)):
        axis.scatter(targets[:, index], predictions[:, index], s=3, alpha=0.3)
        axis.plot([-1, 1], [-1, 1], color="black", linewidth=0.5)
        axis.set_xlabel(f"target {name}")
        axis.set_ylabel(f"predicted {name}")
        axis.set_xlim(-1.1, 1.1)
        axis.set_ylim(-1.1, 1.1)
    figure.tight_layout()
    figure.savefig(out / "scatter.png", dpi=90)
    plt.close(figure)


def evaluate_model(model: Path, kind: str, path: Path, split: str | None, out: Path,
                   mask_face=False, mask_voice=False, face_steps=10, seed=0,
                   stream=1) -> dict:
    session = AffectSession(model)
    eval_set = load_eval_set(kind, path, split, session.spec.face, face_steps, seed)
    if not eval_set.sequences:
        raise ValueError(f"{kind}:{path} (split {split}) holds nothing to evaluate")
    predictions, targets = score(session, eval_set, mask_face, mask_voice, stream=stream,
                                 seed=seed)
    metrics = regression_metrics(predictions, targets)
    if eval_set.speakers:
        speakers = np.array(eval_set.speakers)
        metrics["by_speaker"] = {name: regression_metrics(predictions[speakers == name],
                                                          targets[speakers == name])
                                 for name in dict.fromkeys(eval_set.speakers)}  # file order
    unit = eval_set.unit + (f", played back to back in runs of {stream}" if stream > 1 else "")
    metrics.update({"unit": unit, "dataset": f"{kind}:{path}", "split": split,
                    "mask_face": mask_face, "mask_voice": mask_voice, "stream": stream,
                    "model": session.spec.name, "model_sha256": sha256(model)})
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    np.savez_compressed(out / "predictions.npz", predictions=predictions, targets=targets)
    plot(predictions, targets, out, unit)
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="affect-eval", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--model", type=Path, required=True, help="exported ONNX model to score")
    parser.add_argument("--dataset", required=True, help="KIND:PATH")
    parser.add_argument("--split", help="split to score (default: the held-out one of each kind)")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for metrics.json and the plots")
    parser.add_argument("--mask-face", action="store_true", help="score voice only")
    parser.add_argument("--mask-voice", action="store_true", help="score face only")
    parser.add_argument("--face-steps", type=int, default=10,
                        help="ferplus: steps each still face is held for (default 10)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the face jitter and synthetic sequences")
    parser.add_argument("--stream", type=int, default=1, metavar="N",
                        help="play clips back to back in random runs of N, state carried "
                             "(live use); 1 = each clip from a fresh state")
    args = parser.parse_args(argv)
    kind, separator, path = args.dataset.partition(":")
    if not separator or not path:
        parser.error(f"--dataset must be KIND:PATH, e.g. ravdess:../shared/data/"
                     f"ravdess-speech-16k (got {args.dataset!r})")
    try:
        metrics = evaluate_model(args.model, kind, Path(path), args.split, args.out,
                                 args.mask_face, args.mask_voice, args.face_steps, args.seed,
                                 args.stream)
    except (ModelLoadError, ValueError, OSError) as error:
        print(f"affect-eval: {error}", file=sys.stderr)
        return 1
    print(f"{args.dataset} ({metrics['n']} x {metrics['unit']}): "
          + ", ".join(f"{name} CCC {metrics[name]['ccc']:.3f} PCC {metrics[name]['pcc']:.3f} "
                      f"RMSE {metrics[name]['rmse']:.3f}" for name in OUTPUT_DIMENSIONS))
    for speaker, scores in metrics.get("by_speaker", {}).items():
        print(f"  {speaker} ({scores['n']}): " + ", ".join(
            f"{name} CCC {scores[name]['ccc']:.3f}" for name in OUTPUT_DIMENSIONS))
    print(f"wrote {args.out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
