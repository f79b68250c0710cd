"""training.data.recola on a small synthetic corpus written here in the exact AVEC 2016
layout: tone WAVs at 44.1 kHz, MPEG-4 videos with a bright "face", ARFF gold standard."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from models.faces import Detection
from models.spec import FaceCrop
from training.data import recola, video_cache
from training.data.manifest import DatasetError
from training.data.recola import load_recola, read_gold_standard, recola_files
from training.data.video_cache import TrackSettings

SETTINGS = TrackSettings(FaceCrop(size=32, channels=3, margin=0.15))
SECONDS = 2.0  # per recording (the real ones last 300 s)
NAMES = ("train_1", "train_2", "dev_1", "test_1")


class BrightBoxDetector:
    """Stands in for BlazeFace: the bounding box of the bright pixels is 'the face'."""

    cache_key = "bright-box"

    def detect(self, rgb):
        ys, xs = np.nonzero(rgb.mean(axis=2) > 128)
        if not len(xs):
            return []
        return [Detection(0.9, (float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1),
                                float(np.ptp(ys) + 1)))]

    def close(self):
        pass


def gold(name: str, dimension: str) -> tuple[np.ndarray, np.ndarray]:
    """The fixture's gold standard: 40 ms frames 0..SECONDS, a ramp per recording."""
    times = np.arange(int(SECONDS / 0.04) + 1) * 0.04
    slope = 0.3 if dimension == "arousal" else -0.2
    return times, slope * times + 0.01 * NAMES.index(name)


def write_arff(path: Path, name: str, dimension: str) -> None:
    times, values = gold(name, dimension)
    header = (f"@relation GOLDSTANDARD_{dimension.upper()}\n\n"
              "@attribute Instance_name string\n@attribute frameTime numeric\n"
              "@attribute GoldStandard numeric\n\n@data\n\n")
    rows = [f"{name},{t:.6f},{v:.6f}" for t, v in zip(times, values)]
    path.write_text(header + "\n".join(rows) + "\n")


def write_video(path: Path, seconds: float) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 80, 64, "yuv420p"
        for i in range(int(seconds * 25)):
            rgb = np.full((64, 80, 3), 30, np.uint8)
            rgb[16:44, 28:52] = 210
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.fixture
def recola_root(tmp_path):
    root = tmp_path / "AVEC2016"
    for folder in ("recordings_audio", "recordings_video", "ratings_gold_standard/arousal",
                   "ratings_gold_standard/valence", "features_audio"):
        (root / folder).mkdir(parents=True)
    rate = 44_100
    t = np.arange(int(SECONDS * rate)) / rate
    for name in NAMES:
        soundfile.write(root / "recordings_audio" / f"{name}.wav",
                        0.3 * np.sin(2 * np.pi * 300 * t), rate)
        write_video(root / "recordings_video" / f"{name}.mp4", SECONDS)
        if not name.startswith("test"):  # the release has no public test labels
            for dimension in ("arousal", "valence"):
                write_arff(root / "ratings_gold_standard" / dimension / f"{name}.arff", name,
                           dimension)
    return root


def test_reads_the_official_partitions_with_the_gold_standard_on_40ms_centres(
        recola_root, tmp_path):
    data = load_recola(recola_root, SETTINGS, detector=BrightBoxDetector(),
                       cache_dir=tmp_path / "cache")
    assert data.n_skipped == 0 and data.splits == ("dev", "train")
    assert [r.name for r in data.split("train")] == ["train_1", "train_2"]
    assert [r.name for r in data.split("dev")] == ["dev_1"]
    assert {r.speaker for r in data.split("train")}.isdisjoint(
        r.speaker for r in data.split("dev"))
    centres = (np.arange(50) + 0.5) * 0.04
    for recording in data.recordings:
        # 2.0 s at 44.1 kHz -> 16 kHz -> 50 steps, every centre inside 0..2.0 s
        assert recording.first_step == 0 and recording.n_steps == 50
        offset = 0.01 * NAMES.index(recording.name)
        np.testing.assert_allclose(recording.target[:, 0], 0.3 * centres + offset, atol=2e-6)
        np.testing.assert_allclose(recording.target[:, 1], -0.2 * centres + offset, atol=2e-6)
        sequence = recording.sequence()
        assert sequence.face_mask.all() and sequence.face.shape == (50, 3, 32, 32)
        assert np.abs(sequence.audio).max() == pytest.approx(0.3, abs=0.02)


def test_the_second_load_is_served_from_the_cache(recola_root, tmp_path, monkeypatch):
    first = load_recola(recola_root, SETTINGS, ["dev"], detector=BrightBoxDetector(),
                        cache_dir=tmp_path / "cache")
    assert not first.recordings[0].steps.from_cache
    assert len(list((tmp_path / "cache").glob("steps-dev_1-*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(video_cache, "read_audio", no_decoding)
    monkeypatch.setattr(video_cache, "read_video_frames", no_decoding)
    second = load_recola(recola_root, SETTINGS, ["dev"], detector=BrightBoxDetector(),
                         cache_dir=tmp_path / "cache")
    assert second.recordings[0].steps.from_cache
    np.testing.assert_array_equal(second.recordings[0].sequence().face,
                                  first.recordings[0].sequence().face)


def test_evaluation_defaults_to_the_dev_partition(recola_root, tmp_path):
    (sequence,) = recola.evaluation_sequences(recola_root, None, SETTINGS.crop,
                                              detector=BrightBoxDetector(),
                                              cache_dir=tmp_path / "cache")
    assert sequence.steps == 50 and sequence.face_mask.all()
    assert sequence.target[0, 0] == pytest.approx(0.3 * 0.02 + 0.01 * NAMES.index("dev_1"))


def test_audio_only_training_ignores_the_videos(recola_root, tmp_path):
    data = load_recola(recola_root, SETTINGS, ["train"], video=False,
                       cache_dir=tmp_path / "cache")
    assert len(data.recordings) == 2
    assert all(not r.sequence().face_mask.any() for r in data.recordings)


def test_a_corrupt_video_is_skipped_with_a_warning_and_counted(recola_root, tmp_path):
    (recola_root / "recordings_video" / "train_2.mp4").write_bytes(b"\0" * 4096)
    with pytest.warns(RuntimeWarning) as caught:
        data = load_recola(recola_root, SETTINGS, detector=BrightBoxDetector(),
                           cache_dir=tmp_path / "cache")
    assert [r.name for r in data.recordings] == ["dev_1", "train_1"]
    assert data.n_skipped == 1 and "train_2.mp4" in data.skipped[0]
    messages = [str(w.message) for w in caught]
    assert any("skipping train_2" in m for m in messages)
    assert any("skipped 1 of 3 recordings" in m for m in messages)


def test_arff_variants_are_read_and_malformed_rows_named(tmp_path):
    path = tmp_path / "x.arff"
    path.write_text("% written by hand\n@RELATION GOLDSTANDARD_AROUSAL\n"
                    "@attribute GoldStandard numeric\n@attribute 'Instance_name' string\n"
                    "@attribute frameTime numeric\n@DATA\n0.5,'dev_3',0.00\n0.25,'dev_3',0.04\n")
    times, values = read_gold_standard(path)
    np.testing.assert_allclose(times, [0.0, 0.04])
    np.testing.assert_allclose(values, [0.5, 0.25])
    path.write_text("@relation GOLDSTANDARD\n@attribute Instance_name string\n"
                    "@attribute frameTime numeric\n@attribute GoldStandard numeric\n"
                    "@data\ndev_3,0.00,0.1\ndev_3,0.04\n")
    with pytest.raises(DatasetError, match=r"x\.arff:7: expected 3 comma-separated values"):
        read_gold_standard(path)
    path.write_text("@relation GOLDSTANDARD\n@attribute Instance_name string\n"
                    "@attribute frameTime numeric\n@data\ndev_3,0.00\n")
    with pytest.raises(DatasetError, match=r"x\.arff:4: .*lack \['goldstandard'\]"):
        read_gold_standard(path)
    path.write_text("@relation GOLDSTANDARD\n@attribute Instance_name string\n"
                    "@attribute frameTime numeric\n@attribute GoldStandard numeric\n"
                    "@data\ndev_3,0.00,n/a\n")
    with pytest.raises(DatasetError, match=r"x\.arff:6: frameTime and GoldStandard must"):
        read_gold_standard(path)


def test_missing_files_and_the_test_partition_are_clear_errors(recola_root):
    (recola_root / "ratings_gold_standard" / "valence" / "dev_1.arff").unlink()
    with pytest.raises(DatasetError, match=r"valence/dev_1\.arff: not found \(needed for"):
        recola_files(recola_root)
    assert [f.name for f in recola_files(recola_root, ["train"])] == ["train_1", "train_2"]
    with pytest.raises(DatasetError, match="test partition has no public gold standard"):
        recola_files(recola_root, ["train", "test"])
    with pytest.raises(DatasetError, match=r"elsewhere/recordings_audio: folder not found; "
                                           "expected the AVEC 2016 RECOLA layout"):
        recola_files(recola_root.parent / "elsewhere")
