"""The VAE's decoder sharpened against a discriminator, as the Stable Diffusion and Wan VAEs
are trained: reconstruction alone (L1 + MSE) is minimised by the average of the shapes a
latent could mean, which is why corners came out rounded and edges wobbled from frame to
frame. A discriminator that judges clips patch by patch, in space and in time, calls that
average fake; the decoder learns to commit to one sharp shape.

The perceptual term: LPIPS needs torchvision and ImageNet weights, which kinema cannot
use, so its place is taken by two things trained here. Feature matching compares the
discriminator's own features of the decoded clip and the real one (its features are
learned on exactly this world, where ImageNet's are not); and a gradient loss compares
the spatial differences (edges, corners) and the temporal differences (what changes from
frame to frame: an edge that wobbles is a difference the real clip does not have).

The encoder stays frozen, so the latents, and a DiT trained on them, keep their meaning.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kinema.errors import InputError
from kinema.models.vae import VideoVAE
from kinema.train.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from kinema.train.data import pixels_to_tensor, tensor_to_pixels
from kinema.train.distributed import Shard
from kinema.train.presets import Preset
from kinema.train.stages import VAEStage, psnr, training_batch
from kinema.world import check, parse, render_frames
from kinema.world.dataset import free_colour_sample, validation_split


class ClipDiscriminator(nn.Module):
    """A patch discriminator over frames: (B, 3, T, H, W) in [-1, 1] → a grid of real/fake
    logits for every frame.

    Each frame is judged together with its change from the frame before (6 input
    channels), so an edge that wobbles or a corner that comes and goes is visible to it
    without 3D convolutions, whose backward pass on a CPU cost 4.5× as much. Each logit
    sees about 22 px: a whole small shape. GroupNorm rather than BatchNorm: batches are a
    few clips on a CPU."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        layers, cin = [], 6
        for i, width in enumerate(widths):
            norm = nn.Identity() if i == 0 else nn.GroupNorm(8, width)
            layers.append(
                nn.Sequential(nn.Conv2d(cin, width, 4, stride=2, padding=1), norm, nn.LeakyReLU(0.2))
            )
            cin = width
        self.layers = nn.ModuleList(layers)
        self.head = nn.Conv2d(cin, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        change = torch.cat([torch.zeros_like(x[:, :, :1]), torch.diff(x, dim=2)], dim=2)
        x = torch.cat([x, change], dim=1)  # (B, 6, T, H, W)
        b, c, t, h, w = x.shape
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return self.head(x), features


def gradient_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the clips' finite differences along x, y and time: edges and corners
    where the real clip has them, and no change between frames that it does not have."""
    loss = recon.new_zeros(())
    for dim in (2, 3, 4):  # time, rows, columns of (B, C, T, H, W)
        if recon.shape[dim] > 1:
            loss = loss + F.l1_loss(torch.diff(recon, dim=dim), torch.diff(target, dim=dim))
    return loss


def rim_mask(target: torch.Tensor, threshold: float = 0.02) -> torch.Tensor:
    """(B, 1, T, H, W) in {0, 1}: the pixels within one pixel of an edge of `target` (any
    change to a neighbour in space). Corners and edges are a few hundred of a clip's
    4,096 pixels a frame; weighting them up makes a rounded corner cost what it should."""
    dx = (target[..., :, 1:] - target[..., :, :-1]).abs().amax(dim=1, keepdim=True)
    dy = (target[..., 1:, :] - target[..., :-1, :]).abs().amax(dim=1, keepdim=True)
    edge = F.pad(dx, (0, 1)) + F.pad(dx, (1, 0)) + F.pad(dy, (0, 0, 0, 1)) + F.pad(dy, (0, 0, 1, 0))
    edge = (edge > threshold).float()
    return F.max_pool3d(edge, (1, 3, 3), stride=1, padding=(0, 1, 1))


def weighted_reconstruction(recon: torch.Tensor, target: torch.Tensor, focus: float) -> torch.Tensor:
    """L1 + MSE, with the pixels near edges weighted 1 + focus (a weighted mean)."""
    error = (recon - target).abs() + (recon - target).pow(2)
    if focus <= 0:
        return error.mean()
    weight = 1 + focus * rim_mask(target)
    return (error * weight).mean() / weight.mean()


class AdversarialDecoderStage(VAEStage):
    """Decoder-only VAE training with reconstruction, gradient, adversarial (hinge) and
    feature-matching losses; the discriminator trains inside each step, on the same clips,
    with its own optimizer (saved with the checkpoint, so a killed run resumes exactly).

    The adversarial term is balanced as in taming-transformers: scaled by the ratio of the
    reconstruction's and the adversarial loss's gradient norms at the decoder's last layer,
    so neither swamps the other whatever their raw scales. For `adversarial_start` steps the
    discriminator learns alone (a decoder pushed by an untrained critic learns noise)."""

    kind = "vae"  # its checkpoints are VAE checkpoints

    def __init__(self, preset: Preset, device: torch.device | str = "cpu", shard: Shard | None = None):
        super().__init__(preset, device, shard)
        if self.shard.world > 1:
            raise InputError("the adversarial decoder stage trains in one process")
        if not preset.freeze_encoder:
            raise InputError("the adversarial decoder stage trains the decoder alone: set freeze_encoder")
        self.discriminator = ClipDiscriminator().to(self.device)
        self.d_optimizer = torch.optim.AdamW(
            self.discriminator.parameters(), lr=preset.discriminator_lr, betas=(0.5, 0.9), weight_decay=0.0
        )
        self._val_free: torch.Tensor | None = None

    # ---------------------------------------------------------------- checkpoint state

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The discriminator and its optimizer, for the trainer's resume state."""
        opt_tensors, opt_scalars = optimizer_to_tensors(self.d_optimizer)
        tensors = {f"disc.{k}": v.detach().cpu() for k, v in self.discriminator.state_dict().items()}
        tensors.update(opt_tensors)
        return tensors, {"optimizer": opt_scalars}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.discriminator.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("disc.")})
        optimizer_from_tensors(self.d_optimizer, tensors, meta["optimizer"])

    # ---------------------------------------------------------------- step

    def _train_discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> dict:
        real_logits, _ = self.discriminator(real)
        fake_logits, _ = self.discriminator(fake)
        loss = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.d_optimizer.step()
        return {
            "d_loss": loss.detach(),
            "d_real": real_logits.detach().mean(),
            "d_fake": fake_logits.detach().mean(),
        }

    def loss(self, model: nn.Module, step: int) -> tuple[torch.Tensor, dict]:
        p = self.preset
        frames = np.stack([s.frames for s in training_batch(p, step)])
        x = pixels_to_tensor(frames).to(self.device, non_blocking=True)
        recon, kl = model(x)
        recon = recon.float()
        rec = weighted_reconstruction(recon, x, p.edge_focus)
        edge = gradient_loss(recon, x)
        base = rec + p.edge_weight * edge + self.config.kl_weight * kl
        metrics = {"rec": rec.detach(), "edge": edge.detach()}
        if not (p.adversarial_weight or p.feature_weight):  # no critic terms: no critic to train
            return base, metrics
        metrics.update(self._train_discriminator(x, recon.detach()))
        if step < p.adversarial_start:
            return base, metrics
        self.discriminator.requires_grad_(False)
        try:
            fake_logits, fake_features = self.discriminator(recon)
            with torch.no_grad():
                _, real_features = self.discriminator(x)
        finally:
            self.discriminator.requires_grad_(True)
        adversarial = -fake_logits.mean()
        feature = sum(F.l1_loss(f, r) for f, r in zip(fake_features, real_features, strict=True)) / len(
            fake_features
        )
        last = model.decoder_last_weight()
        rec_grad = torch.autograd.grad(base, last, retain_graph=True)[0]
        adv_grad = torch.autograd.grad(adversarial, last, retain_graph=True)[0]
        balance = (rec_grad.norm() / (adv_grad.norm() + 1e-4)).clamp(0, 1e4).detach()
        loss = base + p.feature_weight * feature + p.adversarial_weight * balance * adversarial
        metrics.update(adversarial=adversarial.detach(), feature=feature.detach(), balance=balance)
        return loss, metrics

    # ---------------------------------------------------------------- validation

    def free_colour_clips(self) -> torch.Tensor:
        """16 free-colour clips of a stream no training run draws (stream 1_000_003)."""
        if self._val_free is None:
            seed, size = self.preset.seed, self.preset.size
            clips = [free_colour_sample(seed, 1_000_003, i, 17, size).frames for i in range(16)]
            self._val_free = pixels_to_tensor(np.stack(clips)).to(self.device)
        return self._val_free

    @torch.no_grad()
    def validate(self, model: VideoVAE) -> dict:
        """PSNR on the world's validation clips and on free-colour clips, and the world
        checker's pass rate of the round trip of 24 validation prompts (seeds and prompts
        apart from `kinema eval`'s sets, so choosing a checkpoint does not tune on them)."""
        result = super().validate(model)
        free = self.free_colour_clips()
        recon = torch.cat([model.decode(model.encode(free[i : i + 4])) for i in range(0, len(free), 4)])
        result["psnr_free"] = round(psnr(recon, free), 3)
        prompts = validation_split(12, seed=2) + validation_split(12, held_out=True, seed=2)
        passed = 0
        for prompt, seed in prompts:
            clip = render_frames(parse(prompt), seed=seed, frames=17, size=self.preset.size)
            x = pixels_to_tensor(clip).to(self.device)
            frames = tensor_to_pixels(model.decode(model.encode(x)))[0]
            passed += bool(check(frames[:16], prompt)["pass"])
        result["round_trip_pass"] = round(passed / len(prompts), 3)
        return result
