"""Media for the session tests: a long A/V file made from real CREMA-D clips."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.media import read_audio, read_video_frames, write_media

RATE = 16_000


def make_long_clip(cremad_dir: Path, path: Path, seconds: float = 20.0, fps: int = 25) -> Path:
    """``seconds`` of real faces and voices: the CREMA-D clips one after another, looped,
    re-encoded as H.264 + AAC in MP4 (what a lab's stimulus or webcam file looks like)."""
    clips = sorted(cremad_dir.glob("*.flv"))
    frames, audio = [], []
    while len(frames) < seconds * fps or sum(a.size for a in audio) < seconds * RATE:
        for clip in clips:
            frames += [f.rgb for f in read_video_frames(clip)]
            audio.append(read_audio(clip))
    sound = np.concatenate(audio)[:int(seconds * RATE)]
    write_media(path, frames[:int(seconds * fps)], sound, fps=fps, rate=RATE)
    return path
