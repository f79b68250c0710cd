"""Train the default model's design (training/experts.py) from a recipe file.

    affect-train --config training/recipes/default.toml --out runs/v7

(`affect-train` dispatches here for an experts network.) Every option is in the recipe, saved
whole in the checkpoint. Three stages, each fast on a 2-core CPU:

1. face   the face expert starts from a single-LSTM model's face pathway
          (training/warm_start.py; recipe key face.source: an ONNX file, or git:COMMIT:PATH
          for one in this repository's history), unchanged: it already reads FER+ faces.
2. voice  the voice expert alone on RAVDESS actors 1-16: fixed descriptors are computed once
          per clip for several augmented copies (playback speed, gain over the whole
          -30..+20 dB range with clipping, a noise floor at a random signal-to-noise ratio),
          then the running statistics, LSTM and head train on them with a CCC loss on each
          clip's mean output (the unit the RAVDESS figures score). The epoch with the best
          held-out clip CCC (actors 17-20) is kept.
3. fusion only the two confidence (log precision) heads, on synthetic sequences from FER+
          FER2013Train faces and RAVDESS actors 1-16 voices in which a share of the segments
          show a face and a voice that disagree (target: the mean of the two), some have no
          face and some no voice. Both experts are frozen, so their LSTM outputs are
          computed once and the heads train on them in seconds.

Writes OUT/experts.pt (a checkpoint training.export reads) and OUT/train.json (figures).
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.checkpoint import save_checkpoint
from training.losses import ccc
from training.recipe import Recipe as CommonRecipe
from training.recipe import RecipeError


@dataclass(frozen=True)
class VoiceRecipe:
    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    copies: int = 4  # augmented copies of each training clip, besides the clean one
    speed: float = 0.1  # playback speed within 1 +- speed
    gain_db: tuple[float, float] = (-30.0, 20.0)
    snr_db: tuple[float, float] = (20.0, 50.0)  # noise floor under the clip's loud windows
    # Microphone and channel colouring: a spectral tilt within +-tilt_db_per_octave (about
    # 1 kHz) and a low-pass edge drawn from lowpass_hz (a codec or a cheap microphone);
    # 0 / () = off. Another corpus's voices differ from RAVDESS's studio recordings this way.
    tilt_db_per_octave: float = 0.0
    lowpass_hz: tuple[float, ...] = ()  # (lowest, highest) edge in Hz
    # The weights of every epoch from this one on are also averaged (stochastic weight
    # averaging, Izmailov et al. 2018); the average is kept when it scores better than the
    # best single epoch. 0 = off.
    average_from_epoch: int = 0
    # Streams: besides single clips (scored by their mean), each batch holds this many
    # streams of `stream_clips` clips of one actor back to back, scored per step, so the
    # voice reading follows a change of emotion within a stream as it must live. 0 = off.
    streams_per_batch: int = 0
    stream_clips: int = 4
    stream_weight: float = 1.0  # of the streams' per-step CCC loss beside the clips' one


@dataclass(frozen=True)
class FusionRecipe:
    sequences: int = 160
    seconds: float = 10.0
    p_face_missing: float = 0.2
    p_silence: float = 0.2
    p_mismatch: float = 0.5
    epochs: int = 300
    lr: float = 1e-2


@dataclass(frozen=True)
class FaceSource:
    # The single-LSTM model (ONNX) whose face pathway the face expert starts from: a path,
    # or git:COMMIT:PATH for a file in this repository's history.
    source: str


@dataclass(frozen=True, kw_only=True)
class Recipe(CommonRecipe):
    face: FaceSource
    voice: VoiceRecipe = VoiceRecipe()
    fusion: FusionRecipe = FusionRecipe()


RECIPE = Recipe  # this trainer's schema (training/recipe.py)


# ----- stage 2: the voice -----

def augmented_copy(samples: np.ndarray, recipe: VoiceRecipe,
                   rng: np.random.Generator) -> np.ndarray:
    """One random speed, gain (clipped to full scale) and noise floor."""
    factor = rng.uniform(1.0 - recipe.speed, 1.0 + recipe.speed)
    positions = np.arange(int(len(samples) / factor)) * factor
    samples = np.interp(positions, np.arange(len(samples)), samples)
    if recipe.tilt_db_per_octave or recipe.lowpass_hz:
        samples = coloured(samples, recipe, rng)
    loud = np.quantile(np.sqrt(np.mean(
        samples[:len(samples) // 640 * 640].reshape(-1, 640) ** 2, axis=1)), 0.85)
    noise = loud * 10 ** (-rng.uniform(*recipe.snr_db) / 20)
    samples = samples + rng.standard_normal(len(samples)) * noise
    gain = 10 ** (rng.uniform(*recipe.gain_db) / 20)
    return np.clip(samples * gain, -1.0, 1.0).astype(np.float32)


def coloured(samples: np.ndarray, recipe: VoiceRecipe, rng: np.random.Generator) -> np.ndarray:
    """A random spectral tilt and low-pass edge, applied in the frequency domain."""
    spectrum = np.fft.rfft(samples)
    hz = np.fft.rfftfreq(len(samples), 1.0 / 16000)
    octaves = np.log2(np.maximum(hz, 50.0) / 1000.0)
    tilt = rng.uniform(-1.0, 1.0) * recipe.tilt_db_per_octave
    response = 10 ** (tilt * octaves / 20)
    if recipe.lowpass_hz:
        edge = rng.uniform(*recipe.lowpass_hz)
        # a cosine roll-off over 500 Hz above the edge, then -60 dB
        ramp = np.clip((hz - edge) / 500.0, 0.0, 1.0)
        response = response * (1e-3 + (1 - 1e-3) * 0.5 * (1 + np.cos(np.pi * ramp)))
    return np.fft.irfft(spectrum * response, len(samples))


def clip_descriptors(voice_expert, samples: np.ndarray) -> np.ndarray:
    steps = len(samples) // 640
    windows = torch.from_numpy(np.ascontiguousarray(samples[:steps * 640].reshape(steps, 640)))
    with torch.no_grad():
        return voice_expert.descriptors(windows).numpy()


def padded(items: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(item) for item in items)
    values = np.zeros((len(items), longest, items[0].shape[1]), np.float32)
    mask = np.zeros((len(items), longest), np.float32)
    for row, item in enumerate(items):
        values[row, :len(item)] = item
        mask[row, :len(item)] = 1.0
    return torch.from_numpy(values), torch.from_numpy(mask)


def ccc_loss_rows(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - CCC per column of [N,2] rows, averaged."""
    mean_p, mean_t = prediction.mean(0), target.mean(0)
    var_p, var_t = prediction.var(0, unbiased=False), target.var(0, unbiased=False)
    covariance = ((prediction - mean_p) * (target - mean_t)).mean(0)
    return (1 - 2 * covariance / (var_p + var_t + (mean_p - mean_t) ** 2 + 1e-8)).mean()


def readings(voice_expert, descriptors: list[np.ndarray], train: bool):
    """Each item from a fresh state -> (reading [B,T,2], step mask [B,T])."""
    raw, mask = padded(descriptors)
    batch = len(descriptors)
    h = torch.zeros(voice_expert.lstm.num_layers, batch, voice_expert.lstm.hidden_size)
    sums = torch.zeros(1, batch, voice_expert.state_size)
    voice_expert.train(train)
    return voice_expert(None, h, h.clone(), sums, descriptors=raw)[0], mask


def clip_means(voice_expert, descriptors: list[np.ndarray], train: bool) -> torch.Tensor:
    reading, mask = readings(voice_expert, descriptors, train)
    return (reading * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)


def draw_streams(items, targets, actors, count: int, clips: int, rng):
    """``count`` streams of ``clips`` random items of one actor back to back, with their
    per-step targets."""
    streams, stream_targets = [], []
    for _ in range(count):
        chosen = rng.choice(np.flatnonzero(actors == rng.choice(np.unique(actors))), clips)
        streams.append(np.concatenate([items[i] for i in chosen]))
        stream_targets.append(np.concatenate([np.repeat(targets[i][None], len(items[i]), 0)
                                              for i in chosen]).astype(np.float32))
    return streams, stream_targets


def stream_loss(voice_expert, streams, stream_targets, train: bool) -> torch.Tensor:
    reading, mask = readings(voice_expert, streams, train)
    target, _ = padded(stream_targets)
    valid = mask.reshape(-1) > 0.5
    return ccc_loss_rows(reading.reshape(-1, 2)[valid], target.reshape(-1, 2)[valid])


def training_items(voice, settings: VoiceRecipe, clips, rng) -> tuple:
    """Descriptors of every clip and of its augmented copies -> (items, targets [N,2] tensor,
    actors [N])."""
    items, targets, actors = [], [], []
    for index in range(len(clips)):
        clean = np.asarray(clips.audio(index), np.float32)
        copies = [clean] + [augmented_copy(clean, settings, rng) for _ in range(settings.copies)]
        for samples in copies:
            items.append(clip_descriptors(voice, samples))
            targets.append(clips.targets[index])
            actors.append(clips.actor[index])
    return items, torch.from_numpy(np.array(targets)), np.array(actors)


def voice_epoch(voice, optimiser, schedule, data: tuple, settings: VoiceRecipe, rng) -> float:
    """One pass over the clips (scored by their mean) and, per batch, streams of clips
    (scored per step); -> the mean loss."""
    items, targets, actors = data
    order = rng.permutation(len(items))
    losses = []
    for start in range(0, len(order), settings.batch_size):
        rows = order[start:start + settings.batch_size]
        means = clip_means(voice, [items[i] for i in rows], train=True)
        loss = ccc_loss_rows(means, targets[rows])
        if settings.streams_per_batch:
            streams = draw_streams(items, targets.numpy(), actors, settings.streams_per_batch,
                                   settings.stream_clips, rng)
            loss = loss + settings.stream_weight * stream_loss(voice, *streams, train=True)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    return float(np.mean(losses))


@torch.no_grad()
def held_out_scores(voice, valid_items, valid) -> list[float]:
    """Clip-mean CCC of arousal and valence on the held-out clips."""
    means = clip_means(voice, valid_items, train=False).numpy()
    return [ccc(means[:, k], valid.targets[:, k]) for k in range(2)]


class WeightAverage:
    """A running mean of state dicts (stochastic weight averaging, Izmailov et al. 2018)."""

    def __init__(self):
        self.weights, self.count = None, 0

    def add(self, state: dict) -> None:
        self.count += 1
        if self.weights is None:
            self.weights = {k: v.clone().float() for k, v in state.items()}
        else:
            self.weights = {k: self.weights[k] + (v.float() - self.weights[k]) / self.count
                            for k, v in state.items()}


def train_voice(voice, recipe: Recipe, train, valid, log) -> dict:
    """Train ``voice`` (a VoiceExpert) on RAVDESS clips ``train``; ``valid`` picks the epoch."""
    settings = recipe.voice
    rng = np.random.default_rng(recipe.seed)
    started = time.time()
    data = training_items(voice, settings, train, rng)
    valid_items = [clip_descriptors(voice, np.asarray(valid.audio(i), np.float32))
                   for i in range(len(valid))]
    valid_streams = draw_streams(valid_items, valid.targets, valid.actor, 40,
                                 settings.stream_clips, np.random.default_rng(1))
    log(f"voice: descriptors of {len(data[0])} training clips (with {settings.copies} "
        f"augmented copies each) in {time.time() - started:.0f} s")
    parameters = [p for p in voice.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(parameters, settings.lr, weight_decay=settings.weight_decay)
    batches = -(-len(data[0]) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, settings.epochs * batches)
    best = {"score": -np.inf}
    average = WeightAverage()
    for epoch in range(settings.epochs):
        loss = voice_epoch(voice, optimiser, schedule, data, settings, rng)
        scores = held_out_scores(voice, valid_items, valid)
        with torch.no_grad():
            held_out_streams = 1 - stream_loss(voice, *valid_streams, train=False).item()
        log(f"voice epoch {epoch + 1}: loss {loss:.3f}, held-out clips CCC "
            f"arousal {scores[0]:.3f} valence {scores[1]:.3f}, held-out streams per step "
            f"(mean of both) {held_out_streams:.3f}")
        if np.mean(scores) > best["score"]:
            best = {"score": float(np.mean(scores)), "epoch": epoch + 1,
                    "arousal": scores[0], "valence": scores[1],
                    "weights": {k: v.clone() for k, v in voice.state_dict().items()}}
        if settings.average_from_epoch and epoch + 1 >= settings.average_from_epoch:
            average.add(voice.state_dict())
    if average.weights is not None:
        voice.load_state_dict(average.weights)
        scores = held_out_scores(voice, valid_items, valid)
        log(f"voice: average of epochs {settings.average_from_epoch}-{settings.epochs}: "
            f"held-out clips CCC arousal {scores[0]:.3f} valence {scores[1]:.3f}")
        if np.mean(scores) > best["score"]:
            best = {"score": float(np.mean(scores)), "epoch": f"average of {average.count}",
                    "arousal": scores[0], "valence": scores[1], "weights": average.weights}
    voice.load_state_dict(best.pop("weights"))
    best["seconds"] = round(time.time() - started)
    return best


# ----- stage 3: the fusion -----

@torch.no_grad()
def encoded_sequences(model, recipe: Recipe, faces, voices) -> dict:
    """Synthetic training sequences (FER+ ``faces``, RAVDESS ``voices``) through both frozen
    experts: their encodings, the voice's readings and the targets."""
    from training.data.sequences import (SequenceDataset, SyntheticBuilder, SyntheticConfig,
                                         collate_sequences)

    settings = recipe.fusion
    config = SyntheticConfig(seconds=settings.seconds, p_face_missing=settings.p_face_missing,
                             p_silence=settings.p_silence, p_mismatch=settings.p_mismatch)
    model.eval()
    builder = SyntheticBuilder.from_data(faces, voices, model.config.face_crop, config)
    dataset = SequenceDataset(builder, settings.sequences, recipe.seed)
    parts = {"face": [], "voice": [], "voice_reading": [], "face_mask": [], "target": []}
    for start in range(0, len(dataset), 8):
        batch = collate_sequences([dataset[i] for i in range(start, min(start + 8,
                                                                         len(dataset)))])
        h, c = model.initial_state(batch["audio"].shape[0])
        face_state, voice_state = model.split_state(h, c)
        parts["face"].append(model.face.encode(batch["face"], batch["face_mask"],
                                               *face_state)[0])
        encoded = model.voice.encode(batch["audio"], *voice_state)[0]
        parts["voice"].append(encoded[..., model.voice.lstm.hidden_size:])
        parts["voice_reading"].append(model.voice.read(encoded)[0])
        parts["face_mask"].append(batch["face_mask"])
        parts["target"].append(batch["target"])
    return {key: torch.cat(value) for key, value in parts.items()}


def train_fusion(model, recipe: Recipe, faces, voices, log) -> dict:
    """Train the two confidence heads on synthetic sequences; both readings are frozen."""
    started = time.time()
    data = encoded_sequences(model, recipe, faces, voices)
    log(f"fusion: {len(data['target'])} synthetic sequences through both experts in "
        f"{time.time() - started:.0f} s")
    heads = [model.face.precision, model.voice.precision]
    optimiser = torch.optim.Adam([p for head in heads for p in head.parameters()],
                                 recipe.fusion.lr)
    with torch.no_grad():
        face_reading = model.face.read(data["face"])[0]
    voice_reading = data["voice_reading"]
    target = data["target"].reshape(-1, 2)
    for epoch in range(recipe.fusion.epochs):
        readings = {"face": face_reading, "voice": voice_reading,
                    "face_log_precision": model.face.read(data["face"])[1],
                    "voice_log_precision": model.voice.log_precision(data["voice"],
                                                                     voice_reading)}
        fused = model.fuse(readings, data["face_mask"]).reshape(-1, 2)
        loss = ccc_loss_rows(fused, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        scores = {name: [ccc(x.reshape(-1, 2)[:, k].numpy(), target[:, k].numpy())
                         for k in range(2)]
                  for name, x in (("fused", fused), ("face", face_reading),
                                  ("voice", voice_reading))}
    log("fusion (training sequences): CCC arousal / valence " + ", ".join(
        f"{name} {a:.3f} / {v:.3f}" for name, (a, v) in scores.items()))
    return {"seconds": round(time.time() - started), "train_ccc": scores}


def face_source_file(source: str, out: Path) -> Path:
    """The face expert's source model: the path itself, or git:COMMIT:PATH taken from this
    repository's history into OUT (e.g. affect-small-v5, the last model of one LSTM)."""
    if not source.startswith("git:"):
        return Path(source)
    parts = source.split(":", 2)
    commit, path = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
    root = Path(__file__).resolve().parents[1]
    shown = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{path}"],
                           capture_output=True) if commit and path else None
    if shown is None or shown.returncode != 0:
        raise RecipeError(f"face.source {source}: not in this checkout's git history "
                          "(write git:COMMIT:PATH, or give the ONNX file's path)")
    target = out / f"face-source-{commit}-{Path(path).name}"
    target.write_bytes(shown.stdout)
    return target


def run(recipe: Recipe, out: Path, init: Path | None = None, resume: bool = False,
        command: str = "") -> int:
    """The three stages into OUT (affect-train's entry for an experts network)."""
    if init or resume:
        raise RecipeError("the experts trainer starts from face.source and trains in "
                          "minutes: it takes no --init or --resume")
    from training.experts import ExpertsNet
    from training.warm_start import load_face_pathway

    torch.manual_seed(recipe.seed)
    torch.set_flush_denormal(True)
    # The voice expert's tensors are small: one thread is faster than two that wait for
    # each other, and leaves a core for the rest of the machine.
    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    face_source = face_source_file(recipe.face.source, out)
    data_root = Path(recipe.data.root)
    with (out / "train.log").open("a") as log_file:
        def log(line: str) -> None:
            print(line, flush=True)
            log_file.write(line + "\n")
            log_file.flush()

        model = ExpertsNet(recipe.network_config)
        load_face_pathway(model.face, face_source)
        log(f"face: expert from {recipe.face.source}")
        from training.data.ferplus import load_ferplus
        from training.data.ravdess import load_ravdess, split_actors

        train, valid = split_actors(load_ravdess(data_root / "ravdess-speech-16k"))
        figures = {"voice": train_voice(model.voice, recipe, train, valid, log)}
        faces = load_ferplus(data_root / "ferplus", "FER2013Train")
        figures["fusion"] = train_fusion(model, recipe, faces, train, log)
        card = {"training_command": command,
                "training_data": ["FER+ FER2013Train (face, via " + recipe.face.source + ")",
                                  "RAVDESS speech actors 1-16"]}
        save_checkpoint(out / "experts.pt", model.eval(), recipe.preset, card=card,
                        recipe=recipe.to_dict())
        (out / "train.json").write_text(json.dumps(figures, indent=1, default=float))
        log(f"wrote {out / 'experts.pt'}")
    return 0
