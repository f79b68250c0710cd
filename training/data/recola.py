"""RECOLA as released for AVEC 2016 (Ringeval et al. 2013; Valstar et al. 2016), the
corpus of Tzirakis et al. 2017, for users who hold its licence.

Expected layout (the AVEC 2016 release; other folders of the release are ignored)::

    <root>/recordings_audio/train_1.wav ... train_9.wav, dev_1.wav ... dev_9.wav
    <root>/recordings_video/train_1.mp4 ...                      (same names)
    <root>/ratings_gold_standard/arousal/train_1.arff ...        (same names)
    <root>/ratings_gold_standard/valence/train_1.arff ...        (same names)
    (features_audio/, features_video_*/, ratings_individual/, recordings_physio/,
     test_* files: not used)

Each recording is ~5 min of one participant. The gold-standard files are ARFF with
three attributes, one row per 40 ms from frameTime 0.00 to 300.00 (7501 rows)::

    @relation GOLDSTANDARD_AROUSAL

    @attribute Instance_name string
    @attribute frameTime numeric
    @attribute GoldStandard numeric

    @data
    train_1,0.000000,-0.123400
    ...

Attributes are found by name (case-insensitive), so their order does not matter;
``%`` comments, blank lines and quoted names are accepted. Arousal and valence files
of a recording must share their frame times. Labels are resampled onto the 40 ms step
centres (``manifest.resample_labels``) and steps outside 0..300 s dropped. Sound comes
from ``recordings_audio`` (any rate, resampled to 16 kHz), faces from
``recordings_video`` through the app's face tracker (``video_cache``), cached.

Splits: the official partitions. Each of RECOLA's 27 participants appears in exactly
one recording, so train_* (9) and dev_* (9) are speaker-disjoint; test_* has no public
labels and cannot be loaded here. The paper's protocol trains on train and reports dev.

Checked against public sources (End2You's RECOLA notebook, the AVEC 2016 baseline and
gold-standard scripts found with a code search): the folder names, ``.wav``/``.mp4``/
``.arff`` names, the attribute names Instance_name, frameTime, GoldStandard, the
``@relation GOLDSTANDARD_<DIMENSION>`` header, 7501 rows at 0.04 s spacing, and
unquoted ``name,time,value`` rows. Not checked against the licensed files themselves.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.spec import FaceCrop
from training.data.manifest import (AnnotatedData, DatasetError, LabelTrack, RecordingEntry,
                                    load_entries)
from training.data.sequences import Sequence
from training.data.video_cache import TrackSettings

PARTITIONS = ("train", "dev")  # official AVEC 2016 partitions with public gold standard
AUDIO_DIR, VIDEO_DIR = "recordings_audio", "recordings_video"
GOLD_DIR = "ratings_gold_standard"
_NAME = re.compile(r"^(train|dev|test)_(\d+)$")


@dataclass(frozen=True)
class RecolaFiles:
    name: str  # e.g. "train_1": also the speaker, one participant per recording
    partition: str
    audio: Path
    video: Path | None
    arousal: Path
    valence: Path


def recola_files(root: str | os.PathLike, partitions=PARTITIONS,
                 video: bool = True) -> list[RecolaFiles]:
    """The recordings of ``partitions`` under ``root``, each with all its files present.

    DatasetError naming the missing folder or file. ``video=False`` ignores the videos
    (audio-only training: face_mask 0 throughout).
    """
    root = Path(root)
    partitions = tuple(partitions)
    _check_partitions(partitions)
    _check_folders(root, video)
    found = []
    for wav in sorted((root / AUDIO_DIR).glob("*.wav"), key=_order):
        match = _NAME.match(wav.stem)
        if match and match.group(1) in partitions:
            found.append(_recording(root, wav, match.group(1), video))
    if not found:
        raise DatasetError(f"{root / AUDIO_DIR}: no {'/'.join(partitions)}_N.wav recordings")
    return found


def _check_partitions(partitions: tuple) -> None:
    if "test" in partitions:
        raise DatasetError("RECOLA test partition has no public gold standard; use "
                           f"{PARTITIONS}")
    unknown = [p for p in partitions if p not in PARTITIONS]
    if unknown or not partitions:
        raise DatasetError(f"RECOLA partitions must be among {PARTITIONS}, got {partitions}")


def _check_folders(root: Path, video: bool) -> None:
    """Name the first missing folder before any file is looked for."""
    folders = [root / AUDIO_DIR, root / GOLD_DIR / "arousal", root / GOLD_DIR / "valence"]
    folders += [root / VIDEO_DIR] if video else []
    for folder in folders:
        if not folder.is_dir():
            raise DatasetError(f"{folder}: folder not found; expected the AVEC 2016 RECOLA "
                               f"layout ({AUDIO_DIR}/, {VIDEO_DIR}/, {GOLD_DIR}/arousal/, "
                               f"{GOLD_DIR}/valence/ under {root})")


def _recording(root: Path, wav: Path, partition: str, video: bool) -> RecolaFiles:
    """One recording's files, named after its wav; an error if any of them is missing."""
    files = RecolaFiles(
        name=wav.stem, partition=partition, audio=wav,
        video=root / VIDEO_DIR / f"{wav.stem}.mp4" if video else None,
        arousal=root / GOLD_DIR / "arousal" / f"{wav.stem}.arff",
        valence=root / GOLD_DIR / "valence" / f"{wav.stem}.arff")
    for path in (files.video, files.arousal, files.valence):
        if path is not None and not path.is_file():
            raise DatasetError(f"{path}: not found (needed for {wav})")
    return files


def _order(path: Path) -> tuple[str, int]:
    match = _NAME.match(path.stem)
    return (match.group(1), int(match.group(2))) if match else (path.stem, 0)


def read_gold_standard(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One AVEC 2016 gold-standard ARFF -> (frameTime float64 [N], GoldStandard float32 [N]).

    DatasetError naming the file and line for anything that is not that format.
    """
    path = Path(path)
    attributes: list[str] = []
    times, values = [], []
    columns = None  # (frameTime, GoldStandard) column indices, once @data is reached
    for number, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if columns is None:
            columns = _header_line(path, number, line, attributes)
            continue
        time, value = _data_row(path, number, line, attributes, columns)
        times.append(time)
        values.append(value)
    if columns is None:
        raise DatasetError(f"{path}: no @data section; expected an AVEC 2016 gold-standard "
                           "ARFF file")
    return np.array(times, np.float64), np.array(values, np.float32)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{path}: gold-standard file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot be read ({error})") from None


def _header_line(path: Path, number: int, line: str,
                 attributes: list[str]) -> tuple[int, int] | None:
    """Read one header line: appends to ``attributes``; at @data returns the columns."""
    lower = line.lower()
    if lower.startswith("@attribute"):
        parts = line.split()
        if len(parts) < 3:
            raise DatasetError(f"{path}:{number}: malformed @attribute line {line!r}")
        attributes.append(parts[1].strip("'\"").lower())
    elif lower.startswith("@data"):
        missing = [n for n in ("frametime", "goldstandard") if n not in attributes]
        if missing:
            raise DatasetError(
                f"{path}:{number}: attributes {attributes} lack {missing}; expected "
                "@attribute Instance_name string, frameTime numeric, GoldStandard "
                "numeric")
        return attributes.index("frametime"), attributes.index("goldstandard")
    elif not lower.startswith("@relation"):
        raise DatasetError(f"{path}:{number}: expected @relation, @attribute or "
                           f"@data before the data, got {line!r}")
    return None


def _data_row(path: Path, number: int, line: str, attributes: list[str],
              columns: tuple[int, int]) -> tuple[float, float]:
    """(frameTime, GoldStandard) of one data line."""
    cells = [cell.strip().strip("'\"") for cell in line.split(",")]
    if len(cells) != len(attributes):
        raise DatasetError(f"{path}:{number}: expected {len(attributes)} comma-separated "
                           f"values ({', '.join(attributes)}), got {len(cells)}")
    try:
        return float(cells[columns[0]]), float(cells[columns[1]])
    except ValueError:
        raise DatasetError(f"{path}:{number}: frameTime and GoldStandard must be "
                           f"numbers, got {line!r}") from None


def read_recola_labels(arousal: str | os.PathLike, valence: str | os.PathLike) -> LabelTrack:
    """The arousal and valence gold standard of one recording as a LabelTrack."""
    time_a, value_a = read_gold_standard(arousal)
    time_v, value_v = read_gold_standard(valence)
    if time_a.shape != time_v.shape or not np.allclose(time_a, time_v, atol=1e-6):
        raise DatasetError(f"{arousal} and {valence}: frame times differ "
                           f"({len(time_a)} vs {len(time_v)} rows)")
    return LabelTrack(time_a, np.stack([value_a, value_v], axis=1), str(arousal))


def load_recola(root: str | os.PathLike, settings: TrackSettings, partitions=PARTITIONS, *,
                video: bool = True, label_delay_s: float = 0.0, detector=None,
                cache_dir: str | os.PathLike | None = None,
                use_cache: bool = True) -> AnnotatedData:
    """RECOLA recordings of ``partitions`` with their gold standard on the 40 ms grid.

    ``split`` of each recording is its partition ("train" / "dev"), ``speaker`` its name.
    All label files are checked before any media is decoded; recordings whose media
    cannot be decoded are skipped with a warning (``AnnotatedData.skipped``).
    ``label_delay_s`` moves the ratings earlier to undo annotator reaction time (0 = as
    released, as in the paper).
    """
    entries = [RecordingEntry(name=f.name, audio=f.audio, video=f.video,
                              labels=read_recola_labels(f.arousal, f.valence),
                              speaker=f.name, split=f.partition)
               for f in recola_files(root, partitions, video)]
    return load_entries(entries, settings, label_delay_s=label_delay_s, detector=detector,
                        cache_dir=cache_dir, use_cache=use_cache, what=f"RECOLA {root}")


def evaluation_sequences(root: str | os.PathLike, split: str | None = None,
                         crop: FaceCrop = FaceCrop(), **options) -> list[Sequence]:
    """Each recording of ``split`` (default "dev", as the paper reports) as one Sequence,
    the whole annotated span (affect-eval). ``options`` go to ``load_recola``."""
    split = split or "dev"
    data = load_recola(root, TrackSettings(crop), [split], **options)
    return [recording.sequence() for recording in data.recordings]
