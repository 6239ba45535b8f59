"""What each training stage builds, optimises and validates; the loop itself is generic."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from kinema.models.vae import VAEConfig, VideoVAE
from kinema.train.presets import Preset
from kinema.world import parse, render_frames
from kinema.world.dataset import training_sample, validation_split


def pixels_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) or (T, H, W, 3) → float (B, 3, T, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.asarray(frames)).float().div(127.5).sub(1.0)
    if x.dim() == 4:
        x = x[None]
    return x.permute(0, 4, 1, 2, 3).contiguous()


def tensor_to_pixels(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, T, H, W) in [-1, 1] → uint8 (B, T, H, W, 3)."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).cpu().numpy()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [-1, 1] tensors, on the 0-255 scale."""
    mse = F.mse_loss((a.clamp(-1, 1) + 1) * 127.5, (b.clamp(-1, 1) + 1) * 127.5).item()
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def training_batch(preset: Preset, step: int) -> tuple[list[str], np.ndarray]:
    """The batch of a step: samples step·B … step·B + B − 1 of stream 0 (exact resume)."""
    samples = [
        training_sample(
            preset.seed,
            0,
            step * preset.batch + i,
            preset.frames,
            preset.size,
            preset.random_offset,
            preset.two_object_fraction,
        )
        for i in range(preset.batch)
    ]
    return [s.prompt for s in samples], np.stack([s.frames for s in samples])


class VAEStage:
    """Reconstruction (L1 + MSE) with a small KL; validated by PSNR on held-aside clips."""

    def __init__(self, preset: Preset):
        self.preset = preset
        self.config = VAEConfig.from_dict({**VAEConfig().to_dict(), **preset.model})
        self._val: torch.Tensor | None = None

    def build(self) -> VideoVAE:
        return VideoVAE(self.config)

    def loss(self, model: VideoVAE, step: int) -> tuple[torch.Tensor, dict]:
        _, frames = training_batch(self.preset, step)
        x = pixels_to_tensor(frames)
        recon, kl = model(x)
        rec = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        loss = rec + self.config.kl_weight * kl
        return loss, {"rec": rec.item(), "kl": kl.item()}

    def validation_clips(self) -> torch.Tensor:
        if self._val is None:
            frames = 1 + 4 * 4 if self.preset.size >= 64 else self.preset.frames
            clips = [
                render_frames(parse(p), seed=s, frames=frames, size=self.preset.size)
                for p, s in validation_split(16)
            ]
            self._val = pixels_to_tensor(np.stack(clips))
        return self._val

    @torch.no_grad()
    def validate(self, model: VideoVAE) -> dict:
        x = self.validation_clips()
        recon = torch.cat([model.decode(model.encode(x[i : i + 4])) for i in range(0, len(x), 4)])
        return {"psnr": round(psnr(recon, x), 3)}

    @torch.no_grad()
    def finalise(self, model: VideoVAE) -> None:
        """Set the latent standardisation from validation clips, so the DiT sees unit-scale data."""
        x = self.validation_clips()
        mean, _ = model.encode_dist(x)
        model.latent_mean.copy_(mean.mean(dim=(0, 2, 3, 4)))
        model.latent_std.copy_(mean.std(dim=(0, 2, 3, 4)).clamp_min(1e-3))


STAGES = {"vae": VAEStage}
