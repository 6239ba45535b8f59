"""Pre-encoded training latents for the DiT stage.

Encoding every training clip with the VAE at every step costs as much as the DiT step
itself on a CPU. The cache renders and encodes a fixed set of clips once, in shards of
`SHARD` clips (safetensors, fp16), so a build that is killed keeps its finished shards
and the next run builds only what is missing. Each clip stores its latents and its
keyframe latents (each later latent frame's last pixel frame encoded on its own).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from kinema.io.atomic import replacing
from kinema.models.vae import VideoVAE
from kinema.train.presets import Preset

SHARD = 1024


def encode_clips(vae: VideoVAE, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (B, C, 1+k, h, w) of pixel clips (B, 3, 1+4k, H, W) in [-1, 1], and their
    keyframe latents (B, C, k, h, w): frames 4, 8, … each encoded as a clip of its own,
    as the pipeline encodes a keyframe image."""
    b, _, _, height, width = pixels.shape
    step = vae.config.temporal_factor
    with torch.no_grad():
        singles = pixels[:, :, step::step].transpose(1, 2).reshape(-1, 3, 1, height, width)
        keyframes = vae.encode(singles)
        keyframes = keyframes.reshape(b, -1, *keyframes.shape[1:]).squeeze(3).transpose(1, 2)
        return vae.encode(pixels), keyframes


def _shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard_{index:05d}.safetensors"


def build_cache(vae: VideoVAE, preset: Preset, folder: str | os.PathLike, clips: int, progress=None) -> Path:
    """Render and encode clips 0 … clips−1 of training stream 1 into `folder` (missing shards only)."""
    from kinema.train.stages import pixels_to_tensor
    from kinema.world.dataset import training_sample

    folder = Path(os.fspath(folder))
    folder.mkdir(parents=True, exist_ok=True)
    shards = -(-clips // SHARD)
    for shard in range(shards):
        path = _shard_path(folder, shard)
        if path.exists():
            continue
        start, stop = shard * SHARD, min(clips, (shard + 1) * SHARD)
        prompts, latents, keyframes = [], [], []
        for first in range(start, stop, 32):
            samples = [
                training_sample(
                    preset.seed,
                    1,
                    i,
                    preset.frames,
                    preset.size,
                    preset.random_offset,
                    preset.two_object_fraction,
                )
                for i in range(first, min(stop, first + 32))
            ]
            z, k = encode_clips(vae, pixels_to_tensor(np.stack([s.frames for s in samples])))
            latents.append(z.half())
            keyframes.append(k.half())
            prompts += [s.prompt for s in samples]
            if progress:
                progress(first + len(samples), clips)
        tensors = {"latents": torch.cat(latents), "keyframes": torch.cat(keyframes)}
        with replacing(path) as tmp:
            save_file(tensors, str(tmp), metadata={"prompts": json.dumps(prompts)})
    return folder


class LatentCache:
    """All shards of a cache in memory (fp16): latents, keyframe latents and prompts."""

    def __init__(self, folder: str | os.PathLike):
        paths = sorted(Path(os.fspath(folder)).glob("shard_*.safetensors"))
        if not paths:
            raise FileNotFoundError(f"no latent shards in {folder}")
        latents, keyframes, self.prompts = [], [], []
        for path in paths:
            with safe_open(str(path), "pt") as f:
                latents.append(f.get_tensor("latents"))
                keyframes.append(f.get_tensor("keyframes"))
                self.prompts += json.loads(f.metadata()["prompts"])
        self.latents, self.keyframes = torch.cat(latents), torch.cat(keyframes)

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices: np.ndarray) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices)
        return [self.prompts[i] for i in indices], self.latents[idx].float(), self.keyframes[idx].float()
