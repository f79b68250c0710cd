"""RAVDESS speech reader: Actor_XX folders -> 16 kHz mono clips with (arousal, valence).

Layout (Livingstone & Russo, PLoS ONE 2018)::

    <root>/Actor_XX/MM-VC-EE-II-SS-RR-AA.wav   (.flac accepted too)

MM modality (03 audio-only), VC vocal channel (01 speech, 02 song), EE emotion
(01 neutral .. 08 surprised), II intensity (01 normal, 02 strong; neutral only 01),
SS statement, RR repetition, AA actor (odd male, even female; must match the folder).
Song clips (VC 02) are not speech and are ignored with a warning.

Audio of any sample rate and channel count is averaged to mono and resampled to
``models.spec.SAMPLE_RATE`` with ``scipy.signal.resample_poly`` (polyphase, anti-aliased),
float32 in [-1, 1]. Splits must be actor-disjoint (``split_actors``): the same actor in
train and validation would measure memorised voices, not emotions.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from models.spec import SAMPLE_RATE
from training.data import cache
from training.data.labels import RAVDESS_STRONG, ravdess_category, ravdess_target

AUDIO_SUFFIXES = (".wav", ".flac")
ACTORS = tuple(range(1, 25))  # the corpus has 24 actors; our copy holds 1..20
TRAIN_ACTORS = tuple(range(1, 17))
VALID_ACTORS = tuple(range(17, 21))
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_NAME_FORMAT = "MM-VC-EE-II-SS-RR-AA.wav|.flac (seven two-digit codes)"
_ACTOR_FOLDER = re.compile(r"^Actor_(\d{2})$")
_SPEECH, _SONG = 1, 2


class RavdessFormatError(ValueError):
    """A RAVDESS file or folder name does not follow the corpus convention."""


@dataclass(frozen=True, eq=False)
class RavdessClips:
    """Decoded clips. Per-clip arrays share the first axis N; audio is concatenated.

    Clip i is ``samples[offsets[i]:offsets[i + 1]]`` (``audio(i)``), float32 mono at
    16 kHz. ``targets`` columns are (arousal, valence). ``skipped`` lists unreadable files.
    """

    samples: np.ndarray  # float32 [total samples]
    offsets: np.ndarray  # int64 [N + 1]
    emotion: np.ndarray  # int64 [N], RAVDESS code 1..8
    intensity: np.ndarray  # int64 [N], 1 normal, 2 strong
    statement: np.ndarray  # int64 [N]
    repetition: np.ndarray  # int64 [N]
    actor: np.ndarray  # int64 [N]
    targets: np.ndarray  # float32 [N, 2] (arousal, valence)
    names: tuple[str, ...]
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.names)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def audio(self, index: int) -> np.ndarray:
        """Clip ``index`` as float32 [samples] (a read-only view)."""
        view = self.samples[self.offsets[index]:self.offsets[index + 1]]
        view.flags.writeable = False
        return view

    def category(self, index: int) -> str:
        """The table word of clip ``index`` (neutral, calm, happiness, ...)."""
        return ravdess_category(int(self.emotion[index]))

    def subset(self, indices) -> "RavdessClips":
        """The clips at ``indices`` (array of ints, boolean mask or slice)."""
        index = np.arange(len(self))[indices]
        pieces = [self.audio(i) for i in index]
        lengths = np.array([len(piece) for piece in pieces], np.int64)
        return RavdessClips(
            samples=(np.concatenate(pieces) if pieces else np.zeros(0, np.float32)),
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            emotion=self.emotion[index], intensity=self.intensity[index],
            statement=self.statement[index], repetition=self.repetition[index],
            actor=self.actor[index], targets=self.targets[index],
            names=tuple(self.names[i] for i in index), skipped=self.skipped)


def load_ravdess(root: str | os.PathLike, actors=None, *,
                 cache_dir: str | os.PathLike | None = None,
                 use_cache: bool = True) -> RavdessClips:
    """Read the speech clips of ``actors`` (default: every Actor_XX folder under ``root``).

    Each actor folder is decoded once and cached (``cache_dir`` overrides
    $AFFECT_CACHE_DIR / ~/.cache/affect-monitor). Unreadable audio files are skipped with
    a warning and listed in ``skipped``; malformed names raise ``RavdessFormatError``.
    """
    root = Path(root)
    folders = _actor_folders(root)
    if actors is None:
        actors = sorted(folders)
    actors = [int(actor) for actor in actors]
    if not actors:
        raise ValueError("no RAVDESS actors requested")
    missing = [actor for actor in actors if actor not in folders]
    if missing:
        raise FileNotFoundError(f"RAVDESS actor folder(s) not found under {root}: "
                                f"{', '.join(f'Actor_{a:02d}' for a in missing)} "
                                f"(found {sorted(folders)})")
    parts = [_load_actor(folders[actor], actor, cache_dir, use_cache) for actor in actors]
    clips = _concatenate(parts)
    if clips.skipped:
        shown = ", ".join(clips.skipped[:5]) + (" ..." if len(clips.skipped) > 5 else "")
        warnings.warn(f"RAVDESS {root}: skipped {len(clips.skipped)} unreadable audio "
                      f"file(s): {shown}", RuntimeWarning, stacklevel=2)
    return clips


def split_actors(clips: RavdessClips, train=TRAIN_ACTORS,
                 valid=VALID_ACTORS) -> tuple[RavdessClips, RavdessClips]:
    """(train, valid) clips by actor; the two actor sets must not overlap."""
    train, valid = {int(a) for a in train}, {int(a) for a in valid}
    shared = train & valid
    if shared:
        raise ValueError(f"actor sets overlap ({sorted(shared)}): splits must be "
                         "actor-disjoint")
    return (clips.subset(np.isin(clips.actor, sorted(train))),
            clips.subset(np.isin(clips.actor, sorted(valid))))


def to_model_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """[samples] or [samples, channels] at ``sample_rate`` -> float32 mono at 16 kHz, [-1, 1]."""
    audio = np.asarray(audio, np.float64)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    elif audio.ndim != 1:
        raise ValueError(f"audio must be [samples] or [samples, channels], got {audio.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    if sample_rate != SAMPLE_RATE and audio.size:
        common = gcd(SAMPLE_RATE, int(sample_rate))
        audio = resample_poly(audio, SAMPLE_RATE // common, int(sample_rate) // common)
    # the resampling filter can overshoot full-scale peaks slightly
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def parse_name(path: Path) -> dict[str, int]:
    """Validate a RAVDESS file name -> its codes (modality, channel, emotion, ...)."""
    match = _NAME.match(path.stem)
    if not match or path.suffix.lower() not in AUDIO_SUFFIXES:
        raise RavdessFormatError(f"{path}: expected a name like {_NAME_FORMAT}")
    keys = ("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor")
    codes = dict(zip(keys, (int(code) for code in match.groups())))
    problems = []
    if codes["channel"] not in (_SPEECH, _SONG):
        problems.append(f"vocal channel {codes['channel']:02d} is not 01 or 02")
    if not 1 <= codes["emotion"] <= 8:
        problems.append(f"emotion {codes['emotion']:02d} is not 01..08")
    if codes["intensity"] not in (1, 2):
        problems.append(f"intensity {codes['intensity']:02d} is not 01 or 02")
    elif codes["emotion"] == 1 and codes["intensity"] == RAVDESS_STRONG:
        problems.append("neutral (emotion 01) has no strong intensity (02)")
    if codes["statement"] not in (1, 2) or codes["repetition"] not in (1, 2):
        problems.append("statement and repetition must be 01 or 02")
    if codes["actor"] not in ACTORS:
        problems.append(f"actor {codes['actor']:02d} is not 01..24")
    if problems:
        raise RavdessFormatError(f"{path}: " + "; ".join(problems))
    return codes


def _actor_folders(root: Path) -> dict[int, Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"RAVDESS root folder not found: {root} (expected "
                                "Actor_01 .. Actor_24 folders inside)")
    folders = {}
    for path in root.iterdir():
        match = _ACTOR_FOLDER.match(path.name)
        if match and path.is_dir():
            folders[int(match.group(1))] = path
    if not folders:
        raise FileNotFoundError(f"no Actor_XX folders in {root} (expected the RAVDESS "
                                f"layout Actor_XX/{_NAME_FORMAT})")
    return folders


def _load_actor(folder: Path, actor: int, cache_dir, use_cache: bool) -> RavdessClips:
    speech = _speech_files(folder, actor)
    key = cache.fingerprint([path for path, _ in speech], str(folder), f"rate={SAMPLE_RATE}")
    cache_path = cache.cache_dir(cache_dir) / f"ravdess-{folder.name}-{key}.npz"
    stored = cache.load_npz(cache_path) if use_cache else None
    if stored is None:
        stored = _decode(speech)
        if use_cache:
            cache.save_npz(cache_path, **stored)
    return _assemble(stored)


def _speech_files(folder: Path, actor: int) -> list[tuple[Path, dict[str, int]]]:
    """The folder's speech clips with their name codes, sorted; song clips are skipped with
    a warning, and a clip of another actor is an error."""
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    codes = [parse_name(path) for path in files]
    for path, code in zip(files, codes):
        if code["actor"] != actor:
            raise RavdessFormatError(f"{path}: actor code {code['actor']:02d} does not "
                                     f"match its folder {folder.name}")
    songs = [path.name for path, code in zip(files, codes) if code["channel"] == _SONG]
    if songs:
        # stacklevel 4: one frame below _load_actor, so the warning points where it did.
        warnings.warn(f"RAVDESS {folder}: ignored {len(songs)} song clip(s) (vocal channel "
                      "02); this reader takes speech only", RuntimeWarning, stacklevel=4)
    return [(path, code) for path, code in zip(files, codes) if code["channel"] == _SPEECH]


def _decode(speech: list[tuple[Path, dict[str, int]]]) -> dict[str, np.ndarray]:
    pieces, names, codes, skipped = [], [], [], []
    for path, code in speech:
        try:
            audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        except (RuntimeError, OSError) as error:
            # soundfile raises LibsndfileError (a RuntimeError) for corrupt or truncated files
            skipped.append(f"{path.name} ({error})")
            continue
        pieces.append(to_model_rate(audio, rate))
        names.append(path.name)
        codes.append([code[k] for k in ("emotion", "intensity", "statement", "repetition",
                                        "actor")])
    lengths = np.array([len(piece) for piece in pieces], np.int64)
    return {
        "samples": np.concatenate(pieces) if pieces else np.zeros(0, np.float32),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "codes": np.array(codes, np.int64).reshape(-1, 5),
        "names": np.array(names, dtype=str),
        "skipped": np.array(skipped, dtype=str),
    }


def _assemble(stored: dict[str, np.ndarray]) -> RavdessClips:
    codes = stored["codes"]
    targets = (np.stack([ravdess_target(e, i) for e, i in codes[:, :2]]) if len(codes)
               else np.zeros((0, 2), np.float32))
    return RavdessClips(
        samples=stored["samples"], offsets=stored["offsets"], emotion=codes[:, 0],
        intensity=codes[:, 1], statement=codes[:, 2], repetition=codes[:, 3],
        actor=codes[:, 4], targets=targets.astype(np.float32),
        names=tuple(str(n) for n in stored["names"]),
        skipped=tuple(str(s) for s in stored["skipped"]))


def _concatenate(parts: list[RavdessClips]) -> RavdessClips:
    if len(parts) == 1:
        return parts[0]
    lengths = np.concatenate([np.diff(p.offsets) for p in parts])
    return RavdessClips(
        samples=np.concatenate([p.samples for p in parts]),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        emotion=np.concatenate([p.emotion for p in parts]),
        intensity=np.concatenate([p.intensity for p in parts]),
        statement=np.concatenate([p.statement for p in parts]),
        repetition=np.concatenate([p.repetition for p in parts]),
        actor=np.concatenate([p.actor for p in parts]),
        targets=np.concatenate([p.targets for p in parts]),
        names=tuple(n for p in parts for n in p.names),
        skipped=tuple(s for p in parts for s in p.skipped))
