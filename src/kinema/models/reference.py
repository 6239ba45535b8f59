"""The reference branch: an IP-Adapter for the DiT, steered by one image's object.

    reference image ─► the VAE's encoder (one frame) ─► latent patches (the DiT's patch)
        ─► MLP ─► reference tokens (B, n, width)
    their mean ─► zero-init Linear ─► added to the DiT's c (adaLN: every token sees it)
    after every third DiT block: x += zero-init out(attention(q(x), k(ref), v(ref)))

The image's features reach the DiT through their own attention path (decoupled from the
text's cross-attention, as IP-Adapter's), trained here; the DiT is frozen. Every output
projection starts at zero, so an untrained branch, like scale 0, leaves the DiT exactly
as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kinema.models.dit import DiTConfig, HeadNorm


@dataclass
class ReferenceConfig:
    latent_channels: int = 8
    patch: int = 2  # latent cells per reference token along each side (the DiT's)
    every: int = 3  # the reference is attended after every `every`-th DiT block (0, 3, 6, …)

    @property
    def features(self) -> int:
        return self.latent_channels * self.patch * self.patch


class ReferenceAttention(nn.Module):
    """Attention from the DiT's tokens to the reference tokens, its output zero-initialised."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.q_norm = HeadNorm(width // heads, eps=1e-6)
        self.k_norm = HeadNorm(width // heads, eps=1e-6)
        self.out = nn.Linear(width, width)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        q = rearrange(self.q(self.norm(x)), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.kv(reference), "b l (two h d) -> two b h l d", two=2, h=self.heads)
        x = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        return self.out(rearrange(x, "b h n d -> b n (h d)"))


class ReferenceBranch(nn.Module):
    def __init__(self, config: ReferenceConfig, dit_config: DiTConfig):
        super().__init__()
        self.config, self.dit_config = config, dit_config
        width = dit_config.width
        self.embed = nn.Sequential(
            nn.LayerNorm(config.features),
            nn.Linear(config.features, width),
            nn.GELU(approximate="tanh"),
            nn.Linear(width, width),
        )
        self.pool = nn.Linear(width, width)
        nn.init.zeros_(self.pool.weight)
        nn.init.zeros_(self.pool.bias)
        layers = -(-dit_config.depth // config.every)
        self.attend = nn.ModuleList(ReferenceAttention(width, dit_config.heads) for _ in range(layers))

    def tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """Reference latents (B, C, 1, h, w) → tokens (B, n, width)."""
        p = self.config.patch
        latents = F.pad(latents[:, :, 0], (0, -latents.shape[-1] % p, 0, -latents.shape[-2] % p))
        patches = rearrange(latents, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=p, pw=p)
        return self.embed(patches)


class Referencing:
    """A branch and one reference's tokens for a sampling run, at a scale: the DiT adds
    `pooled` to its c and `after(i, x)` to its tokens after block i. SCALE is a number, or
    one per batch row (B,): classifier-free guidance gives the reference to the prompt's
    row only (as IP-Adapter does), so guidance strengthens what the image says as it
    strengthens what the words say."""

    def __init__(self, branch: ReferenceBranch, tokens: torch.Tensor, scale: float | torch.Tensor = 1.0):
        self.branch, self.tokens, self.scale = branch, tokens, scale

    def rows(self, scales: list[float]) -> Referencing:
        """The same reference with a scale for each batch row."""
        return Referencing(self.branch, self.tokens, torch.tensor(scales, device=self.tokens.device))

    def _scaled(self, value: torch.Tensor) -> torch.Tensor:
        if isinstance(self.scale, torch.Tensor):
            return value * self.scale.to(value.dtype).reshape(-1, *[1] * (value.dim() - 1))
        return value * self.scale

    @property
    def pooled(self) -> torch.Tensor:
        return self._scaled(self.branch.pool(self.tokens.mean(dim=1)))

    def after(self, index: int, x: torch.Tensor) -> torch.Tensor | None:
        """What to add to the tokens after DiT block INDEX (None: nothing there)."""
        layer, rest = divmod(index, self.branch.config.every)
        if rest or layer >= len(self.branch.attend):
            return None
        tokens = self.tokens.expand(x.shape[0], -1, -1) if self.tokens.shape[0] == 1 else self.tokens
        return self._scaled(self.branch.attend[layer](x, tokens.to(x.dtype)))
