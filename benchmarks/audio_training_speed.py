"""Training speed of the audio CNN: float32, through the FFT, and in bfloat16.

    python benchmarks/audio_training_speed.py [--windows 1200] [--repeats 5] [--threads 2]

Times one forward + backward pass of the small preset's audio branch (time pooling) over
one voice-stage batch of 40 ms windows (default 16 clips x 75 steps), median of the
repeats, for plain float32, the second convolution through the FFT, and bfloat16
autocast, and prints each speed-up. It also reports whether this CPU has native bfloat16
(AVX-512 BF16 or AMX): without it bfloat16 autocast on CPU is emulated and slower than
float32 (0.17x on an AMD EPYC with AVX2 only). No recipe trains this way (the affect-train
options were deleted); the measurements: docs/experiments/2026-12-01-audio-training-speed.md.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from training.network import AudioCNN, cpu_has_native_bfloat16, preset


def seconds_per_pass(branch: AudioCNN, windows: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first pass warms oneDNN up and is dropped
        branch.zero_grad()
        start = time.perf_counter()
        branch(windows).sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=16 * 75)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = preset("small")
    branch = AudioCNN(config.audio_filters, config.audio_dropout, gain=config.audio_gain,
                      pooling="time").train()
    windows = torch.randn(args.windows, 640) * 0.02
    results = {}
    for name, by_fft, reduced in (("float32", False, False), ("fft", True, False),
                                  ("bfloat16", False, True)):
        branch.train_by_fft, branch.train_in_bfloat16 = by_fft, reduced
        results[name] = seconds_per_pass(branch, windows, args.repeats)
        print(f"{name:9s} {results[name]:.3f} s per forward+backward of {args.windows} windows "
              f"({args.threads} threads), {results['float32'] / results[name]:.2f}x")
    print("CPU has native bfloat16 (AVX-512 BF16 or AMX): "
          f"{'yes' if cpu_has_native_bfloat16() else 'no, so affect-train uses float32'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
