"""app.pipeline: alignment, live == offline, slow subscribers, device faults mid-stream.

A real ONNX model (the "tiny" preset, exported here with training.export) and real files
decoded by real codecs; only the microphone and camera hardware are faked.
"""
from __future__ import annotations

import threading
import time
from fractions import Fraction
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from app.analyze import analyze_file
from app.pipeline import Engine, Subscription
from app.sources import CameraSource, MicrophoneSource, Pacing, open_file
from app.sources.base import Frame
from app.vad import EnergyVoiceDetector
from models.media import choose_frame, encode_audio, read_video_frames
from models.runtime import AffectSession

RATE = 16_000


@pytest.fixture(scope="module")
def session(tiny_model_path):
    return AffectSession(tiny_model_path, intra_op_threads=1)


def run_engine(engine, timeout=20.0):
    subscription = engine.subscribe(100_000)
    engine.start()
    assert engine.wait(timeout)
    return subscription.drain()


def write_face_flash_clip(path, face_rgb, onset=0.6, seconds=1.2, fps=25):
    """Black frames and silence, then from ``onset`` a face and a 1 kHz tone."""
    height, width = face_rgb.shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 4_000_000
        audio = out.add_stream("aac", rate=RATE)
        audio.layout = "mono"
        for i in range(int(seconds * fps)):
            rgb = face_rgb if i / fps >= onset else np.zeros_like(face_rgb)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        t = np.arange(int(seconds * RATE)) / RATE
        tone = np.where(t >= onset, 0.5 * np.sin(2 * np.pi * 1000 * t), 0).astype(np.float32)
        encode_audio(out, audio, tone, RATE)


@pytest.fixture(scope="module")
def flash_clip(tmp_path_factory, cremad_dir):
    face = next(iter(read_video_frames(cremad_dir / "1001_DFA_NEU_XX.flv"))).rgb
    path = tmp_path_factory.mktemp("clips") / "flash.mp4"
    write_face_flash_clip(path, face)
    return path


def test_choose_frame_takes_the_nearest_and_refuses_stale_ones():
    frames = [Frame(i, t, np.zeros((2, 2, 3), np.uint8)) for i, t in enumerate((0.0, 0.1, 0.2))]
    assert choose_frame(frames, 0.14).index == 1
    assert choose_frame(frames, 0.15).index == 1  # a tie goes to the earlier frame
    assert choose_frame(frames, 0.32).index == 2  # 120 ms old: still usable
    assert choose_frame(frames, 0.33) is None  # older than 120 ms: no face
    assert choose_frame([], 0.0) is None


@pytest.mark.parametrize("pacing", [Pacing.FAST, Pacing.REALTIME])
def test_tone_onset_and_face_onset_land_in_the_same_window(session, flash_clip, pacing):
    audio, video = open_file(flash_clip, pacing)
    engine = Engine(session, audio, video, vad=EnergyVoiceDetector(hangover=0))
    predictions = run_engine(engine)
    first_voice = next(p.t for p in predictions if p.voice_active)
    first_face = next(p.t for p in predictions if p.face_found)
    assert first_voice == pytest.approx(0.6, abs=0.041)  # aac adds ~1 window of priming
    assert first_face == pytest.approx(0.6, abs=1e-9)
    assert abs(first_voice - first_face) <= 0.040 + 1e-9
    assert [round(p.t / 0.04) for p in predictions] == list(range(len(predictions)))
    if pacing is Pacing.REALTIME:
        assert np.percentile([p.latency_ms for p in predictions], 95) < 100


def test_live_engine_and_offline_analysis_give_the_same_numbers(session, cremad_dir):
    clip = cremad_dir / "1001_DFA_FEA_XX.flv"
    audio, video = open_file(clip, Pacing.FAST)
    live = run_engine(Engine(session, audio, video))
    offline = analyze_file(clip, session, chunk_steps=16)
    assert len(live) == offline.steps
    assert np.abs(np.array([p.arousal for p in live]) - offline.arousal).max() < 1e-4
    assert np.abs(np.array([p.valence for p in live]) - offline.valence).max() < 1e-4
    assert [p.face_found for p in live] == offline.face_found.tolist()
    assert [p.voice_active for p in live] == offline.voice_active.tolist()
    assert np.allclose([p.face_score for p in live], offline.face_score)


def test_a_slow_subscriber_loses_only_its_own_oldest_items(session, cremad_dir):
    audio, video = open_file(cremad_dir / "1001_DFA_SAD_XX.flv", Pacing.FAST)
    engine = Engine(session, audio, video)
    slow = engine.subscribe(maxsize=5)  # never read until the end
    predictions = run_engine(engine)
    kept = slow.drain()
    assert len(kept) == 5 and kept == predictions[-5:]
    assert slow.dropped == len(predictions) - 5
    assert engine.stats().dropped_windows == 0


def test_subscription_get_waits_and_close_wakes_the_reader():
    queue: Subscription[int] = Subscription(2)
    threading.Timer(0.05, queue.put, args=(7,)).start()
    assert queue.get(timeout=2) == 7
    threading.Timer(0.05, queue.close).start()
    began = time.monotonic()
    assert queue.get(timeout=2) is None and time.monotonic() - began < 1


# -- devices failing mid-stream, through the real source classes ---------------------------
class FakeMicStream:
    """sounddevice.InputStream stand-in: ``blocks`` callbacks of ``make(n)`` then silence
    from the device (it stops calling back, as an unplugged USB microphone does)."""

    def __init__(self, blocks, make, **kwargs):
        self.callback, self.blocksize = kwargs["callback"], kwargs["blocksize"]
        self.blocks, self.make = blocks, make
        self._stop = threading.Event()

    def start(self):
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        began = time.monotonic()
        for n in range(self.blocks):
            # Paced on the monotonic clock like a sound card.
            if self._stop.wait(max(0.0, began + (n + 1) * self.blocksize / RATE
                                   - time.monotonic())):
                return
            self.callback(self.make(n, self.blocksize), self.blocksize, None,
                          SimpleNamespace(input_overflow=False))

    def stop(self):
        self._stop.set()

    def close(self):
        pass


def live_run(session, mic=None, camera=None, seconds=1.5):
    engine = Engine(session, mic, camera, vad=EnergyVoiceDetector(), stall_s=0.3)
    subscription = engine.subscribe(10_000)
    event_queue = engine.subscribe_events()
    engine.start()
    time.sleep(seconds)
    engine.stop()
    events = [f"{e.source}: {e.message}" for e in event_queue.drain()]
    return subscription.drain(), events, engine


def tone_block(n, size):
    return (0.3 * np.sin(np.arange(size) / 2)).astype(np.float32)[:, None]


def test_microphone_that_stops_is_replaced_by_silence_on_the_same_clock(session):
    mic = MicrophoneSource(stream_factory=lambda **kw: FakeMicStream(25, tone_block, **kw))
    predictions, events, _ = live_run(session, mic=mic, seconds=1.6)
    assert any("stopped delivering audio; continuing with silence" in e for e in events)
    times = [p.t for p in predictions]
    assert times == pytest.approx(np.arange(len(times)) * 0.04)  # no gap, no jump
    assert len(predictions) >= 30  # kept stepping after 0.5 s of sound ended
    assert predictions[3].voice_active and not predictions[-1].voice_active


def test_microphone_returning_garbage_is_treated_as_silence(session):
    def garbage(n, size):
        return np.full((size, 1), np.nan if n % 2 else np.inf, np.float32)

    mic = MicrophoneSource(stream_factory=lambda **kw: FakeMicStream(1000, garbage, **kw))
    predictions, events, _ = live_run(session, mic=mic, seconds=0.8)
    assert len(predictions) >= 10
    assert all(np.isfinite([p.arousal, p.valence]).all() for p in predictions)
    assert not any(p.voice_active for p in predictions)
    assert sum("NaN/infinite" in e for e in events) == 1


class ScriptedCapture:
    """cv2.VideoCapture stand-in: real face frames (BGR) at ~30 fps, then a fault."""

    def __init__(self, frames, fault):
        self.frames, self.fault, self.n = frames, fault, 0

    def isOpened(self):
        return True

    def set(self, prop, value):
        return True

    def grab(self):
        time.sleep(1 / 30)
        if self.n >= len(self.frames) and isinstance(self.fault, Exception):
            raise self.fault
        return True

    def retrieve(self):
        self.n += 1
        if self.n <= len(self.frames):
            return True, self.frames[self.n - 1]
        return True, self.fault  # garbage from now on

    def release(self):
        pass


@pytest.mark.parametrize("fault", [cv2.error("device lost"), np.zeros((4,), np.uint8)],
                         ids=["raises", "garbage"])
def test_camera_fault_mid_stream_leaves_steps_without_a_face(session, cremad_dir, fault):
    frames = [cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR)
              for f in read_video_frames(cremad_dir / "1001_DFA_ANG_XX.flv")][:15]
    camera = CameraSource(0, capture_factory=lambda i: ScriptedCapture(frames, fault))
    predictions, events, engine = live_run(session, camera=camera, seconds=1.5)
    assert any("camera 0" in e for e in events)
    found = [p.face_found for p in predictions]
    assert any(found[:12]) and not any(found[-10:])  # faces first, none after the fault
    assert len(predictions) >= 30  # the silent-audio clock kept stepping throughout


def test_no_devices_at_all_still_steps_in_real_time(session):
    predictions, events, engine = live_run(session, seconds=0.6)
    assert 10 <= len(predictions) <= 16
    assert not any(p.face_found or p.voice_active for p in predictions)
    assert engine.stats().provider == "CPUExecutionProvider"
    assert any("CPUExecutionProvider" in e for e in events)
