"""Assemble a model folder from trained VAE and DiT checkpoints (what `kinema.load` reads)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import save_file

from kinema.train.checkpoint import load_config, load_weights


def assemble_model(
    vae_dir: str | os.PathLike,
    dit_dir: str | os.PathLike,
    out: str | os.PathLike,
    name: str,
    defaults: dict | None = None,
    card: str = "",
    half: bool = True,
) -> Path:
    """Copy the weights users generate with (EMA, fp16 when `half`) and configs into `out`."""
    target = Path(os.fspath(out))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for part, source in (("vae", vae_dir), ("dit", dit_dir)):
            (staging / part).mkdir()
            weights = load_weights(source)
            if half:  # statistics buffers stay fp32; they are tiny and precision-sensitive
                weights = {
                    k: v.half() if v.is_floating_point() and v.numel() > 64 else v for k, v in weights.items()
                }
            save_file({k: v.contiguous() for k, v in weights.items()}, staging / part / "model.safetensors")
            config = load_config(source)
            (staging / part / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        meta = {"name": name, "text_encoder": "minilm", "defaults": defaults or {}}
        (staging / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
        (staging / "README.md").write_text(card)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
