"""Copy trained checkpoints into what users load: a checkpoint's weights alone (EMA,
fp16 when asked), or a whole model folder (model.json + vae/ + dit/ + README.md)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import save_file

from kinema.train.checkpoint import load_config, load_weights


def _copy_checkpoint(source: str | os.PathLike, dest: Path, half: bool) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    weights = load_weights(source)
    if half:  # statistics buffers stay fp32: they are tiny and precision-sensitive
        weights = {k: v.half() if v.is_floating_point() and v.numel() > 64 else v for k, v in weights.items()}
    save_file({k: v.contiguous() for k, v in weights.items()}, str(dest / "model.safetensors"))
    (dest / "config.json").write_text(json.dumps(load_config(source), indent=2) + "\n")


def _swap_in(staging: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def export_checkpoint(source: str | os.PathLike, out: str | os.PathLike, half: bool = True) -> Path:
    """The weights a checkpoint's users need (no optimizer or RNG state), replacing `out`."""
    target = Path(os.fspath(out))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _copy_checkpoint(source, staging, half)
        _swap_in(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def assemble_model(
    vae_dir: str | os.PathLike,
    dit_dir: str | os.PathLike,
    out: str | os.PathLike,
    name: str,
    defaults: dict | None = None,
    card: str = "",
    half: bool = True,
    world: str | None = "shapes-v1",
) -> Path:
    """A model folder from trained VAE and DiT checkpoints, replacing `out`. `world` names
    the prompt world the model was trained on (kinema's models: the shapes world, whose
    prompts the request layer reads into canonical form); None for a model that takes
    prompts as typed."""
    target = Path(os.fspath(out))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for part, source in (("vae", vae_dir), ("dit", dit_dir)):
            _copy_checkpoint(source, staging / part, half)
        meta = {"name": name, "text_encoder": "minilm", **({"world": world} if world else {})}
        meta["defaults"] = defaults or {}
        (staging / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
        (staging / "README.md").write_text(card)
        _swap_in(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
