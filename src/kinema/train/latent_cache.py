"""Pre-encoded training latents for the DiT stage.

Encoding every training clip with the VAE at every step costs as much as the DiT step
itself on a CPU. The cache renders and encodes a fixed set of clips once, in shards of
`SHARD` clips (safetensors, fp16), so a build that is killed keeps its finished shards
and the next run builds only what is missing. Each clip stores its latents and its
keyframe latents (each later latent frame's last pixel frame encoded on its own).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from kinema.io.atomic import replacing
from kinema.models.vae import VideoVAE
from kinema.train.data import pixels_to_tensor, preset_samples
from kinema.train.presets import Preset

SHARD = 1024
CHUNK = 64  # clips a render worker makes at a time, and the VAE encodes at once


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


def cache_folder(preset: Preset) -> Path:
    """Where a preset's cache lives, beside its VAE: named by the VAE's weights and by what
    decides the clips, so presets that draw the same clips share one cache (clip i is the
    same in any cache of the same data, whatever its size) and a new VAE gets its own."""
    vae_hash = hashlib.sha256((Path(preset.vae) / "model.safetensors").read_bytes()).hexdigest()[:12]
    data = (
        f"{preset.seed}-{preset.frames}-{preset.size}-{preset.random_offset}-"
        f"{preset.two_object_fraction}-{preset.offset_fraction}"
    )
    data_hash = hashlib.sha256(data.encode()).hexdigest()[:8]
    return Path(preset.vae).parent / f"latents-{vae_hash}-{data_hash}"


def _shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard_{index:05d}.safetensors"


def render_clips(preset: Preset, start: int, stop: int) -> tuple[list[str], np.ndarray, list[int]]:
    """Prompts, uint8 frames and window offsets of clips start … stop−1 of training stream 1
    (the cache's)."""
    samples = preset_samples(preset, 1, start, stop)
    return [s.prompt for s in samples], np.stack([s.frames for s in samples]), [s.offset for s in samples]


def build_cache(
    vae: VideoVAE, preset: Preset, folder: str | os.PathLike, clips: int, workers: int = 0, progress=None
) -> Path:
    """Render and encode clips 0 … clips−1 of training stream 1 into `folder` (missing shards
    only). `workers` processes render while this one encodes on the VAE's device (0: one
    per core; 1: render here)."""
    folder = Path(os.fspath(folder))
    folder.mkdir(parents=True, exist_ok=True)
    missing = [s for s in range(-(-clips // SHARD)) if not _shard_path(folder, s).exists()]
    if not missing:
        return folder
    workers = workers or os.cpu_count() or 1
    device = next(vae.parameters()).device
    # spawned, not forked: the parent may hold a CUDA context, which a fork cannot share
    pool = (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None
    )
    render = pool.map if pool else map  # a pool's map starts every chunk at once

    def start_rendering(shard: int):
        firsts = list(range(shard * SHARD, min(clips, (shard + 1) * SHARD), CHUNK))
        lasts = [min(clips, (shard + 1) * SHARD, a + CHUNK) for a in firsts]
        return render(render_clips, [preset] * len(firsts), firsts, lasts)

    try:
        upcoming = start_rendering(missing[0])
        for n, shard in enumerate(missing):
            # the workers render the next shard while this one is encoded
            rendered = upcoming
            upcoming = start_rendering(missing[n + 1]) if n + 1 < len(missing) else None
            prompts, latents, keyframes, offsets = [], [], [], []
            for chunk_prompts, frames, chunk_offsets in rendered:
                z, k = encode_clips(vae, pixels_to_tensor(frames).to(device))
                latents.append(z.half().cpu())
                keyframes.append(k.half().cpu())
                prompts += chunk_prompts
                offsets += chunk_offsets
                if progress:
                    progress(shard * SHARD + len(prompts), clips)
            tensors = {
                "latents": torch.cat(latents),
                "keyframes": torch.cat(keyframes),
                "offsets": torch.tensor(offsets, dtype=torch.int16),
            }
            with replacing(_shard_path(folder, shard)) as tmp:
                save_file(tensors, str(tmp), metadata={"prompts": json.dumps(prompts)})
    finally:
        if pool:
            pool.shutdown()
    return folder


class LatentCache:
    """The first `clips` clips of a cache in memory (fp16): latents, keyframe latents and prompts."""

    def __init__(self, folder: str | os.PathLike, clips: int):
        folder = Path(os.fspath(folder))
        paths = [_shard_path(folder, s) for s in range(-(-clips // SHARD))]
        if not all(p.exists() for p in paths):
            raise FileNotFoundError(f"the latent cache in {folder} has fewer than {clips} clips")
        latents, keyframes, offsets, self.prompts = [], [], [], []
        for path in paths:
            with safe_open(str(path), "pt") as f:
                latents.append(f.get_tensor("latents"))
                keyframes.append(f.get_tensor("keyframes"))
                offsets.append(f.get_tensor("offsets"))
                self.prompts += json.loads(f.metadata()["prompts"])
        self.latents, self.keyframes = torch.cat(latents)[:clips], torch.cat(keyframes)[:clips]
        self.offsets = torch.cat(offsets)[:clips].long().numpy()
        self.prompts = self.prompts[:clips]

    def __len__(self) -> int:
        return len(self.prompts)

    def to(self, device: torch.device | str) -> LatentCache:
        """Move the latents to `device` (a GPU holds a cache of 100k clips in under 1 GB)."""
        self.latents, self.keyframes = self.latents.to(device), self.keyframes.to(device)
        return self

    def batch(self, indices: np.ndarray) -> tuple[list[str], torch.Tensor, torch.Tensor, np.ndarray]:
        """Prompts, latents, keyframe latents and window offsets of the clips at `indices`."""
        idx = torch.as_tensor(indices).to(self.latents.device, non_blocking=True)
        prompts = [self.prompts[i] for i in indices]
        return prompts, self.latents[idx].float(), self.keyframes[idx].float(), self.offsets[indices]
