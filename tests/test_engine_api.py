"""app.pipeline's public surface for everything that is not a prediction: the audio and
frames the engine captured, its events and its clocks (``Engine.timeline``), as the
recorder, the LSL outlet and the window use them. A real model and real media; only the
microphone and camera hardware are faked (test_pipeline's fakes)."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from test_pipeline import FakeMicStream, ScriptedCapture, tone_block

from app.pipeline import Engine
from app.sources import CameraSource, MicrophoneSource, Pacing, open_file
from app.vad import EnergyVoiceDetector
from models.media import read_audio, read_video_frames
from models.runtime import AffectSession

RATE = 16_000


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return AffectSession(tiny_model_path, intra_op_threads=1)


def joined(chunks):
    """The chunks' samples end to end, checking that each starts where the last ended."""
    assert chunks and chunks[0].start == 0
    for before, after in zip(chunks, chunks[1:]):
        assert after.start == before.end, "a gap or an overlap between audio chunks"
    return np.concatenate([c.samples for c in chunks])


def test_a_subscriber_gets_every_sample_and_frame_of_a_file_in_order(model, cremad_dir):
    """Small queues that fill up: a file waits for its readers, so nothing is lost."""
    clip = cremad_dir / "1001_DFA_HAP_XX.flv"
    engine = Engine(model, *open_file(clip, Pacing.FAST), vad=EnergyVoiceDetector())
    audio, frames = engine.subscribe_audio(maxsize=4), engine.subscribe_frames(maxsize=3)
    chunks, got = [], []
    engine.start()
    while engine.running or len(audio) or len(frames):
        chunks += audio.drain()
        got += frames.drain()
        time.sleep(0.01)
    chunks += audio.drain()
    got += frames.drain()
    samples = joined(chunks)
    assert np.array_equal(samples, read_audio(clip)[:samples.size])
    assert samples.size == read_audio(clip).size
    decoded = list(read_video_frames(clip))
    assert [f.index for f in got] == [f.index for f in decoded]
    assert [f.time_s for f in got] == pytest.approx([f.time_s for f in decoded])
    assert audio.dropped == frames.dropped == 0
    assert audio.closed and frames.closed  # the engine's end closes every subscription


def test_a_stalled_subscriber_never_holds_up_live_capture(model, cremad_dir):
    """A reader that never reads, on a live microphone and camera: the devices' threads
    deliver at their own pace, the model keeps stepping, only that reader loses items."""
    faces = [cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR)
             for f in read_video_frames(cremad_dir / "1001_DFA_ANG_XX.flv")][:15]
    camera = CameraSource(0, capture_factory=lambda i: ScriptedCapture(faces, cv2.error("end")))
    mic = MicrophoneSource(stream_factory=lambda **kw: FakeMicStream(60, tone_block, **kw))
    engine = Engine(model, mic, camera, vad=EnergyVoiceDetector(), stall_s=5.0)
    stalled_audio = engine.subscribe_audio(maxsize=1)
    stalled_frames = engine.subscribe_frames(maxsize=1)
    live_audio = engine.subscribe_audio(maxsize=10_000)
    predictions = engine.subscribe(10_000)
    engine.start()
    chunks, steps = [], []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (camera.ended and len(steps) >= 30):
        chunks += live_audio.drain()
        steps += predictions.drain()
        time.sleep(0.05)
    engine.stop()
    chunks += live_audio.drain()
    assert engine.stats().frames_received == 15  # the camera was never held up
    assert stalled_frames.dropped == 14 and len(stalled_frames) == 1
    samples = joined(chunks)
    assert samples.size == 60 * 320  # every block the sound card delivered
    assert stalled_audio.dropped > 0 and len(stalled_audio) == 1
    assert len(steps) >= 30  # the model stepped through the 1.2 s of sound


def test_the_timeline_converts_between_the_engine_s_clocks(model):
    """A microphone places sample 0 at its first block; predictions, monotonic time and
    the capture clock agree on when each window was captured."""
    mic = MicrophoneSource(stream_factory=lambda **kw: FakeMicStream(50, tone_block, **kw))
    engine = Engine(model, mic, None, vad=EnergyVoiceDetector(), stall_s=5.0)
    timeline = engine.timeline
    assert timeline.now() == 0.0 and timeline.to_monotonic(1.0) is None
    assert not timeline.placed()
    predictions = engine.subscribe(1000)
    began = time.monotonic()
    engine.start()
    time.sleep(0.6)
    assert timeline.placed()
    now, elapsed = timeline.now(), time.monotonic() - began
    first = predictions.get(timeout=2)
    captured = timeline.to_monotonic(first.t + 0.04)  # the window's last sample
    assert began < captured < time.monotonic()
    assert timeline.from_monotonic(captured) == pytest.approx(first.t + 0.04)
    assert timeline.from_capture(timeline.to_capture(0.5)) == pytest.approx(0.5)
    # Sample 0 is placed when the sound card delivered it, after the start: engine time
    # runs behind the time since start, never ahead.
    assert began < timeline.to_monotonic(0.0) and 0.0 < now <= elapsed
    assert timeline.to_folder(first.t + 1.0, first.t) == pytest.approx(1.0)
    engine.stop()


def test_the_engine_shows_what_the_window_needs(model, cremad_dir):
    clip = cremad_dir / "1001_DFA_NEU_XX.flv"
    engine = Engine(model, *open_file(clip, Pacing.FAST), vad=EnergyVoiceDetector())
    events = engine.subscribe_events()
    assert engine.latest_frame() is None and engine.latest_audio(640) is None
    engine.start()
    assert engine.wait(20)
    assert engine.latest_frame().index == len(list(read_video_frames(clip))) - 1
    newest = engine.latest_audio(640)
    assert np.array_equal(newest, read_audio(clip)[-640:])
    assert engine.face_box() is not None  # a frontal face all along
    assert engine.audio_source.name.startswith("audio file")
    assert engine.spec.window_samples == 640 and engine.model.provider
    messages = [e.message for e in events.drain()]
    assert messages[0].startswith("tiny on") and messages[-1].startswith("stopped after")
