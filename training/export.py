"""`affect-export CHECKPOINT -o model.onnx`: one ONNX graph for live and offline use.

The export only succeeds when the graph passes onnx.checker and two parity checks
(max difference <= --tolerance on outputs and final state; absolute for the outputs and
h, relative to max(1, |c|) for the cell state c, which is unbounded: a trained LSTM cell
can count up to c = 500 over 500 steps, where float32 spacing alone is 6e-5):
  1. PyTorch vs ONNX Runtime on the same T-step sequence;
  2. ONNX Runtime stepped T times with T=1 (live) vs once with T steps (offline).
The file is written under a temporary name and renamed only after both pass.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.runtime import AffectSession
from models.spec import INPUT_NAMES, OUTPUT_NAMES, SPEC_METADATA_KEY, ModelSpec
from training.checkpoint import CheckpointError, load_checkpoint
from training.network import AffectNet

OPSET = 17
DEFAULT_LICENCE = "see the model card"


class ExportError(RuntimeError):
    """The exported graph is invalid or does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class ParityReport:
    torch_vs_onnx: float  # max abs difference, outputs and final state
    stepped_vs_whole: float
    steps: int


def spec_for(model: AffectNet, name: str, preset_name: str, **provenance) -> ModelSpec:
    config = model.config
    layers, width = model.initial_state(1)[0].shape[::2]
    return ModelSpec(name=name, preset=preset_name, face=config.face_crop,
                     lstm_layers=layers, lstm_hidden=width,
                     network=config.to_dict(), **provenance)


def export_onnx(model: AffectNet, spec: ModelSpec, path: Path) -> None:
    """Trace the model with dynamic batch and time axes and embed the spec as metadata."""
    import onnx

    model = model.eval()
    config = model.config
    steps, batch = 3, 1
    example = (torch.zeros(batch, steps, 640),
               torch.zeros(batch, steps, config.face_channels, config.face_size, config.face_size),
               torch.ones(batch, steps), *model.initial_state(batch))
    dynamic_axes = {"audio": {0: "batch", 1: "steps"}, "face": {0: "batch", 1: "steps"},
                    "face_mask": {0: "batch", 1: "steps"}, "h": {1: "batch"}, "c": {1: "batch"},
                    "arousal_valence": {0: "batch", 1: "steps"}, "h_out": {1: "batch"},
                    "c_out": {1: "batch"}}
    with warnings.catch_warnings():
        # The TorchScript exporter warns about LSTM batch sizes and its own deprecation;
        # the parity checks below are what tell us the graph is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic_axes,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = SPEC_METADATA_KEY, spec.to_json()
    graph.producer_name = "affect-monitor"
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))


def random_sequence(model: AffectNet, steps: int, seed: int = 0):
    """Speech-like noise, random faces and a face mask with gaps, for parity checks."""
    rng = np.random.default_rng(seed)
    config = model.config
    audio = (rng.standard_normal((1, steps, 640)) * 0.1).astype(np.float32)
    face = rng.random((1, steps, config.face_channels, config.face_size, config.face_size),
                      dtype=np.float32)
    face_mask = (rng.random((1, steps)) > 0.2).astype(np.float32)
    return audio, face, face_mask


def check_parity(model: AffectNet, path: Path, steps: int) -> ParityReport:
    model = model.eval()
    session = AffectSession(path, providers=["CPUExecutionProvider"])
    audio, face, face_mask = random_sequence(model, steps)
    state = session.initial_state(1)

    with torch.no_grad():
        reference = model(*(torch.from_numpy(x) for x in (audio, face, face_mask,
                                                          state.h, state.c)))
    reference = [t.numpy() for t in reference]
    whole, whole_state = session.run(audio, face, face_mask, state)
    torch_vs_onnx = max_difference(reference, [whole, whole_state.h, whole_state.c])

    stepped, stepped_state = [], state
    for t in range(steps):
        output, stepped_state = session.run(audio[:, t:t + 1], face[:, t:t + 1],
                                            face_mask[:, t:t + 1], stepped_state)
        stepped.append(output)
    stepped_vs_whole = max_difference(
        [np.concatenate(stepped, axis=1), stepped_state.h, stepped_state.c],
        [whole, whole_state.h, whole_state.c])
    return ParityReport(torch_vs_onnx, stepped_vs_whole, steps)


def max_difference(first: list[np.ndarray], second: list[np.ndarray]) -> float:
    """Max difference of (outputs, h, c): absolute, and for c relative to max(1, |c|)."""
    (output_a, h_a, c_a), (output_b, h_b, c_b) = first, second
    cell = np.abs(c_a - c_b) / np.maximum(1.0, np.abs(c_b))
    return max(float(np.abs(output_a - output_b).max()), float(np.abs(h_a - h_b).max()),
               float(cell.max()))


def export_checkpoint(checkpoint_path: Path, output: Path, name: str | None = None,
                      steps: int = 500, tolerance: float = 1e-4) -> ParityReport:
    model, checkpoint = load_checkpoint(checkpoint_path)
    card = checkpoint.get("card", {})
    spec = spec_for(model, name or output.stem, checkpoint.get("preset", "custom"),
                    training_data=tuple(card.get("training_data", ())),
                    metrics=card.get("metrics", {}),
                    licence=card.get("licence", DEFAULT_LICENCE),
                    description=card.get("description", ""))
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".partial")
    try:
        export_onnx(model, spec, temporary)
        report = check_parity(model, temporary, steps)
        if max(report.torch_vs_onnx, report.stepped_vs_whole) > tolerance:
            raise ExportError(
                f"parity check failed over {steps} steps: PyTorch vs ONNX Runtime max abs "
                f"difference {report.torch_vs_onnx:.2e}, T=1 stepped vs T={steps} "
                f"{report.stepped_vs_whole:.2e} (tolerance {tolerance:.0e}); {output} not written")
        temporary.replace(output)
        return report
    finally:
        temporary.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="affect-export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (.pt) to export")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="ONNX file to write (only after both parity checks pass)")
    parser.add_argument("--name", help="model name stored in the spec (default: file stem)")
    parser.add_argument("--steps", type=int, default=500, help="parity sequence length")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest parity difference allowed (default 1e-4)")
    args = parser.parse_args(argv)
    try:
        report = export_checkpoint(args.checkpoint, args.output, args.name, args.steps,
                                   args.tolerance)
    except (CheckpointError, ExportError) as error:
        print(f"affect-export: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: parity over {report.steps} steps, PyTorch vs ONNX Runtime "
          f"{report.torch_vs_onnx:.1e}, T=1 stepped vs whole {report.stepped_vs_whole:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
