"""Annotated recordings -> 40 ms training sequences, and the generic manifest reader.

The core, shared by every reader of continuously annotated audio-visual data (this
manifest, ``recola.py``, recorded session folders):

* ``LabelTrack``: (time, arousal, valence) rows at any rate, strictly increasing in time.
* ``annotate``: a recording on the 40 ms grid (``video_cache.RecordingSteps``) plus a
  label track -> ``AnnotatedRecording``. Labels are linearly interpolated onto the step
  centres (``video_cache.step_centres``); steps whose centre lies outside the annotated
  span are dropped, never extrapolated.
* ``ChunkDataset``: long recordings cut into chunks of N steps, a map-style dataset that
  yields ``sequences.Sequence`` for ``sequences.collate_sequences``.

Manifest layout (paths relative to the manifest's folder, or absolute)::

    media,labels,split,speaker          <- header; split and speaker are optional
    clips/anna_1.mp4,labels/anna_1.csv,train,anna
    clips/ben_1.wav,labels/ben_1.csv,valid,ben

``media`` is a video with sound, or a sound file (no face then: face_mask 0). Each label
CSV has a header with a time column (``time_s`` or ``time``, seconds from the start of
the media) and ``arousal`` and ``valence`` columns (other columns are ignored), one row
per annotation at any rate, e.g.::

    time_s,arousal,valence
    0.0,0.10,-0.20
    0.1,0.12,-0.18

Splits must be speaker-disjoint: with a ``speaker`` column, one speaker in two splits is
an error; without a ``split`` column, ``split_by_speaker`` assigns whole speakers.
Every label file is checked before any media is decoded. A missing or malformed file is
an error naming the file, the line and what was expected; media that cannot be decoded
is skipped with a warning and listed in ``AnnotatedData.skipped``.

Session folders (what the app's recorder writes): ``audio.wav``, ``video.mp4`` (absent
when there was no camera) and ``ratings.csv`` (time_s, arousal, valence), read by
``session_recording`` / ``session_sequence``.
"""
from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.media import MediaError
from models.spec import STEP_SECONDS, FaceCrop
from training.data.sequences import Sequence
from training.data.video_cache import RecordingSteps, TrackSettings, load_steps, step_centres

TIME_COLUMNS = ("time_s", "time")
LABEL_COLUMNS = ("arousal", "valence")
MANIFEST_COLUMNS = ("media", "labels", "split", "speaker")
_SPAN_TOLERANCE_S = 1e-6  # a centre this close to the first/last label time is inside


class DatasetError(ValueError):
    """A dataset file is missing or malformed; the message names it (and the line)."""


# ----- labels ------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LabelTrack:
    """Annotations of one recording: ``values[i]`` = (arousal, valence) at ``time_s[i]``."""

    time_s: np.ndarray  # float64 [N], strictly increasing, seconds from the media start
    values: np.ndarray  # float32 [N, 2]
    source: str = "labels"  # the file they came from, for messages

    def __post_init__(self):
        n = len(self.time_s)
        if self.time_s.shape != (n,) or self.values.shape != (n, 2):
            raise DatasetError(f"{self.source}: need times [N] and values [N, 2], got "
                               f"{self.time_s.shape} and {self.values.shape}")
        if n < 2:
            raise DatasetError(f"{self.source}: needs at least 2 annotated times to "
                               f"interpolate between, has {n}")
        if not (np.isfinite(self.time_s).all() and np.isfinite(self.values).all()):
            raise DatasetError(f"{self.source}: times and values must be finite numbers")
        back = np.flatnonzero(np.diff(self.time_s) <= 0)
        if len(back):
            i = int(back[0])
            raise DatasetError(f"{self.source}: times must increase strictly; "
                               f"{self.time_s[i + 1]} follows {self.time_s[i]} "
                               f"(rows {i + 1} and {i + 2})")

    def shifted(self, seconds: float) -> "LabelTrack":
        """The same labels ``seconds`` later (negative: earlier)."""
        return LabelTrack(self.time_s + seconds, self.values, self.source)


def read_label_csv(path: str | os.PathLike) -> LabelTrack:
    """A label CSV (time_s|time, arousal, valence at any rate) -> LabelTrack.

    DatasetError naming the file and line for a missing file, a missing column or a
    value that is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: label file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream)
            header = [name.strip().lower() for name in next(reader, [])]
            columns = _label_columns(path, header)
            rows = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                rows.append(_numbers(row, columns, header, path, reader.line_num))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{path}: cannot be read as a CSV label file ({error})") from None
    table = np.array(rows, np.float64).reshape(-1, 3)
    return LabelTrack(table[:, 0], table[:, 1:].astype(np.float32), str(path))


def _label_columns(path: Path, header: list[str]) -> list[int]:
    """Indices of the time, arousal and valence columns; an error naming what is missing."""
    time_name = next((name for name in TIME_COLUMNS if name in header), None)
    missing = [name for name in LABEL_COLUMNS if name not in header]
    if time_name is None or missing:
        raise DatasetError(
            f"{path}:1: header {header} lacks "
            f"{'a time column (time_s or time)' if time_name is None else ''}"
            f"{' and ' if time_name is None and missing else ''}"
            f"{' '.join(missing)}; expected e.g. 'time_s,arousal,valence'")
    return [header.index(name) for name in (time_name, *LABEL_COLUMNS)]


def _numbers(row: list[str], columns: list[int], header: list[str], path: Path,
             line: int) -> list[float]:
    values = []
    for column in columns:
        text = row[column].strip() if column < len(row) else ""
        try:
            value = float(text)
        except ValueError:
            raise DatasetError(f"{path}:{line}: column {header[column]!r} must be a "
                               f"number, got {text!r}") from None
        if not np.isfinite(value):
            raise DatasetError(f"{path}:{line}: column {header[column]!r} must be a "
                               f"finite number, got {text!r}")
        values.append(value)
    return values


def resample_labels(track: LabelTrack, steps: int) -> tuple[int, np.ndarray]:
    """Labels at the centres of steps 0..steps-1 -> (first step, float32 [n, 2]).

    Linear interpolation between annotations; steps whose centre is outside the
    annotated span [first time, last time] are dropped (n may be 0). The kept steps are
    consecutive because the span is one interval.
    """
    centres = step_centres(steps)
    inside = ((centres >= track.time_s[0] - _SPAN_TOLERANCE_S)
              & (centres <= track.time_s[-1] + _SPAN_TOLERANCE_S))
    kept = np.flatnonzero(inside)
    if not len(kept):
        return 0, np.zeros((0, 2), np.float32)
    at = centres[kept]
    target = np.stack([np.interp(at, track.time_s, track.values[:, d]) for d in range(2)],
                      axis=1)
    return int(kept[0]), target.astype(np.float32)


# ----- annotated recordings ----------------------------------------------------------

@dataclass(frozen=True, eq=False)
class AnnotatedRecording:
    """The annotated span of one recording: steps first_step .. first_step + n - 1."""

    name: str
    speaker: str
    split: str | None
    steps: RecordingSteps
    first_step: int
    target: np.ndarray  # float32 [n, 2] (arousal, valence) at the kept step centres

    @property
    def n_steps(self) -> int:
        return len(self.target)

    def sequence(self, start: int = 0, stop: int | None = None) -> Sequence:
        """Steps start..stop of the annotated span (default: all of it) as a Sequence."""
        start, stop, _ = slice(start, stop).indices(self.n_steps)
        if stop <= start:
            raise ValueError(f"{self.name}: empty span {start}..{stop} of {self.n_steps}")
        a, b = self.first_step + start, self.first_step + stop
        return Sequence(audio=self.steps.audio[a:b], face=self.steps.face(a, b),
                        face_mask=self.steps.face_mask(a, b), target=self.target[start:stop])


def annotate(name: str, steps: RecordingSteps, labels: LabelTrack, *,
             speaker: str | None = None, split: str | None = None,
             label_delay_s: float = 0.0) -> AnnotatedRecording:
    """Attach labels to a recording on the 40 ms grid.

    ``label_delay_s``: how late the annotators' ratings lag the media (their reaction
    time); the labels are moved that much earlier before resampling. 0 = as recorded.
    DatasetError when no step centre falls inside the annotated span.
    """
    if label_delay_s:
        labels = labels.shifted(-label_delay_s)
    first, target = resample_labels(labels, steps.steps)
    if not len(target):
        start, end = labels.time_s[0], labels.time_s[-1]
        raise DatasetError(
            f"{labels.source}: annotations cover {start:.2f}..{end:.2f} s but the media of "
            f"{name!r} holds {steps.steps * STEP_SECONDS:.2f} s of audio: no 40 ms step lies "
            "inside the annotated span")
    return AnnotatedRecording(name=name, speaker=speaker if speaker is not None else name,
                              split=split, steps=steps, first_step=first, target=target)


@dataclass(frozen=True)
class RecordingEntry:
    """What a reader found for one recording, before any media is decoded."""

    name: str
    audio: Path  # the file holding the sound (may be the video itself)
    video: Path | None  # None: no camera, face_mask 0 throughout
    labels: LabelTrack
    speaker: str | None = None
    split: str | None = None


@dataclass(frozen=True, eq=False)
class AnnotatedData:
    """The recordings a reader loaded and the media it had to skip (with reasons)."""

    recordings: tuple[AnnotatedRecording, ...]
    skipped: tuple[str, ...] = ()

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(sorted({r.split for r in self.recordings if r.split is not None}))

    def split(self, name: str) -> tuple[AnnotatedRecording, ...]:
        return tuple(r for r in self.recordings if r.split == name)


def load_entries(entries: Iterable[RecordingEntry], settings: TrackSettings, *,
                 label_delay_s: float = 0.0, detector=None,
                 cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                 what: str = "dataset") -> AnnotatedData:
    """Decode (or read from cache) and annotate each entry; skip undecodable media.

    Each skipped file gets a RuntimeWarning and its reason in ``skipped``; a summary
    warning counts them. ``detector`` is shared by every recording when given.
    """
    recordings, skipped = [], []
    for entry in entries:
        try:
            steps = load_steps(entry.audio, entry.video, settings, detector=detector,
                               cache_dir=cache_dir, use_cache=use_cache)
        except MediaError as error:
            skipped.append(f"{entry.name}: {error}")
            warnings.warn(f"{what}: skipping {entry.name}: {error}", RuntimeWarning,
                          stacklevel=2)
            continue
        recordings.append(annotate(entry.name, steps, entry.labels, speaker=entry.speaker,
                                   split=entry.split, label_delay_s=label_delay_s))
    if skipped:
        warnings.warn(f"{what}: skipped {len(skipped)} of {len(skipped) + len(recordings)} "
                      "recordings whose media cannot be decoded", RuntimeWarning, stacklevel=2)
    return AnnotatedData(tuple(recordings), tuple(skipped))


# ----- speaker-disjoint splits -------------------------------------------------------

def check_speaker_disjoint(recordings: Iterable[AnnotatedRecording | RecordingEntry],
                           source: str = "dataset") -> None:
    """DatasetError when one speaker appears in two splits (memorised voices, not affect)."""
    seen: dict[str, set[str]] = {}
    for recording in recordings:
        if recording.split is not None and recording.speaker is not None:
            seen.setdefault(recording.speaker, set()).add(recording.split)
    shared = {speaker: sorted(splits) for speaker, splits in seen.items() if len(splits) > 1}
    if shared:
        shown = "; ".join(f"{s!r} in {', '.join(v)}" for s, v in sorted(shared.items())[:5])
        raise DatasetError(f"{source}: splits must be speaker-disjoint, but {shown}")


def split_by_speaker(recordings: Iterable[AnnotatedRecording], valid_fraction: float = 0.2,
                     seed: int = 0) -> tuple[list[AnnotatedRecording], list[AnnotatedRecording]]:
    """(train, valid) with whole speakers on one side; about ``valid_fraction`` of them
    (at least one) in valid, drawn reproducibly from ``seed``."""
    recordings = list(recordings)
    speakers = sorted({r.speaker for r in recordings})
    if len(speakers) < 2:
        raise ValueError(f"need at least 2 speakers to split, got {speakers}")
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    order = np.random.default_rng(seed).permutation(len(speakers))
    n_valid = min(len(speakers) - 1, max(1, int(round(valid_fraction * len(speakers)))))
    valid = {speakers[i] for i in order[:n_valid]}
    return ([r for r in recordings if r.speaker not in valid],
            [r for r in recordings if r.speaker in valid])


# ----- chunks for training -----------------------------------------------------------

class ChunkDataset(torch.utils.data.Dataset):
    """Annotated recordings cut into chunks of ``chunk_steps`` steps: item i -> Sequence.

    A recording of n steps gives n // chunk_steps full chunks plus its tail when the
    tail holds at least ``min_steps`` (default half a chunk); shorter recordings give one
    chunk if they reach ``min_steps``. With ``jitter`` the chunk grid of each recording
    moves by a random offset every epoch (``set_epoch``, drawn from (seed, epoch,
    recording)), so chunk boundaries and the dropped tail differ between epochs; leave it
    off for validation. The number of items never changes, as samplers require.
    Recordings are held in memory (about 28 KB per step for 96x96 RGB crops); DataLoader
    workers started by fork share them.
    """

    def __init__(self, recordings: Iterable[AnnotatedRecording], chunk_steps: int, *,
                 min_steps: int | None = None, jitter: bool = False, seed: int = 0):
        if chunk_steps < 1:
            raise ValueError(f"chunk_steps must be positive, got {chunk_steps}")
        self.recordings = tuple(recordings)
        self.chunk_steps = int(chunk_steps)
        self.min_steps = max(1, int(min_steps if min_steps is not None else chunk_steps // 2))
        self.jitter, self.seed, self.epoch = bool(jitter), int(seed), 0
        index = []  # (recording, chunk number, chunk length)
        for r, recording in enumerate(self.recordings):
            n = recording.n_steps
            full = n // self.chunk_steps
            index += [(r, j, self.chunk_steps) for j in range(full)]
            tail = n - full * self.chunk_steps
            if tail and tail >= self.min_steps:
                index.append((r, full, tail))
        if not index:
            raise ValueError(f"no recording holds {self.min_steps} annotated steps "
                             f"({len(self.recordings)} recordings)")
        self._index = tuple(index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._index)

    def span(self, index: int) -> tuple[int, int, int]:
        """(recording, start, stop) of item ``index`` in this epoch (annotated steps)."""
        r, j, length = self._index[index]
        n = self.recordings[r].n_steps
        start = j * self.chunk_steps
        if self.jitter and length == self.chunk_steps:
            shift = int(np.random.default_rng((self.seed, self.epoch, r))
                        .integers(self.chunk_steps))
            start = min(start + shift, n - length)
        elif length < self.chunk_steps:
            start = n - length  # the tail
        return r, start, start + length

    def __getitem__(self, index: int) -> Sequence:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} chunks")
        r, start, stop = self.span(index % len(self))
        return self.recordings[r].sequence(start, stop)


# ----- the generic manifest ----------------------------------------------------------

def read_manifest(path: str | os.PathLike) -> list[RecordingEntry]:
    """Parse and check a manifest and all its label files; decodes no media.

    DatasetError naming the manifest line for a bad header, a missing file, or a
    speaker in two splits; naming the label file and line for bad labels.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: manifest not found (expected a CSV with columns "
                           "media,labels[,split][,speaker])")
    entries, names = [], set()
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream)
            header = [name.strip().lower() for name in next(reader, [])]
            _check_manifest_header(path, header)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                cells = _manifest_cells(path, reader.line_num, header, row)
                entries.append(_manifest_entry(path, reader.line_num, cells, names))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{path}: cannot be read as a CSV manifest ({error})") from None
    if not entries:
        raise DatasetError(f"{path}: the manifest lists no recordings")
    check_speaker_disjoint(entries, str(path))
    return entries


def _check_manifest_header(path: Path, header: list[str]) -> None:
    unknown = [name for name in header if name not in MANIFEST_COLUMNS]
    missing = [name for name in ("media", "labels") if name not in header]
    if missing or unknown or len(set(header)) != len(header):
        raise DatasetError(
            f"{path}:1: header {header} must name the columns media,labels and "
            f"optionally split,speaker, each once"
            + (f" (missing {missing})" if missing else "")
            + (f" (unknown {unknown})" if unknown else ""))


def _manifest_cells(path: Path, line: int, header: list[str],
                    row: list[str]) -> dict[str, str]:
    """One row's fields by column name; every row must have one field per column."""
    if len(row) != len(header):
        raise DatasetError(f"{path}:{line}: expected {len(header)} fields "
                           f"({','.join(header)}), got {len(row)}")
    return {name: cell.strip() for name, cell in zip(header, row)}


def _manifest_entry(path: Path, line: int, cells: dict[str, str],
                    names: set[str]) -> RecordingEntry:
    for column in ("media", "labels"):
        if not cells[column]:
            raise DatasetError(f"{path}:{line}: the {column} field is empty")
    media = path.parent / cells["media"]
    label_path = path.parent / cells["labels"]
    for column, file in (("media", media), ("labels", label_path)):
        if not file.is_file():
            raise DatasetError(f"{path}:{line}: {column} file not found: {file}")
    name = cells["media"]
    if name in names:
        raise DatasetError(f"{path}:{line}: {name} is listed twice")
    names.add(name)
    try:
        labels = read_label_csv(label_path)
    except DatasetError as error:
        raise DatasetError(f"{error} (listed at {path}:{line})") from None
    # video=media: a sound file (or a video container without pictures) is decoded as
    # sound only, face_mask 0; see video_cache.decode_steps.
    return RecordingEntry(name=name, audio=media, video=media, labels=labels,
                          speaker=cells.get("speaker") or None, split=cells.get("split") or None)


def load_manifest(path: str | os.PathLike, settings: TrackSettings, *,
                  label_delay_s: float = 0.0, detector=None,
                  cache_dir: str | os.PathLike | None = None,
                  use_cache: bool = True) -> AnnotatedData:
    """Every recording a manifest lists, on the 40 ms grid with its labels.

    Recordings without a speaker count as their own speaker. Media that cannot be
    decoded is skipped with a warning (see ``AnnotatedData.skipped``).
    """
    entries = read_manifest(path)
    return load_entries(entries, settings, label_delay_s=label_delay_s, detector=detector,
                        cache_dir=cache_dir, use_cache=use_cache, what=f"manifest {path}")


def evaluation_sequences(path: str | os.PathLike, split: str | None = None,
                         crop: FaceCrop = FaceCrop(), **options) -> list[Sequence]:
    """The annotated span of each recording of ``split`` as one Sequence (affect-eval).

    ``split`` None: "valid" when the manifest has a split column, else every recording.
    Only the chosen recordings are decoded. ``options`` go to ``load_entries``.
    """
    entries = read_manifest(path)
    splits = sorted({e.split for e in entries if e.split is not None})
    if split is None and splits:
        split = "valid"
    chosen = [e for e in entries if split is None or e.split == split]
    if not chosen:
        raise DatasetError(f"{path}: no recordings in split {split!r} (splits: {splits})")
    data = load_entries(chosen, TrackSettings(crop), what=f"manifest {path}", **options)
    return [recording.sequence() for recording in data.recordings]


# ----- recorded session folders ------------------------------------------------------

SESSION_AUDIO, SESSION_VIDEO, SESSION_RATINGS = "audio.wav", "video.mp4", "ratings.csv"


def session_entry(folder: str | os.PathLike, speaker: str | None = None,
                  split: str | None = None) -> RecordingEntry:
    """A session folder's files, checked (video.mp4 may be absent: no camera)."""
    folder = Path(folder)
    audio = folder / SESSION_AUDIO
    if not audio.is_file():
        raise DatasetError(f"{folder}: session folder lacks {SESSION_AUDIO} (expected "
                           f"{SESSION_AUDIO}, optional {SESSION_VIDEO}, {SESSION_RATINGS})")
    video = folder / SESSION_VIDEO
    return RecordingEntry(name=folder.name, audio=audio,
                          video=video if video.is_file() else None,
                          labels=read_label_csv(folder / SESSION_RATINGS),
                          speaker=speaker, split=split)


def session_recording(folder: str | os.PathLike, settings: TrackSettings, *,
                      label_delay_s: float = 0.0, detector=None,
                      cache_dir: str | os.PathLike | None = None,
                      use_cache: bool = True) -> AnnotatedRecording:
    """One recorded session with its ratings. MediaError if its media cannot be decoded."""
    entry = session_entry(folder)
    steps = load_steps(entry.audio, entry.video, settings, detector=detector,
                       cache_dir=cache_dir, use_cache=use_cache)
    return annotate(entry.name, steps, entry.labels, label_delay_s=label_delay_s)


def session_sequence(folder: str | os.PathLike, settings: TrackSettings,
                     **options) -> Sequence:
    """The annotated span of one session folder as a single Sequence."""
    return session_recording(folder, settings, **options).sequence()
