"""models.media: real clips decoded by real codecs, and files written here with PyAV."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from models.media import (MediaError, choose_frame, encode_audio, probe, read_audio,
                          read_video_frames, step_frames)

RATE = 16_000


def write_clip(path: Path, seconds: float = 1.0, fps: int = 25, audio_rate: int = 44_100,
               tone_at: float | None = 0.5, flash_at: float | None = 0.5,
               audio_start: float = 0.0, video: bool = True, audio: bool = True,
               stereo: bool = False) -> None:
    """A clip with a 1 kHz tone from ``tone_at`` and a white frame from ``flash_at``."""
    with av.open(str(path), "w") as out:
        if video:
            vstream = out.add_stream("mpeg4", rate=fps)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        if audio:
            astream = out.add_stream("aac", rate=audio_rate)
            astream.layout = "stereo" if stereo else "mono"
        if video:
            for i in range(int(seconds * fps)):
                lit = flash_at is not None and i / fps >= flash_at
                rgb = np.full((48, 64, 3), 255 if lit else 0, np.uint8)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, fps)
                out.mux(vstream.encode(frame))
            out.mux(vstream.encode(None))
        if audio:
            n = int(seconds * audio_rate)
            t = np.arange(n) / audio_rate
            wave = np.where(t >= tone_at, 0.5, 0.0) if tone_at is not None else np.zeros(n)
            wave = (wave * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
            channels = np.stack([wave, wave]) if stereo else wave[None]
            step = 1024
            for start in range(0, n, step):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(channels[:, start:start + step]), format="fltp",
                    layout="stereo" if stereo else "mono")
                frame.sample_rate = audio_rate
                frame.pts = start + int(audio_start * audio_rate)
                frame.time_base = Fraction(1, audio_rate)
                out.mux(astream.encode(frame))
            out.mux(astream.encode(None))


def onset(audio: np.ndarray, threshold: float = 0.1) -> float:
    return float(np.argmax(np.abs(audio) > threshold)) / RATE


def test_crema_clip_audio_and_video_cover_the_same_time(cremad_dir):
    clip = cremad_dir / "1001_DFA_ANG_XX.flv"
    info = probe(clip)
    assert info.has_audio and info.has_video
    assert info.size == (480, 360)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    audio = read_audio(clip)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size / RATE == pytest.approx(info.duration_s, abs=0.1)
    assert 0.05 < np.abs(audio).max() <= 1.0  # someone is speaking, nothing clipped
    frames = list(read_video_frames(clip))
    assert frames[0].rgb.shape == (360, 480, 3) and frames[0].rgb.dtype == np.uint8
    times = np.array([f.time_s for f in frames])
    assert np.allclose(np.diff(times), 1 / 29.97, atol=0.002)  # real pts, ~33 ms apart
    assert [f.index for f in frames] == list(range(len(frames)))
    assert times[-1] == pytest.approx(audio.size / RATE, abs=0.1)


def test_16k_flac_is_read_unchanged(ravdess_dir):
    clip = sorted(ravdess_dir.glob("Actor_01/*.flac"))[0]
    expected, rate = soundfile.read(clip, dtype="float32")
    assert rate == RATE
    audio = read_audio(clip)
    assert audio.shape == expected.shape
    assert np.abs(audio - expected).max() < 1e-4


def test_mp3_and_wav_resampled_to_16k_keep_their_pitch_and_length(tmp_path):
    rate = 44_100
    t = np.arange(rate * 2) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, tone, rate)
    mp3 = tmp_path / "tone.mp3"
    with av.open(str(mp3), "w") as out:
        stream = out.add_stream("libmp3lame", rate=rate)
        stream.layout = "mono"
        encode_audio(out, stream, tone, rate, frame_size=1152)
    for path in (wav, mp3):
        audio = read_audio(path)
        assert audio.size == pytest.approx(2 * RATE, abs=0.06 * RATE)  # mp3 pads a little
        spectrum = np.abs(np.fft.rfft(audio[4000:20000]))
        assert np.fft.rfftfreq(16000, 1 / RATE)[np.argmax(spectrum)] == pytest.approx(440, abs=2)
        assert np.abs(audio).max() == pytest.approx(0.5, abs=0.05)


def test_stereo_is_averaged_to_mono_without_clipping(tmp_path):
    path = tmp_path / "stereo.wav"
    rate = 48_000
    left = np.full(rate, 0.9, np.float32)
    soundfile.write(path, np.stack([left, -left], axis=1), rate)  # opposite channels
    assert np.abs(read_audio(path)).max() < 1e-3
    soundfile.write(path, np.stack([left, left], axis=1), rate)
    assert read_audio(path)[1000:-1000] == pytest.approx(0.9, abs=1e-3)


def test_tone_and_flash_land_at_the_same_time(tmp_path):
    clip = tmp_path / "sync.mp4"
    write_clip(clip, seconds=1.2, tone_at=0.6, flash_at=0.6)
    audio = read_audio(clip)
    assert onset(audio) == pytest.approx(0.6, abs=0.005)
    lit = [f.time_s for f in read_video_frames(clip) if f.rgb.mean() > 128]
    assert lit[0] == pytest.approx(0.6, abs=0.001)


def test_late_audio_is_padded_so_samples_stay_on_the_video_clock(tmp_path):
    clip = tmp_path / "late.mp4"
    write_clip(clip, seconds=1.0, tone_at=0.0, audio_start=0.4)
    audio = read_audio(clip)
    assert onset(audio) == pytest.approx(0.4, abs=0.03)  # aac priming is about 23 ms


def test_unreadable_files_raise_media_error_naming_the_file(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    for bad in (tmp_path / "missing.wav", text, tmp_path):
        with pytest.raises(MediaError, match=str(bad.name)):
            read_audio(bad)
    silent_video = tmp_path / "video_only.mp4"
    write_clip(silent_video, audio=False)
    with pytest.raises(MediaError, match="no audio"):
        read_audio(silent_video)
    assert probe(silent_video).has_audio is False
    sound = tmp_path / "sound.wav"
    soundfile.write(sound, np.zeros(1600, np.float32), RATE)
    with pytest.raises(MediaError, match="no video"):
        list(read_video_frames(sound))
    assert issubclass(MediaError, ValueError)


def test_step_frames_picks_the_frame_nearest_each_40ms_step(cremad_dir):
    clip = cremad_dir / "1001_DFA_NEU_XX.flv"
    frames = list(read_video_frames(clip))
    chosen = list(step_frames(clip))
    for k, frame in enumerate(chosen):
        end, centre = (k + 1) * 0.04, k * 0.04 + 0.02
        expected = choose_frame([f for f in frames if f.time_s <= end], centre)
        assert frame.index == expected.index
    # 30 fps video, 25 steps/s: while the video lasts each step gets its own frame.
    during = [f.index for k, f in enumerate(chosen) if k * 0.04 + 0.02 <= frames[-1].time_s]
    assert len(set(during)) == len(during)
    # Steps go on while the last frame is still within 120 ms of a step's centre.
    assert chosen[-1].index == frames[-1].index
    assert frames[-1].time_s < len(chosen) * 0.04 <= frames[-1].time_s + 0.12 + 0.04
    # Asking for more steps than there is video gives None once frames are too old.
    tail = list(step_frames(clip, steps=len(chosen) + 10))[-3:]
    assert tail == [None, None, None]
