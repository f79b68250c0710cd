"""app.sources: buffers, files paced and fast, and devices faked only at the hardware edge."""
from __future__ import annotations

import sys
import threading
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import soundfile

from app.sources import (AudioFileSource, AudioRing, CameraSource, FrameBuffer,
                         MicrophoneSource, Pacing, CaptureClock, SourceError, VideoFileSource,
                         list_devices, open_file)
from app.sources.base import Frame
from app.sources.microphone import list_microphones
from models.media import MediaError, read_audio

RATE = 16_000


class Faults:
    def __init__(self):
        self.messages = []

    def __call__(self, source, message):
        self.messages.append(f"{source}: {message}")


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# -- buffers -------------------------------------------------------------------------------
def test_ring_wraps_and_notices_samples_lost_to_a_slow_reader():
    ring = AudioRing(1000)
    data = np.arange(2500, dtype=np.float32)
    for begin in range(0, 2500, 300):
        ring.write(data[begin:begin + 300])
    assert ring.written == 2500 and ring.oldest() == 1500
    assert np.array_equal(ring.read(1800, 640), data[1800:2440])  # across the wrap
    assert ring.read(1000, 640) is None  # overwritten: not silently wrong
    assert ring.read(2000, 640) is None  # not written yet


def test_file_writer_waits_for_the_reader_instead_of_overwriting():
    ring, stop = AudioRing(1000), threading.Event()
    data = np.arange(3000, dtype=np.float32)
    writer = threading.Thread(target=ring.write_waiting, args=(data, stop))
    writer.start()
    got, start = [], 0
    while start < 3000:
        window = ring.read(start, 500)
        if window is None:
            time.sleep(0.001)
            continue
        got.append(window)
        start += 500
        ring.read_until = start
    writer.join(2)
    assert np.array_equal(np.concatenate(got), data)


def test_frame_buffer_gives_frames_by_time_and_forgets_old_ones():
    frames = FrameBuffer(keep_s=0.5)
    for i in range(30):
        frames.put(Frame(i, i * 0.1, np.zeros((2, 2, 3), np.uint8)))
    assert [f.index for f in frames.frames_until(10)] == [24, 25, 26, 27, 28, 29]  # last 0.5 s
    assert [f.index for f in frames.frames_until(2.65)] == [24, 25, 26]
    assert frames.newest_time() == pytest.approx(2.9)


# -- files ---------------------------------------------------------------------------------
def test_fast_audio_file_delivers_every_sample_in_order(tmp_path):
    path = tmp_path / "noise.flac"
    noise = (np.random.default_rng(0).standard_normal(RATE * 3) * 0.1).astype(np.float32)
    soundfile.write(path, noise, RATE)
    ring, faults = AudioRing(RATE // 2), Faults()  # smaller than the file: must wait
    source = AudioFileSource(path, Pacing.FAST)
    source.start(ring, CaptureClock(), faults)
    got, start = [], 0
    while not (source.ended and start >= ring.written):
        window = ring.read(start, min(640, ring.written - start)) if ring.written > start else None
        if window is None or window.size == 0:
            time.sleep(0.001)
            continue
        got.append(window)
        start += window.size
        ring.read_until = start
    assert np.array_equal(np.concatenate(got), read_audio(path))
    assert faults.messages == []


def test_realtime_file_never_delivers_ahead_of_the_clock(cremad_dir):
    clip = cremad_dir / "1001_DFA_HAP_XX.flv"
    audio, video = open_file(clip, Pacing.REALTIME)
    ring, frames, clock, faults = AudioRing(RATE * 5), FrameBuffer(keep_s=5), CaptureClock(), \
        Faults()
    video.start(frames, clock, faults)
    audio.start(ring, clock, faults)
    early = []
    while not (audio.ended and video.ended):
        now = clock.now()
        if ring.written / RATE > now + 0.001:
            early.append(("audio", ring.written / RATE, now))
        newest = frames.newest_time()
        if newest is not None and newest > clock.now() + 0.001:
            early.append(("video", newest, now))
        time.sleep(0.01)
    elapsed = clock.now()
    assert early == []
    assert elapsed == pytest.approx(ring.written / RATE, abs=0.15)  # real time, not faster
    assert frames.received == len(frames.frames_until(10)) > 50
    assert faults.messages == []


def test_file_sources_refuse_files_without_the_stream(tmp_path):
    sound = tmp_path / "sound.wav"
    soundfile.write(sound, np.zeros(RATE, np.float32), RATE)
    with pytest.raises(MediaError, match="no video"):
        VideoFileSource(sound)
    audio, video = open_file(sound)
    assert audio is not None and video is None
    with pytest.raises(MediaError, match="missing.mp4"):
        open_file(tmp_path / "missing.mp4")


# -- microphone (fake device at the sounddevice edge) --------------------------------------
class FakeInputStream:
    """Behaves like sounddevice.InputStream: calls back from its own thread."""

    def __init__(self, blocks, overflow_every=0, **kwargs):
        assert kwargs["samplerate"] == RATE and kwargs["channels"] == 1
        self.callback, self.finished = kwargs["callback"], kwargs["finished_callback"]
        self.blocksize = kwargs["blocksize"]
        self.blocks, self.overflow_every = blocks, overflow_every
        self._stop = threading.Event()

    def start(self):
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        for n in range(self.blocks):
            if self._stop.wait(self.blocksize / RATE):
                return
            block = np.full((self.blocksize, 1), n, np.float32)
            status = SimpleNamespace(input_overflow=bool(self.overflow_every)
                                     and n % self.overflow_every == 0)
            self.callback(block, self.blocksize, None, status)
        self.finished()  # the device went away

    def stop(self):
        self._stop.set()

    def close(self):
        pass


def test_microphone_copies_blocks_counts_overflows_and_reports_a_lost_device():
    ring, faults, clock = AudioRing(RATE), Faults(), CaptureClock()
    mic = MicrophoneSource(stream_factory=lambda **kw: FakeInputStream(10, 4, **kw))
    mic.start(ring, clock, faults)
    assert wait_for(lambda: mic.ended)
    assert ring.written == 10 * 320
    assert np.array_equal(ring.read(0, 640), np.repeat([0.0, 1.0], 320).astype(np.float32))
    assert ring.device_overflows == 3  # blocks 0, 4, 8
    assert 0.0 <= mic.offset_s < 0.1  # anchored to the session clock at the first block
    assert any("stopped" in m for m in faults.messages)
    mic.stop()


def test_microphone_that_cannot_open_says_so():
    def broken(**kwargs):
        raise OSError("Invalid number of channels")

    with pytest.raises(SourceError, match="cannot open the microphone"):
        MicrophoneSource(stream_factory=broken).start(AudioRing(RATE), CaptureClock(), Faults())


def test_missing_portaudio_is_a_clear_message_and_listing_carries_on(monkeypatch):
    class NoPortAudio:
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")
            return None

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    with pytest.raises(SourceError, match="libportaudio2"):
        list_microphones()
    devices = list_devices()
    assert devices.microphones == () and "PortAudio" in devices.problems[0]


def test_listing_devices_on_this_machine_does_not_crash():
    devices = list_devices()
    assert isinstance(devices.microphones, tuple) and isinstance(devices.cameras, tuple)


# -- camera (fake device at the cv2.VideoCapture edge) -------------------------------------
class FakeCapture:
    """Behaves like cv2.VideoCapture; ``script`` says what each read returns."""

    def __init__(self, script, opened=True):
        self.script, self.opened, self.released = list(script), opened, False

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        return True

    def grab(self):
        time.sleep(0.005)
        if not self.script:
            return False
        step = self.script[0]
        if isinstance(step, Exception):
            raise step
        return True

    def retrieve(self):
        step = self.script.pop(0)
        return (step is not None), step

    def release(self):
        self.released = True


def run_camera(script, opened=True):
    capture = FakeCapture(script, opened)
    frames, faults = FrameBuffer(keep_s=10), Faults()
    camera = CameraSource(0, capture_factory=lambda index: capture)
    camera.start(frames, CaptureClock(), faults)
    assert wait_for(lambda: camera.ended, 3)
    return frames, faults, capture


def test_camera_frames_are_rgb_and_stamped_at_grab_time():
    bgr = np.zeros((48, 64, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order
    frames, faults, capture = run_camera([bgr] * 5)
    got = frames.frames_until(100)
    assert [f.index for f in got] == [0, 1, 2, 3, 4]
    assert got[0].rgb[0, 0].tolist() == [0, 0, 255]
    assert np.all(np.diff([f.time_s for f in got]) > 0)
    assert capture.released
    assert any("stopped delivering" in m for m in faults.messages)  # script ran out


def test_camera_garbage_and_driver_errors_are_reported_not_raised():
    good = np.zeros((48, 64, 3), np.uint8)
    garbage = [np.zeros((48, 64), np.uint8), np.zeros((48, 64, 3), np.float32), "junk"]
    frames, faults, _ = run_camera([good, *garbage, good, cv2.error("driver crashed")])
    assert frames.received == 2
    assert sum("unusable image" in m for m in faults.messages) == 1
    assert any("driver crashed" in m for m in faults.messages)


def test_camera_that_does_not_open_raises_source_error():
    with pytest.raises(SourceError, match="cannot open camera 0"):
        CameraSource(0, capture_factory=lambda i: FakeCapture([], opened=False)).start(
            FrameBuffer(), CaptureClock(), Faults())
