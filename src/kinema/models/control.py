"""The control branch: a ControlNet for the DiT, steered by a motion track's blobs.

    blob masks (T, H, W) ─► signal_tokens ─► (B, N, temporal·cell²) one row per DiT token
    DiT tokens (after patch embedding) + zero-init Linear(signal) ─► copies of the DiT's
        first `depth` blocks ─► a zero-init Linear after each ─► residuals added to the
        DiT's tokens after its blocks 0 … depth−1

Warm-started from the DiT (the copies start as its own blocks) and zero-initialised (the
signal's embedding and every output projection start at 0), so an untrained branch, like
scale 0, leaves the DiT's output exactly as it was; training moves only the branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from kinema.models.dit import Block, DiT, DiTConfig


@dataclass
class ControlConfig:
    depth: int = 4  # DiT blocks copied into the branch
    temporal: int = 4  # pixel frames per latent frame (the VAE's temporal factor)
    cell: int = 16  # pixels per DiT token along each side (VAE spatial factor × patch)

    @property
    def signal_features(self) -> int:
        return self.temporal * self.cell * self.cell


def signal_tokens(masks: torch.Tensor, temporal: int, cell: int) -> torch.Tensor:
    """Blob masks (B, T, H, W) of a 1+4k-frame clip → (B, T', H/cell · W/cell, features),
    latent frame by latent frame, in the DiT's token order. The causal VAE's latent 0 holds
    frame 0 alone: it is repeated to fill a whole group, so every latent frame's row holds
    the `temporal` frames it stands for."""
    first = masks[:, :1].expand(-1, temporal - 1, -1, -1)
    masks = torch.cat([first, masks], dim=1)
    b, t, h, w = masks.shape
    if t % temporal or h % cell or w % cell:
        raise ValueError(f"masks of {t - temporal + 1} frames, {w}x{h}, do not fit the latent grid")
    return rearrange(masks, "b (t ft) (h ch) (w cw) -> b t (h w) (ft ch cw)", ft=temporal, ch=cell, cw=cell)


class ControlBranch(nn.Module):
    def __init__(self, config: ControlConfig, dit_config: DiTConfig):
        super().__init__()
        self.config, self.dit_config = config, dit_config
        width = dit_config.width
        self.embed = nn.Linear(config.signal_features, width)
        self.blocks = nn.ModuleList(Block(dit_config) for _ in range(config.depth))
        self.outs = nn.ModuleList(nn.Linear(width, width) for _ in range(config.depth))
        for layer in (self.embed, *self.outs):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @classmethod
    def from_dit(cls, dit: DiT, config: ControlConfig) -> ControlBranch:
        """A branch whose blocks are copies of DIT's first blocks."""
        if config.depth > dit.config.depth:
            raise ValueError(f"a {config.depth}-block branch needs a DiT of at least that depth")
        branch = cls(config, dit.config)
        for own, source in zip(branch.blocks, dit.blocks, strict=False):
            own.load_state_dict(source.state_dict())
        return branch

    def residuals(self, tokens, signal, c, text, rotary, scale: float = 1.0) -> list[torch.Tensor]:
        """What to add after each of the DiT's first blocks, for its embedded TOKENS (B, N,
        width) and the SIGNAL rows (B or 1, N, features) of the same tokens."""
        x = tokens + self.embed(signal.to(tokens.dtype))
        out = []
        for block, project in zip(self.blocks, self.outs, strict=True):
            x = block(x, c, text, rotary)
            out.append(project(x) * scale)
        return out


class Steering:
    """A branch and its signal for one sampling run: called by the DiT with its tokens, it
    returns the residuals; `window(start, stop)` is the same for latent frames start …
    stop−1 (a long clip is sampled a window at a time)."""

    def __init__(self, branch: ControlBranch, signal: torch.Tensor, scale: float):
        self.branch, self.signal, self.scale = branch, signal, scale  # signal (1, T', n, f)

    def window(self, start: int, stop: int) -> Steering:
        return Steering(self.branch, self.signal[:, start:stop], self.scale)

    def __call__(self, tokens, c, text, rotary) -> list[torch.Tensor]:
        signal = self.signal.flatten(1, 2)  # (1, T'·n, f): the DiT's (t h w) token order
        if signal.shape[1] != tokens.shape[1]:
            raise ValueError(
                f"the control signal covers {signal.shape[1]} tokens; the clip has {tokens.shape[1]}"
            )
        return self.branch.residuals(tokens, signal, c, text, rotary, self.scale)
