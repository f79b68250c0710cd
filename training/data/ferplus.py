"""FER+ reader: the official layout -> a frozen set of numpy arrays with (arousal, valence).

Layout (Barsoum et al., ICMI 2016; https://github.com/microsoft/FERPlus)::

    <root>/<split>/label.csv     no header; one row per image:
                                 image, "(x, y, w, h)", 10 vote counts in the order of
                                 labels.FERPLUS_COLUMNS (8 emotions, unknown, NF)
    <root>/<split>/fer*.png      48x48 greyscale faces, already cropped

FER+ has no identity labels, so subject-disjoint splits are impossible: the official
split folders are the split (FER2013Train for training, FER2013Valid for validation,
FER2013Test where present). Faces of one person may occur in more than one split.

Targets come from ``labels``: votes cleaned, unusable faces (mostly unknown / not a face)
dropped by default, the emotion distribution weighted into (arousal, valence).
"""
from __future__ import annotations

import csv
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.data import cache
from training.data.labels import (FERPLUS_COLUMNS, ferplus_majority, ferplus_probabilities,
                                  ferplus_targets, usable_face)

SPLITS = ("FER2013Train", "FER2013Valid", "FER2013Test")
IMAGE_SIZE = 48  # pixels, square
LABEL_FILE = "label.csv"
_BOX = re.compile(r"^\(\s*\d+\s*,\s*\d+\s*,\s*\d+\s*,\s*\d+\s*\)$")
_ROW_FORMAT = ('image.png, "(x, y, w, h)", then 10 integer vote counts '
               f"({', '.join(FERPLUS_COLUMNS)})")


class FerPlusFormatError(ValueError):
    """label.csv does not follow the official FER+ layout."""


@dataclass(frozen=True, eq=False)
class FerPlusSplit:
    """One FER+ split, decoded. All arrays share the first axis N.

    ``targets`` columns are (arousal, valence) as ``models.spec.OUTPUT_DIMENSIONS``;
    ``majority`` indexes ``labels.FERPLUS_EMOTIONS``. ``skipped`` lists image files that
    could not be read; ``dropped_unusable`` counts readable images left out by
    ``labels.usable_face``.
    """

    split: str
    images: np.ndarray  # uint8 [N, 48, 48]
    votes: np.ndarray  # int16 [N, 10] raw crowd votes
    probabilities: np.ndarray  # float32 [N, 8]
    targets: np.ndarray  # float32 [N, 2] (arousal, valence)
    majority: np.ndarray  # int64 [N]
    names: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    dropped_unusable: int = 0

    def __len__(self) -> int:
        return len(self.names)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def subset(self, indices) -> "FerPlusSplit":
        """The images at ``indices`` (array of ints, boolean mask or slice)."""
        index = np.arange(len(self))[indices]
        return FerPlusSplit(
            split=self.split, images=self.images[index], votes=self.votes[index],
            probabilities=self.probabilities[index], targets=self.targets[index],
            majority=self.majority[index], names=tuple(self.names[i] for i in index),
            skipped=self.skipped, dropped_unusable=self.dropped_unusable)


def load_ferplus(root: str | os.PathLike, split: str = "FER2013Valid", *,
                 keep_unusable: bool = False, cache_dir: str | os.PathLike | None = None,
                 use_cache: bool = True) -> FerPlusSplit:
    """Read ``<root>/<split>`` (decoded once, then served from the cache).

    ``cache_dir`` overrides $AFFECT_CACHE_DIR / ~/.cache/affect-monitor. Unreadable PNGs
    are skipped with a warning and listed in ``skipped``; images whose votes are mostly
    unknown / not-a-face are dropped unless ``keep_unusable``.
    """
    folder = _split_folder(root, split)
    label_path = folder / LABEL_FILE
    rows = read_labels(label_path)
    names = [name for name, _ in rows]
    key = cache.fingerprint([label_path] + [folder / name for name in names], str(folder))
    cache_path = cache.cache_dir(cache_dir) / f"ferplus-{split}-{key}.npz"

    stored = cache.load_npz(cache_path) if use_cache else None
    if stored is None:
        stored = _decode(folder, rows)
        if use_cache:
            cache.save_npz(cache_path, **stored)
    skipped = tuple(str(name) for name in stored["skipped"])
    if skipped:
        shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        warnings.warn(f"FER+ {folder}: skipped {len(skipped)} unreadable image(s): {shown}",
                      RuntimeWarning, stacklevel=2)
    return _assemble(split, stored["images"], stored["votes"],
                     tuple(str(name) for name in stored["names"]), skipped, keep_unusable)


def read_labels(path: Path) -> list[tuple[str, np.ndarray]]:
    """Parse a FER+ label.csv -> [(image name, int16 [10] votes)], validating every row."""
    if not path.is_file():
        raise FileNotFoundError(f"FER+ labels not found: {path} (expected the official "
                                f"layout <root>/<split>/{LABEL_FILE} beside the PNGs)")
    rows = []
    with open(path, newline="", encoding="utf-8") as stream:
        for line, fields in enumerate(csv.reader(stream), start=1):
            if not fields or all(not field.strip() for field in fields):
                continue  # tolerate blank lines (e.g. a trailing newline)
            rows.append(_parse_row(path, line, fields))
    if not rows:
        raise FerPlusFormatError(f"{path}: no rows; expected one per image: {_ROW_FORMAT}")
    return rows


def _parse_row(path: Path, line: int, fields: list[str]) -> tuple[str, np.ndarray]:
    where = f"{path}:{line}"
    expected = 2 + len(FERPLUS_COLUMNS)
    if len(fields) != expected:
        raise FerPlusFormatError(f"{where}: expected {expected} fields ({_ROW_FORMAT}), "
                                 f"got {len(fields)}: {fields!r}")
    name, box, counts = fields[0].strip(), fields[1].strip(), fields[2:]
    if not name.lower().endswith(".png") or "/" in name or "\\" in name:
        raise FerPlusFormatError(f"{where}: expected a PNG file name, got {name!r}")
    if not _BOX.match(box):
        raise FerPlusFormatError(f"{where}: expected a face box like \"(0, 0, 48, 48)\", "
                                 f"got {box!r}")
    try:
        votes = np.array([int(count) for count in counts], dtype=np.int16)
    except ValueError:
        raise FerPlusFormatError(f"{where}: vote counts must be integers, got {counts!r}") \
            from None
    if np.any(votes < 0):
        raise FerPlusFormatError(f"{where}: vote counts cannot be negative, got {counts!r}")
    return name, votes


def _split_folder(root: str | os.PathLike, split: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"FER+ root folder not found: {root} (expected "
                                f"{', '.join(SPLITS)} folders inside)")
    folder = root / split
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(f"FER+ split folder not found: {folder} (splits are "
                                f"{', '.join(SPLITS)}; found {found})")
    return folder


def _decode(folder: Path, rows: list[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    images, votes, names, skipped = [], [], [], []
    for name, row_votes in rows:
        image = _read_png(folder / name)
        if image is None:
            skipped.append(name)
            continue
        images.append(image)
        votes.append(row_votes)
        names.append(name)
    return {
        "images": (np.stack(images) if images
                   else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)),
        "votes": (np.stack(votes) if votes
                  else np.zeros((0, len(FERPLUS_COLUMNS)), np.int16)),
        "names": np.array(names, dtype=str),
        "skipped": np.array(skipped, dtype=str),
    }


def _read_png(path: Path) -> np.ndarray | None:
    """48x48 uint8 grey, or None when the file is missing, undecodable or another size."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    # imdecode returns None for corrupt data instead of raising; colour PNGs become grey.
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None or image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        return None
    return image


def _assemble(split: str, images: np.ndarray, votes: np.ndarray, names: tuple[str, ...],
              skipped: tuple[str, ...], keep_unusable: bool) -> FerPlusSplit:
    usable = np.ones(len(names), bool) if keep_unusable else usable_face(votes)
    index = np.flatnonzero(usable)
    probabilities = ferplus_probabilities(votes[index])
    return FerPlusSplit(
        split=split, images=images[index], votes=votes[index],
        probabilities=probabilities, targets=ferplus_targets(probabilities),
        majority=ferplus_majority(probabilities), names=tuple(names[i] for i in index),
        skipped=skipped, dropped_unusable=int(len(names) - len(index)))
