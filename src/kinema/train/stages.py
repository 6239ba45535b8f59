"""What each training stage builds, optimises and validates; the loop itself is generic."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kinema.diffusion.flow import flow_loss, sample_time
from kinema.models.dit import DiT, DiTConfig
from kinema.models.vae import VAEConfig, VideoVAE
from kinema.train.checkpoint import CheckpointError, load_config, load_weights
from kinema.train.latent_cache import LatentCache, build_cache, encode_clips
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


def load_vae(folder) -> VideoVAE:
    """A trained VAE from its checkpoint folder, frozen, in eval mode."""
    config = load_config(folder)
    if config.get("kind") != "vae":
        raise CheckpointError(f"'{folder}' is not a VAE checkpoint (kind {config.get('kind')!r})")
    vae = VideoVAE(VAEConfig.from_dict(config["model"]))
    vae.load_state_dict(load_weights(folder))
    return vae.eval().requires_grad_(False)


def condition_mask(kind: str, latent_frames: int, h: int, w: int, rng: np.random.Generator) -> torch.Tensor:
    """Which latents are given as clean conditions, (1, T, h, w) in {0, 1}.

    One model learns every mode the conditioning issue needs: none (text-to-video), the
    first latent frame (image-to-video; the causal VAE encodes pixel frame 0 on its own),
    first and last (keyframes), a prefix (extension / long-video context), scattered
    keyframes, and a spatial region kept over time (inpainting).
    """
    m = torch.zeros(1, latent_frames, h, w)
    if kind == "first":
        m[:, 0] = 1
    elif kind == "first_last":
        m[:, 0] = m[:, -1] = 1
    elif kind == "prefix":
        m[:, : int(rng.integers(1, max(2, latent_frames - 1)))] = 1
    elif kind == "keyframes":
        m[:, rng.random(latent_frames) < 0.4] = 1
    elif kind == "region":  # keep everything but a box, which is to be generated
        m[:] = 1
        bh, bw = int(rng.integers(h // 4 + 1, h + 1)), int(rng.integers(w // 4 + 1, w + 1))
        y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        m[:, :, y : y + bh, x : x + bw] = 0
    return m


CONDITION_KINDS = ("none", "first", "first_last", "prefix", "keyframes", "region")
CONDITION_WEIGHTS = (0.45, 0.2, 0.1, 0.12, 0.05, 0.08)


class DiTStage:
    """Flow matching on the frozen VAE's latents, with text dropout (for classifier-free
    guidance) and randomly drawn clean conditions (for every conditioning mode)."""

    text_dropout = 0.1

    def __init__(self, preset: Preset):
        from kinema.models.text import MiniLMTextEncoder

        if not preset.vae:
            raise CheckpointError(f"preset '{preset.name}' needs a trained VAE checkpoint (--vae)")
        self.preset = preset
        self.vae = load_vae(preset.vae)
        self.config = DiTConfig(**{"latent_channels": self.vae.config.latent_channels, **preset.model})
        self.text = MiniLMTextEncoder()
        self.cache = None
        if preset.cache_clips:
            # latents belong to one VAE: a retrained VAE gets a cache of its own
            vae_hash = hashlib.sha256((Path(preset.vae) / "model.safetensors").read_bytes()).hexdigest()[:12]
            folder = Path(preset.vae).with_name(f"{preset.name}-latents-{vae_hash}")
            build_cache(self.vae, preset, folder, preset.cache_clips)
            self.cache = LatentCache(folder)

    def batch(self, step: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """Prompts, latents and keyframe latents of a step: from the cache when there is one
        (indices drawn from the step number), else rendered and encoded now."""
        if self.cache is not None:
            rng = np.random.default_rng([self.preset.seed, step, 11])
            return self.cache.batch(rng.integers(len(self.cache), size=self.preset.batch))
        prompts, frames = training_batch(self.preset, step)
        return (prompts, *encode_clips(self.vae, pixels_to_tensor(frames)))

    def build(self) -> DiT:
        return DiT(self.config)

    def loss(self, model: DiT, step: int) -> tuple[torch.Tensor, dict]:
        prompts, x0, keyframes = self.batch(step)
        rng = np.random.default_rng([self.preset.seed, step, 7])
        b, _, t, h, w = x0.shape
        prompts = ["" if rng.random() < self.text_dropout else p for p in prompts]
        kinds = rng.choice(len(CONDITION_KINDS), size=b, p=CONDITION_WEIGHTS)
        mask = torch.stack([condition_mask(CONDITION_KINDS[k], t, h, w, rng) for k in kinds])
        cond = x0.clone()
        for i, k in enumerate(kinds):
            if CONDITION_KINDS[k] in ("first_last", "keyframes"):
                cond[i, :, 1:] = keyframes[i]
        text, text_mask = self.text.encode(prompts)
        times = sample_time(b)

        def velocity(x_t, tt):
            return model(x_t, tt, text, text_mask, cond=cond, cond_mask=mask)

        # conditioned latents travel towards their clean condition, as the sampler holds them
        target = torch.where(mask.bool(), cond, x0)
        loss = flow_loss(velocity, target, t=times, weight=1 - mask)
        return loss, {"conditioned": float((kinds > 0).mean())}

    @torch.no_grad()
    def validate(self, model: DiT) -> dict:
        """World-checker pass rate of short generations on fixed validation prompts."""
        from kinema.pipelines.t2v import TextToVideo
        from kinema.world import check

        pipe = TextToVideo(self.vae, model, self.text, name="validation")
        prompts = validation_split(self.preset.validation_clips)
        passed = 0
        for prompt, seed in prompts:
            video = pipe(
                prompt,
                seed=seed % 2**31,
                frames=16,
                size=self.preset.size,
                steps=self.preset.validation_steps,
            )
            passed += bool(check(video.frames, prompt)["pass"])
        return {"pass_rate": round(passed / len(prompts), 3)}


STAGES = {"vae": VAEStage, "dit": DiTStage}
