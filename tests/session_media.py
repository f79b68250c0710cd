"""Media for the session tests: a long A/V file made from real CREMA-D clips."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from models.media import read_audio, read_video_frames

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
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        track = out.add_stream("aac", rate=RATE)
        track.layout = "mono"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for start in range(0, sound.size, 1024):
            frame = av.AudioFrame.from_ndarray(sound[None, start:start + 1024].copy(),
                                               format="fltp", layout="mono")
            frame.sample_rate, frame.pts = RATE, start
            out.mux(track.encode(frame))
        out.mux(track.encode(None))
    return path
