"""Reading a checkpoint folder: its config.json and its safetensors weights, never pickle,
so loading one can never run code.

Reading lives with the models because generation needs it as much as training does: the
pipelines load a model folder's vae/ and dit/ checkpoints with these functions, and the
trainer (kinema.train.checkpoint, which writes checkpoints and keeps resume state)
builds on them. The folder layout is described there. `build_with_weights` makes a model
straight from its weights, skipping the random initialisation they would overwrite.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from torch.overrides import TorchFunctionMode

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


def load_weights(
    folder: str | os.PathLike, name: str = "model.safetensors", *, widen: bool = True
) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's safetensors file (memory-mapped, read as they are
    used), half-precision ones widened to float32 unless not WIDEN (weights may be
    exported in fp16; every model computes in fp32 on the CPU; build_with_weights casts).

    Raises CheckpointError for a missing file or one that is not safetensors (no pickle, ever)."""
    path = Path(os.fspath(folder)) / name
    if not path.is_file():
        raise CheckpointError(f"'{path.parent}' has no {name}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"'{path}' is not a readable safetensors file ({e})") from None
    if not widen:
        return tensors
    return {
        k: cast(v, torch.float32) if v.dtype in (torch.float16, torch.bfloat16) else v
        for k, v in tensors.items()
    }


def cast(tensor: torch.Tensor, dtype: torch.dtype, copy: bool = False) -> torch.Tensor:
    """TENSOR as DTYPE (a new tensor when the dtype differs or COPY is set).

    fp16 → fp32, what every fp16 checkpoint needs, goes through numpy: one single-threaded
    pass, where torch splits each of hundreds of small tensors between its threads and,
    on a busy machine, waits at every one for a thread that is not running (measured here
    under load: 0.12 s against 1.2 s for the built-in DiT). The values are the same: both
    conversions are exact."""
    if tensor.dtype == torch.float16 and dtype == torch.float32 and tensor.device.type == "cpu":
        return torch.from_numpy(tensor.numpy().astype(np.float32))
    return tensor.to(dtype, copy=copy)


Model = TypeVar("Model", bound=nn.Module)


class _SkipInit(TorchFunctionMode):
    """Initialising fills (what nn.init's functions and the modules' reset_parameters end
    in) do nothing: the weights about to be loaded replace every parameter. A torch
    function mode is thread-local, so a model built in another thread meanwhile is
    initialised as usual."""

    # nn.init's functions that hand themselves to a mode whole, and the tensor methods the
    # others end in (inside a handled function the mode is off, so both are needed)
    SKIPPED = frozenset(
        {
            torch.Tensor.normal_,
            torch.Tensor.uniform_,
            torch.Tensor.zero_,
            torch.Tensor.fill_,
            nn.init.normal_,
            nn.init.uniform_,
            nn.init.constant_,
            nn.init.kaiming_uniform_,
        }
    )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.SKIPPED:  # the filled tensor: a method's self, nn.init's `tensor`
            return args[0] if args else kwargs["tensor"]
        return func(*args, **(kwargs or {}))


def build_with_weights(
    make: Callable[[], Model], weights: dict[str, torch.Tensor], *, keep_mapped: bool = False
) -> Model:
    """The model make() builds, holding WEIGHTS (a full state dict: the load is strict).

    make() runs without its initialisation (random draws left to be overwritten cost more
    than the loading itself), and the weights' tensors become the parameters, cast to each
    parameter's dtype (fp16 files widen to the fp32 the model computes in). A tensor that
    safetensors memory-mapped from the file is copied unless KEEP_MAPPED: a file rewritten
    in place while mapped (safetensors' save_file truncates) would crash the process on
    its next read, so only files that are replaced and never rewritten (an installed
    wheel's) should stay mapped, saving the copy and every page never read.

    A model whose state lies partly outside its state dict (a non-persistent buffer, a
    tensor attribute) or that ties one parameter to several names is built normally and
    the weights are copied in: skipping its initialisation could leave garbage where the
    weights do not reach."""
    with _SkipInit():
        model = make()
    if _all_in_state_dict(model):
        dtypes = {name: t.dtype for name, t in model.state_dict().items()}
        model.load_state_dict(
            {k: cast(v, dtypes.get(k, v.dtype), copy=not keep_mapped) for k, v in weights.items()},
            assign=True,
        )
        return model
    model = make()
    model.load_state_dict(weights)
    return model


def _all_in_state_dict(model: nn.Module) -> bool:
    """Every tensor of MODEL is a parameter or persistent buffer under one name."""
    names = set(model.state_dict())
    if any(name not in names for name, _ in model.named_buffers(remove_duplicate=False)):
        return False
    if len(list(model.named_parameters(remove_duplicate=False))) != len(list(model.parameters())):
        return False
    return not any(isinstance(v, torch.Tensor) for m in model.modules() for v in vars(m).values())
