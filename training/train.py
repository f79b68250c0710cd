"""`affect-train`: one readable training loop (Adam, CCC loss, clipping, validation).

    affect-train --preset light --stage fused --data-root ../shared/data --out runs/light

Stages (chosen by flags, staged training = run them in order with --init):
  face   the visual branch on FER+ faces (voice silent)
  voice  the audio branch on RAVDESS speech (face masked)
  fused  the whole network on synthetic multimodal sequences
  recordings  the whole network on annotated audio-visual recordings
         (--dataset recola:PATH | manifest:CSV | sessions:FOLDER), e.g. to fine-tune
         on a lab's own recorded sessions
Every epoch: validation CCC per dimension, `last.pt`, and `best.pt` when the mean CCC
improved. `--ema DECAY` validates and saves an exponential moving average of the weights
instead (`best.pt` holds the average; `last.pt` the raw weights to resume from, plus it).
`--resume` continues from `last.pt` (weights, optimiser, epoch, best score).
Multi-GPU / multi-machine: `torchrun --nproc_per_node N -m training.train ...`
(DistributedDataParallel; gloo on CPU, NCCL on GPU).
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from training.losses import category_loss, modality_ccc_loss, regression_metrics
from training.network import (AUDIO_POOLINGS, AffectNet, cpu_has_native_bfloat16, preset,
                              with_audio_branch, with_fresh_face_input)


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "light"
    stage: str = "fused"
    out: Path = Path("runs/affect")
    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-4  # the paper's Adam learning rate
    clip_norm: float = 1.0
    seed: int = 0
    workers: int = 0
    resume: bool = False
    init: Path | None = None  # weights of an earlier stage (staged training)
    freeze: tuple[str, ...] = ()  # branches kept fixed: "audio", "visual"
    amp: bool = True  # mixed precision, used only on a GPU
    schedule: str = "constant"  # learning rate: "constant" (the paper) or "cosine" decay
    voice_only_weight: float = 0.0  # extra CCC term on steps without a face (losses.py)
    per_modality: bool = False  # CCC on face steps + CCC on faceless steps, no pooled term
    category_weight: float = 0.0  # cross-entropy of the training-only category head
    select: str = "step"  # best.pt by CCC over "step"s or over "sequence" means
    ema: float = 0.0  # decay of the weight average that is validated and saved; 0 = raw weights
    audio_pooling: str | None = None  # switch the audio branch's pooling (network.py); None = keep
    audio_kernel: int | None = None  # switch the first audio conv's taps; None = keep
    audio_descriptors: bool | None = None  # add/remove the fixed acoustic descriptors; None = keep
    fresh_face_input: bool = False  # restart the LSTM's weights from the visual features
    audio_bfloat16: bool = False  # the audio CNN's convolutions in bfloat16 on CPU
    audio_fft: bool = False  # the audio CNN's second convolution through the FFT
    descriptor_dropout: float = 0.0  # chance a sequence's acoustic descriptors are zeroed
    card: dict = field(default_factory=dict)  # provenance for the exported model's spec


@dataclass
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    return Distributed(dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def device_for(distributed: Distributed) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(distributed.local_rank)
        return torch.device("cuda", distributed.local_rank)
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    # Near-silent audio makes denormal floats in the audio CNN's backward pass, which
    # slow a CPU step several times over; flushing them to zero changes nothing else.
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    np.random.seed(seed)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def forward_batch(model, batch: dict[str, torch.Tensor], with_categories: bool = False):
    """-> arousal/valence [B,T,2]; with_categories: (that, category logits [B,T,K])."""
    network = model.module if hasattr(model, "module") else model
    h, c = network.initial_state(batch["audio"].shape[0])
    h, c = h.to(batch["audio"].device), c.to(batch["audio"].device)
    outputs = model(batch["audio"], batch["face"], batch["face_mask"], h, c,
                    with_categories=with_categories)
    return (outputs[0], outputs[3]) if with_categories else outputs[0]


@torch.no_grad()
def evaluate(model, loader: DataLoader, device: torch.device) -> dict:
    """CCC, Pearson and RMSE per dimension over every valid step of the loader, and under
    "per_sequence" the same over each sequence's mean prediction and mean target (how
    affect-eval scores a clip)."""
    model.eval()
    predictions, targets, sequence_means, sequence_targets = [], [], [], []
    for batch in loader:
        batch = to_device(batch, device)
        prediction = forward_batch(model, batch).float()
        step_mask = batch["step_mask"]
        valid = step_mask > 0.5
        predictions.append(prediction[valid].cpu().numpy())
        targets.append(batch["target"][valid].cpu().numpy())
        weights = step_mask.unsqueeze(-1) / step_mask.sum(dim=1).clamp_min(1.0)[:, None, None]
        sequence_means.append((prediction * weights).sum(dim=1).cpu().numpy())
        sequence_targets.append((batch["target"] * weights).sum(dim=1).cpu().numpy())
    metrics = regression_metrics(np.concatenate(predictions), np.concatenate(targets))
    metrics["per_sequence"] = regression_metrics(np.concatenate(sequence_means),
                                                 np.concatenate(sequence_targets))
    return metrics


class WeightAverage:
    """Exponential moving average of a model's weights and buffers (Polyak averaging).

    Why: in the voice stage the raw weights' validation CCC swung by up to 0.07 from one
    epoch to the next even at the end of the cosine schedule; the average is smoother.
    Measured on the default recipe's voice stage (decay 0.995) it did not score higher:
    RAVDESS clips 0.59 / 0.24 against 0.63 / 0.30 for the raw weights' best epoch.
    """

    def __init__(self, model: AffectNet, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema must be between 0 and 1 (e.g. 0.995), not {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: AffectNet) -> None:
        for average, current in zip(self.model.state_dict().values(),
                                    model.state_dict().values()):
            if average.dtype.is_floating_point:
                average.lerp_(current, 1.0 - self.decay)
            else:  # BatchNorm's batch counter
                average.copy_(current)


def learning_rate(step: int, total_steps: int, base: float, schedule: str) -> float:
    """Learning rate at ``step``: constant, or cosine decay to 5% after a 2% linear warm-up."""
    if schedule == "constant":
        return base
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}: choose constant or cosine")
    warmup = max(1, total_steps // 50)
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def training_loss(model, batch: dict, config: TrainConfig, autocast) -> torch.Tensor:
    """CCC loss on arousal/valence, plus the category head's cross-entropy when weighted.
    Only the forward pass runs under autocast; the losses are computed in float32."""
    with_categories = config.category_weight > 0
    with autocast:
        output = forward_batch(model, batch, with_categories=with_categories)
    prediction = output[0] if with_categories else output
    loss = modality_ccc_loss(prediction.float(), batch["target"], batch["step_mask"],
                             batch["face_mask"], config.voice_only_weight,
                             config.per_modality)
    if with_categories:
        loss = loss + config.category_weight * category_loss(
            output[1].float(), batch["category"], batch["step_mask"])
    return loss


SELECTIONS = ("step", "sequence", "clip", "balanced")
SELECTION_STAGE = {"clip": "voice", "balanced": "fused"}  # the stage whose held-out sets they score


def mean_ccc(metrics: dict, select: str = "step") -> float:
    """The score that picks best.pt: mean CCC over steps, or over sequence means (clip: the
    sequences are every held-out clip once, whole); balanced: the mean of the steps' score
    and each single-modality set's clip-level score."""
    if select not in SELECTIONS:
        raise ValueError(f"--select takes one of {', '.join(SELECTIONS)}, not {select!r}")
    if select == "balanced":
        if not metrics.get("alone"):
            raise ValueError("--select balanced needs the single-modality validation sets")
        scores = [mean_ccc(metrics), *(mean_ccc(alone, "sequence")
                                       for alone in metrics["alone"].values())]
        return sum(scores) / len(scores)
    scored = metrics["per_sequence"] if select in ("sequence", "clip") else metrics
    return (scored["arousal"]["ccc"] + scored["valence"]["ccc"]) / 2


def frozen_branches(model: AffectNet, names: tuple[str, ...]) -> list[torch.nn.Module]:
    branches = {"audio": model.audio, "visual": model.visual}
    for name in names:
        if name not in branches:
            raise ValueError(f"--freeze takes 'audio' or 'visual', not {name!r}")
    return [branches[name] for name in names]


def freeze_branches(model: AffectNet, names: tuple[str, ...]) -> None:
    for branch in frozen_branches(model, names):
        for parameter in branch.parameters():
            parameter.requires_grad_(False)


def train_mode(model: AffectNet, frozen: tuple[str, ...]) -> None:
    """model.train(), but frozen branches stay in eval mode: their BatchNorm statistics
    must not drift either (fused batches hold few distinct faces, so they would)."""
    model.train()
    for branch in frozen_branches(model, frozen):
        branch.eval()


def build_model(config: TrainConfig) -> AffectNet:
    if config.init is None:
        model = AffectNet(preset(config.preset))
    else:
        model, _ = load_checkpoint(config.init)
        if model.config != preset(config.preset):
            print(f"note: --init {config.init} has its own architecture; --preset ignored")
    converted = with_audio_branch(model, config.audio_pooling, config.audio_kernel,
                                  config.audio_descriptors)
    if converted is not model:
        print(f"note: audio branch: pooling {model.config.audio_pooling} -> "
              f"{converted.config.audio_pooling}, first-conv taps {model.config.audio_kernel} "
              f"-> {converted.config.audio_kernel}, descriptors "
              f"{model.config.audio_descriptors} -> {converted.config.audio_descriptors}; "
              "the LSTM's weights from the audio features start fresh")
    if config.fresh_face_input:
        converted = with_fresh_face_input(converted, config.seed)
        print("note: the LSTM's input weights from the face features start fresh")
    return converted


def audio_bfloat16_here(requested: bool, device: torch.device) -> bool:
    """--audio-bfloat16 where it speeds training up: on a CPU with native bfloat16 only.
    Elsewhere the audio CNN trains in float32, with a note, so one recipe runs well on any
    machine (the two differ slightly in rounding; tests/test_network.py bounds it)."""
    if not requested:
        return False
    if device.type != "cpu":
        print("note: --audio-bfloat16 applies to CPU training only; on a GPU the whole "
              "network trains in mixed precision anyway")
        return False
    if not cpu_has_native_bfloat16():
        print("note: this CPU has no native bfloat16 (AVX-512 BF16 or AMX), where emulated "
              "bfloat16 trains the audio CNN about 6x slower: training it in float32 "
              "instead (python benchmarks/audio_training_speed.py measures both)")
        return False
    return True


def train(config: TrainConfig, train_set: Dataset, valid_set: Dataset,
          collate, distributed: Distributed | None = None,
          valid_alone: dict[str, Dataset] | None = None) -> dict:
    """Train and validate; returns the best validation metrics. Rank 0 writes checkpoints.
    ``valid_alone`` (name -> set) is validated too, under metrics["alone"] (--select
    balanced)."""
    distributed = distributed or Distributed()
    device = device_for(distributed)
    seed_everything(config.seed)
    model = build_model(config).to(device)
    model.audio.train_in_bfloat16 = audio_bfloat16_here(config.audio_bfloat16, device)
    model.audio.train_by_fft = config.audio_fft
    if config.descriptor_dropout and model.audio.descriptors is None:
        raise ValueError("--descriptor-dropout zeroes the acoustic descriptors, and this "
                         "network has none: add --audio-descriptors")
    model.descriptor_dropout = config.descriptor_dropout
    freeze_branches(model, config.freeze)
    network = model
    if distributed.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            # voice-only batches leave the ResNet unused; DDP must not wait for its grads
            find_unused_parameters=True)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                 lr=config.learning_rate)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    sampler = DistributedSampler(train_set, seed=config.seed) if distributed.enabled else None
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=sampler is None,
                              sampler=sampler, collate_fn=collate, num_workers=config.workers,
                              drop_last=True, generator=torch.Generator().manual_seed(config.seed))
    valid_loader = DataLoader(valid_set, batch_size=config.batch_size, collate_fn=collate,
                              num_workers=config.workers)
    alone_loaders = {name: DataLoader(dataset, batch_size=config.batch_size,
                                      collate_fn=collate, num_workers=config.workers)
                     for name, dataset in (valid_alone or {}).items()}
    if len(train_loader) == 0:
        raise ValueError(f"the training set ({len(train_set)} sequences) is smaller than one "
                         f"batch of {config.batch_size}; lower --batch-size")

    average = WeightAverage(network, config.ema) if config.ema else None
    validated = average.model if average else network  # what is scored and saved as best
    out = Path(config.out)
    start_epoch, best, step = 0, {"score": -math.inf, "metrics": None}, 0
    if config.resume and (out / "last.pt").is_file():
        _, checkpoint = load_checkpoint(out / "last.pt")
        network.load_state_dict(checkpoint["model"])
        if average:
            average.model.load_state_dict(checkpoint.get("ema", checkpoint["model"]))
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_epoch, step = checkpoint["epoch"] + 1, checkpoint["step"]
        best = checkpoint["best"]
        if distributed.is_main:
            print(f"resumed from {out / 'last.pt'} at epoch {start_epoch}")
    writer = _tensorboard(out) if distributed.is_main else None

    for epoch in range(start_epoch, config.epochs):
        for dataset in (train_set, valid_set):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch if dataset is train_set else 0)
        if sampler is not None:
            sampler.set_epoch(epoch)
        train_mode(network, config.freeze)
        started, frames, losses = time.perf_counter(), 0, []
        progress = _progress(train_loader, f"epoch {epoch + 1}/{config.epochs}",
                             distributed.is_main)
        for batch in progress:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config.epochs * len(train_loader),
                                            config.learning_rate, config.schedule)
            batch = to_device(batch, device)
            autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext()
            loss = training_loss(model, batch, config, autocast)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            scaler.step(optimizer)
            scaler.update()
            if average:
                average.update(network)
            step += 1
            losses.append(loss.item())
            frames += int(batch["step_mask"].sum().item()) * distributed.world_size
            rate = frames / (time.perf_counter() - started)
            if hasattr(progress, "set_postfix"):
                progress.set_postfix(loss=f"{loss.item():.3f}", steps_per_s=f"{rate:.0f}")
            if writer:
                writer.add_scalar("train/loss", loss.item(), step)
                writer.add_scalar("train/steps_per_second", rate, step)

        if distributed.enabled:
            # DDP syncs gradients, not BatchNorm running statistics: take rank 0's so that
            # every rank validates and saves the same model.
            for buffer in [*network.buffers(), *(average.model.buffers() if average else [])]:
                dist.broadcast(buffer, src=0)
        metrics = evaluate(validated, valid_loader, device)
        if alone_loaders:
            metrics["alone"] = {name: evaluate(validated, loader, device)
                                for name, loader in alone_loaders.items()}
        score = mean_ccc(metrics, config.select)
        if distributed.is_main:
            print(f"epoch {epoch + 1}: train loss {np.mean(losses):.3f} "
                  f"({frames / (time.perf_counter() - started):.0f} steps/s), valid CCC arousal "
                  f"{metrics['arousal']['ccc']:.3f} valence {metrics['valence']['ccc']:.3f} "
                  f"(per sequence {metrics['per_sequence']['arousal']['ccc']:.3f} / "
                  f"{metrics['per_sequence']['valence']['ccc']:.3f})",
                  flush=True)
            for name, alone in metrics.get("alone", {}).items():
                print(f"  {name}, per clip: CCC arousal {alone['per_sequence']['arousal']['ccc']:.3f}"
                      f" valence {alone['per_sequence']['valence']['ccc']:.3f}", flush=True)
            if writer:
                for name in ("arousal", "valence"):
                    writer.add_scalar(f"valid/ccc_{name}", metrics[name]["ccc"], step)
            extra = {"epoch": epoch, "step": step, "train_config": _plain(config),
                     "card": {**config.card, "validation": metrics}}
            if score > best["score"]:
                best = {"score": score, "metrics": metrics, "epoch": epoch}
                save_checkpoint(out / "best.pt", validated, config.preset, best=best, **extra)
            if average:
                extra["ema"] = average.model.state_dict()
            save_checkpoint(out / "last.pt", network, config.preset, best=best,
                            optimizer=optimizer.state_dict(), **extra)
    if writer:
        writer.close()
    if distributed.enabled:
        check_ranks_agree(network, out, distributed)
    return best


def weights_checksum(model: torch.nn.Module) -> float:
    """A float64 fingerprint of every parameter and buffer (equal weights -> equal sum)."""
    return float(sum((tensor.double() * (index + 1)).sum().item()
                     for index, tensor in enumerate(model.state_dict().values())))


def check_ranks_agree(model: torch.nn.Module, out: Path, distributed: Distributed) -> None:
    """Gather each rank's weights checksum; record them in last.pt and fail if they differ."""
    checksums = [None] * distributed.world_size
    dist.all_gather_object(checksums, weights_checksum(model))
    if distributed.is_main:
        checkpoint_path = out / "last.pt"
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        checkpoint["rank_checksums"] = checksums
        torch.save(checkpoint, checkpoint_path)
    if len(set(checksums)) != 1:
        raise RuntimeError(f"ranks ended with different weights: {checksums}")


def _plain(config: TrainConfig) -> dict:
    """The config as plain types, loadable with torch.load(weights_only=True)."""
    values = asdict(config)
    return {key: (str(value) if isinstance(value, Path) else value)
            for key, value in values.items()}


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("note: tensorboard is not installed; no TensorBoard logs")
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _progress(iterable, description: str, show: bool):
    if not show:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=description, unit="batch", dynamic_ncols=True,
                disable=not sys.stderr.isatty() and os.environ.get("AFFECT_PROGRESS") != "1")


# ----- datasets for each stage -----

DEFAULT_DATA_ROOT = Path("../shared/data")
REHEARSAL_STEPS = 50  # 2 s of a held face, beside voice clips of up to 4 s
FACE_ALONE_STEPS = 10  # a still face as affect-eval scores FER+ images
ALONE_VALID_SEQUENCES = 240  # faces alone; voices alone are every RAVDESS 17-20 clip (240)


def check_stage_options(stage: str, voice_augment, face_rehearsal: float,
                        voice_rehearsal: float = 0.0, p_mismatch: float = 0.0) -> None:
    """Refuse stage-specific options elsewhere: ignoring them would mislabel the run."""
    if p_mismatch > 0 and stage != "fused":
        raise ValueError(f"--p-mismatch is for the fused stage, not {stage!r}")
    if face_rehearsal > 0 and stage not in ("voice", "fused"):
        raise ValueError(f"--face-rehearsal is for the voice and fused stages, not {stage!r}")
    if voice_rehearsal > 0 and stage != "fused":
        raise ValueError(f"--voice-rehearsal is for the fused stage, not {stage!r}")
    if face_rehearsal + voice_rehearsal >= 1:
        raise ValueError("--face-rehearsal plus --voice-rehearsal must stay below 1 "
                         "(the rest are the stage's own sequences)")
    if voice_augment is not None and voice_augment.enabled and stage != "voice":
        raise ValueError(f"--voice-speed and --voice-gain-db are for the voice stage, "
                         f"not {stage!r}: drop them from this command")


def build_datasets(stage: str, data_root: Path, crop, train_sequences: int,
                   valid_sequences: int, steps: int, seed: int,
                   p_face_missing: float = 0.15, p_silence: float = 0.15,
                   voice_augment=None, face_rehearsal: float = 0.0,
                   voice_rehearsal: float = 0.0, p_mismatch: float = 0.0,
                   whole_valid_clips: bool = False):
    """-> (train set, validation set) of sequences for one training stage.

    Validation is fixed (seed + 1, epoch 0) and drawn from held-out identities:
    FER2013Valid faces, RAVDESS actors 17-20. Rehearsal mixes single-modality sequences
    into training only (validation keeps the stage's own kind): ``face_rehearsal`` (voice
    and fused stages) is the share of FER2013Train faces held for REHEARSAL_STEPS with the
    voice silent, ``voice_rehearsal`` (fused stage) the share of whole RAVDESS training
    clips without a face. ``p_mismatch`` (fused stage): share of training segments whose
    face disagrees with the voice (SyntheticConfig). ``whole_valid_clips`` (voice stage,
    --select clip): validate on every held-out clip once, whole, not on valid_sequences
    random stretches of them.
    """
    check_stage_options(stage, voice_augment, face_rehearsal, voice_rehearsal, p_mismatch)
    from training.data.ferplus import load_ferplus
    from training.data.ravdess import load_ravdess, split_actors
    from training.data.sequences import (NO_JITTER, FaceOnlyBuilder, SequenceDataset,
                                         RehearsalBuilder, SyntheticBuilder,
                                         SyntheticConfig, VoiceAugment, VoiceOnlyBuilder,
                                         WholeClips)

    def pair(train_builder, valid_builder):
        return (SequenceDataset(train_builder, train_sequences, seed),
                SequenceDataset(valid_builder, valid_sequences, seed + 1))

    if stage == "face":
        faces = [load_ferplus(data_root / "ferplus", split)
                 for split in ("FER2013Train", "FER2013Valid")]
        return pair(FaceOnlyBuilder(faces[0], crop, steps),
                    FaceOnlyBuilder(faces[1], crop, steps, jitter=NO_JITTER))
    voices = split_actors(load_ravdess(data_root / "ravdess-speech-16k"))
    if stage == "voice":
        train_builder = VoiceOnlyBuilder(voices[0], crop, steps, voice_augment or VoiceAugment())
        if face_rehearsal > 0:
            faces = load_ferplus(data_root / "ferplus", "FER2013Train")
            train_builder = RehearsalBuilder(
                train_builder, FaceOnlyBuilder(faces, crop, REHEARSAL_STEPS), face_rehearsal)
        train_set, valid_set = pair(train_builder, VoiceOnlyBuilder(voices[1], crop, steps))
        # --select clip: validate as the RAVDESS bar scores
        return train_set, WholeClips(voices[1], crop) if whole_valid_clips else valid_set
    if stage == "fused":
        faces = [load_ferplus(data_root / "ferplus", split)
                 for split in ("FER2013Train", "FER2013Valid")]
        # Validation keeps the default dropout so scores compare across runs.
        train_config = SyntheticConfig(seconds=steps / 25, p_face_missing=p_face_missing,
                                       p_silence=p_silence, p_mismatch=p_mismatch)
        train_builder = SyntheticBuilder.from_data(faces[0], voices[0], crop, train_config)
        # The fused stage is the only one that shows the LSTM both modalities, and it must
        # not forget how to read each alone (the FER+ and RAVDESS bars score them alone).
        if face_rehearsal > 0:  # share among what voice rehearsal leaves, so shares add up
            train_builder = RehearsalBuilder(
                train_builder, FaceOnlyBuilder(faces[0], crop, REHEARSAL_STEPS),
                face_rehearsal / (1 - voice_rehearsal))
        if voice_rehearsal > 0:
            train_builder = RehearsalBuilder(train_builder, VoiceOnlyBuilder(voices[0], crop),
                                             voice_rehearsal)
        return pair(train_builder,
                    SyntheticBuilder.from_data(faces[1], voices[1], crop,
                                               SyntheticConfig(seconds=steps / 25)))
    raise ValueError(f"unknown stage {stage!r}: choose face, voice, fused or recordings")


def single_modality_validation(data_root: Path, crop, seed: int) -> dict[str, Dataset]:
    """Held-out voices alone (every RAVDESS clip of actors 17-20 once, whole) and faces alone
    (FER2013Valid, held for FACE_ALONE_STEPS), as the RAVDESS and FER+ bars score them:
    with --select balanced the fused stage keeps the epoch that serves fusion and each
    modality alone (its epochs' RAVDESS arousal swung by 0.03 while the fused score led)."""
    from training.data.ferplus import load_ferplus
    from training.data.ravdess import load_ravdess, split_actors
    from training.data.sequences import NO_JITTER, FaceOnlyBuilder, SequenceDataset, WholeClips

    voices = split_actors(load_ravdess(data_root / "ravdess-speech-16k"))[1]
    faces = load_ferplus(data_root / "ferplus", "FER2013Valid")
    return {"voice alone": WholeClips(voices, crop),
            "face alone": SequenceDataset(FaceOnlyBuilder(faces, crop, FACE_ALONE_STEPS,
                                                          jitter=NO_JITTER),
                                          ALONE_VALID_SEQUENCES, seed + 1)}


def recording_datasets(dataset: str, crop, steps: int, seed: int):
    """-> (train, validation) chunks of annotated audio-visual recordings, speaker-disjoint.

    dataset is KIND:PATH with KIND recola (train / dev partitions), manifest (its split
    column, else whole speakers drawn aside) or sessions (a folder of recorded session
    folders with ratings.csv, or one session folder).
    """
    from training.data.manifest import (ChunkDataset, load_manifest, session_recording,
                                        split_by_speaker)
    from training.data.recola import load_recola
    from training.data.video_cache import TrackSettings

    kind, separator, path = dataset.partition(":")
    if not separator or not path:
        raise ValueError(f"--dataset must be KIND:PATH, e.g. manifest:my/data.csv "
                         f"(got {dataset!r})")
    settings, path = TrackSettings(crop), Path(path)
    if kind == "recola":
        data = load_recola(path, settings)
        train, valid = data.split("train"), data.split("dev")
    elif kind == "manifest":
        data = load_manifest(path, settings)
        if {"train", "valid"} <= set(data.splits):
            train, valid = data.split("train"), data.split("valid")
        else:
            train, valid = split_by_speaker(data.recordings, seed=seed)
    elif kind == "sessions":
        folders = sorted(p.parent for p in path.glob("*/ratings.csv")) or [path]
        recordings = [session_recording(folder, settings) for folder in folders]
        if len({r.speaker for r in recordings}) >= 2:
            train, valid = split_by_speaker(recordings, seed=seed)
        else:
            print("note: one speaker only, so validation reuses the training sessions "
                  "(fine-tuning check, not a held-out score)")
            train, valid = recordings, recordings
    else:
        raise ValueError(f"unknown recordings kind {kind!r}: choose recola, manifest or "
                         "sessions")
    return (ChunkDataset(train, steps, jitter=True, seed=seed),
            ChunkDataset(valid, steps, seed=seed))


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="affect-train", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--preset", default="light", help="network preset (paper, light, ...)")
    parser.add_argument("--stage", default="fused",
                        choices=["face", "voice", "fused", "recordings"],
                        help="what the sequences are: FER+ faces, RAVDESS voices, synthetic "
                             "face + voice, or annotated recordings (--dataset)")
    parser.add_argument("--dataset", help="recordings stage: recola:PATH, manifest:CSV or "
                                          "sessions:FOLDER (annotated audio-visual data)")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                        help="folder holding ferplus/ and ravdess-speech-16k/")
    parser.add_argument("--out", type=Path, required=True, help="run folder for checkpoints")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the training sequences")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per batch")
    parser.add_argument("--steps", type=int, default=100,
                        help="40 ms steps per training sequence")
    parser.add_argument("--train-sequences", type=int, default=2000,
                        help="sequences drawn per epoch (fresh each epoch)")
    parser.add_argument("--valid-sequences", type=int, default=200,
                        help="held-out sequences scored after each epoch")
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (AdamW)")
    parser.add_argument("--p-face-missing", type=float, default=0.15,
                        help="fused stage: share of segments without a face")
    parser.add_argument("--p-silence", type=float, default=0.15,
                        help="fused stage: share of segments without a voice")
    parser.add_argument("--p-mismatch", type=float, default=0.0,
                        help="fused stage: share of training segments whose face shows another "
                             "emotion than the voice (target still their mean), so the model "
                             "learns to weigh the voice while it sees a face")
    parser.add_argument("--voice-only-weight", type=float, default=0.0,
                        help="weight of an extra CCC loss on the steps without a face "
                             "(keeps voice-only predictions calibrated in fused training)")
    parser.add_argument("--per-modality-ccc", action="store_true",
                        help="loss = CCC over steps with a face + CCC over steps without, "
                             "instead of one pooled CCC (voice stage with --face-rehearsal)")
    parser.add_argument("--category-weight", type=float, default=0.0,
                        help="weight of a cross-entropy loss on a training-only category "
                             "head (FER+ vote shares, RAVDESS emotion); not exported")
    parser.add_argument("--voice-speed", type=float, default=0.0,
                        help="voice stage: play each training clip at a random speed within "
                             "1 +- this (e.g. 0.1)")
    parser.add_argument("--voice-gain-db", type=float, default=0.0,
                        help="voice stage: random level change within +- this many dB")
    parser.add_argument("--face-rehearsal", type=float, default=0.0,
                        help="voice and fused stages: share of training sequences that are "
                             "FER+ faces alone (keeps the LSTM reading faces while it learns "
                             "the voice)")
    parser.add_argument("--voice-rehearsal", type=float, default=0.0,
                        help="fused stage: share of training sequences that are RAVDESS "
                             "clips alone (keeps the LSTM reading voices without a face)")
    parser.add_argument("--select", default="step", choices=SELECTIONS,
                        help="keep as best.pt the epoch with the best mean CCC over steps, "
                             "or over each sequence's mean (clip-level scoring); clip (voice "
                             "stage): the same over every held-out clip once, whole, as the "
                             "RAVDESS bar scores them; balanced (fused stage): the mean of the "
                             "step score and the clip-level scores of every held-out voice "
                             "alone and 240 faces alone")
    parser.add_argument("--ema", type=float, default=0.0,
                        help="validate and save an exponential moving average of the weights "
                             "with this decay per optimiser step (e.g. 0.995); 0 = off")
    parser.add_argument("--audio-pooling", choices=AUDIO_POOLINGS,
                        help="audio features: 'filters' (the paper: max across filter "
                             "groups, tied to sample positions) or 'time' (each filter's "
                             "log max and mean over the window); default: keep the preset's "
                             "or --init's")
    parser.add_argument("--audio-kernel", type=int,
                        help="taps of the first audio conv at 16 kHz (the paper: 20 = 1.25 ms); "
                             "a new value starts that conv fresh; default: keep the preset's "
                             "or --init's")
    parser.add_argument("--audio-descriptors", action="store_true", default=None,
                        help="also feed the LSTM fixed acoustic descriptors of each window "
                             "(log-mel shape, energy, pitch, voicing; "
                             "training/audio_descriptors.py); default: keep the preset's or "
                             "--init's")
    parser.add_argument("--fresh-face-input", action="store_true",
                        help="fused stage: restart the LSTM's input weights from the face "
                             "features (the face stage leaves them saturating the gates, so "
                             "the voice goes unheard whenever a face is seen); needs --init")
    parser.add_argument("--audio-bfloat16", action="store_true",
                        help="train the audio CNN's convolutions in bfloat16 on CPU (1.2-1.5x "
                             "faster where the CPU has AVX-512 BF16 or AMX; elsewhere it "
                             "trains in float32, with a note); checkpoints, export and "
                             "evaluation stay float32")
    parser.add_argument("--audio-fft", action="store_true",
                        help="train the audio CNN's second convolution through the FFT: the "
                             "same operation with float rounding, less time on a CPU; "
                             "checkpoints, export and evaluation are unchanged")
    parser.add_argument("--descriptor-dropout", type=float, default=0.0,
                        help="in training, zero a whole sequence's acoustic descriptors with "
                             "this chance, so the LSTM also reads the voice from the learned "
                             "audio features alone (needs --audio-descriptors); export and "
                             "evaluation always feed them")
    parser.add_argument("--schedule", default="constant", choices=["constant", "cosine"],
                        help="learning-rate schedule (constant = the paper)")
    parser.add_argument("--clip-norm", type=float, default=1.0,
                        help="gradient norm clipping (default 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and sequences")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--init", type=Path, help="start from this checkpoint (staged training)")
    parser.add_argument("--freeze", nargs="*", default=[], choices=["audio", "visual"],
                        help="branches whose weights stay as they are")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    distributed = setup_distributed()
    try:
        config = TrainConfig(
            preset=args.preset, stage=args.stage, out=args.out, epochs=args.epochs,
            batch_size=args.batch_size, learning_rate=args.lr, clip_norm=args.clip_norm,
            seed=args.seed, workers=args.workers, resume=args.resume, init=args.init,
            freeze=tuple(args.freeze), schedule=args.schedule,
            voice_only_weight=args.voice_only_weight, per_modality=args.per_modality_ccc,
            category_weight=args.category_weight,
            select=args.select, ema=args.ema, audio_pooling=args.audio_pooling,
            audio_kernel=args.audio_kernel, audio_descriptors=args.audio_descriptors,
            fresh_face_input=args.fresh_face_input, audio_bfloat16=args.audio_bfloat16,
            audio_fft=args.audio_fft, descriptor_dropout=args.descriptor_dropout,
            card={"training_command": "affect-train " + " ".join(argv or sys.argv[1:])})
        from training.data.sequences import VoiceAugment

        if args.audio_fft and args.audio_bfloat16:
            raise ValueError("--audio-fft and --audio-bfloat16 are two ways to speed up the "
                             "audio CNN's training: choose one (benchmarks/"
                             "audio_training_speed.py times both on this machine)")
        if not 0.0 <= args.descriptor_dropout < 1.0:
            raise ValueError(f"--descriptor-dropout is a chance in [0, 1), not "
                             f"{args.descriptor_dropout}")
        if args.fresh_face_input and not args.init:
            raise ValueError("--fresh-face-input restarts weights an earlier stage trained: "
                             "give that stage's checkpoint with --init")
        only_stage = SELECTION_STAGE.get(args.select)
        if only_stage and args.stage != only_stage:
            raise ValueError(f"--select {args.select} is for the {only_stage} stage, not "
                             f"{args.stage!r}")
        voice_augment = VoiceAugment(args.voice_speed, args.voice_gain_db)
        crop = (load_checkpoint(args.init)[0].config if args.init else preset(args.preset)).face_crop
        if args.stage == "recordings":
            if not args.dataset:
                raise ValueError("--stage recordings needs --dataset KIND:PATH")
            check_stage_options(args.stage, voice_augment, args.face_rehearsal,
                                args.voice_rehearsal, args.p_mismatch)
            train_set, valid_set = recording_datasets(args.dataset, crop, args.steps, args.seed)
        else:
            train_set, valid_set = build_datasets(args.stage, args.data_root, crop,
                                                  args.train_sequences, args.valid_sequences,
                                                  args.steps, args.seed, args.p_face_missing,
                                                  args.p_silence, voice_augment,
                                                  args.face_rehearsal, args.voice_rehearsal,
                                                  args.p_mismatch,
                                                  whole_valid_clips=args.select == "clip")
        valid_alone = None
        if args.select == "balanced":
            valid_alone = single_modality_validation(args.data_root, crop, args.seed)
        from training.data.sequences import collate_sequences

        best = train(config, train_set, valid_set, collate_sequences, distributed, valid_alone)
        if distributed.enabled:
            # Tear down together: a rank that destroys its gloo group while the other is still
            # writing last.pt aborts ("terminate called without an active exception").
            dist.barrier()
    except (ValueError, OSError, CheckpointError) as error:
        print(f"affect-train: {error}", file=sys.stderr)
        return 1
    finally:
        if distributed.enabled:
            dist.destroy_process_group()
    if distributed.is_main and best["metrics"]:
        metrics = best["metrics"]
        print(f"best epoch {best['epoch'] + 1}: valid CCC arousal "
              f"{metrics['arousal']['ccc']:.3f} valence {metrics['valence']['ccc']:.3f}; "
              f"checkpoints in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
