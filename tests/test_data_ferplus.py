"""FER+ reader (training/data/ferplus.py): tiny hand-made splits plus the real FER2013Valid."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.spec import OUTPUT_DIMENSIONS
from training.data import ferplus
from training.data.ferplus import FerPlusFormatError, load_ferplus, read_labels
from training.data.labels import FERPLUS_EMOTIONS

VALENCE = OUTPUT_DIMENSIONS.index("valence")
ROWS = [  # name, votes: happy face, sad face, mostly not-a-face
    ("fer0000001.png", [0, 9, 0, 0, 0, 0, 0, 0, 1, 0]),
    ("fer0000002.png", [2, 0, 0, 8, 0, 0, 0, 0, 0, 0]),
    ("fer0000003.png", [1, 0, 0, 0, 0, 0, 0, 0, 2, 7]),
]


def write_split(root: Path, rows=ROWS, split="FER2013Valid") -> Path:
    folder = root / split
    folder.mkdir(parents=True)
    lines = []
    for k, (name, counts) in enumerate(rows):
        image = np.full((48, 48), 40 * (k + 1), np.uint8)
        image[10:20, 10:20] = 255  # something to recognise the image by
        cv2.imwrite(str(folder / name), image)
        lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(str(c) for c in counts))
    (folder / "label.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_tiny_split_is_parsed_and_unusable_faces_dropped(tmp_path):
    write_split(tmp_path / "ferplus")
    split = load_ferplus(tmp_path / "ferplus", "FER2013Valid", cache_dir=tmp_path / "cache")
    assert len(split) == 2 and split.dropped_unusable == 1 and split.n_skipped == 0
    assert split.names == ("fer0000001.png", "fer0000002.png")
    assert split.images.dtype == np.uint8 and split.images.shape == (2, 48, 48)
    assert split.images[0, 0, 0] == 40 and split.images[1, 0, 0] == 80
    assert split.votes.shape == (2, 10) and split.probabilities.shape == (2, 8)
    assert split.targets.shape == (2, 2) and split.targets.dtype == np.float32
    assert [FERPLUS_EMOTIONS[k] for k in split.majority] == ["happiness", "sadness"]
    assert split.targets[0, VALENCE] > 0 > split.targets[1, VALENCE]

    everything = load_ferplus(tmp_path / "ferplus", "FER2013Valid", keep_unusable=True,
                              cache_dir=tmp_path / "cache")
    assert len(everything) == 3 and everything.dropped_unusable == 0


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    write_split(tmp_path / "ferplus")
    monkeypatch.setenv("AFFECT_CACHE_DIR", str(tmp_path / "env-cache"))
    first = load_ferplus(tmp_path / "ferplus")
    assert len(list((tmp_path / "env-cache").glob("ferplus-FER2013Valid-*.npz"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(ferplus, "_decode", no_decoding)
    second = load_ferplus(tmp_path / "ferplus")
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.targets, second.targets)
    assert first.names == second.names


def test_an_edited_label_file_invalidates_the_cache(tmp_path):
    folder = write_split(tmp_path / "ferplus")
    before = load_ferplus(tmp_path / "ferplus", cache_dir=tmp_path / "cache")
    label = folder / "label.csv"
    label.write_text(label.read_text().replace("0,9,0,0,0,0,0,0,1,0", "0,0,0,9,0,0,0,0,1,0"))
    os.utime(label, ns=(label.stat().st_atime_ns, label.stat().st_mtime_ns + 10**9))
    after = load_ferplus(tmp_path / "ferplus", cache_dir=tmp_path / "cache")
    assert FERPLUS_EMOTIONS[before.majority[0]] == "happiness"
    assert FERPLUS_EMOTIONS[after.majority[0]] == "sadness"


@pytest.mark.parametrize("damage", ["garbage", "missing", "wrong size"])
def test_unreadable_images_are_skipped_counted_and_warned(tmp_path, damage):
    folder = write_split(tmp_path / "ferplus")
    broken = folder / "fer0000002.png"
    if damage == "garbage":
        broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    elif damage == "missing":
        broken.unlink()
    else:
        cv2.imwrite(str(broken), np.zeros((64, 64), np.uint8))
    with pytest.warns(RuntimeWarning, match=r"skipped 1 unreadable image.*fer0000002"):
        split = load_ferplus(tmp_path / "ferplus", cache_dir=tmp_path / "cache")
    assert split.n_skipped == 1 and split.skipped == ("fer0000002.png",)
    assert split.names == ("fer0000001.png",)
    with pytest.warns(RuntimeWarning, match="skipped 1"):  # still reported from the cache
        load_ferplus(tmp_path / "ferplus", cache_dir=tmp_path / "cache")


def test_missing_folders_and_labels_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_ferplus(tmp_path / "nowhere")
    (tmp_path / "ferplus" / "FER2013Train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"FER2013Valid.*found \['FER2013Train'\]"):
        load_ferplus(tmp_path / "ferplus", "FER2013Valid")
    with pytest.raises(FileNotFoundError, match=r"FER2013Train[/\\]label\.csv"):
        load_ferplus(tmp_path / "ferplus", "FER2013Train")


@pytest.mark.parametrize("row, message", [
    ('fer1.png,"(0, 0, 48, 48)",1,2,3,4,5,6,7,8,9', "expected 12 fields"),
    ('fer1.png,"(0, 0, 48, 48)",1,2,3,4,5,6,7,8,9,x', "must be integers"),
    ('fer1.png,"0 0 48 48",1,2,3,4,5,6,7,8,9,0', "face box"),
    ('fer1.jpg,"(0, 0, 48, 48)",1,2,3,4,5,6,7,8,9,0', "PNG file name"),
    ('fer1.png,"(0, 0, 48, 48)",1,2,3,4,5,6,7,8,9,-1', "negative"),
])
def test_malformed_rows_name_the_file_and_line(tmp_path, row, message):
    path = tmp_path / "label.csv"
    path.write_text('fer0.png,"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0\n' + row + "\n")
    with pytest.raises(FerPlusFormatError, match=rf"label\.csv:2: .*{message}"):
        read_labels(path)


def test_empty_label_file_is_an_error(tmp_path):
    path = tmp_path / "label.csv"
    path.write_text("\n")
    with pytest.raises(FerPlusFormatError, match="no rows"):
        read_labels(path)


def test_subset_keeps_rows_aligned(tmp_path):
    write_split(tmp_path / "ferplus")
    split = load_ferplus(tmp_path / "ferplus", keep_unusable=True, cache_dir=tmp_path / "c")
    part = split.subset([2, 0])
    assert part.names == ("fer0000003.png", "fer0000001.png")
    np.testing.assert_array_equal(part.images[1], split.images[0])
    np.testing.assert_array_equal(part.targets[0], split.targets[2])


def test_real_validation_split(ferplus_dir, tmp_path):
    split = load_ferplus(ferplus_dir, "FER2013Valid", cache_dir=tmp_path)
    assert split.n_skipped == 0
    assert 0.95 * 3579 < len(split) <= 3579  # a few mostly-unknown images dropped
    assert split.images.shape[1:] == (48, 48) and split.images.dtype == np.uint8
    assert np.allclose(split.probabilities.sum(axis=1), 1.0, atol=1e-5)
    valence = split.targets[:, VALENCE]
    happy = valence[split.majority == FERPLUS_EMOTIONS.index("happiness")]
    sad = valence[split.majority == FERPLUS_EMOTIONS.index("sadness")]
    assert len(happy) > 100 and len(sad) > 100
    assert happy.mean() > 0.5 > -0.5 > sad.mean()
    assert np.percentile(happy, 10) > np.percentile(sad, 90)
    # the images are real faces, not blanks: pixel spread within each image
    assert np.median(split.images.reshape(len(split), -1).std(axis=1)) > 20
    again = load_ferplus(ferplus_dir, "FER2013Valid", cache_dir=tmp_path)
    np.testing.assert_array_equal(again.images, split.images)
