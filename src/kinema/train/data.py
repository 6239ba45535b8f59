"""What a preset trains on: its shapes-world samples, and pixels as the models take them."""

from __future__ import annotations

import numpy as np
import torch

from kinema.train.presets import Preset
from kinema.world.dataset import Sample, free_colour_sample, training_sample


def preset_samples(preset: Preset, stream: int, start: int, stop: int) -> list[Sample]:
    """Samples start … stop−1 of a training stream, drawn as the preset says: a
    free_colour_fraction of them (decoder training only) painted in colours of any RGB."""
    return [
        free_colour_sample(preset.seed, stream, i, preset.frames, preset.size)
        if _free_colour(preset, stream, i)
        else training_sample(
            preset.seed,
            stream,
            i,
            preset.frames,
            preset.size,
            preset.random_offset,
            preset.two_object_fraction,
            preset.offset_fraction,
        )
        for i in range(start, stop)
    ]


def _free_colour(preset: Preset, stream: int, index: int) -> bool:
    if preset.free_colour_fraction <= 0:  # no draw: the v1 streams stay what they were
        return False
    rng = np.random.default_rng([preset.seed, stream, index, 0xF4EE])
    return bool(rng.random() < preset.free_colour_fraction)


def pixels_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) or (T, H, W, 3) → float (B, 3, T, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.asarray(frames)).float().div(127.5).sub(1.0)
    if x.dim() == 4:
        x = x[None]
    return x.permute(0, 4, 1, 2, 3).contiguous()


def tensor_to_pixels(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, T, H, W) in [-1, 1] → uint8 (B, T, H, W, 3): pixels_to_tensor undone,
    rounded as a pipeline's videos are."""
    return (
        ((x.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()
    )
