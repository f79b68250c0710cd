"""What each way a recording can end costs: `affect-monitor record` processes stopped at
random moments, seconds lost per file (p50 / max over the trials).

    python benchmarks/reliability.py [--trials 20] [--model models/default.onnx]
                                     [--video FILE] [--stops kill,term,int,full]

Each trial records the looped CREMA-D video of benchmarks/live_engine.py in real time
(as a camera would deliver it) and, 1-8 s after the first prediction reached the disk,
* ``kill``: SIGKILL (a crash, a power cut of the process), then `affect-monitor repair`;
* ``term`` / ``int``: SIGTERM / SIGINT (Ctrl+C), the polite stops;
* ``full``: no signal; the recording goes into a 3 MB tmpfs and runs until the disk is
  full (needs root to mount; skipped otherwise), then `affect-monitor repair` (the rows
  that never reached the full disk are taken off session.json's counts).
"Lost" is the time recorded by the wall clock (from the folder's time 0, session.json's
``start.monotonic_s``, to the stop) minus what the folder holds afterwards: predictions
(rows x 40 ms), audio.wav seconds, the last video frame's time. For ``full`` the stop is
the moment the recorder reports (the "recording stopped at" time in session.json).
A polite stop must also end with exit 0, status "complete" and duration_s = rows x 40 ms.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
STOPS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT, "full": None}


def wait_for_first_row(process, out: Path, timeout: float = 120.0) -> None:
    path = out / "predictions.csv"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") > 1:
            return
        if process.poll() is not None:
            raise RuntimeError(f"record ended before recording: {process.stderr.read()}")
        time.sleep(0.02)
    raise RuntimeError("the recording never started")


def kept(out: Path) -> dict[str, float]:
    """Seconds of predictions, audio and video in a session folder."""
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    audio = soundfile.info(str(out / "audio.wav")).duration
    with open(out / "frames.csv", newline="") as handle:
        frames = list(csv.DictReader(handle))
    video = float(frames[-1]["time_s"]) + 0.04 if frames else 0.0
    return {"predictions": len(rows) * 0.04, "audio": audio, "video": video}


def trial(kind: str, model: Path, video: Path, folder: Path) -> dict:
    out = folder / "s"
    command = [sys.executable, "-m", "app.cli", "record", "--out", str(out), "--video",
               str(video), "--model", str(model), "--seconds", "300"]
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for_first_row(process, out)
        if STOPS[kind] is not None:
            time.sleep(random.uniform(1.0, 8.0))
            stopped = time.monotonic()
            process.send_signal(STOPS[kind])
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    result = {"kind": kind, "exit": process.returncode, "repair_exit": None}
    if kind in ("kill", "full"):  # what a user does next: repair (after a crash: 3 s on,
        time.sleep(3.1)               # as repair refuses folders written in the last 3 s)
        repair = subprocess.run([sys.executable, "-m", "app.cli", "repair", str(out)],
                                cwd=PROJECT, env=env, capture_output=True, text=True)
        result["repair_exit"] = repair.returncode
    info = json.loads((out / "session.json").read_text())
    if kind == "full":
        match = re.search(r"stopped at ([0-9.]+) s", info.get("stop_reason") or "")
        recorded = float(match.group(1)) if match else float("nan")
        result["stop_reason"] = info.get("stop_reason")
    else:
        recorded = stopped - info["start"]["monotonic_s"]
    have = kept(out)
    result.update(status=info["status"], recorded_s=recorded,
                  lost={name: recorded - seconds for name, seconds in have.items()},
                  duration_true=abs(info["duration_s"] - have["predictions"]) < 1e-6,
                  traceback="Traceback" in err)
    return result


def tmpfs(size: str):
    mount = Path(tempfile.mkdtemp(prefix="reliability-disk-"))
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                                            "tmpfs", str(mount)]).returncode != 0:
        return None
    return mount


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--model", type=Path, default=PROJECT / "models" / "default.onnx")
    parser.add_argument("--video", type=Path)
    parser.add_argument("--stops", default="kill,term,int,full")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    video = args.video
    if video is None:
        from benchmarks.live_engine import looped_video

        cache = Path(os.environ.get("AFFECT_CACHE_DIR", Path.home() / ".cache" / "affect-monitor"))
        video = looped_video(60, cache / "bench-cremad-1min.mkv")  # as live_engine.py
    for kind in args.stops.split(","):
        results = []
        for number in range(args.trials):
            if kind == "full":
                mount = tmpfs("3m")
                if mount is None:
                    print("full: cannot mount a tmpfs here (needs root); skipped")
                    break
                try:
                    results.append(trial(kind, args.model, video, mount))
                finally:
                    subprocess.run(["umount", "-l", str(mount)])
            else:
                with tempfile.TemporaryDirectory() as folder:
                    results.append(trial(kind, args.model, video, Path(folder)))
            last = results[-1]
            print(f"{kind} {number + 1}: exit {last['exit']}, {last['status']}, recorded "
                  f"{last['recorded_s']:.2f} s, lost " + ", ".join(
                      f"{name} {value:+.3f} s" for name, value in last["lost"].items()),
                  flush=True)
        if not results:
            continue
        print(f"== {kind}: {len(results)} trials; exit codes "
              f"{sorted({r['exit'] for r in results})}; status "
              f"{sorted({r['status'] for r in results})}; repair exit codes "
              f"{sorted({str(r['repair_exit']) for r in results})}; duration_s true in "
              f"{sum(r['duration_true'] for r in results)}; tracebacks "
              f"{sum(r['traceback'] for r in results)}")
        for name in ("predictions", "audio", "video"):
            lost = np.array([r["lost"][name] for r in results])
            print(f"   {name:11s} lost p50 {np.median(lost):+.3f} s, max {lost.max():+.3f} s"
                  f" (negative: the file holds more than the wall clock, read ahead)")


if __name__ == "__main__":
    main()
