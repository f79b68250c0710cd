"""`affect-train`: train a model from a recipe file (training/recipes/*.toml).

    affect-train --config training/recipes/affect_small_v5.toml --out runs/v5
    affect-train --config training/recipes/default.toml --out runs/v7 --set data.root=PATH

The recipe holds every choice (network, data, each stage's optimisation; training/recipe.py)
and is saved whole in every checkpoint. Its network picks the trainer: an experts network
trains by training/train_experts.py; any other end to end here, in the stages the recipe
lists, each starting from the previous stage's best.pt (the first from --init, if given):
  face        the network on FER+ faces (voice at the noise floor)
  voice       on RAVDESS speech, face masked
  fused       on synthetic face + voice sequences
  recordings  on annotated audio-visual recordings (recipe key recordings.dataset:
              recola:PATH | manifest:CSV | sessions:FOLDER), e.g. a lab's own sessions
Each stage writes OUT/STAGE/: last.pt every epoch, best.pt when its validation score
improved, TensorBoard logs, and `seconds` once it finished. --resume keeps the finished
stages and continues an interrupted one from its last.pt.
Multi-GPU / multi-machine: `torchrun --nproc_per_node N -m training.train --config ...`
(DistributedDataParallel; gloo on CPU, NCCL on GPU).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from training.losses import category_loss, modality_ccc_loss, regression_metrics
from training.network import AffectNet, with_audio_branch
from training.data.sequences import collate_sequences
from training.recipe import Recipe, read_recipe, trainer_module
from training.stage_data import check_fused, stage_sets

# ----- the recipe of end-to-end training -----


@dataclass(frozen=True)
class Stage:
    """One stage: its sequences and its optimisation (a recipe table such as [face])."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-4  # peak learning rate of Adam (the paper's 1e-4)
    schedule: Literal["constant", "cosine"] = "constant"  # constant = the paper
    clip_norm: float = 1.0  # gradient norm clipping
    freeze: tuple[Literal["audio", "visual"], ...] = ()  # branches whose weights stay fixed
    steps: int = 100  # 40 ms steps per training sequence
    train_sequences: int = 2000  # drawn afresh each epoch
    valid_sequences: int = 200  # held-out sequences scored after each epoch
    category_weight: float = 0.0  # cross-entropy of the training-only category head
    voice_only_weight: float = 0.0  # extra CCC term on the steps without a face (losses.py)
    per_modality_ccc: bool = False  # CCC on face steps + CCC on faceless steps, no pooled one
    select: Literal["step", "sequence"] = "step"  # best.pt by CCC over steps or sequence means
    # Switch the audio branch's pooling (training/network.py) at this stage's start; the
    # LSTM's weights from the audio features then start fresh. None = keep.
    audio_pooling: Literal["filters", "time"] | None = None


@dataclass(frozen=True)
class VoiceStage(Stage):
    speed: float = 0.0  # play each training clip at a random speed within 1 +- this
    gain_db: float = 0.0  # and a random level within +- this many dB
    face_rehearsal: float = 0.0  # share of training sequences that are FER+ faces alone


@dataclass(frozen=True)
class FusedStage(Stage):
    p_face_missing: float = 0.15  # share of segments without a face
    p_silence: float = 0.15  # share of segments without a voice
    face_rehearsal: float = 0.0  # share of training sequences that are FER+ faces alone
    voice_rehearsal: float = 0.0  # share that are whole RAVDESS clips alone


@dataclass(frozen=True)
class RecordingsStage(Stage):
    dataset: str = ""  # recola:PATH, manifest:CSV or sessions:FOLDER


@dataclass(frozen=True, kw_only=True)
class StagedRecipe(Recipe):
    stages: tuple[Literal["face", "voice", "fused", "recordings"], ...] = ("fused",)
    face: Stage = field(default_factory=Stage)
    voice: VoiceStage = field(default_factory=VoiceStage)
    fused: FusedStage = field(default_factory=FusedStage)
    recordings: RecordingsStage = field(default_factory=RecordingsStage)


RECIPE = StagedRecipe  # this trainer's schema (training/recipe.py)
FINISHED = "seconds"  # written into a stage's folder when it finished: its training time


@dataclass(frozen=True)
class StageRun:
    """One stage of a recipe, where it writes and what it starts from."""

    recipe: StagedRecipe
    stage: str
    out: Path
    init: Path | None = None
    resume: bool = False
    command: str = ""

    @property
    def settings(self) -> Stage:
        return getattr(self.recipe, self.stage)


# ----- devices and processes -----


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


# ----- the network's outputs, losses and scores -----


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


def learning_rate(step: int, total_steps: int, base: float, schedule: str) -> float:
    """Learning rate at ``step``: constant, or cosine decay to 5% after a 2% linear warm-up."""
    if schedule == "constant":
        return base
    warmup = max(1, total_steps // 50)
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def training_loss(model, batch: dict, settings: Stage, autocast) -> torch.Tensor:
    """CCC loss on arousal/valence, plus the category head's cross-entropy when weighted.
    Only the forward pass runs under autocast; the losses are computed in float32."""
    with_categories = settings.category_weight > 0
    with autocast:
        output = forward_batch(model, batch, with_categories=with_categories)
    prediction = output[0] if with_categories else output
    loss = modality_ccc_loss(prediction.float(), batch["target"], batch["step_mask"],
                             batch["face_mask"], settings.voice_only_weight,
                             settings.per_modality_ccc)
    if with_categories:
        loss = loss + settings.category_weight * category_loss(
            output[1].float(), batch["category"], batch["step_mask"])
    return loss


def mean_ccc(metrics: dict, select: str = "step") -> float:
    """The score that picks best.pt: mean CCC over steps, or over sequence means."""
    scored = metrics["per_sequence"] if select == "sequence" else metrics
    return (scored["arousal"]["ccc"] + scored["valence"]["ccc"]) / 2


# ----- the model of a stage -----


def frozen_branches(model: AffectNet, names: tuple[str, ...]) -> list[torch.nn.Module]:
    branches = {"audio": model.audio, "visual": model.visual}
    return [branches[name] for name in names]


def train_mode(model: AffectNet, frozen: tuple[str, ...]) -> None:
    """model.train(), but frozen branches stay in eval mode: their BatchNorm statistics
    must not drift either (fused batches hold few distinct faces, so they would)."""
    model.train()
    for branch in frozen_branches(model, frozen):
        branch.eval()


def build_model(run: StageRun) -> AffectNet:
    """The recipe's network, or --init's / the previous stage's, with the stage's audio
    pooling; frozen branches do not train."""
    if run.init is None:
        model = AffectNet(run.recipe.network_config)
    else:
        model, _ = load_checkpoint(run.init)
        if run.stage == run.recipe.stages[0] and model.config != run.recipe.network_config:
            print(f"note: --init {run.init} has its own architecture; the recipe's network "
                  "is not used")
    converted = with_audio_branch(model, run.settings.audio_pooling, None, None)
    if converted is not model:
        print(f"note: audio branch: pooling {model.config.audio_pooling} -> "
              f"{converted.config.audio_pooling}; the LSTM's weights from the audio features "
              "start fresh")
    for branch in frozen_branches(converted, run.settings.freeze):
        for parameter in branch.parameters():
            parameter.requires_grad_(False)
    return converted


# ----- one stage's training loop -----


@dataclass
class Loop:
    """Everything one stage's training changes as it goes (what last.pt restores)."""

    network: AffectNet
    model: torch.nn.Module  # what runs the batches: the network, DDP-wrapped when distributed
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    use_amp: bool
    start_epoch: int = 0
    step: int = 0
    best: dict = field(default_factory=lambda: {"score": -math.inf, "metrics": None})


def start_loop(run: StageRun, distributed: Distributed) -> Loop:
    device = device_for(distributed)
    seed_everything(run.recipe.seed)
    network = build_model(run).to(device)
    model = network
    if distributed.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None,
            # voice-only batches leave the ResNet unused; DDP must not wait for its grads
            find_unused_parameters=True)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                 lr=run.settings.lr)
    use_amp = device.type == "cuda"  # mixed precision, on a GPU only
    loop = Loop(network, model, optimizer, torch.amp.GradScaler("cuda", enabled=use_amp),
                device, use_amp)
    last = run.out / "last.pt"
    if run.resume and last.is_file():
        _, checkpoint = load_checkpoint(last)
        network.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        loop.start_epoch, loop.step = checkpoint["epoch"] + 1, checkpoint["step"]
        loop.best = checkpoint["best"]
        if distributed.is_main:
            print(f"resumed from {last} at epoch {loop.start_epoch}")
    return loop


def loaders(run: StageRun, train_set, valid_set, collate, distributed: Distributed):
    """-> (training loader, its DistributedSampler or None, validation loader)."""
    settings, seed, workers = run.settings, run.recipe.seed, run.recipe.data.workers
    sampler = DistributedSampler(train_set, seed=seed) if distributed.enabled else None
    train_loader = DataLoader(train_set, batch_size=settings.batch_size,
                              shuffle=sampler is None, sampler=sampler, collate_fn=collate,
                              num_workers=workers, drop_last=True,
                              generator=torch.Generator().manual_seed(seed))
    if len(train_loader) == 0:
        raise ValueError(f"the training set ({len(train_set)} sequences) is smaller than one "
                         f"batch of {settings.batch_size}: lower {run.stage}.batch_size")
    valid_loader = DataLoader(valid_set, batch_size=settings.batch_size, collate_fn=collate,
                              num_workers=workers)
    return train_loader, sampler, valid_loader


def train_epoch(loop: Loop, run: StageRun, loader: DataLoader, epoch: int, writer,
                distributed: Distributed) -> tuple[float, float]:
    """One pass over the training loader -> (mean loss, steps per second)."""
    settings = run.settings
    train_mode(loop.network, settings.freeze)
    started, frames, losses = time.perf_counter(), 0, []
    autocast = torch.autocast("cuda", dtype=torch.float16) if loop.use_amp else nullcontext()
    progress = _progress(loader, f"{run.stage} epoch {epoch + 1}/{settings.epochs}",
                         distributed.is_main)
    for batch in progress:
        for group in loop.optimizer.param_groups:
            group["lr"] = learning_rate(loop.step, settings.epochs * len(loader), settings.lr,
                                        settings.schedule)
        batch = to_device(batch, loop.device)
        loss = training_loss(loop.model, batch, settings, autocast)
        loop.optimizer.zero_grad(set_to_none=True)
        loop.scaler.scale(loss).backward()
        loop.scaler.unscale_(loop.optimizer)
        torch.nn.utils.clip_grad_norm_(loop.model.parameters(), settings.clip_norm)
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
        loop.step += 1
        losses.append(loss.item())
        frames += int(batch["step_mask"].sum().item()) * distributed.world_size
        rate = frames / (time.perf_counter() - started)
        if hasattr(progress, "set_postfix"):
            progress.set_postfix(loss=f"{loss.item():.3f}", steps_per_s=f"{rate:.0f}")
        if writer:
            writer.add_scalar("train/loss", loss.item(), loop.step)
            writer.add_scalar("train/steps_per_second", rate, loop.step)
    return float(np.mean(losses)), frames / (time.perf_counter() - started)


def save_epoch(loop: Loop, run: StageRun, epoch: int, metrics: dict) -> None:
    """last.pt, and best.pt when the score improved; both carry the whole recipe."""
    extra = {"epoch": epoch, "step": loop.step, "recipe": run.recipe.to_dict(),
             "stage": run.stage, "init": str(run.init) if run.init else None,
             "card": {"training_command": run.command, "validation": metrics}}
    score = mean_ccc(metrics, run.settings.select)
    if score > loop.best["score"]:
        loop.best = {"score": score, "metrics": metrics, "epoch": epoch}
        save_checkpoint(run.out / "best.pt", loop.network, run.recipe.preset, best=loop.best,
                        **extra)
    save_checkpoint(run.out / "last.pt", loop.network, run.recipe.preset, best=loop.best,
                    optimizer=loop.optimizer.state_dict(), **extra)


def report_epoch(epoch: int, loss: float, rate: float, metrics: dict, writer, step: int) -> None:
    per_sequence = metrics["per_sequence"]
    print(f"epoch {epoch + 1}: train loss {loss:.3f} ({rate:.0f} steps/s), valid CCC arousal "
          f"{metrics['arousal']['ccc']:.3f} valence {metrics['valence']['ccc']:.3f} "
          f"(per sequence {per_sequence['arousal']['ccc']:.3f} / "
          f"{per_sequence['valence']['ccc']:.3f})", flush=True)
    if writer:
        for name in ("arousal", "valence"):
            writer.add_scalar(f"valid/ccc_{name}", metrics[name]["ccc"], step)


def train(run: StageRun, train_set, valid_set, collate,
          distributed: Distributed | None = None) -> dict:
    """Train and validate one stage; returns the best validation metrics. Rank 0 writes
    the checkpoints."""
    distributed = distributed or Distributed()
    loop = start_loop(run, distributed)
    train_loader, sampler, valid_loader = loaders(run, train_set, valid_set, collate,
                                                  distributed)
    writer = _tensorboard(run.out) if distributed.is_main else None
    for epoch in range(loop.start_epoch, run.settings.epochs):
        for dataset in (train_set, valid_set):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch if dataset is train_set else 0)
        if sampler is not None:
            sampler.set_epoch(epoch)
        loss, rate = train_epoch(loop, run, train_loader, epoch, writer, distributed)
        if distributed.enabled:
            # DDP syncs gradients, not BatchNorm running statistics: take rank 0's so that
            # every rank validates and saves the same model.
            for buffer in loop.network.buffers():
                dist.broadcast(buffer, src=0)
        metrics = evaluate(loop.network, valid_loader, loop.device)
        if distributed.is_main:
            report_epoch(epoch, loss, rate, metrics, writer, loop.step)
            save_epoch(loop, run, epoch, metrics)
    if writer:
        writer.close()
    if distributed.enabled:
        check_ranks_agree(loop.network, run.out, distributed)
    return loop.best


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


# ----- a recipe's stages, one after another -----


def check_stages(recipe: StagedRecipe) -> None:
    """Refuse what would fail only after earlier stages trained for an hour."""
    if not recipe.stages:
        raise ValueError("the recipe lists no stages (e.g. stages = [\"face\", \"voice\"])")
    if "recordings" in recipe.stages and not recipe.recordings.dataset:
        raise ValueError("the recordings stage needs recordings.dataset (recola:PATH, "
                         "manifest:CSV or sessions:FOLDER)")
    if "fused" in recipe.stages:
        check_fused(recipe.fused)


def report_stage(stage: str, best: dict, folder: Path) -> None:
    if best["metrics"]:
        print(f"{stage}: best epoch {best['epoch'] + 1}, valid CCC arousal "
              f"{best['metrics']['arousal']['ccc']:.3f} valence "
              f"{best['metrics']['valence']['ccc']:.3f}; checkpoints in {folder}")


def train_stage(run: StageRun, distributed: Distributed) -> dict:
    source = load_checkpoint(run.init)[0].config if run.init else run.recipe.network_config
    train_set, valid_set = stage_sets(run.stage, run.settings, Path(run.recipe.data.root),
                                      source.face_crop, run.recipe.seed)
    return train(run, train_set, valid_set, collate_sequences, distributed)


def run(recipe: StagedRecipe, out: Path, init: Path | None = None, resume: bool = False,
        command: str = "") -> int:
    """Train the recipe's stages in order into OUT/STAGE/, each from the previous best.pt."""
    check_stages(recipe)
    distributed = setup_distributed()
    try:
        previous = init
        for stage in recipe.stages:
            folder = Path(out) / stage
            if resume and (folder / FINISHED).is_file():
                print(f"stage {stage}: kept ({folder})")
            else:
                started = time.time()
                best = train_stage(StageRun(recipe, stage, folder, previous, resume, command),
                                   distributed)
                if distributed.is_main:
                    (folder / FINISHED).write_text(f"{round(time.time() - started)}\n")
                    report_stage(stage, best, folder)
            previous = folder / "best.pt"
        if distributed.enabled:
            # Tear down together: a rank that destroys its gloo group while the other is still
            # writing last.pt aborts ("terminate called without an active exception").
            dist.barrier()
    finally:
        if distributed.enabled:
            dist.destroy_process_group()
    return 0


# ----- the command line -----


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="affect-train", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--config", type=Path, required=True,
                        help="recipe file (training/recipes/*.toml)")
    parser.add_argument("--out", type=Path, required=True,
                        help="run folder: checkpoints, logs and figures")
    parser.add_argument("--init", type=Path,
                        help="checkpoint whose weights the first stage starts from")
    parser.add_argument("--resume", action="store_true",
                        help="keep the stages that finished in OUT and continue an "
                             "interrupted one from its last.pt")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one recipe key, e.g. voice.epochs=3 or "
                             "data.root=../shared/data (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "affect-train " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        recipe = read_recipe(args.config, tuple(args.set))
        return trainer_module(recipe.preset, recipe.network).run(recipe, args.out, init=args.init,
                                                 resume=args.resume, command=command)
    except (ValueError, OSError, CheckpointError) as error:
        print(f"affect-train: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
