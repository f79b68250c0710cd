"""The sequences each stage of end-to-end training (training/train.py) trains and validates on.

Validation is fixed (seed + 1, epoch 0) and drawn from held-out identities: FER2013Valid
faces, RAVDESS actors 17-20, the held-out speakers of annotated recordings. Rehearsal mixes
single-modality sequences into training only (validation keeps the stage's own kind).
"""
from __future__ import annotations

from pathlib import Path

from models.spec import STEPS_PER_SECOND
from training.data.sequences import (NO_JITTER, FaceOnlyBuilder, RehearsalBuilder,
                                     SequenceDataset, SyntheticBuilder, SyntheticConfig,
                                     VoiceAugment, VoiceOnlyBuilder)

REHEARSAL_STEPS = 50  # 2 s of a held face, beside voice clips of up to 4 s


def _faces(data_root: Path, split: str):
    from training.data.ferplus import load_ferplus

    return load_ferplus(data_root / "ferplus", split)


def _voices(data_root: Path):
    """-> (RAVDESS actors 1-16, actors 17-20)."""
    from training.data.ravdess import load_ravdess, split_actors

    return split_actors(load_ravdess(data_root / "ravdess-speech-16k"))


def _pair(settings, seed: int, train_builder, valid_builder):
    return (SequenceDataset(train_builder, settings.train_sequences, seed),
            SequenceDataset(valid_builder, settings.valid_sequences, seed + 1))


def face_sets(settings, data_root: Path, crop, seed: int):
    """FER+ faces held for ``steps``, the voice at the noise floor."""
    train_faces, valid_faces = (_faces(data_root, split)
                                for split in ("FER2013Train", "FER2013Valid"))
    return _pair(settings, seed, FaceOnlyBuilder(train_faces, crop, settings.steps),
                 FaceOnlyBuilder(valid_faces, crop, settings.steps, jitter=NO_JITTER))


def voice_sets(settings, data_root: Path, crop, seed: int):
    """RAVDESS stretches without a face; ``face_rehearsal`` of the training sequences are
    FER+ faces alone, so the LSTM keeps reading faces while it learns the voice."""
    train_voices, valid_voices = _voices(data_root)
    train_builder = VoiceOnlyBuilder(train_voices, crop, settings.steps,
                                     VoiceAugment(settings.speed, settings.gain_db))
    if settings.face_rehearsal > 0:
        train_builder = RehearsalBuilder(
            train_builder, FaceOnlyBuilder(_faces(data_root, "FER2013Train"), crop,
                                           REHEARSAL_STEPS), settings.face_rehearsal)
    return _pair(settings, seed, train_builder,
                 VoiceOnlyBuilder(valid_voices, crop, settings.steps))


def check_fused(settings) -> None:
    if settings.face_rehearsal + settings.voice_rehearsal >= 1:
        raise ValueError("fused.face_rehearsal plus fused.voice_rehearsal must stay below 1 "
                         "(the rest are the stage's own sequences)")


def fused_sets(settings, data_root: Path, crop, seed: int):
    """Synthetic face + voice sequences (training/data/sequences.py). The fused stage is the
    only one that shows the LSTM both modalities, and it must not forget how to read each
    alone: ``face_rehearsal`` and ``voice_rehearsal`` of the training sequences are FER+
    faces alone and whole RAVDESS clips alone."""
    check_fused(settings)
    train_faces, valid_faces = (_faces(data_root, split)
                                for split in ("FER2013Train", "FER2013Valid"))
    train_voices, valid_voices = _voices(data_root)
    seconds = settings.steps / STEPS_PER_SECOND
    train_builder = SyntheticBuilder.from_data(
        train_faces, train_voices, crop, SyntheticConfig(
            seconds=seconds, p_face_missing=settings.p_face_missing,
            p_silence=settings.p_silence))
    if settings.face_rehearsal > 0:  # share among what voice rehearsal leaves, so shares add up
        train_builder = RehearsalBuilder(
            train_builder, FaceOnlyBuilder(train_faces, crop, REHEARSAL_STEPS),
            settings.face_rehearsal / (1 - settings.voice_rehearsal))
    if settings.voice_rehearsal > 0:
        train_builder = RehearsalBuilder(train_builder, VoiceOnlyBuilder(train_voices, crop),
                                         settings.voice_rehearsal)
    # Validation keeps the default dropout so scores compare across runs.
    return _pair(settings, seed, train_builder, SyntheticBuilder.from_data(
        valid_faces, valid_voices, crop, SyntheticConfig(seconds=seconds)))


def recording_sets(settings, data_root: Path, crop, seed: int):
    """-> (train, validation) chunks of annotated audio-visual recordings, speaker-disjoint.

    ``settings.dataset`` is KIND:PATH with KIND recola (train / dev partitions), manifest
    (its split column, else whole speakers drawn aside) or sessions (a folder of recorded
    session folders with ratings.csv, or one session folder).
    """
    from training.data.manifest import ChunkDataset
    from training.data.video_cache import TrackSettings

    kind, separator, path = settings.dataset.partition(":")
    if not separator or not path:
        raise ValueError(f"recordings.dataset must be KIND:PATH, e.g. manifest:my/data.csv "
                         f"(got {settings.dataset!r})")
    if kind not in RECORDINGS:
        raise ValueError(f"unknown recordings kind {kind!r}: choose recola, manifest or "
                         "sessions")
    train, valid = RECORDINGS[kind](Path(path), TrackSettings(crop), seed)
    return (ChunkDataset(train, settings.steps, jitter=True, seed=seed),
            ChunkDataset(valid, settings.steps, seed=seed))


def _recola(path: Path, track, seed: int):
    from training.data.recola import load_recola

    data = load_recola(path, track)
    return data.split("train"), data.split("dev")


def _manifest(path: Path, track, seed: int):
    from training.data.manifest import load_manifest, split_by_speaker

    data = load_manifest(path, track)
    if {"train", "valid"} <= set(data.splits):
        return data.split("train"), data.split("valid")
    return split_by_speaker(data.recordings, seed=seed)


def _sessions(path: Path, track, seed: int):
    from training.data.manifest import session_recording, split_by_speaker

    folders = sorted(p.parent for p in path.glob("*/ratings.csv")) or [path]
    recordings = [session_recording(folder, track) for folder in folders]
    if len({r.speaker for r in recordings}) >= 2:
        return split_by_speaker(recordings, seed=seed)
    print("note: one speaker only, so validation reuses the training sessions "
          "(fine-tuning check, not a held-out score)")
    return recordings, recordings


RECORDINGS = {"recola": _recola, "manifest": _manifest, "sessions": _sessions}
STAGE_SETS = {"face": face_sets, "voice": voice_sets, "fused": fused_sets,
              "recordings": recording_sets}


def stage_sets(stage: str, settings, data_root: Path, crop, seed: int):
    """-> (train set, validation set) of one stage (``settings``: its recipe table)."""
    return STAGE_SETS[stage](settings, Path(data_root), crop, seed)
