"""The reference branch: an IP-Adapter for the DiT, steered by one image's object.

    reference image ─► the VAE's encoder (one frame) ─► two 3×3 convolutions over the
        latent ─┐
    reference image's pixels ─► four convolutions, down 8× ─┴─► summed ─► the DiT's 2×2
        latent patches ─► MLP ─► patch features (B, n, hidden)
    `words` learned queries attend to them (a one-layer resampler, as IP-Adapter Plus's)
        ─► pseudo-words (B, words, text_dim), in the text encoder's token space
    the DiT's own text embedding (frozen) ─► reference tokens (B, 1 + words, width),
        the DiT's null token first
    in every block's cross-attention:
        out(attention(q, text) + gate_i · attention(q, reference tokens))
    their mean, times a gate, joins the pooled prompt (adaLN's c)

Decoupled as IP-Adapter's: the image has its own attention (its own softmax, so it
never competes with the words for weight), added before the cross-attention's output
projection. Its keys and values are made by the text's own projections, as IP-Adapter
starts its image projections as copies of the text's: the branch learns to say the
object in words the frozen DiT already reads, and ships no copy of them (12 blocks × a
width-256 key/value projection would be 3 MB more). The DiT is frozen; the gates start
at zero, so an untrained branch, like scale 0, leaves the DiT exactly as it was.

Why pixels as well as latents: the latents tell a small square from a small circle only
about 85–90 % of the time (a probe trained on them, session 2026-12-07 b), the pixels
always; the pixel path's last convolution starts at zero, so it was added to a branch
trained on latents alone without changing what that branch did.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kinema.models.dit import DiTConfig

# The gates are stored divided by this: Adam moves a parameter by about its learning rate
# a step whatever its gradient, and a gate must travel from 0 to about 1 in a few hundred
# steps at the learning rate that suits the branch's other weights.
GATE_RATE = 30.0


@dataclass
class ReferenceConfig:
    latent_channels: int = 8
    patch: int = 2  # latent cells per patch along each side (the DiT's)
    hidden: int = 256  # width of the patch features and the resampler
    words: int = 4  # pseudo-words the image becomes
    heads: int = 4  # the resampler's attention heads

    @property
    def features(self) -> int:
        return self.hidden * self.patch * self.patch


@dataclass
class ReferenceStates:
    """A reference as every cross-attention of one DiT call reads it: its tokens (B or 1,
    1 + words, width) and each block's weight on them (B or 1, 1, 1, 1): the branch's gate
    times the scale of that batch row."""

    tokens: torch.Tensor
    weights: dict  # the block's CrossAttention -> weight
    keys_values: dict  # CrossAttention -> (k, v) of the tokens, filled on use, shared by a run

    def for_layer(self, cross) -> tuple[torch.Tensor, torch.Tensor]:
        kv = self.keys_values.get(cross)
        if kv is None:
            kv = self.keys_values[cross] = cross.keys_values(self.tokens)
        return kv


class Resampler(nn.Module):
    """WORDS learned queries read the patch features: one attention and one MLP, pre-norm."""

    def __init__(self, config: ReferenceConfig):
        super().__init__()
        h = config.hidden
        self.queries = nn.Parameter(torch.randn(1, config.words, h) * 0.02)
        self.norm_q, self.norm_kv, self.norm_mlp = nn.LayerNorm(h), nn.LayerNorm(h), nn.LayerNorm(h)
        self.attention = nn.MultiheadAttention(h, config.heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(h, 2 * h), nn.GELU(approximate="tanh"), nn.Linear(2 * h, h))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        q = self.queries.expand(patches.shape[0], -1, -1)
        kv = self.norm_kv(patches)
        x = q + self.attention(self.norm_q(q), kv, kv, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))


class ReferenceBranch(nn.Module):
    def __init__(self, config: ReferenceConfig, dit_config: DiTConfig):
        super().__init__()
        self.config, self.dit_config = config, dit_config
        h, c = config.hidden, config.latent_channels
        # the convolutions see a cell's neighbours, so a patch's features carry the
        # object's outline (corners or curves) before the patches become a set
        self.stem = nn.Sequential(
            nn.Conv2d(c, h // 4, 3, padding=1),
            nn.GELU(approximate="tanh"),
            nn.Conv2d(h // 4, h, 3, padding=1),
        )
        # pixels in [-1, 1], down 8× to the latent grid (the VAE's spatial factor)
        self.pixel_stem = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=2, padding=1),
            nn.GELU(approximate="tanh"),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            nn.GELU(approximate="tanh"),
            nn.Conv2d(64, 128, 4, stride=2, padding=1),
            nn.GELU(approximate="tanh"),
            nn.Conv2d(128, h, 3, padding=1),
        )
        nn.init.zeros_(self.pixel_stem[-1].weight)
        nn.init.zeros_(self.pixel_stem[-1].bias)
        self.embed = nn.Sequential(
            nn.LayerNorm(config.features),
            nn.Linear(config.features, h),
            nn.GELU(approximate="tanh"),
            nn.Linear(h, h),
        )
        self.resampler = Resampler(config)
        self.to_words = nn.Sequential(nn.LayerNorm(h), nn.Linear(h, dit_config.text_dim))
        # one per block's cross-attention, and one for the pooled prompt; read through
        # GATE_RATE (below)
        self.gates = nn.Parameter(torch.zeros(dit_config.depth))
        self.pool_gate = nn.Parameter(torch.zeros(()))

    def tokens(self, latents: torch.Tensor, pictures: torch.Tensor) -> torch.Tensor:
        """The reference's latents (B, C, 1, h, w) and pixels (B, 3, H, W) in [-1, 1], H = 8h
        and W = 8w → pseudo-words (B, words, text_dim)."""
        p = self.config.patch
        x = self.stem(latents[:, :, 0])
        x = x + self.pixel_stem(pictures)[..., : x.shape[-2], : x.shape[-1]]
        x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p))
        patches = rearrange(x, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=p, pw=p)
        return self.to_words(self.resampler(self.embed(patches)))


class Referencing:
    """A branch and one reference's pseudo-words for a sampling run, at a scale: the DiT
    reads them through `joined`. SCALE is a number, or one per batch row (B,):
    classifier-free guidance gives the reference to the prompt's row only (as IP-Adapter
    does), so guidance strengthens what the image says as it strengthens what the words
    say."""

    def __init__(self, branch: ReferenceBranch, tokens: torch.Tensor, scale: float | torch.Tensor = 1.0):
        self.branch, self.tokens, self.scale = branch, tokens, scale
        # the words as the DiT embeds them, and each cross-attention's keys and values of
        # them: the same at every step of a run, so made once (see joined)
        self._embedded: tuple[torch.Tensor, torch.Tensor, dict] | None = None

    def rows(self, scales: list[float]) -> Referencing:
        """The same reference with a scale for each batch row (sharing what is made once)."""
        rows = Referencing(self.branch, self.tokens, torch.tensor(scales, device=self.tokens.device))
        rows._embedded = self._embedded
        return rows

    def _per_row(self, value: torch.Tensor, dims: int) -> torch.Tensor:
        """VALUE (a scalar tensor) times the scale, shaped to broadcast over `dims` dims."""
        if isinstance(self.scale, torch.Tensor):
            return value * self.scale.to(value.dtype).reshape(-1, *[1] * (dims - 1))
        return (value * self.scale).reshape(*[1] * dims)

    def joined(self, dit, text):
        """The DiT's TextStates TEXT with this reference: its tokens for the cross-attentions
        of DIT's blocks, and its mean joining the pooled prompt. The text's own keys and
        values, made once a run, are shared, not made again."""
        branch = self.branch
        if self._embedded is None:
            words = dit.text_embed(self.tokens.to(dit.null_text.dtype))  # (B or 1, words, width)
            tokens = torch.cat([dit.null_text.expand(words.shape[0], -1, -1).to(words.dtype), words], dim=1)
            self._embedded = (words, tokens, {})
        words, tokens, keys_values = self._embedded
        weights = {
            block.cross: self._per_row(gate * GATE_RATE, 4)
            for block, gate in zip(dit.blocks, branch.gates, strict=True)
        }
        pooled = text.pooled + self._per_row(branch.pool_gate * GATE_RATE, 2) * words.mean(dim=1)
        return dataclasses.replace(
            text, pooled=pooled, reference=ReferenceStates(tokens, weights, keys_values)
        )
