"""Training sequences on the model's 40 ms grid, and how they are batched.

A ``Sequence`` is what one stream of the model sees: for every 40 ms step, 640 audio
samples, one face crop (or none), and the (arousal, valence) target. Three builders:

* face-only sequences: one FER+ image held for T steps with a jittered crop, audio at the
  noise floor, face_mask 1 -- to pretrain the visual branch;
* voice-only sequences: consecutive 640-sample windows of one RAVDESS clip, face_mask 0
  -- to pretrain the audio branch;
* synthetic multimodal sequences: consecutive 2-8 s segments, each pairing voice clips and
  a face image of the same category from disjoint identities (a RAVDESS actor's voice, a
  FER+ stranger's face), with smoothed label transitions and per-segment modality dropout.
  See ``SyntheticConfig`` for every choice and why.

All builders draw every random number from the ``numpy.random.Generator`` they are given,
so a sequence is a pure function of its seed. ``SequenceDataset`` gives item i the seed
(seed, epoch, i); ``collate_sequences`` pads a list of sequences into model tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from models.face_crop import crop_face
from models.spec import STEPS_PER_SECOND, WINDOW_SAMPLES, FaceCrop
from training.data.ferplus import FerPlusSplit
from training.data.labels import (CATEGORIES, FACE_CATEGORY_FOR_VOICE, FERPLUS_EMOTIONS,
                                  RAVDESS_EMOTIONS, RAVDESS_NORMAL, category_distribution)
from training.data.ravdess import RavdessClips

NOISE_FLOOR = 1e-3  # std of the "silent" microphone, about -60 dBFS


@dataclass(frozen=True, eq=False)
class Sequence:
    """One training stream of T steps of 40 ms."""

    audio: np.ndarray  # float32 [T, 640], mono 16 kHz in [-1, 1]
    face: np.ndarray  # uint8 [T, C, H, W], 0..255 (zeros where face_mask is 0)
    face_mask: np.ndarray  # float32 [T], 1 = a face is present
    target: np.ndarray  # float32 [T, 2], (arousal, valence)
    # float32 [T, len(CATEGORIES)] class distribution per step, for the training-only
    # category head; None where the source has no categories.
    category: np.ndarray | None = None

    def __post_init__(self):
        steps = len(self.audio)
        checks = [
            (self.audio.dtype == np.float32 and self.audio.shape == (steps, WINDOW_SAMPLES),
             f"audio float32 [T, {WINDOW_SAMPLES}]", self.audio),
            (self.face.dtype == np.uint8 and self.face.ndim == 4 and len(self.face) == steps,
             "face uint8 [T, C, H, W]", self.face),
            (self.face_mask.dtype == np.float32 and self.face_mask.shape == (steps,),
             "face_mask float32 [T]", self.face_mask),
            (self.target.dtype == np.float32 and self.target.shape == (steps, 2),
             "target float32 [T, 2]", self.target),
        ]
        if self.category is not None:
            checks.append((self.category.dtype == np.float32
                           and self.category.shape == (steps, len(CATEGORIES)),
                           f"category float32 [T, {len(CATEGORIES)}]", self.category))
        for ok, expected, array in checks:
            if not ok:
                raise ValueError(f"Sequence needs {expected} with T={steps}, "
                                 f"got {array.dtype} {array.shape}")
        if steps == 0:
            raise ValueError("a Sequence needs at least one step")

    @property
    def steps(self) -> int:
        return len(self.audio)


@dataclass(frozen=True)
class FaceJitter:
    """How much the face crop wanders, to look like a detector on a live webcam.

    Each parameter follows a stationary AR(1) process with correlation ``smoothness``
    from one 40 ms frame to the next, so the box drifts and breathes as a real
    detector's box does, instead of shaking independently every frame. Standard
    deviations: ``shift`` (fraction of the face side), ``scale`` (log of the side),
    ``rotation`` (degrees), ``gain`` (log of the brightness gain), ``bias`` (grey levels).
    """

    shift: float = 0.05
    scale: float = 0.07
    rotation: float = 5.0
    gain: float = 0.15
    bias: float = 10.0
    smoothness: float = 0.9
    flip: float = 0.5  # chance that a sequence shows the face mirrored (faces are ~symmetric)

    def draw(self, steps: int, rng: np.random.Generator) -> np.ndarray:
        """float64 [steps, 6]: dx, dy, log-scale, angle, log-gain, bias per frame."""
        sigma = np.array([self.shift, self.shift, self.scale, self.rotation, self.gain,
                          self.bias])
        rho = float(self.smoothness)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"smoothness must be in [0, 1), got {rho}")
        noise = rng.standard_normal((steps, len(sigma)))
        values = np.empty_like(noise)
        values[0] = noise[0]  # start in the stationary distribution
        innovation = np.sqrt(1.0 - rho * rho)
        for t in range(1, steps):
            values[t] = rho * values[t - 1] + innovation * noise[t]
        return values * sigma


NO_JITTER = FaceJitter(shift=0.0, scale=0.0, rotation=0.0, gain=0.0, bias=0.0,
                       smoothness=0.0, flip=0.0)


def face_frames(image: np.ndarray, steps: int, crop: FaceCrop, rng: np.random.Generator,
                jitter: FaceJitter = FaceJitter()) -> np.ndarray:
    """One already-cropped face (FER+) -> uint8 [steps, C, size, size] jittered crops.

    The image is upscaled (so sub-pixel box moves survive the integer crop), rotated about
    the face centre, cut with ``models.face_crop.crop_face`` around a jittered box, and
    brightness-adjusted. The nominal box is the face inside the image with the crop
    margin around it, so with no jitter the crop is the whole image, as at run time.
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    upscaled = _upscale(image, crop)
    if jitter.flip and rng.random() < jitter.flip:
        upscaled = np.ascontiguousarray(upscaled[:, ::-1])
    height, width = upscaled.shape[:2]
    side0 = min(height, width) / (1.0 + 2.0 * crop.margin)
    cx0, cy0 = width / 2.0, height / 2.0
    params = jitter.draw(steps, rng)
    frames = np.empty((steps, crop.channels, crop.size, crop.size), np.uint8)
    for t, (dx, dy, log_scale, angle, log_gain, bias) in enumerate(params):
        cx, cy = cx0 + dx * side0, cy0 + dy * side0
        source = upscaled
        if angle:
            matrix = cv2.getRotationMatrix2D((cx, cy), float(angle), 1.0)
            source = cv2.warpAffine(upscaled, matrix, (width, height),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        side = side0 * np.exp(log_scale)
        face = crop_face(source, (cx - side / 2.0, cy - side / 2.0, side, side), crop)
        face = face * np.exp(log_gain) + bias / 255.0
        frames[t] = np.clip(np.rint(face * 255.0), 0, 255).astype(np.uint8)
    return frames


def _upscale(image: np.ndarray, crop: FaceCrop) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"face image must be uint8 HxW or HxWx3, got {image.dtype} "
                         f"{image.shape}")
    target = 2 * crop.size
    height, width = image.shape[:2]
    if min(height, width) >= target:
        return image
    factor = target / min(height, width)
    size = (int(round(width * factor)), int(round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)


def noise_floor(steps: int, rng: np.random.Generator, level: float = NOISE_FLOOR) -> np.ndarray:
    """float32 [steps, 640] of low Gaussian noise: a quiet room, not digital zeros.

    Exact zeros never come from a real microphone; training on them would teach the
    model a cue that does not exist at run time.
    """
    noise = rng.standard_normal((steps, WINDOW_SAMPLES)) * level
    return noise.astype(np.float32)


def face_sequence(image: np.ndarray, target: np.ndarray, steps: int, crop: FaceCrop,
                  rng: np.random.Generator, jitter: FaceJitter = FaceJitter(),
                  noise_level: float = NOISE_FLOOR,
                  category: np.ndarray | None = None) -> Sequence:
    """A face-only sequence: ``image`` over ``steps`` jittered frames, quiet audio, mask 1.

    ``category``: the face's class distribution (FER+ vote shares), held for every step.
    """
    target = np.asarray(target, np.float32).reshape(2)
    return Sequence(
        audio=noise_floor(steps, rng, noise_level),
        face=face_frames(image, steps, crop, rng, jitter),
        face_mask=np.ones(steps, np.float32),
        target=np.repeat(target[None], steps, axis=0),
        category=_held(category, steps))


def voice_sequence(samples: np.ndarray, target: np.ndarray, crop: FaceCrop,
                   max_steps: int | None = None,
                   category: np.ndarray | None = None) -> Sequence:
    """A voice-only sequence: consecutive 640-sample windows of a clip, no face (mask 0).

    A trailing partial window (under 40 ms) is dropped rather than zero-padded.
    """
    samples = np.asarray(samples, np.float32)
    steps = len(samples) // WINDOW_SAMPLES
    if max_steps is not None:
        steps = min(steps, max_steps)
    if steps < 1:
        raise ValueError(f"clip of {len(samples)} samples is shorter than one "
                         f"{WINDOW_SAMPLES}-sample window")
    target = np.asarray(target, np.float32).reshape(2)
    return Sequence(
        audio=samples[:steps * WINDOW_SAMPLES].reshape(steps, WINDOW_SAMPLES).copy(),
        face=np.zeros((steps, crop.channels, crop.size, crop.size), np.uint8),
        face_mask=np.zeros(steps, np.float32),
        target=np.repeat(target[None], steps, axis=0),
        category=_held(category, steps))


def _held(category: np.ndarray | None, steps: int) -> np.ndarray | None:
    """One class distribution -> float32 [steps, K], the same at every step."""
    if category is None:
        return None
    return np.repeat(np.asarray(category, np.float32).reshape(1, -1), steps, axis=0)


@dataclass(frozen=True)
class SyntheticConfig:
    """Choices behind synthetic multimodal sequences.

    * ``seconds``: length of a sequence; segments of ``min_segment_seconds`` ..
      ``max_segment_seconds`` (uniform) follow one another, the last one cut to fit.
    * One RAVDESS actor speaks through a whole sequence (a stream is one voice); each
      segment draws an emotion code (uniform over the codes present, normally 1..8), an
      intensity (uniform; neutral has only normal), and a FER+ face whose majority matches
      (``labels.FACE_CATEGORY_FOR_VOICE``: calm voices get neutral faces, as FER+ has no
      calm). FER+ has no identities, so the face changes person at every segment.
    * A voice clip shorter than its segment is followed by other clips of the same actor,
      emotion and intensity (random order, repeats allowed) until the segment is full: real
      speech of the same state, with RAVDESS's own pauses between sentences, rather than a
      loop of one clip or padded silence. The first clip starts at a random point in its
      first half.
    * Segment target: the mean of the face's vote-weighted target and the voice's target;
      only the voice's when the face is dropped, only the face's when the voice is: the
      label describes what can be seen and heard.
    * Transitions: the target ramps linearly over ``ramp_seconds`` after each boundary,
      because perceived emotion does not jump within 40 ms and a causal model cannot know
      a change before it happens.
    * Modality dropout, per segment and exclusive (one modality always remains): the face
      is missing (mask 0, zeros) with ``p_face_missing``, the voice replaced by the noise
      floor with ``p_silence``. The noise floor (``noise_level``) is added everywhere.
    * Mismatch, per segment: with ``p_mismatch`` the face's category is drawn on its own
      (uniform over the categories faces are paired with) instead of matching the voice.
      With faces and voices always agreeing, a fused model learns that the face alone
      predicts the target and ignores the voice whenever a face is seen; disagreeing
      segments (target still the mean of the two) make it weigh both.
    """

    seconds: float = 20.0
    min_segment_seconds: float = 2.0
    max_segment_seconds: float = 8.0
    ramp_seconds: float = 0.4
    p_face_missing: float = 0.15
    p_silence: float = 0.15
    p_mismatch: float = 0.0
    noise_level: float = NOISE_FLOOR
    jitter: FaceJitter = field(default_factory=FaceJitter)

    def __post_init__(self):
        if not 0 < self.min_segment_seconds <= self.max_segment_seconds:
            raise ValueError("need 0 < min_segment_seconds <= max_segment_seconds")
        if self.seconds * STEPS_PER_SECOND < 1:
            raise ValueError(f"seconds={self.seconds} is shorter than one step")
        if not (0 <= self.p_face_missing and 0 <= self.p_silence
                and self.p_face_missing + self.p_silence <= 1):
            raise ValueError("dropout probabilities must be >= 0 and sum to <= 1")
        if not 0 <= self.p_mismatch <= 1:
            raise ValueError(f"p_mismatch must be within 0..1, got {self.p_mismatch}")
        if self.ramp_seconds < 0:
            raise ValueError("ramp_seconds cannot be negative")


@dataclass(frozen=True, eq=False)
class Segment:
    """What one segment of a synthetic multimodal sequence holds (for inspection/tests)."""

    start: int  # first step
    steps: int
    emotion: int  # RAVDESS code
    intensity: int
    face_index: int  # into the FerPlusSplit
    clip_indices: tuple[int, ...]  # into the RavdessClips, in playing order
    face_missing: bool
    silent: bool
    target: np.ndarray  # float32 [2] before smoothing


class MultimodalPairing:
    """Faces and voices indexed by category, built once, shared by every draw."""

    def __init__(self, faces: FerPlusSplit, voices: RavdessClips):
        self.faces, self.voices = faces, voices
        self.faces_by_category = {
            name: np.flatnonzero(faces.majority == k) for k, name in enumerate(FERPLUS_EMOTIONS)}
        codes = [code for code, name in RAVDESS_EMOTIONS.items()
                 if len(self.faces_by_category[FACE_CATEGORY_FOR_VOICE[name]])
                 and np.any(voices.emotion == code)]
        if not codes:
            raise ValueError("no emotion has both FER+ faces and RAVDESS voices to pair")
        self.codes = np.array(codes)
        self.face_categories = sorted({FACE_CATEGORY_FOR_VOICE[RAVDESS_EMOTIONS[code]]
                                       for code in codes})
        self.actors = np.unique(voices.actor)

    def clips(self, actor: int, emotion: int, intensity: int) -> np.ndarray:
        """Clip indices of this actor/emotion/intensity; widens to any actor if none."""
        v = self.voices
        same = (v.emotion == emotion) & (v.intensity == intensity)
        found = np.flatnonzero(same & (v.actor == actor))
        if not len(found):
            found = np.flatnonzero(same)
        if not len(found):
            found = np.flatnonzero(v.emotion == emotion)
        return found


def synthetic_sequence(pairing: MultimodalPairing, crop: FaceCrop, rng: np.random.Generator,
                       config: SyntheticConfig = SyntheticConfig()
                       ) -> tuple[Sequence, tuple[Segment, ...]]:
    """One synthetic multimodal sequence and the segments it was made of."""
    total = max(1, int(round(config.seconds * STEPS_PER_SECOND)))
    actor = int(rng.choice(pairing.actors))
    audio = np.empty((total, WINDOW_SAMPLES), np.float32)
    face = np.zeros((total, crop.channels, crop.size, crop.size), np.uint8)
    face_mask = np.zeros(total, np.float32)
    low = max(1, int(round(config.min_segment_seconds * STEPS_PER_SECOND)))
    high = max(low, int(round(config.max_segment_seconds * STEPS_PER_SECOND)))
    segments = []
    start = 0
    while start < total:
        steps = min(int(rng.integers(low, high + 1)), total - start)
        segment = _draw_segment(pairing, actor, start, steps, rng, config)
        span = slice(start, start + steps)
        if segment.silent:
            audio[span] = 0.0
        else:
            audio[span] = _voice_windows(pairing.voices, segment.clip_indices, steps, rng)
        if not segment.face_missing:
            image = pairing.faces.images[segment.face_index]
            face[span] = face_frames(image, steps, crop, rng, config.jitter)
            face_mask[span] = 1.0
        segments.append(segment)
        start += steps
    audio += noise_floor(total, rng, config.noise_level)
    np.clip(audio, -1.0, 1.0, out=audio)
    target = _smooth_targets(segments, total, config.ramp_seconds)
    return Sequence(audio=audio, face=face, face_mask=face_mask, target=target), tuple(segments)


def _draw_segment(pairing: MultimodalPairing, actor: int, start: int, steps: int,
                  rng: np.random.Generator, config: SyntheticConfig) -> Segment:
    emotion = int(rng.choice(pairing.codes))
    intensity = RAVDESS_NORMAL if emotion == 1 else int(rng.integers(1, 3))
    candidates = pairing.clips(actor, emotion, intensity)
    needed = steps * WINDOW_SAMPLES
    clip_indices, have = [], 0
    while have < needed:  # first clip is played from its midpoint at worst: count half
        clip = int(rng.choice(candidates))
        length = pairing.voices.offsets[clip + 1] - pairing.voices.offsets[clip]
        have += max(length // 2 if not clip_indices else length, 1)
        clip_indices.append(clip)
    category = FACE_CATEGORY_FOR_VOICE[RAVDESS_EMOTIONS[emotion]]
    if config.p_mismatch > 0 and rng.random() < config.p_mismatch:  # no draw at 0: same data
        category = str(rng.choice(pairing.face_categories))
    face_index = int(rng.choice(pairing.faces_by_category[category]))
    draw = rng.random()
    face_missing = draw < config.p_face_missing
    silent = config.p_face_missing <= draw < config.p_face_missing + config.p_silence
    face_target = pairing.faces.targets[face_index]
    voice_target = pairing.voices.targets[clip_indices[0]]
    if face_missing:
        target = voice_target
    elif silent:
        target = face_target
    else:
        target = (face_target + voice_target) / 2.0
    return Segment(start=start, steps=steps, emotion=emotion, intensity=intensity,
                   face_index=face_index, clip_indices=tuple(clip_indices),
                   face_missing=bool(face_missing), silent=bool(silent),
                   target=np.asarray(target, np.float32))


def _voice_windows(voices: RavdessClips, clip_indices: tuple[int, ...], steps: int,
                   rng: np.random.Generator) -> np.ndarray:
    pieces = [voices.audio(i) for i in clip_indices]
    pieces[0] = pieces[0][int(rng.integers(0, len(pieces[0]) // 2 + 1)):]
    samples = np.concatenate(pieces)[:steps * WINDOW_SAMPLES]
    if len(samples) < steps * WINDOW_SAMPLES:  # cannot happen with the fill rule; be safe
        samples = np.pad(samples, (0, steps * WINDOW_SAMPLES - len(samples)))
    return samples.reshape(steps, WINDOW_SAMPLES)


def _smooth_targets(segments: list[Segment], total: int, ramp_seconds: float) -> np.ndarray:
    target = np.empty((total, 2), np.float32)
    ramp = int(round(ramp_seconds * STEPS_PER_SECOND))
    previous = None
    for segment in segments:
        span = slice(segment.start, segment.start + segment.steps)
        target[span] = segment.target
        if previous is not None and ramp > 0:
            n = min(ramp, segment.steps)
            weight = (np.arange(1, n + 1, dtype=np.float32) / ramp)[:, None]
            target[segment.start:segment.start + n] = previous + (segment.target - previous) \
                * weight
        previous = target[segment.start + segment.steps - 1].copy()
    return target


# ----- builders: (rng) -> Sequence, picklable for DataLoader workers -----

@dataclass(frozen=True, eq=False)
class FaceOnlyBuilder:
    """A random FER+ image held for ``steps`` frames (face-only pretraining)."""

    faces: FerPlusSplit
    crop: FaceCrop
    steps: int = 50
    jitter: FaceJitter = field(default_factory=FaceJitter)
    noise_level: float = NOISE_FLOOR

    def __call__(self, rng: np.random.Generator) -> Sequence:
        index = int(rng.integers(len(self.faces)))
        return face_sequence(self.faces.images[index], self.faces.targets[index], self.steps,
                             self.crop, rng, self.jitter, self.noise_level,
                             category=self.faces.probabilities[index])


@dataclass(frozen=True)
class VoiceAugment:
    """Random per-clip changes so that 16 training speakers sound like more: playback speed
    within 1 +- ``speed`` (tempo and pitch together, by linear interpolation) and level
    within +- ``gain_db`` dB (clipped to full scale). Zero turns a change off and then
    draws no random numbers, so unaugmented sequences stay as they were."""

    speed: float = 0.0
    gain_db: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.speed < 0.5 or self.gain_db < 0.0:
            raise ValueError(f"voice augmentation needs 0 <= speed < 0.5 and gain_db >= 0, "
                             f"got speed {self.speed}, gain_db {self.gain_db}")

    @property
    def enabled(self) -> bool:
        return self.speed > 0 or self.gain_db > 0

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        samples = np.asarray(samples, np.float32)
        if self.speed > 0:
            factor = rng.uniform(1.0 - self.speed, 1.0 + self.speed)
            positions = np.arange(int(len(samples) / factor)) * factor
            samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
        if self.gain_db > 0:
            gain = 10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0)
            samples = np.clip(samples * gain, -1.0, 1.0).astype(np.float32)
        return samples


@dataclass(frozen=True, eq=False)
class VoiceOnlyBuilder:
    """A random RAVDESS clip, whole or a random ``max_steps`` stretch (voice-only pretraining).

    A clip longer than ``max_steps`` windows starts at a random sample, so the model sees
    utterances at every offset from its 40 ms grid, as it will live.
    """

    voices: RavdessClips
    crop: FaceCrop
    max_steps: int | None = None
    augment: VoiceAugment = VoiceAugment()

    def __call__(self, rng: np.random.Generator) -> Sequence:
        index = int(rng.integers(len(self.voices)))
        samples = self.augment(self.voices.audio(index), rng)
        if self.max_steps is not None:
            spare = len(samples) - self.max_steps * WINDOW_SAMPLES
            if spare > 0:
                samples = samples[int(rng.integers(0, spare + 1)):]
        return voice_sequence(samples, self.voices.targets[index], self.crop, self.max_steps,
                              category=category_distribution(self.voices.category(index)))


class WholeClips(torch.utils.data.Dataset):
    """Every clip once, whole, in file order: a fixed validation set that scores each clip
    as affect-eval's RAVDESS bar does (random draws repeat some clips and miss others)."""

    def __init__(self, voices: RavdessClips, crop: FaceCrop):
        self.voices, self.crop = voices, crop

    def __len__(self) -> int:
        return len(self.voices)

    def __getitem__(self, index: int) -> Sequence:
        return voice_sequence(self.voices.audio(index), self.voices.targets[index], self.crop,
                              category=category_distribution(self.voices.category(index)))


@dataclass(frozen=True, eq=False)
class RehearsalBuilder:
    """``main``'s sequences, with a ``share`` of them replaced by ``rehearsal``'s.

    The voice stage trains the LSTM on faceless clips only, which made it forget how to
    read faces (FER+ valence CCC 0.85 -> -0.14 after 12 epochs); mixing in face-only
    sequences keeps that skill while the voice is learnt.
    """

    main: object
    rehearsal: object
    share: float

    def __post_init__(self):
        if not 0.0 < self.share < 1.0:
            raise ValueError(f"rehearsal share must be between 0 and 1, got {self.share}")

    def __call__(self, rng: np.random.Generator) -> Sequence:
        return self.rehearsal(rng) if rng.random() < self.share else self.main(rng)


@dataclass(frozen=True, eq=False)
class SyntheticBuilder:
    """Synthetic multimodal sequences from one face split and one voice split."""

    pairing: MultimodalPairing
    crop: FaceCrop
    config: SyntheticConfig = field(default_factory=SyntheticConfig)

    @classmethod
    def from_data(cls, faces: FerPlusSplit, voices: RavdessClips, crop: FaceCrop,
                  config: SyntheticConfig = SyntheticConfig()) -> "SyntheticBuilder":
        return cls(MultimodalPairing(faces, voices), crop, config)

    def __call__(self, rng: np.random.Generator) -> Sequence:
        return synthetic_sequence(self.pairing, self.crop, rng, self.config)[0]


class SequenceDataset(torch.utils.data.Dataset):
    """Map-style dataset: item i is ``builder(default_rng((seed, epoch, i)))``.

    The same (seed, epoch, i) always gives the same sequence, in any worker and any
    order; ``set_epoch`` draws fresh sequences for a new epoch. DataLoader workers copy
    the dataset when an iterator starts, so call ``set_epoch`` before iterating each
    epoch and leave ``persistent_workers`` off (a persistent worker keeps the old epoch).
    """

    def __init__(self, builder, length: int, seed: int = 0):
        if length < 1:
            raise ValueError(f"length must be positive, got {length}")
        self.builder, self.length, self.seed, self.epoch = builder, int(length), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sequence:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} sequences")
        index %= self.length
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return self.builder(rng)


def collate_sequences(batch: list[Sequence]) -> dict[str, torch.Tensor]:
    """Pad sequences to the longest -> model tensors.

    audio float32 [B, T, 640]; face float32 [B, T, C, H, W] in 0..1; face_mask [B, T];
    target [B, T, 2] (arousal, valence); category [B, T, K] class distribution (zeros where
    unknown); step_mask [B, T] (1 real step, 0 padding; padded steps are zeros everywhere,
    so the loss must use step_mask).
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    face_shape = batch[0].face.shape[1:]
    for sequence in batch:
        if sequence.face.shape[1:] != face_shape:
            raise ValueError(f"face crops differ in shape: {face_shape} vs "
                             f"{sequence.face.shape[1:]}")
    size, longest = len(batch), max(sequence.steps for sequence in batch)
    audio = torch.zeros(size, longest, WINDOW_SAMPLES)
    face = torch.zeros(size, longest, *face_shape)
    face_mask = torch.zeros(size, longest)
    target = torch.zeros(size, longest, 2)
    category = torch.zeros(size, longest, len(CATEGORIES))
    step_mask = torch.zeros(size, longest)
    for row, sequence in enumerate(batch):
        steps = sequence.steps
        audio[row, :steps] = torch.from_numpy(sequence.audio)
        face[row, :steps] = torch.from_numpy(sequence.face).float().div_(255.0)
        face_mask[row, :steps] = torch.from_numpy(sequence.face_mask)
        target[row, :steps] = torch.from_numpy(sequence.target)
        if sequence.category is not None:
            category[row, :steps] = torch.from_numpy(sequence.category)
        step_mask[row, :steps] = 1.0
    return {"audio": audio, "face": face, "face_mask": face_mask, "target": target,
            "category": category, "step_mask": step_mask}

