"""Checkpoints that rebuild their model alone: weights + NetworkConfig + provenance."""
from __future__ import annotations

from pathlib import Path

import torch

from training.network import AffectNet, NetworkConfig, build_network


class CheckpointError(ValueError):
    """A checkpoint file is missing or is not one of ours."""


def save_checkpoint(path: str | Path, model: AffectNet, preset_name: str, **extra) -> None:
    """Write atomically (temp file + rename) so an interrupted save never corrupts the last one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"config": model.config.to_dict(), "preset": preset_name,
             "model": model.state_dict(), **extra}
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def load_checkpoint(path: str | Path) -> tuple[AffectNet, dict]:
    """-> (model in eval mode, the whole checkpoint dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # weights_only: a checkpoint from someone else must not be able to run code.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {error}") from None
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "model" not in checkpoint:
        raise CheckpointError(f"{path} is not an affect-monitor checkpoint (no config/model)")
    model = build_network(NetworkConfig.from_dict(checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    return model.eval(), checkpoint
