"""Checkpoints as safetensors + JSON: never pickle, so loading one can never run code.

A checkpoint folder holds model.safetensors (EMA weights when training kept an EMA, the
weights users generate with), config.json (the model config and how it was trained),
and, for resuming, train_state.safetensors (raw weights, optimizer moments, RNG states)
with train_state.json (step, counters, optimizer scalars). Folders are written beside
the target and swapped in with renames, so a kill mid-save leaves the previous one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kinema.errors import InputError


class CheckpointError(InputError):
    """A checkpoint folder that is missing, incomplete or not safetensors."""


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


def load_config(folder: str | os.PathLike) -> dict:
    path = Path(os.fspath(folder)) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"'{path.parent}' is not a kinema checkpoint: config.json is missing")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"'{path}' is not valid JSON: {e}") from None


def load_weights(folder: str | os.PathLike, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    """Read a safetensors file of a checkpoint; refuses anything else (no pickle, ever)."""
    path = Path(os.fspath(folder)) / name
    if not path.is_file():
        raise CheckpointError(f"'{path.parent}' has no {name}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"'{path}' is not a readable safetensors file ({e})") from None
    return {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in tensors.items()}


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
