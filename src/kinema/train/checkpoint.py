"""Checkpoints as safetensors + JSON: never pickle, so loading one can never run code.

A checkpoint folder holds model.safetensors (EMA weights when training kept an EMA, the
weights users generate with), config.json (the model config and how it was trained),
and, for resuming, train_state.safetensors (raw weights, optimizer moments, RNG states)
with train_state.json (step, counters, optimizer scalars). Folders are written beside
the target and swapped in with renames, so a kill mid-save leaves the previous one.
This module writes checkpoints and keeps resume state; reading a checkpoint's config and
weights is kinema.models.checkpoint's (re-exported here).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

# reading lives in the models layer, where the pipelines load model folders with it; train
# code keeps importing these names from here
from kinema.models.checkpoint import CheckpointError, load_config, load_weights

__all__ = [
    "CheckpointError",
    "load_config",
    "load_weights",
    "load_train_state",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "recover_checkpoint",
    "save_checkpoint",
]


def save_checkpoint(
    folder: str | os.PathLike,
    weights: dict[str, torch.Tensor],
    config: dict,
    train_tensors: dict[str, torch.Tensor] | None = None,
    train_state: dict | None = None,
) -> Path:
    """Write a checkpoint folder atomically (replacing an older one at the same path)."""
    target = Path(os.fspath(folder))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in weights.items()}, staging / "model.safetensors"
        )
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if train_tensors is not None:
            save_file(
                {k: v.detach().contiguous().cpu() for k, v in train_tensors.items()},
                staging / "train_state.safetensors",
            )
            (staging / "train_state.json").write_text(json.dumps(train_state or {}, indent=2) + "\n")
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def recover_checkpoint(folder: str | os.PathLike) -> None:
    """Put back the previous checkpoint when a kill fell between save_checkpoint's two
    renames (the old folder moved aside, the new one not yet in place)."""
    target = Path(os.fspath(folder))
    old = target.with_name(f".{target.name}.old")
    if not target.exists() and old.is_dir():
        os.replace(old, target)


def load_train_state(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The resume state of a checkpoint folder, None when there is none."""
    folder = Path(os.fspath(folder))
    recover_checkpoint(folder)
    if not (folder / "train_state.json").is_file():
        return None
    return load_weights(folder, "train_state.safetensors"), json.loads(
        (folder / "train_state.json").read_text()
    )


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimizer's state into tensors (by parameter index) and JSON scalars."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"opt.{idx}.{key}"] = value
            else:
                scalars["state"].setdefault(str(idx), {})[key] = value
    return tensors, scalars


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, tensors: dict, scalars: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, values in scalars.get("state", {}).items():
        state.setdefault(int(idx), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
