"""Sequence builders and batching (training/data/sequences.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.face_crop import crop_face
from models.spec import STEPS_PER_SECOND, WINDOW_SAMPLES, FaceCrop
from training.data.ferplus import FerPlusSplit, load_ferplus
from training.data.labels import (FACE_CATEGORY_FOR_VOICE, FERPLUS_EMOTIONS, FERPLUS_TARGETS,
                                  RAVDESS_EMOTIONS, category_distribution, ravdess_target)
from training.data.ravdess import RavdessClips, load_ravdess
from training.data.sequences import (NO_JITTER, FaceJitter, FaceOnlyBuilder, MultimodalPairing,
                                     RehearsalBuilder, Sequence, SequenceDataset, SyntheticBuilder,
                                     SyntheticConfig, VoiceAugment, VoiceOnlyBuilder,
                                     collate_sequences, face_frames, face_sequence,
                                     synthetic_sequence, voice_sequence)

CROP = FaceCrop(size=48, channels=3)  # small crops keep the tests fast


def disc_image(value: int = 200) -> np.ndarray:
    """A bright disc centred on a dark 48x48 image: a 'face' whose position is measurable."""
    y, x = np.mgrid[:48, :48]
    image = np.full((48, 48), 20, np.uint8)
    image[(x - 23.5) ** 2 + (y - 23.5) ** 2 < 14 ** 2] = value
    return image


def centroid(frame: np.ndarray) -> np.ndarray:
    grey = frame.astype(np.float64).mean(axis=0)
    weight = grey > grey.min() + 0.5 * (grey.max() - grey.min())
    y, x = np.nonzero(weight)
    return np.array([x.mean(), y.mean()])


def tiny_faces() -> FerPlusSplit:
    """One disc image per FER+ emotion, each labelled purely with that emotion."""
    n = len(FERPLUS_EMOTIONS)
    images = np.stack([disc_image(60 + 20 * k) for k in range(n)])
    probabilities = np.eye(n, dtype=np.float32)
    return FerPlusSplit(split="tiny", images=images, votes=np.zeros((n, 10), np.int16),
                        probabilities=probabilities, targets=FERPLUS_TARGETS.copy(),
                        majority=np.arange(n), names=tuple(f"{k}.png" for k in range(n)))


def tiny_voices(seconds: float = 1.0, actors=(1, 2)) -> RavdessClips:
    """A tone per (actor, emotion, intensity); the pitch encodes the emotion code."""
    pieces, codes = [], []
    t = np.arange(int(seconds * 16_000)) / 16_000
    for actor in actors:
        for emotion in range(1, 9):
            for intensity in ((1,) if emotion == 1 else (1, 2)):
                pieces.append((0.3 * np.sin(2 * np.pi * 100 * emotion * t)).astype(np.float32))
                codes.append((emotion, intensity, actor))
    codes = np.array(codes)
    lengths = [len(p) for p in pieces]
    return RavdessClips(
        samples=np.concatenate(pieces), offsets=np.concatenate([[0], np.cumsum(lengths)]),
        emotion=codes[:, 0], intensity=codes[:, 1], statement=np.ones(len(codes), int),
        repetition=np.ones(len(codes), int), actor=codes[:, 2],
        targets=np.stack([ravdess_target(e, i) for e, i, _ in codes]),
        names=tuple(f"clip{k}" for k in range(len(codes))))


def assert_same(a: Sequence, b: Sequence):
    for name in ("audio", "face", "face_mask", "target"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def differs(a: Sequence, b: Sequence) -> bool:
    return a.steps != b.steps or not (np.array_equal(a.audio, b.audio)
                                      and np.array_equal(a.face, b.face))


def test_sequence_checks_its_arrays():
    ok = dict(audio=np.zeros((3, 640), np.float32), face=np.zeros((3, 3, 8, 8), np.uint8),
              face_mask=np.zeros(3, np.float32), target=np.zeros((3, 2), np.float32))
    assert Sequence(**ok).steps == 3
    for name, bad in [("audio", np.zeros((3, 320), np.float32)),
                      ("face", np.zeros((3, 3, 8, 8), np.float32)),
                      ("face_mask", np.zeros(4, np.float32)),
                      ("target", np.zeros((3, 2), np.float64))]:
        with pytest.raises(ValueError, match=name):
            Sequence(**{**ok, name: bad})


def test_unjittered_frames_are_the_run_time_crop():
    image = disc_image()
    frames = face_frames(image, 4, CROP, np.random.default_rng(0), NO_JITTER)
    assert frames.shape == (4, 3, 48, 48) and frames.dtype == np.uint8
    expected = np.rint(crop_face(image, None, CROP) * 255)
    assert np.abs(frames[0].astype(int) - expected).mean() < 3  # upscale/resample only
    assert all(np.array_equal(frames[0], f) for f in frames)


def test_jitter_changes_frames_but_keeps_the_face_centred():
    frames = face_frames(disc_image(), 100, CROP, np.random.default_rng(1))
    assert len({f.tobytes() for f in frames}) > 90  # nearly every frame differs
    centres = np.stack([centroid(f) for f in frames])
    offset = np.abs(centres - (CROP.size - 1) / 2)
    assert offset.max() < 0.15 * CROP.size  # never drifts off the face
    assert offset.max() > 0.01 * CROP.size  # but it does move
    brightness = frames.reshape(100, -1).mean(axis=1)
    assert brightness.std() > 2
    # smooth: neighbouring frames are closer than frames far apart
    near = np.abs(np.diff(centres, axis=0)).mean()
    far = np.abs(centres[50:] - centres[:50]).mean()
    assert near < far


def test_face_only_sequence():
    sequence = face_sequence(disc_image(), [0.3, -0.2], 30, CROP, np.random.default_rng(2))
    assert sequence.steps == 30
    assert sequence.face.shape == (30, 3, 48, 48)
    np.testing.assert_array_equal(sequence.face_mask, 1.0)
    np.testing.assert_array_equal(sequence.target, np.tile([0.3, -0.2], (30, 1)).astype(
        np.float32))
    assert 0 < sequence.audio.std() < 0.01  # a quiet room, not digital zeros


def test_voice_only_sequence_is_consecutive_windows():
    samples = np.random.default_rng(3).uniform(-1, 1, 640 * 7 + 100).astype(np.float32)
    sequence = voice_sequence(samples, [0.5, 0.1], CROP)
    assert sequence.steps == 7  # the 100-sample tail is dropped
    np.testing.assert_array_equal(sequence.audio.reshape(-1), samples[:640 * 7])
    np.testing.assert_array_equal(sequence.face_mask, 0.0)
    assert not sequence.face.any()
    assert voice_sequence(samples, [0.5, 0.1], CROP, max_steps=3).steps == 3
    with pytest.raises(ValueError, match="shorter than one"):
        voice_sequence(samples[:600], [0, 0], CROP)


def test_voice_builder_takes_a_random_stretch_of_long_clips():
    ramp = np.linspace(0, 0.9, 640 * 50, dtype=np.float32)  # sample value = its position
    voices = RavdessClips(
        samples=ramp, offsets=np.array([0, len(ramp)]), emotion=np.array([5]),
        intensity=np.array([2]), statement=np.ones(1, int), repetition=np.ones(1, int),
        actor=np.ones(1, int), targets=ravdess_target(5, 2)[None], names=("clip",))
    builder = VoiceOnlyBuilder(voices, CROP, max_steps=10)
    starts = set()
    for seed in range(20):
        sequence = builder(np.random.default_rng(seed))
        assert sequence.steps == 10
        start = int(np.searchsorted(ramp, sequence.audio[0, 0]))
        np.testing.assert_array_equal(sequence.audio.reshape(-1),
                                      ramp[start:start + 6400])  # contiguous
        starts.add(start)
    assert len(starts) > 15 and max(starts) <= len(ramp) - 6400
    assert VoiceOnlyBuilder(voices, CROP)(np.random.default_rng(0)).steps == 50


def test_voice_augmentation_changes_speed_and_level_within_its_range():
    tone = (0.5 * np.sin(2 * np.pi * 200 * np.arange(16000) / 16000)).astype(np.float32)
    augment = VoiceAugment(speed=0.1, gain_db=6.0)
    lengths, peaks = [], []
    for seed in range(30):
        changed = augment(tone, np.random.default_rng(seed))
        lengths.append(len(changed))
        peaks.append(np.abs(changed).max())
        assert changed.dtype == np.float32 and np.abs(changed).max() <= 1.0
    assert 16000 / 1.1 - 1 <= min(lengths) < 15500 < 16500 < max(lengths) <= 16000 / 0.9 + 1
    assert min(peaks) < 0.45 and max(peaks) > 0.55  # louder and quieter than the original
    # off by default: the clip and the random stream are untouched
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(VoiceAugment()(tone, rng), tone)
    assert rng.integers(1 << 30) == np.random.default_rng(0).integers(1 << 30)
    with pytest.raises(ValueError, match="speed"):
        VoiceAugment(speed=0.7)


def test_rehearsal_mixes_in_face_sequences_at_its_share():
    voice = VoiceOnlyBuilder(tiny_voices(), CROP, max_steps=10)
    builder = RehearsalBuilder(voice, FaceOnlyBuilder(tiny_faces(), CROP, steps=7), share=0.3)
    sequences = [builder(np.random.default_rng(seed)) for seed in range(400)]
    faces = [s for s in sequences if s.face_mask.all()]
    voices = [s for s in sequences if not s.face_mask.any()]
    assert len(faces) + len(voices) == 400 and 0.22 < len(faces) / 400 < 0.38
    assert all(s.steps == 7 and s.category is not None for s in faces)
    assert all(s.steps == 10 for s in voices)
    with pytest.raises(ValueError, match="share"):
        RehearsalBuilder(voice, voice, share=1.0)


@pytest.mark.parametrize("make", ["face", "voice", "synthetic"])
def test_builders_are_deterministic_in_their_seed(make):
    faces, voices = tiny_faces(), tiny_voices()
    builder = {
        "face": FaceOnlyBuilder(faces, CROP, steps=20),
        "voice": VoiceOnlyBuilder(voices, CROP),
        "synthetic": SyntheticBuilder.from_data(faces, voices, CROP, SyntheticConfig(seconds=6)),
    }[make]
    a = builder(np.random.default_rng(7))
    assert_same(a, builder(np.random.default_rng(7)))
    assert any(differs(a, builder(np.random.default_rng(seed))) for seed in (8, 9, 10))


def test_dataset_reseeds_by_index_epoch_and_seed():
    dataset = SequenceDataset(FaceOnlyBuilder(tiny_faces(), CROP, steps=10), length=4, seed=5)
    assert len(dataset) == 4
    first = [dataset[i] for i in range(4)]
    assert_same(first[2], dataset[2])  # any order, same item
    assert_same(first[3], dataset[-1])
    assert differs(first[0], first[1])
    dataset.set_epoch(1)
    assert all(differs(a, dataset[i]) for i, a in enumerate(first))
    dataset.set_epoch(0)
    assert_same(first[1], dataset[1])
    other = SequenceDataset(FaceOnlyBuilder(tiny_faces(), CROP, steps=10), length=4, seed=6)
    assert differs(first[0], other[0])
    with pytest.raises(IndexError):
        dataset[4]


def test_synthetic_sequence_segments_pair_categories_and_ramp():
    config = SyntheticConfig(seconds=30, p_face_missing=0.0, p_silence=0.0)
    pairing = MultimodalPairing(tiny_faces(), tiny_voices())
    sequence, segments = synthetic_sequence(pairing, CROP, np.random.default_rng(11), config)
    assert sequence.steps == 30 * STEPS_PER_SECOND
    assert sum(s.steps for s in segments) == sequence.steps
    for segment in segments[:-1]:
        assert 2 * STEPS_PER_SECOND <= segment.steps <= 8 * STEPS_PER_SECOND
    actors = {int(pairing.voices.actor[c]) for s in segments for c in s.clip_indices}
    assert len(actors) == 1  # one voice per stream
    ramp = int(round(config.ramp_seconds * STEPS_PER_SECOND))
    for previous, segment in zip(segments, segments[1:]):
        # the face shows the voice's category (calm voices get neutral faces)
        voice_category = RAVDESS_EMOTIONS[segment.emotion]
        face_category = FERPLUS_EMOTIONS[pairing.faces.majority[segment.face_index]]
        assert face_category == FACE_CATEGORY_FOR_VOICE[voice_category]
        assert all(pairing.voices.emotion[c] == segment.emotion for c in segment.clip_indices)
        # plateau inside the segment, ramp after the boundary
        inside = sequence.target[segment.start + ramp:segment.start + segment.steps]
        np.testing.assert_allclose(inside, np.tile(segment.target, (len(inside), 1)))
        before = sequence.target[segment.start - 1]
        first = sequence.target[segment.start]
        if not np.allclose(before, segment.target):
            step = np.abs(first - before).max()
            assert 0 < step < np.abs(segment.target - before).max()
    np.testing.assert_array_equal(sequence.face_mask, 1.0)
    # the voice is heard everywhere: short clips are followed by more clips, not silence
    rms = np.sqrt((sequence.audio ** 2).mean(axis=1))
    assert rms.min() > 0.1


def test_synthetic_sequence_pitch_follows_its_segments():
    pairing = MultimodalPairing(tiny_faces(), tiny_voices())
    config = SyntheticConfig(seconds=12, p_face_missing=0.0, p_silence=0.0, noise_level=0.0)
    sequence, segments = synthetic_sequence(pairing, CROP, np.random.default_rng(12), config)
    for segment in segments:
        window = sequence.audio[segment.start + 1:segment.start + segment.steps].reshape(-1)
        spectrum = np.abs(np.fft.rfft(window))
        peak = np.fft.rfftfreq(len(window), 1 / 16_000)[np.argmax(spectrum)]
        assert peak == pytest.approx(100 * segment.emotion, abs=5)


def test_modality_dropout():
    pairing = MultimodalPairing(tiny_faces(), tiny_voices())
    no_face, segments = synthetic_sequence(
        pairing, CROP, np.random.default_rng(13),
        SyntheticConfig(seconds=10, p_face_missing=1.0, p_silence=0.0))
    np.testing.assert_array_equal(no_face.face_mask, 0.0)
    assert not no_face.face.any()
    for segment in segments:  # the label follows what can still be heard
        voice = pairing.voices.targets[segment.clip_indices[0]]
        np.testing.assert_allclose(segment.target, voice)
    silent, segments = synthetic_sequence(
        pairing, CROP, np.random.default_rng(14),
        SyntheticConfig(seconds=10, p_face_missing=0.0, p_silence=1.0))
    assert 0 < np.abs(silent.audio).max() < 0.01
    np.testing.assert_array_equal(silent.face_mask, 1.0)
    for segment in segments:
        np.testing.assert_allclose(segment.target, pairing.faces.targets[segment.face_index])
    mixed, segments = synthetic_sequence(
        pairing, CROP, np.random.default_rng(15),
        SyntheticConfig(seconds=120, p_face_missing=0.3, p_silence=0.3))
    assert not any(s.face_missing and s.silent for s in segments)
    assert any(s.face_missing for s in segments) and any(s.silent for s in segments)
    for segment in segments:
        span = slice(segment.start, segment.start + segment.steps)
        assert np.all(mixed.face_mask[span] == (0.0 if segment.face_missing else 1.0))


def test_mismatched_segments_show_a_face_of_another_emotion_and_average_both():
    pairing = MultimodalPairing(tiny_faces(), tiny_voices())
    plain = SyntheticConfig(seconds=200, p_face_missing=0.0, p_silence=0.0)
    mixed = SyntheticConfig(seconds=200, p_face_missing=0.0, p_silence=0.0, p_mismatch=0.5)
    _, matched = synthetic_sequence(pairing, CROP, np.random.default_rng(16), plain)
    _, segments = synthetic_sequence(pairing, CROP, np.random.default_rng(16), mixed)

    def disagree(segment):
        voice = FACE_CATEGORY_FOR_VOICE[RAVDESS_EMOTIONS[segment.emotion]]
        return FERPLUS_EMOTIONS[pairing.faces.majority[segment.face_index]] != voice

    assert not any(disagree(s) for s in matched)
    # half are drawn on their own, and 1 in 7 of those lands on the voice's own category
    share = np.mean([disagree(s) for s in segments])
    assert 0.25 <= share <= 0.6, share
    for segment in segments:  # the label is still what is seen and heard, averaged
        face = pairing.faces.targets[segment.face_index]
        voice = pairing.voices.targets[segment.clip_indices[0]]
        np.testing.assert_allclose(segment.target, (face + voice) / 2, atol=1e-6)


def test_bad_synthetic_config_is_rejected():
    with pytest.raises(ValueError):
        SyntheticConfig(min_segment_seconds=5, max_segment_seconds=2)
    with pytest.raises(ValueError, match="p_mismatch"):
        SyntheticConfig(p_mismatch=1.5)
    with pytest.raises(ValueError):
        SyntheticConfig(p_face_missing=0.6, p_silence=0.6)
    with pytest.raises(ValueError):
        FaceJitter(smoothness=1.0).draw(3, np.random.default_rng(0))


def test_collate_pads_and_masks():
    faces = tiny_faces()
    crop = FaceCrop(size=32, channels=1)
    sad = category_distribution("sadness")
    batch = [face_sequence(faces.images[0], [0.1, 0.2], 5, crop, np.random.default_rng(0)),
             voice_sequence(np.full(640 * 3, 0.25, np.float32), [0.3, 0.4], crop,
                            category=sad),
             face_sequence(faces.images[1], [0.5, 0.6], 8, crop, np.random.default_rng(1))]
    tensors = collate_sequences(batch)
    assert set(tensors) == {"audio", "face", "face_mask", "target", "category", "step_mask"}
    # the voice clip's class on its 3 steps; unknown (zeros) elsewhere and on padding
    np.testing.assert_array_equal(tensors["category"][1, :3].numpy(), np.tile(sad, (3, 1)))
    assert float(tensors["category"][[0, 2]].abs().sum()) == 0.0
    assert float(tensors["category"][1, 3:].abs().sum()) == 0.0
    assert tensors["audio"].shape == (3, 8, WINDOW_SAMPLES)
    assert tensors["face"].shape == (3, 8, 1, 32, 32)
    assert all(t.dtype == torch.float32 for t in tensors.values())
    np.testing.assert_array_equal(tensors["step_mask"].sum(dim=1).numpy(), [5, 3, 8])
    np.testing.assert_array_equal(tensors["step_mask"][1].numpy(), [1, 1, 1, 0, 0, 0, 0, 0])
    for name in ("audio", "face", "face_mask", "target"):  # padding is zeros
        assert not tensors[name][0, 5:].any() and not tensors[name][1, 3:].any()
    np.testing.assert_array_equal(tensors["face_mask"][:, 0].numpy(), [1, 0, 1])
    assert 0.0 <= tensors["face"].min() and tensors["face"].max() <= 1.0
    np.testing.assert_allclose(tensors["face"][2, :8].numpy(), batch[2].face / 255.0,
                               atol=1e-7)
    np.testing.assert_array_equal(tensors["target"][1, :3].numpy(), np.tile([0.3, 0.4], (3, 1))
                                  .astype(np.float32))
    loader = torch.utils.data.DataLoader(
        SequenceDataset(FaceOnlyBuilder(faces, crop, steps=4), length=6), batch_size=4,
        collate_fn=collate_sequences)
    shapes = [b["face"].shape for b in loader]
    assert shapes == [(4, 4, 1, 32, 32), (2, 4, 1, 32, 32)]
    with pytest.raises(ValueError, match="empty"):
        collate_sequences([])


def test_real_synthetic_sequence(ferplus_dir, ravdess_dir, tmp_path):
    faces = load_ferplus(ferplus_dir, "FER2013Valid", cache_dir=tmp_path)
    voices = load_ravdess(ravdess_dir, actors=[17, 18], cache_dir=tmp_path)
    builder = SyntheticBuilder.from_data(faces, voices, FaceCrop(),
                                         SyntheticConfig(seconds=16))
    sequence, segments = synthetic_sequence(builder.pairing, builder.crop,
                                            np.random.default_rng(0), builder.config)
    assert sequence.face.shape == (400, 3, 96, 96)
    for segment in segments:
        face_category = FERPLUS_EMOTIONS[faces.majority[segment.face_index]]
        assert face_category == FACE_CATEGORY_FOR_VOICE[RAVDESS_EMOTIONS[segment.emotion]]
        span = slice(segment.start, segment.start + segment.steps)
        if not segment.silent and segment.steps >= 2 * STEPS_PER_SECOND:
            # speech (the quietest RAVDESS clips peak near 0.02) is above the noise floor
            assert np.abs(sequence.audio[span]).max() > 0.01
    assert np.all(np.abs(sequence.target) <= 1.0)
    batch = collate_sequences([sequence, builder(np.random.default_rng(1))])
    assert batch["face"].shape == (2, 400, 3, 96, 96)


def test_flip_mirrors_the_face_and_no_jitter_never_flips():
    from dataclasses import replace

    from training.data.sequences import NO_JITTER, face_frames

    image = np.zeros((48, 48), np.uint8)
    image[:, :12] = 255  # a bright left edge
    crop = FaceCrop(size=32, channels=1, margin=0.0)
    plain = face_frames(image, 2, crop, np.random.default_rng(0), NO_JITTER)
    mirrored = face_frames(image, 2, crop, np.random.default_rng(0), replace(NO_JITTER, flip=1.0))
    assert plain[0, 0, :, :4].mean() > 200 and plain[0, 0, :, -4:].mean() < 50
    np.testing.assert_array_equal(mirrored, plain[..., ::-1])
