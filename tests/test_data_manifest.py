"""training.data.manifest + video_cache: annotated media -> 40 ms sequences, on files
written here with PyAV and soundfile (and a real CREMA-D clip with BlazeFace if present)."""
from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from models.face_crop import crop_face
from models.faces import Detection
from models.media import read_video_frames
from models.spec import FaceCrop
from training.data import video_cache
from training.data.manifest import (ChunkDataset, DatasetError, LabelTrack, annotate,
                                    evaluation_sequences,
                                    load_manifest, read_label_csv, read_manifest,
                                    resample_labels, session_sequence, split_by_speaker)
from training.data.sequences import collate_sequences
from training.data.video_cache import TrackSettings, cache_path, load_steps

CROP = FaceCrop(size=32, channels=3, margin=0.15)
SETTINGS = TrackSettings(CROP, smoothing=0.0)  # no smoothing: crops checkable frame by frame
SIZE = (96, 72)  # video width, height
FACE_BOX = (30, 20, 24, 28)  # x, y, w, h of the bright "face" drawn on face frames


class BrightBoxDetector:
    """Stands in for BlazeFace: the bounding box of the bright pixels is 'the face'."""

    cache_key = "bright-box"

    def __init__(self):
        self.calls = 0

    def detect(self, rgb):
        self.calls += 1
        ys, xs = np.nonzero(rgb.mean(axis=2) > 128)
        if not len(xs):
            return []
        box = (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
               float(ys.max() - ys.min() + 1))
        return [Detection(score=0.9, box=box)]

    def close(self):
        pass


def write_video(path: Path, times: list[float], face: list[bool], audio_seconds: float = 0.0,
                rate: int = 16_000) -> None:
    """Frames at ``times`` (ms precision), a bright box where ``face``; optional PCM tone."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        video.time_base = Fraction(1, 1000)
        audio = None
        if audio_seconds:
            audio = out.add_stream("pcm_s16le", rate=rate)
            audio.layout = "mono"
        for time_s, lit in zip(times, face):
            rgb = np.full((SIZE[1], SIZE[0], 3), 40, np.uint8)
            if lit:
                x, y, w, h = FACE_BOX
                rgb[y:y + h, x:x + w] = 220
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = int(round(time_s * 1000)), Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            wave = tone(audio_seconds, rate)
            for start in range(0, len(wave), 1024):
                chunk = (wave[start:start + 1024] * 32767).astype(np.int16)[None]
                frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
                frame.sample_rate, frame.pts = rate, start
                frame.time_base = Fraction(1, rate)
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))


def tone(seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def write_labels(path: Path, times, arousal, valence, time_column: str = "time_s") -> None:
    lines = [f"{time_column},arousal,valence"]
    lines += [f"{t:.3f},{a:.6f},{v:.6f}" for t, a, v in zip(times, arousal, valence)]
    path.write_text("\n".join(lines) + "\n")


def centres(steps: int) -> np.ndarray:
    return (np.arange(steps) + 0.5) * 0.04


# ----- labels ------------------------------------------------------------------------

def test_a_10hz_label_ramp_is_interpolated_onto_the_40ms_step_centres():
    times = np.arange(0, 21) * 0.1  # 0.0 .. 2.0 s at 10 Hz
    track = LabelTrack(times, np.stack([times, np.where(np.arange(21) % 2, 1.0, 0.0)],
                                       axis=1).astype(np.float32), "ramp.csv")
    first, target = resample_labels(track, steps=100)  # 4 s of audio
    assert first == 0 and len(target) == 50  # centres 0.02 .. 1.98; beyond 2.0 s dropped
    np.testing.assert_allclose(target[:, 0], centres(50), atol=1e-6)
    # valence alternates 0, 1, 0, ... every 0.1 s: centre 0.02 -> 0.2, 0.06 -> 0.6,
    # 0.10 -> 1.0, 0.14 -> 0.6 (back down towards 0 at 0.2 s)
    np.testing.assert_allclose(target[:4, 1], [0.2, 0.6, 1.0, 0.6], atol=1e-5)


def test_steps_before_the_first_and_after_the_last_annotation_are_dropped():
    track = LabelTrack(np.array([0.5, 1.0]), np.array([[0, 0], [1, -1]], np.float32), "x")
    first, target = resample_labels(track, steps=100)
    # centres 0.50, 0.54, ... 0.98 lie in [0.5, 1.0]; 0.5 itself is step 12
    assert first == 12 and len(target) == 13
    np.testing.assert_allclose(target[:, 0], (centres(25)[12:] - 0.5) / 0.5, atol=1e-6)
    np.testing.assert_allclose(target[:, 1], -target[:, 0])


def test_label_csv_accepts_time_or_time_s_and_ignores_extra_columns(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("Time,valence,dominance,arousal\n0,0.5,9,0.1\n0.25,0.0,9,0.3\n")
    track = read_label_csv(path)
    np.testing.assert_array_equal(track.time_s, [0.0, 0.25])
    np.testing.assert_allclose(track.values, [[0.1, 0.5], [0.3, 0.0]])


@pytest.mark.parametrize("text, expected", [
    ("time_s,arousal,valence\n0,0,0\n0.1,0.2,0.3\n0.2,high,0\n",
     r"labels\.csv:4: column 'arousal'"),
    ("time_s,arousal\n0,0\n", r"labels\.csv:1: header .* lacks +valence"),
    ("t,arousal,valence\n0,0,0\n", r"labels\.csv:1: .*a time column \(time_s or time\)"),
    ("time_s,arousal,valence\n0,0,0\n0.2,0,0\n0.1,0,0\n", r"labels\.csv: times must increase"),
    ("time_s,arousal,valence\n0,0,0\n", r"labels\.csv: needs at least 2"),
    ("time_s,arousal,valence\n0,0,0\n0.1,nan,0\n", r"labels\.csv:3: .*finite"),
])
def test_malformed_label_files_are_errors_naming_file_and_line(tmp_path, text, expected):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=expected):
        read_label_csv(path)


# ----- media on the grid, faces, cache ----------------------------------------------

@pytest.fixture
def gap_recording(tmp_path):
    """3 s of tone; frames at 25 fps over 0..0.96 s and 1.52..2.96 s (a gap), the face
    visible in every frame except 2.0..2.96 s. (The encoder keeps times on its 1/25 s
    clock, so frames are placed on the 40 ms grid.)"""
    times = [i * 0.04 for i in range(25)] + [1.52 + i * 0.04 for i in range(37)]
    face = [t < 2.0 - 1e-9 for t in times]
    write_video(tmp_path / "clip.mp4", times, face)
    soundfile.write(tmp_path / "clip.wav", tone(3.0, 44_100), 44_100)  # resampled to 16k
    return tmp_path / "clip.wav", tmp_path / "clip.mp4"


def test_each_step_gets_the_frame_nearest_its_centre_and_mask_0_without_one(
        gap_recording, tmp_path):
    audio, video = gap_recording
    steps = load_steps(audio, video, SETTINGS, detector=BrightBoxDetector(),
                       cache_dir=tmp_path / "cache")
    assert steps.steps == 75 and steps.audio.shape == (75, 640) and steps.has_video
    mask = steps.face_mask()
    # Centre 1.06 s still has the frame at 0.96 (100 ms); centres 1.10 .. 1.46 have no
    # frame within 120 ms that is shown by the window's end (the next is at 1.52).
    assert mask[:27].all() and not mask[27:37].any() and mask[37:49].all()
    # Frames from 2.0 s on show no face. (Step 49, centre 1.98 s, lies exactly between
    # the frames at 1.96 and 2.00: a tie that rounding settles, as in the app.)
    assert not mask[50:].any()
    # A step's crop is the tracker's crop of the frame nearest its centre.
    frames = list(read_video_frames(video))
    detector = BrightBoxDetector()
    for step, frame_index in [(0, 0), (26, 24), (38, 25)]:
        frame = frames[frame_index]
        box = detector.detect(frame.rgb)[0].box
        expected = np.rint(crop_face(frame.rgb, box, CROP) * 255).astype(np.uint8)
        np.testing.assert_array_equal(steps.face(step, step + 1)[0], expected)
    assert not steps.face(30, 31).any()


def test_frame_choice_is_the_apps_choice():
    """video_cache restates app.pipeline's rule (training cannot import app): check both
    pick the same frame for every step over irregular frame times, gaps and ties."""
    from app.pipeline import MAX_FRAME_AGE_S, choose_frame
    from app.sources.base import Frame
    from models.media import VideoFrame

    rng = np.random.default_rng(0)
    gaps = np.concatenate([rng.choice([0.033, 0.04, 0.0667], 150), [0.5, 0.3], [0.04] * 40])
    times = np.cumsum(rng.permutation(gaps)) - 0.05
    frames = [VideoFrame(i, float(t), None) for i, t in enumerate(times)]
    steps = int(times[-1] / 0.04) + 5
    ours = {k: (f.index if f is not None else None)
            for k, f in video_cache.frames_for_steps(frames, steps, MAX_FRAME_AGE_S)}
    assert video_cache.MAX_FRAME_AGE_S == MAX_FRAME_AGE_S
    for k in range(steps):
        centre, end = video_cache.step_times(k)
        shown = [Frame(f.index, f.time_s, None) for f in frames if f.time_s <= end]
        app = choose_frame(shown, centre, MAX_FRAME_AGE_S)
        assert ours[k] == (app.index if app is not None else None), k
    assert None in ours.values()


def test_the_second_load_reads_the_cache_and_decodes_nothing(gap_recording, tmp_path,
                                                             monkeypatch):
    audio, video = gap_recording
    detector = BrightBoxDetector()
    first = load_steps(audio, video, SETTINGS, detector=detector, cache_dir=tmp_path / "c")
    assert not first.from_cache and detector.calls > 0
    assert cache_path(audio, video, SETTINGS, detector, tmp_path / "c").is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(video_cache, "read_audio", no_decoding)
    monkeypatch.setattr(video_cache, "read_video_frames", no_decoding)
    calls = detector.calls
    second = load_steps(audio, video, SETTINGS, detector=detector, cache_dir=tmp_path / "c")
    assert second.from_cache and detector.calls == calls
    for name in ("audio", "crops", "crop_index", "face_score"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    # Other crop settings are other crops: a new cache entry, decoded again.
    other = TrackSettings(FaceCrop(size=48, channels=1, margin=0.15), smoothing=0.0)
    assert cache_path(audio, video, other, detector, tmp_path / "c") != \
        cache_path(audio, video, SETTINGS, detector, tmp_path / "c")
    with pytest.raises(AssertionError, match="decoded although cached"):
        load_steps(audio, video, other, detector=detector, cache_dir=tmp_path / "c")


# ----- manifest ----------------------------------------------------------------------

@pytest.fixture
def dataset(tmp_path):
    """Three speakers: a video with sound (mkv, PCM), a sound-only file, a video."""
    root = tmp_path / "data"
    (root / "media").mkdir(parents=True)
    (root / "labels").mkdir()
    times = [i * 0.04 for i in range(50)]
    write_video(root / "media" / "anna.mkv", times, [True] * 50, audio_seconds=2.0)
    soundfile.write(root / "media" / "ben.wav", tone(2.0), 16_000)
    soundfile.write(root / "media" / "spare.wav", tone(2.0), 16_000)  # not listed
    write_video(root / "media" / "cleo.mkv", times, [True] * 50, audio_seconds=2.0)
    label_times = np.arange(0, 21) * 0.1
    for name in ("anna", "ben", "cleo"):
        write_labels(root / "labels" / f"{name}.csv", label_times, label_times, -label_times)
    (root / "manifest.csv").write_text(
        "media,labels,split,speaker\n"
        "media/anna.mkv,labels/anna.csv,train,anna\n"
        "media/ben.wav,labels/ben.csv,train,ben\n"
        "media/cleo.mkv,labels/cleo.csv,valid,cleo\n")
    return root


def test_manifest_loads_video_and_sound_only_media_with_resampled_labels(dataset, tmp_path):
    data = load_manifest(dataset / "manifest.csv", SETTINGS, detector=BrightBoxDetector(),
                         cache_dir=tmp_path / "cache")
    assert data.n_skipped == 0 and data.splits == ("train", "valid")
    anna, ben = data.split("train")
    (cleo,) = data.split("valid")
    assert (anna.speaker, ben.speaker, cleo.speaker) == ("anna", "ben", "cleo")
    for recording in (anna, ben, cleo):
        assert recording.first_step == 0 and recording.n_steps == 50  # 2.0 s of labels
        np.testing.assert_allclose(recording.target[:, 0], centres(50), atol=1e-5)
        np.testing.assert_allclose(recording.target[:, 1], -centres(50), atol=1e-5)
    assert anna.steps.has_video and anna.sequence().face_mask.mean() > 0.9
    assert not ben.steps.has_video and not ben.sequence().face_mask.any()
    sequence = anna.sequence()
    assert sequence.audio.shape == (50, 640) and np.abs(sequence.audio).max() > 0.2


def test_evaluation_takes_the_valid_split_and_decodes_only_it(dataset, tmp_path):
    (dataset / "media" / "anna.mkv").write_bytes(b"broken")  # train: must not be opened
    (sequence,) = evaluation_sequences(dataset / "manifest.csv", None, CROP,
                                       detector=BrightBoxDetector(), cache_dir=tmp_path / "c")
    assert sequence.steps == 50 and sequence.face.shape[1:] == (3, 32, 32)
    with pytest.raises(DatasetError, match=r"no recordings in split 'test' \(splits: \['train'"):
        evaluation_sequences(dataset / "manifest.csv", "test", CROP)


def test_a_corrupt_media_file_is_skipped_with_a_warning_and_counted(dataset, tmp_path):
    (dataset / "media" / "ben.wav").write_bytes(b"RIFF....not a wave file at all" * 10)
    with pytest.warns(RuntimeWarning) as caught:
        data = load_manifest(dataset / "manifest.csv", SETTINGS,
                             detector=BrightBoxDetector(), cache_dir=tmp_path / "cache")
    assert data.n_skipped == 1 and "ben.wav" in data.skipped[0]
    assert [r.name for r in data.recordings] == ["media/anna.mkv", "media/cleo.mkv"]
    messages = [str(w.message) for w in caught]
    assert any("skipping media/ben.wav" in m and "ben.wav" in m for m in messages)
    assert any("skipped 1 of 3" in m for m in messages)


@pytest.mark.parametrize("row, expected", [
    ("media/none.mkv,labels/anna.csv,train,dan", r"manifest\.csv:5: media file not found"),
    ("media/anna.mkv,labels/none.csv,train,dan", r"manifest\.csv:5: labels file not found"),
    ("media/spare.wav,labels/ben.csv,valid,ben", r"speaker-disjoint, but 'ben' in train, valid"),
    ("media/anna.mkv,labels/anna.csv", r"manifest\.csv:5: expected 4 fields"),
    ("media/anna.mkv,labels/anna.csv,valid,anna", r"manifest\.csv:5: media/anna.mkv is listed"),
])
def test_manifest_errors_name_the_file_and_line(dataset, row, expected):
    with (dataset / "manifest.csv").open("a") as stream:
        stream.write(row + "\n")
    with pytest.raises(DatasetError, match=expected):
        read_manifest(dataset / "manifest.csv")


def test_malformed_labels_are_reported_with_the_manifest_line(dataset):
    (dataset / "labels" / "cleo.csv").write_text("time_s,arousal,valence\n0,0,0\n0.1,x,0\n")
    with pytest.raises(DatasetError, match=r"cleo\.csv:3: .*listed at .*manifest\.csv:4"):
        read_manifest(dataset / "manifest.csv")
    with pytest.raises(DatasetError, match=r"missing\.csv: manifest not found"):
        read_manifest(dataset / "missing.csv")
    (dataset / "manifest.csv").write_text("file,labels\nmedia/ben.wav,labels/ben.csv\n")
    with pytest.raises(DatasetError, match=r"manifest\.csv:1: .*missing \['media'\]"):
        read_manifest(dataset / "manifest.csv")


# ----- chunks, splits, sessions ------------------------------------------------------

def _recording(name: str, steps: int, speaker: str):
    grid = video_cache.RecordingSteps(
        audio=np.random.default_rng(0).uniform(-1, 1, (steps, 640)).astype(np.float32),
        crops=np.full((1, 3, 32, 32), 7, np.uint8),
        crop_index=np.where(np.arange(steps) % 3, 0, -1).astype(np.int32),
        face_score=np.zeros(steps, np.float32), has_video=True)
    times = np.array([0.0, steps * 0.04])
    labels = LabelTrack(times, np.array([[0, 0], [1, 1]], np.float32), name)
    return annotate(name, grid, labels, speaker=speaker)


def test_chunks_cover_recordings_and_collate_into_model_batches():
    long, short = _recording("long", 105, "a"), _recording("short", 8, "b")
    dataset = ChunkDataset([long, short], chunk_steps=25)
    # long: 4 full chunks + a 5-step tail (< 12, dropped); short: 8 < 12 steps, none.
    assert len(dataset) == 4
    assert [dataset.span(i) for i in range(4)] == [(0, 0, 25), (0, 25, 50), (0, 50, 75),
                                                   (0, 75, 100)]
    item = dataset[1]
    np.testing.assert_array_equal(item.audio, long.steps.audio[25:50])
    np.testing.assert_array_equal(item.target, long.target[25:50])
    np.testing.assert_array_equal(item.face_mask, (np.arange(25, 50) % 3 != 0))
    batch = collate_sequences([dataset[0], ChunkDataset([short], 25, min_steps=5)[0]])
    assert batch["audio"].shape == (2, 25, 640) and batch["face"].shape == (2, 25, 3, 32, 32)
    assert batch["step_mask"][1].sum() == 8


def test_jittered_chunks_move_with_the_epoch_and_keep_their_count():
    dataset = ChunkDataset([_recording("r", 110, "a")], chunk_steps=25, jitter=True, seed=3)
    spans = []
    for epoch in range(4):
        dataset.set_epoch(epoch)
        spans.append([dataset.span(i) for i in range(len(dataset))])
        assert len(dataset) == 4 and all(b - a == 25 and b <= 110 for _, a, b in spans[-1])
    assert len({tuple(s) for s in spans}) > 1
    dataset.set_epoch(2)
    assert [dataset.span(i) for i in range(4)] == spans[2]  # reproducible


def test_split_by_speaker_keeps_speakers_whole():
    recordings = [_recording(f"{s}{i}", 30, s) for s in "abcdefghij" for i in range(2)]
    train, valid = split_by_speaker(recordings, valid_fraction=0.2, seed=1)
    assert len(valid) == 4 and len(train) == 16
    assert not {r.speaker for r in train} & {r.speaker for r in valid}


def test_a_session_folder_becomes_one_sequence(tmp_path):
    folder = tmp_path / "session-2024"
    folder.mkdir()
    soundfile.write(folder / "audio.wav", tone(1.2), 16_000)
    write_video(folder / "video.mp4", [i * 0.04 for i in range(30)], [True] * 30)
    write_labels(folder / "ratings.csv", [0.2, 1.0], [0.0, 0.8], [0.5, 0.5])
    sequence = session_sequence(folder, SETTINGS, detector=BrightBoxDetector(),
                                cache_dir=tmp_path / "cache")
    # centres 0.22 .. 0.98 lie in [0.2, 1.0]: steps 5 .. 24
    assert sequence.steps == 20 and sequence.face_mask.all()
    np.testing.assert_allclose(sequence.target[:, 0], centres(25)[5:] - 0.2, atol=1e-5)
    (folder / "audio.wav").unlink()
    with pytest.raises(DatasetError, match="session-2024: session folder lacks audio.wav"):
        session_sequence(folder, SETTINGS)


def test_labels_outside_the_media_are_an_error_naming_the_label_file(tmp_path):
    soundfile.write(tmp_path / "a.wav", tone(1.0), 16_000)
    steps = load_steps(tmp_path / "a.wav", None, SETTINGS, use_cache=False)
    labels = LabelTrack(np.array([5.0, 6.0]), np.zeros((2, 2), np.float32), "late.csv")
    with pytest.raises(DatasetError, match=r"late\.csv: annotations cover 5\.00\.\.6\.00 s"):
        annotate("a", steps, labels)


def test_real_clip_through_blazeface(cremad_dir, tmp_path):
    clip = cremad_dir / "1001_DFA_HAP_XX.flv"
    write_labels(tmp_path / "hap.csv", [0.0, 1.0, 2.0], [0.2, 0.6, 0.4], [0.5, 0.7, 0.6])
    (tmp_path / "manifest.csv").write_text(f"media,labels\n{clip},hap.csv\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may be skipped
        data = load_manifest(tmp_path / "manifest.csv", TrackSettings(FaceCrop(size=64)),
                             cache_dir=tmp_path / "cache")
    (recording,) = data.recordings
    sequence = recording.sequence()
    # labels span 0..2 s; the clip's sound ends a little earlier (47 steps)
    assert recording.first_step == 0 and 45 <= sequence.steps <= 50
    assert sequence.face_mask.mean() > 0.95
    faces = sequence.face[sequence.face_mask > 0]
    assert faces.shape[1:] == (3, 64, 64) and faces.std() > 20
    assert sequence.target[0, 0] == pytest.approx(0.2 + 0.4 * 0.02, abs=1e-5)
