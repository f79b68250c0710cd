"""Speed of one live 40 ms step (T=1) for each preset, exported to ONNX.

    python benchmarks/model_speed.py [--presets paper light small] [--runs 300]
                                     [--audio-pooling filters|time] [--audio-kernel N]
                                     [--audio-descriptors]

Reports parameters, FLOPs per step, ONNX Runtime step latency p50/p95 on 1 and 2
threads, and achieved FLOP/s as a share of a matrix-multiply peak measured with the
same runtime and thread count on this machine. Weights are random: latency does not
depend on their values.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.runtime import AffectSession
from training.export import export_onnx, spec_for
from training.network import AUDIO_POOLINGS, PRESETS, AffectNet, build_network, count_parameters


def flops_per_step(model: AffectNet) -> int:
    """Multiply-adds x 2 of conv, linear and LSTM layers for one step (T=1, batch 1)."""
    total = 0

    def conv_hook(module, inputs, output):
        nonlocal total
        kernel = int(np.prod(module.kernel_size)) * module.in_channels // module.groups
        total += 2 * output.numel() * kernel

    def linear_hook(module, inputs, output):
        nonlocal total
        total += 2 * output.numel() * module.in_features

    hooks = []
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))
    config = model.config
    with torch.no_grad():
        model(torch.zeros(1, 1, 640),
              torch.zeros(1, 1, config.face_channels, config.face_size, config.face_size),
              torch.ones(1, 1), *model.initial_state(1))
    for hook in hooks:
        hook.remove()
    for lstm in (m for m in model.modules() if isinstance(m, nn.LSTM)):
        for layer in range(lstm.num_layers):
            inputs = lstm.input_size if layer == 0 else lstm.hidden_size
            total += 2 * 4 * lstm.hidden_size * (inputs + lstm.hidden_size)
    return total


def step_latency_ms(path: Path, threads: int, runs: int) -> tuple[float, float]:
    session = AffectSession(path, providers=["CPUExecutionProvider"], intra_op_threads=threads)
    channels, size, _ = session.spec.face_shape
    audio = np.random.default_rng(0).standard_normal((1, 1, 640)).astype(np.float32) * 0.1
    face = np.random.default_rng(1).random((1, 1, channels, size, size), dtype=np.float32)
    mask = np.ones((1, 1), np.float32)
    state = session.initial_state()
    for _ in range(20):  # warm-up: first runs allocate and pick kernels
        _, state = session.run(audio, face, mask, state)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        _, state = session.run(audio, face, mask, state)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def matmul_peak_gflops(threads: int, size: int = 1024, runs: int = 20) -> float:
    """Best FLOP/s of a float32 square MatMul in ONNX Runtime at this thread count."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])], "matmul",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    onnx.checker.check_model(model)
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    session.run(None, {"a": a, "b": a})
    best = min(_timed(lambda: session.run(None, {"a": a, "b": a})) for _ in range(runs))
    return 2 * size ** 3 / best / 1e9


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["paper", "light", "small"])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--audio-pooling", choices=AUDIO_POOLINGS,
                        help="override the presets' audio pooling (the shipped model: time)")
    parser.add_argument("--audio-kernel", type=int,
                        help="override the presets' first audio conv taps (the paper: 20)")
    parser.add_argument("--audio-descriptors", action="store_true",
                        help="add the fixed acoustic descriptors (training/audio_descriptors.py)")
    args = parser.parse_args()
    peaks = {threads: matmul_peak_gflops(threads) for threads in (1, 2)}
    print(f"ONNX Runtime MatMul peak: {peaks[1]:.1f} GFLOP/s on 1 thread, "
          f"{peaks[2]:.1f} GFLOP/s on 2 threads\n")
    print("| preset | face | params (M) | GFLOP/step | 1 thread p50 / p95 (ms) | "
          "2 threads p50 / p95 (ms) | share of peak (2 threads, p50) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.presets:
            torch.manual_seed(0)
            config = PRESETS[name]
            if args.audio_pooling:
                config = replace(config, audio_pooling=args.audio_pooling)
            if args.audio_kernel:
                config = replace(config, audio_kernel=args.audio_kernel)
            if args.audio_descriptors:
                config = replace(config, audio_descriptors=True)
            model = build_network(config).eval()
            path = Path(folder) / f"{name}.onnx"
            export_onnx(model, spec_for(model, name, name), path)
            flops = flops_per_step(model)
            latency = {threads: step_latency_ms(path, threads, args.runs) for threads in (1, 2)}
            achieved = flops / (latency[2][0] / 1000) / 1e9
            config = model.config
            print(f"| {name} | {config.face_size}x{config.face_size}x{config.face_channels} | "
                  f"{count_parameters(model) / 1e6:.1f} | {flops / 1e9:.3f} | "
                  f"{latency[1][0]:.1f} / {latency[1][1]:.1f} | "
                  f"{latency[2][0]:.1f} / {latency[2][1]:.1f} | "
                  f"{achieved:.1f} GFLOP/s = {100 * achieved / peaks[2]:.0f}% |", flush=True)


if __name__ == "__main__":
    main()
