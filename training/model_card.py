"""Ship an evaluated model: metrics into its ONNX spec, and a model card beside it.

    python -m training.model_card --model runs/default/default.onnx \
        --evals runs/default/eval --time runs/default/time.txt --out models/default.onnx

Reads every ``EVALS/<name>/metrics.json`` that ``affect-eval`` wrote, stores them in the
spec's ``metrics`` (so the numbers travel with the file and `models/runtime.py` shows
them), fills training data and licence, and writes ``<out>.md`` from the same numbers.
Only metadata changes: the graph is copied byte for byte, so its parity checks stand.
"""
from __future__ import annotations

import argparse
import json
import platform
from dataclasses import replace
from pathlib import Path

from models.runtime import read_spec
from models.spec import SPEC_METADATA_KEY, ModelSpec
from training.network import preset

TRAINING_DATA = (
    "FER+ (Barsoum et al., ICMI 2016) labels, MIT licence, on FER2013 images "
    "(Goodfellow et al., 2013), research use: FER2013Train",
    "RAVDESS speech (Livingstone & Russo, PLoS ONE 2018), CC BY-NC-SA 4.0: actors 1-16",
    "synthetic multimodal sequences built from the two above (training/data/sequences.py)",
    "labels: NRC VAD Lexicon v1.0 (Mohammad, ACL 2018) category ratings mapped to -1..1",
)
LICENCE = ("CC BY-NC-SA 4.0, non-commercial: inherited from RAVDESS; FER2013 images are "
           "for research use")

# The audio branch's last step (NetworkConfig.audio_pooling), and why where it is not the paper's.
AUDIO_POOLING = {
    "filters": "max-pool 10 across filters -> 1,280 features",
    "time": ("log(1 + max) and log(1 + mean) of each filter over\n  the window -> 80 "
             "features (the paper: max-pool 10 across filters; why:\n  "
             "docs/experiments/2026-11-28-audio-front-end.md)"),
}

# The card's line for NetworkConfig.audio_descriptors (not in the paper).
AUDIO_DESCRIPTORS = (
    "- beside the audio CNN, fixed acoustic descriptors of each window, with no trained\n"
    "  weights (`training/audio_descriptors.py`): 40 log-mel bands relative to their mean, log\n"
    "  energy, F0 at the normalised autocorrelation peak in 60-400 Hz and that peak's height\n"
    "  (voicing) -> 43 more features for the LSTM (not in the paper);\n")

# What each evaluation folder measures and the command that reproduces it.
EVALUATIONS = {
    "ferplus": ("FER+ FER2013Valid, face only (voice masked), per image",
                "affect-eval --model models/default.onnx --dataset ferplus:../shared/data/ferplus "
                "--split FER2013Valid --mask-voice --out out/eval/ferplus"),
    "ravdess": ("RAVDESS actors 17-20, voice only (face masked), per clip",
                "affect-eval --model models/default.onnx --dataset "
                "ravdess:../shared/data/ravdess-speech-16k --split valid --mask-face "
                "--out out/eval/ravdess"),
    "synthetic-fused": ("synthetic multimodal sequences, held-out identities, face + voice",
                        "affect-eval --model models/default.onnx --dataset "
                        "synthetic:../shared/data --split valid --out out/eval/synthetic-fused"),
    "synthetic-face": ("the same sequences, face only (voice masked)",
                       "affect-eval --model models/default.onnx --dataset "
                       "synthetic:../shared/data --split valid --mask-voice "
                       "--out out/eval/synthetic-face"),
    "synthetic-voice": ("the same sequences, voice only (face masked)",
                        "affect-eval --model models/default.onnx --dataset "
                        "synthetic:../shared/data --split valid --mask-face "
                        "--out out/eval/synthetic-voice"),
}


def collect_metrics(evals: Path) -> dict:
    metrics = {}
    for name in EVALUATIONS:
        path = evals / name / "metrics.json"
        if path.is_file():
            raw = json.loads(path.read_text())
            metrics[name] = {key: raw[key] for key in ("arousal", "valence", "n", "unit")}
    return metrics


def write_onnx_with_spec(source: Path, out: Path, spec: ModelSpec) -> None:
    import onnx

    graph = onnx.load(str(source))
    for entry in graph.metadata_props:
        if entry.key == SPEC_METADATA_KEY:
            entry.value = spec.to_json()
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph, str(out))


def real_clip_means(analysis: Path | None) -> dict:
    """{clip: {"arousal_mean", "valence_mean", "face_share"}} from `affect-monitor analyze`."""
    if analysis is None:
        return {}
    clips = {}
    for summary in sorted(analysis.glob("*/summary.json")):
        raw = json.loads(summary.read_text())
        clips[summary.parent.name] = {key: raw[key] for key in
                                      ("arousal_mean", "valence_mean", "face_share")}
    return clips


def clips_table(clips: dict) -> str:
    if not clips:
        return "(not measured)"
    rows = ["| clip | mean arousal | mean valence | steps with a face |", "|---|---|---|---|"]
    rows += [f"| {name} | {c['arousal_mean']:.3f} | {c['valence_mean']:.3f} | "
             f"{100 * c['face_share']:.0f}% |" for name, c in clips.items()]
    return "\n".join(rows)


def metrics_table(metrics: dict) -> str:
    rows = ["| evaluation | n | arousal CCC | valence CCC | arousal PCC / RMSE | "
            "valence PCC / RMSE |", "|---|---|---|---|---|---|"]
    for name, (title, _) in EVALUATIONS.items():
        if name in metrics:
            m = metrics[name]
            rows.append(f"| {title} | {m['n']} | **{m['arousal']['ccc']:.3f}** | "
                        f"**{m['valence']['ccc']:.3f}** | {m['arousal']['pcc']:.3f} / "
                        f"{m['arousal']['rmse']:.3f} | {m['valence']['pcc']:.3f} / "
                        f"{m['valence']['rmse']:.3f} |")
    return "\n".join(rows)


# Benchmark outputs the experts card quotes: EVALS/<name>.txt, written by the recipe with
# the command that made it on the first line.
BENCHMARKS = ("voice_baseline", "voice_heard", "fusion_probe")


def benchmark_outputs(evals: Path) -> dict:
    return {name: ((evals / f"{name}.txt").read_text().strip()
                   if (evals / f"{name}.txt").is_file() else "(not measured)")
            for name in BENCHMARKS}


def commands(metrics: dict) -> str:
    return "\n".join(EVALUATIONS[name][1] for name in EVALUATIONS if name in metrics)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--evals", type=Path, required=True)
    parser.add_argument("--time", type=Path, help="file with the recipe's training time line")
    parser.add_argument("--clips", type=Path,
                        help="`affect-monitor analyze` output on the CREMA-D sample clips")
    parser.add_argument("--template", type=Path,
                        default=Path(__file__).with_name("model_card_template.md"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    spec = read_spec(args.model)
    if (spec.network.get("fusion", "lstm") == "experts"
            and args.template == parser.get_default("template")):
        args.template = Path(__file__).with_name("model_card_experts.md")
    metrics = collect_metrics(args.evals)
    clips = real_clip_means(args.clips)
    spec = replace(spec, metrics={**metrics, "cremad-sample": clips},
                   training_data=TRAINING_DATA, licence=LICENCE,
                   description=f"Tzirakis et al. (2017) architecture, '{spec.preset}' preset; "
                               f"see {args.out.with_suffix('.md').name}")
    write_onnx_with_spec(args.model, args.out, spec)
    training_time = args.time.read_text().strip() if args.time and args.time.is_file() else "?"
    # the model's own architecture; models exported before the spec carried it: its preset's
    network = spec.network or preset(spec.preset).to_dict()
    card = args.template.read_text().format(
        face_hidden=network.get("lstm_hidden"), voice_hidden=network.get("voice_hidden"),
        memory=network.get("voice_memory_seconds", 0), state=f"{spec.lstm_layers}, batch, "
        f"{spec.lstm_hidden}", **benchmark_outputs(args.evals),
        audio_pooling=AUDIO_POOLING[network.get("audio_pooling", "filters")],
        audio_descriptors=AUDIO_DESCRIPTORS if network.get("audio_descriptors") else "",
        name=spec.name, preset=spec.preset, audio_gain=network["audio_gain"],
        audio_filters=network["audio_filters"], audio_kernel=network.get("audio_kernel", 20),
        audio_dropout=network["audio_dropout"], face_size=spec.face.size,
        face_channels=spec.face.channels, face_margin=spec.face.margin,
        metrics_table=metrics_table(metrics),
        eval_commands=commands(metrics), training_time=training_time,
        clips_table=clips_table(clips),
        machine=f"{platform.machine()}, {platform.processor() or 'CPU'}",
        size_mb=f"{args.out.stat().st_size / 1e6:.1f}", licence=LICENCE)
    args.out.with_suffix(".md").write_text(card)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
