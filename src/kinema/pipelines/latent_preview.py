"""The linear latent→pixels map a live preview (kinema.pipelines.preview) is drawn with,
fitted to the model's own VAE."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_NEIGHBOURS = 3  # each latent cell's patch is read from the 3×3 cells around it
_FIT_CLIPS = 12  # synthetic clips the map is fitted on (each 1 + temporal_factor frames)
_FIT_CELLS = 8  # their side in latent cells
_RIDGE = 1e-2


class LatentPreviewer:
    """Latents (1, C, 1+k, h, w) → uint8 frames (1+4k, H, W, 3), linearly.

    Each latent cell's pixel patch (f×f, and the temporal_factor frames a later latent
    frame stands for) is an affine function of the latents in the 3×3 cells around it:
    one map for latent frame 0 (one frame) and one for the others. `fit` finds them by
    least squares against the VAE's own decoding of flat-coloured shapes moving on plain
    backgrounds, so the preview approximates what the decode will show, whatever VAE is
    loaded; about 20–25 dB PSNR against the real decode of the built-in model's clips."""

    def __init__(self, first: torch.Tensor, rest: torch.Tensor, factor: int, temporal: int):
        self.first, self.rest = first, rest  # (C·9 + 1, f·f·3), (C·9 + 1, temporal·f·f·3)
        self.factor, self.temporal = factor, temporal

    @classmethod
    @torch.inference_mode()
    def fit(cls, encode, decode, factor: int, temporal: int, seed: int = 0) -> LatentPreviewer:
        """The map for a VAE: ENCODE takes pixels (B, 3, 1+TEMPORAL, H, W) in [-1, 1] to
        latents (B, C, 2, H/FACTOR, W/FACTOR), DECODE takes them back. Deterministic in
        SEED; draws nothing from torch's global generator."""
        side = _FIT_CELLS * factor
        clips = np.stack(
            [_shapes_clip(np.random.default_rng([seed, i]), 1 + temporal, side) for i in range(_FIT_CLIPS)]
        )
        pixels = torch.from_numpy(clips).float().div(127.5).sub(1).permute(0, 4, 1, 2, 3)
        latents = encode(pixels)
        decoded = decode(latents).float()
        maps = []
        for frames, index in ((slice(0, 1), 0), (slice(1, 1 + temporal), 1)):
            a = _features(latents[:, :, index].float()).double()
            b = _patches(decoded[:, :, frames], factor).double()
            gram = a.T @ a + _RIDGE * torch.eye(a.shape[1], dtype=torch.float64)
            maps.append(torch.linalg.solve(gram, a.T @ b).float())
        return cls(maps[0], maps[1], factor, temporal)

    @torch.inference_mode()
    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        """The preview frames of LATENTS (1, C, 1+k, h, w): uint8 (1+4k, H, W, 3)."""
        _, _, t, h, w = latents.shape
        f = self.factor
        parts = []
        for index in range(t):
            weights, count = (self.first, 1) if index == 0 else (self.rest, self.temporal)
            patches = _features(latents[:, :, index].float()) @ weights  # (h·w, count·f·f·3)
            frames = patches.reshape(h, w, count, f, f, 3).permute(2, 0, 3, 1, 4, 5)
            parts.append(frames.reshape(count, h * f, w * f, 3))
        pixels = torch.cat(parts)
        return ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def _features(latents: torch.Tensor) -> torch.Tensor:
    """Latent frames (B, C, h, w) → (B·h·w, C·9 + 1): each cell's 3×3 neighbourhood and a 1."""
    pad = _NEIGHBOURS // 2
    cells = F.unfold(F.pad(latents, (pad,) * 4, mode="replicate"), _NEIGHBOURS)  # (B, C·9, h·w)
    cells = cells.permute(0, 2, 1).reshape(-1, cells.shape[1])
    return torch.cat([cells, torch.ones(len(cells), 1, dtype=cells.dtype)], dim=1)


def _patches(pixels: torch.Tensor, f: int) -> torch.Tensor:
    """Pixels (B, 3, T, H, W) → (B·(H/f)·(W/f), T·f·f·3), in the order of _features' cells."""
    b, _, t, h, w = pixels.shape
    cells = pixels.reshape(b, 3, t, h // f, f, w // f, f).permute(0, 3, 5, 2, 4, 6, 1)
    return cells.reshape(b * (h // f) * (w // f), t * f * f * 3)


def _shapes_clip(rng: np.random.Generator, frames: int, side: int) -> np.ndarray:
    """uint8 (frames, side, side, 3): one or two flat-coloured disks or squares moving on
    a plain background (mostly black, white or gray), the kind of picture a video VAE
    is trained on here, drawn without the world renderer (pipelines never import it)."""
    plain = rng.random() < 0.7
    background = np.full(3, rng.choice([0, 128, 255])) if plain else rng.integers(0, 256, 3)
    clip = np.empty((frames, side, side, 3), np.uint8)
    clip[:] = background
    rows, cols = np.mgrid[:side, :side]
    for _ in range(rng.integers(1, 3)):
        colour = rng.integers(0, 256, 3)
        radius = rng.uniform(0.06, 0.22) * side
        x, y = rng.uniform(0, side, 2)
        dx, dy = rng.uniform(-0.05, 0.05, 2) * side
        disk = rng.random() < 0.5
        for i in range(frames):
            cx, cy = x + dx * i, y + dy * i
            if disk:
                inside = (cols - cx) ** 2 + (rows - cy) ** 2 < radius**2
            else:
                inside = (abs(cols - cx) < radius) & (abs(rows - cy) < radius)
            clip[i][inside] = colour
    return clip
