"""The live engine paced in real time from a video file, and offline analysis speed.

    python benchmarks/live_engine.py [--model models/default.onnx] [--minutes 10]
                                     [--video FILE] [--threads 2]

Without --video, the six CREMA-D clips in ../shared/data/cremad-sample are concatenated
(looped) into a test video of the requested length in the cache folder. Reports dropped
audio windows, model step time p50/p95, capture-to-prediction latency p50/p95, CPU use
(share of the machine's cores) and resident memory at start and end; then the offline
`analyze` speed-up over real time on one minute of the same video.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from app.analyze import analyze_file
from app.pipeline import Engine
from app.sources import Pacing, open_file
from app.vad import load_voice_detector
from models.faces import FaceTracker
from models.media import read_audio, read_video_frames
from models.runtime import AffectSession

PROJECT = Path(__file__).resolve().parents[1]
CREMAD = PROJECT.parent / "shared" / "data" / "cremad-sample"


class TimedSession(AffectSession):
    """An AffectSession that records how long each run() takes (the model step)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.step_ms: list[float] = []

    def run(self, *args, **kwargs):
        started = time.perf_counter()
        result = super().run(*args, **kwargs)
        self.step_ms.append((time.perf_counter() - started) * 1000)
        return result


def looped_video(seconds: float, out: Path) -> Path:
    """CREMA-D clips end to end until ``seconds``: MPEG-4 video 25 fps + PCM audio (mkv)."""
    import av

    if out.exists():
        return out
    clips = sorted(CREMAD.glob("*.flv"))
    if not clips:
        sys.exit(f"no --video given and no CREMA-D clips at {CREMAD}")
    out.parent.mkdir(parents=True, exist_ok=True)
    decoded = [(list(read_video_frames(c)), read_audio(c)) for c in clips]
    with av.open(str(out), "w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 480, 360, "yuv420p"
        video.bit_rate = 2_000_000
        audio = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame_index, sample_index, clip = 0, 0, 0
        while frame_index / 25 < seconds:
            frames, samples = decoded[clip % len(decoded)]
            clip += 1
            clip_frames = int(len(samples) / 16000 * 25)
            for step in range(clip_frames):
                source = frames[min(len(frames) - 1, int(step / 25 * 29.97))].rgb
                frame = av.VideoFrame.from_ndarray(source, format="rgb24")
                frame.pts, frame.time_base = frame_index, Fraction(1, 25)
                container.mux(video.encode(frame))
                frame_index += 1
            pcm = (np.clip(samples[:clip_frames * 640], -1, 1) * 32767).astype(np.int16)
            chunk = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, sample_index
            sample_index += pcm.size
            container.mux(audio.encode(chunk))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def live(model: Path, video: Path, seconds: float, threads: int) -> None:
    session = TimedSession(model, intra_op_threads=threads)
    audio, frames = open_file(video, Pacing.REALTIME)
    tracker = FaceTracker(session.spec.face)
    engine = Engine(session, audio, frames, vad=load_voice_detector(), tracker=tracker)
    predictions = engine.subscribe(maxsize=100_000)
    latencies: list[float] = []
    memory = [rss_mb()]
    cpu_start, wall_start = time.process_time(), time.monotonic()
    engine.start()
    print(f"live: {video.name}, {seconds:.0f} s paced in real time, model {session.spec.name} "
          f"on {session.provider}, {threads} threads", flush=True)
    next_memory_sample = wall_start + 60
    while time.monotonic() - wall_start < seconds:
        for item in predictions.drain():
            latencies.append(item.latency_ms)
        if time.monotonic() >= next_memory_sample:  # once a minute: growth shows as a trend
            memory.append(rss_mb())
            next_memory_sample += 60
        time.sleep(0.5)
    engine.stop()
    wall, cpu = time.monotonic() - wall_start, time.process_time() - cpu_start
    latencies.extend(item.latency_ms for item in predictions.drain())
    stats = engine.stats()
    steps = np.array(session.step_ms)
    cores = os.cpu_count() or 1
    print(f"steps {stats.steps} in {wall:.0f} s ({stats.steps / wall:.2f}/s), dropped audio "
          f"windows {stats.dropped_windows}, subscriber drops {predictions.dropped}")
    print(f"model step p50 {np.percentile(steps, 50):.1f} ms, p95 {np.percentile(steps, 95):.1f} ms")
    print(f"capture-to-prediction p50 {np.percentile(latencies, 50):.1f} ms, "
          f"p95 {np.percentile(latencies, 95):.1f} ms")
    print(f"CPU {100 * cpu / wall / cores:.0f}% of {cores} cores (this process); memory "
          f"{memory[0]:.0f} MB at start, per minute "
          f"{', '.join(f'{m:.0f}' for m in memory[1:])} MB, {rss_mb():.0f} MB at the end")


def offline(model: Path, video: Path, threads: int) -> None:
    session = AffectSession(model, intra_op_threads=threads)
    tracker = FaceTracker(session.spec.face)
    started = time.monotonic()
    result = analyze_file(video, session, vad=load_voice_detector(), tracker=tracker)
    wall = time.monotonic() - started
    print(f"offline analyze: {result.duration_s:.0f} s of media in {wall:.1f} s = "
          f"{result.duration_s / wall:.1f}x real time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=PROJECT / "models" / "default.onnx")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--video", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    cache = Path(os.environ.get("AFFECT_CACHE_DIR", Path.home() / ".cache" / "affect-monitor"))
    video = args.video or looped_video(args.minutes * 60 + 5,
                                       cache / f"bench-cremad-{args.minutes:g}min.mkv")
    if not args.skip_live:
        live(args.model, video, args.minutes * 60, args.threads)
    minute = args.video or looped_video(60, cache / "bench-cremad-1min.mkv")
    offline(args.model, minute, args.threads)


if __name__ == "__main__":
    threading.current_thread().name = "benchmark"
    main()
