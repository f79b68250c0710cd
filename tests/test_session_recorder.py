"""app.recording.recorder + `affect-monitor record`: a 20 s real A/V file recorded headless
as fast as the model runs, every file checked against the duration and against
`affect-monitor analyze` on the same file; the GUI's way (a running engine); faults."""
from __future__ import annotations

import csv
import json
import os
import resource
import subprocess
import sys
import time
import wave

import numpy as np
import pytest
import soundfile

from app.analyze import CSV_COLUMNS
from app.analyze import main as analyze_main
from app.cli import main as cli_main
from app.pipeline import Engine
from app.recording import layout
from app.recording.recorder import RecorderError, SessionRecorder
from app.sources import Pacing, open_file
from app.vad import EnergyVoiceDetector
from models.media import read_audio, read_video_frames
from models.runtime import AffectSession
from session_media import make_long_clip

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    from conftest import data_path

    return make_long_clip(data_path("cremad-sample"), tmp_path_factory.mktemp("clip") / "long.mp4")


@pytest.fixture(scope="module")
def analysed(long_clip, tiny_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis")
    assert analyze_main([str(long_clip), "--out", str(out), "--model", str(tiny_model_path),
                         "--no-progress"]) == 0
    return read_rows(out / long_clip.stem / "predictions.csv")


def read_rows(path, delimiter=","):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def check_session(folder, analysed, source=None, media=True, media_slack_s=0.04):
    """Every file of a session folder, against its own duration and against analyze.

    ``media_slack_s``: how far audio and video may run ahead of or behind the last step.
    A clean stop ends them within a step; a crash keeps what reached the disk of each
    (the audio the engine had not stepped through yet, a file's buffer spilled early)."""
    info = json.loads((folder / layout.SESSION_JSON).read_text())
    rows = read_rows(folder / layout.PREDICTIONS)
    assert tuple(rows[0]) == layout.PREDICTION_COLUMNS
    times = np.array([float(r["time_s"]) for r in rows])
    assert np.allclose(times, np.arange(len(rows)) * 0.04, atol=1e-6)  # no gap, no repeat
    assert info["counts"]["predictions"] == len(rows)
    assert info["duration_s"] == pytest.approx(len(rows) * 0.04, abs=1e-6)
    # The recording is the offline analysis of the same media, step for step.
    offline = analysed[:len(rows)]
    for name in ("arousal", "valence", "face_score"):
        assert np.abs(np.array([float(r[name]) for r in rows])
                      - np.array([float(r[name]) for r in offline])).max() < 1e-4, name
    for name in ("face_found", "voice_active"):
        assert [r[name] for r in rows] == [r[name] for r in offline], name
    assert all(float(r["latency_ms"]) >= 0 for r in rows)
    if not media:
        for name in (layout.AUDIO, layout.VIDEO, layout.FRAMES):
            assert not (folder / name).exists()
        return info, rows
    audio, rate = soundfile.read(folder / layout.AUDIO, dtype="float32")
    assert rate == 16_000 and soundfile.info(folder / layout.AUDIO).subtype == "PCM_16"
    with wave.open(str(folder / layout.AUDIO)) as plain:  # a second, strict reader
        assert plain.getnframes() == audio.size
    assert abs(audio.size / rate - len(rows) * 0.04) <= media_slack_s + 1e-9
    original = read_audio(source)[:audio.size]
    assert np.abs(audio[:original.size] - original).max() < 2 / 32767  # 16-bit rounding
    frames = read_rows(folder / layout.FRAMES)
    decoded = list(read_video_frames(folder / layout.VIDEO))
    placeholder = info["media"]["video"]["placeholder_frame_at_0"] if info["media"]["video"] else False
    assert len(decoded) == len(frames) + placeholder
    for row in frames:  # each listed frame is in the video at its capture time
        assert decoded[int(row["frame"])].time_s == pytest.approx(float(row["time_s"]), abs=1e-4)
    assert abs(len(frames) / 25 - len(rows) * 0.04) <= media_slack_s + 0.04  # 25 fps source
    assert [int(r["source_frame"]) for r in frames] == list(range(len(frames)))
    return info, rows


def test_prediction_columns_are_the_offline_analysis_columns():
    assert layout.PREDICTION_COLUMNS[:len(CSV_COLUMNS)] == CSV_COLUMNS


def test_twenty_seconds_recorded_headless_as_fast_as_possible(long_clip, tiny_model_path,
                                                              analysed, tmp_path, capsys):
    out = tmp_path / "sub-P01_ses-1"
    began = time.monotonic()
    code = cli_main(["record", "--out", str(out), "--video", str(long_clip), "--fast",
                     "--seconds", "20", "--model", str(tiny_model_path), "--participant", "P01",
                     "--session", "1"])
    taken = time.monotonic() - began
    assert code == 0, capsys.readouterr().err
    info, rows = check_session(out, analysed, long_clip)
    assert len(rows) == 500 and info["status"] == layout.COMPLETE
    assert info["media"]["audio"]["samples"] == 320_000
    assert info["participant_id"] == "P01" and info["session_id"] == "1"
    assert info["model"]["name"] == "tiny" and len(info["model"]["sha256"]) == 64
    assert info["model"]["spec"]["window_samples"] == 640
    assert info["rates"]["measured"]["video_fps"] == pytest.approx(25, abs=0.1)
    assert info["quality"]["frames_dropped"] == info["quality"]["predictions_dropped"] == 0
    assert info["quality"]["dropped_windows"] == 0
    assert info["start"]["utc"].endswith("+00:00") and info["start"]["monotonic_s"] > 0
    print(f"20 s recorded in {taken:.1f} s")


def test_no_media_keeps_predictions_only(long_clip, tiny_model_path, analysed, tmp_path):
    out = tmp_path / "s"
    assert cli_main(["record", "--out", str(out), "--video", str(long_clip), "--fast",
                     "--seconds", "2", "--no-media", "--model", str(tiny_model_path)]) == 0
    info, rows = check_session(out, analysed, long_clip, media=False)
    assert len(rows) == 50 and info["media"] == {"stored": False, "audio": None, "video": None}


def test_recording_a_running_engine_starts_at_zero_with_markers_and_ratings(
        long_clip, tiny_model_path, tmp_path):
    """What the GUI does: the engine runs, Record is pressed later, times are engine times."""
    session = AffectSession(tiny_model_path, intra_op_threads=1)
    audio, video = open_file(long_clip, Pacing.REALTIME)
    engine = Engine(session, audio, video, vad=EnergyVoiceDetector())
    everything = engine.subscribe(10_000)
    engine.start()
    time.sleep(0.7)
    recorder = SessionRecorder(tmp_path / "s", {"participant_id": "P2", "condition": "film"},
                               engine)
    recorder.start()
    start_t = recorder.now()
    recorder.add_event(start_t + 0.5, "stimulus", "film 3")
    recorder.add_rating(start_t + 0.2, 0.5, -0.25)
    recorder.add_rating(start_t + 0.6, 0.4, -0.2)
    recorder.add_event(start_t + 0.1, "button")  # out of order: sorted at the end
    with pytest.raises(ValueError):
        recorder.add_rating(start_t, 2.0, 0.0)
    time.sleep(1.2)
    info = recorder.stop()
    engine.stop()
    t0 = info["start"]["engine_time_s"]
    assert t0 >= 0.6 and round(t0 / 0.04, 6) == round(t0 / 0.04)  # a whole window
    rows = read_rows(tmp_path / "s" / layout.PREDICTIONS)
    live = {round(p.t, 3): p for p in everything.drain()}
    assert float(rows[0]["time_s"]) == 0.0 and len(rows) >= 20
    for row in rows:  # the same predictions as the engine published, shifted by t0
        p = live[round(float(row["time_s"]) + t0, 3)]
        assert float(row["arousal"]) == pytest.approx(p.arousal, abs=1e-6)
    events = read_rows(tmp_path / "s" / layout.EVENTS, "\t")
    assert [(e["trial_type"], e["value"]) for e in events] == [("button", ""),
                                                               ("stimulus", "film 3")]
    assert float(events[1]["onset"]) == pytest.approx(start_t + 0.5 - t0, abs=1e-3)
    ratings = read_rows(tmp_path / "s" / layout.RATINGS)
    assert [float(r["arousal"]) for r in ratings] == [0.5, 0.4]
    assert float(ratings[0]["time_s"]) == pytest.approx(start_t + 0.2 - t0, abs=1e-3)
    audio_s = soundfile.info(tmp_path / "s" / layout.AUDIO).duration
    assert abs(audio_s - len(rows) * 0.04) < 0.2
    assert info["status"] == layout.COMPLETE and info["condition"] == "film"


def test_a_folder_that_cannot_be_written_is_a_clear_message(long_clip, tiny_model_path,
                                                            tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = cli_main(["record", "--out", str(blocker / "session"), "--video", str(long_clip),
                     "--fast", "--model", str(tiny_model_path)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot record into" in err and "Traceback" not in err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / layout.SESSION_JSON).write_text("{}")
    engine = Engine(AffectSession(tiny_model_path), None, None)
    with pytest.raises(RecorderError, match="already holds a recorded session"):
        SessionRecorder(tmp_path / "used", {}, engine).start()


def test_a_write_failing_mid_recording_stops_cleanly_and_keeps_what_was_written(
        long_clip, tiny_model_path, tmp_path):
    """A real failing write: the recording process may not write files over 600 kB (as
    on a full disk, the OS refuses the write); the video reaches it after about 9 s."""
    out = tmp_path / "s"
    limit = 600_000

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "record", "--out", str(out), "--video", str(long_clip),
         "--fast", "--model", str(tiny_model_path), "--vad", "energy"],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, preexec_fn=small_files)
    assert result.returncode == 1, result.stderr
    assert "recording stopped at" in result.stderr and "size limit" in result.stderr
    assert "Traceback" not in result.stderr
    info = json.loads((out / layout.SESSION_JSON).read_text())
    assert info["status"] == layout.STOPPED and "size limit" in info["stop_reason"]
    rows = read_rows(out / layout.PREDICTIONS)
    audio, _ = soundfile.read(out / layout.AUDIO)
    assert len(rows) > 25 and audio.size > 16_000  # the seconds before the failure are kept
    assert len(list(read_video_frames(out / layout.VIDEO))) > 10


# -- devices lost mid-recording, injected at the hardware edge as in test_pipeline --------
def test_a_microphone_lost_mid_recording_stops_it_cleanly(tiny_model_path, tmp_path):
    """The fake sound card delivers 0.8 s of tone, then stops calling back (an unplugged
    USB microphone); the engine puts silence in its place, the recorder stops."""
    from test_pipeline import FakeMicStream, tone_block
    from app.sources import MicrophoneSource

    mic = MicrophoneSource(stream_factory=lambda **kw: FakeMicStream(40, tone_block, **kw))
    engine = Engine(AffectSession(tiny_model_path, intra_op_threads=1), mic, None,
                    vad=EnergyVoiceDetector(), stall_s=0.3)
    recorder = SessionRecorder(tmp_path / "s", {}, engine)
    recorder.start()
    engine.start()
    assert recorder.wait(10), "the recording did not stop by itself"
    info = recorder.stop()
    engine.stop()
    message = recorder.error
    assert message and "microphone was lost" in message and "recording stopped at" in message
    assert message in recorder.messages.drain()
    assert info["status"] == layout.STOPPED and info["stop_reason"] == message
    on_disk = json.loads((tmp_path / "s" / layout.SESSION_JSON).read_text())
    assert on_disk["status"] == layout.STOPPED
    rows = read_rows(tmp_path / "s" / layout.PREDICTIONS)
    times = np.array([float(r["time_s"]) for r in rows])
    assert len(rows) >= 20 and np.allclose(times, np.arange(len(rows)) * 0.04, atol=1e-6)
    assert rows[5]["voice_active"] == "1"
    audio, rate = soundfile.read(tmp_path / "s" / layout.AUDIO, dtype="float32")
    assert abs(audio.size / rate - len(rows) * 0.04) < 0.25
    assert np.abs(audio[:int(0.7 * rate)]).max() > 0.2  # the tone before the loss is kept
    faults = [e for e in read_rows(tmp_path / "s" / layout.EVENTS, "\t")
              if e["trial_type"] == "fault"]
    assert any("stopped delivering audio" in e["value"] for e in faults)


@pytest.mark.parametrize("fault", ["raises", "garbage"])
def test_a_camera_lost_mid_recording_stops_it_and_an_engine_stop_is_no_loss(
        tiny_model_path, cremad_dir, tmp_path, fault):
    """raises: the driver fails after 15 frames -> the recording stops with a message and
    a playable video. garbage: unusable images are skipped, the camera is not lost; the
    engine stopped before the recorder (the GUI closing) is not a device loss either."""
    import cv2

    from test_pipeline import ScriptedCapture
    from app.sources import CameraSource

    frames = [cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR)
              for f in read_video_frames(cremad_dir / "1001_DFA_ANG_XX.flv")][:15]
    error = cv2.error("device lost") if fault == "raises" else np.zeros((4,), np.uint8)
    camera = CameraSource(0, capture_factory=lambda i: ScriptedCapture(frames, error))
    engine = Engine(AffectSession(tiny_model_path, intra_op_threads=1), None, camera,
                    vad=EnergyVoiceDetector())
    recorder = SessionRecorder(tmp_path / "s", {}, engine)
    recorder.start()
    engine.start()
    if fault == "raises":
        assert recorder.wait(8), "the recording did not stop by itself"
        info = recorder.stop()
        engine.stop()
        assert info["status"] == layout.STOPPED
        assert "camera 0 was lost" in recorder.error and "device lost" in recorder.error
    else:
        assert not recorder.wait(1.5)  # still recording after the garbage began
        engine.stop()
        info = recorder.stop()
        assert info["status"] == layout.COMPLETE and recorder.error is None
    rows = read_rows(tmp_path / "s" / layout.PREDICTIONS)
    listed = read_rows(tmp_path / "s" / layout.FRAMES)
    times = [float(r["time_s"]) for r in rows]
    # No step lost, and every recorded frame has its step. How many steps fit in the
    # camera's 0.5 s depends on the machine's load (CI once got 14), so no exact count.
    assert len(times) >= 12 and times == pytest.approx([0.04 * i for i in range(len(times))])
    assert times[-1] + 0.04 >= float(listed[-1]["time_s"]) - 1e-6
    decoded = list(read_video_frames(tmp_path / "s" / layout.VIDEO))
    assert 10 <= len(listed) <= 15 and len(decoded) == len(listed) + info["media"]["video"][
        "placeholder_frame_at_0"]
