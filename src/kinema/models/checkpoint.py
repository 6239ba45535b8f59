"""Reading a checkpoint folder: its config.json and its safetensors weights, never pickle,
so loading one can never run code.

Reading lives with the models because generation needs it as much as training does: the
pipelines load a model folder's vae/ and dit/ checkpoints with these functions, and the
trainer (kinema.train.checkpoint, which writes checkpoints and keeps resume state)
builds on them. The folder layout is described there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from kinema.errors import InputError


class CheckpointError(InputError):
    """A checkpoint folder that is missing, incomplete or not safetensors."""


def load_config(folder: str | os.PathLike) -> dict:
    """The config.json of a checkpoint folder (the model config and how it was trained).

    Raises CheckpointError when the file is missing or not valid JSON."""
    path = Path(os.fspath(folder)) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"'{path.parent}' is not a kinema checkpoint: config.json is missing")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"'{path}' is not valid JSON: {e}") from None


def load_weights(folder: str | os.PathLike, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's safetensors file, half-precision ones widened to
    float32 (weights may be exported in fp16; every model computes in fp32 on the CPU).

    Raises CheckpointError for a missing file or one that is not safetensors (no pickle, ever)."""
    path = Path(os.fspath(folder)) / name
    if not path.is_file():
        raise CheckpointError(f"'{path.parent}' has no {name}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"'{path}' is not a readable safetensors file ({e})") from None
    return {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in tensors.items()}
