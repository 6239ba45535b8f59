"""The video diffusion transformer: predicts the flow-matching velocity of a latent clip.

Reads top to bottom: config, position and timestep embeddings, attention, block, model.

    latents (B, C, T, H, W) ─┐
    cond latents, mask ──────┴─► concat channels ─► patchify ─► tokens (B, N, width)
    timestep ─► sin-cos ─► MLP ─┐
    text tokens ─► MLP ─► mean ─┴─► c (B, width) ─► adaLN-Zero in every block
    blocks: self-attention (3D RoPE) ─► cross-attention to text ─► MLP
    final adaLN + linear ─► unpatchify ─► velocity (B, C, T, H, W)

Conditioning (Wan-I2V / LTX style): the input carries, beside the noisy latents, the clean
conditioning latents (zeros where absent) and a one-channel mask (1 where given). One model
then does text-to-video (mask all 0), first/last frame, keyframes, extension context and
inpainting (a spatial mask), all learned with the same loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@dataclass
class DiTConfig:
    latent_channels: int = 8
    patch: tuple[int, int, int] = (1, 2, 2)  # (pt, ph, pw) latent cells per token
    width: int = 256
    depth: int = 8
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384  # MiniLM's hidden size; 4096 for UMT5-XXL
    cond: bool = True  # input carries clean conditioning latents and a mask channel
    rope_theta: float = 10000.0

    def __post_init__(self):
        self.patch = tuple(self.patch)  # a JSON round trip gives a list
        head_dim, rem = divmod(self.width, self.heads)
        if rem or head_dim % 2 or head_dim < 6:
            raise ValueError(f"width {self.width} / heads {self.heads} must give an even head size >= 6")

    @property
    def in_channels(self) -> int:
        return 2 * self.latent_channels + 1 if self.cond else self.latent_channels


# --- embeddings -----------------------------------------------------------------------------


def rope_angles(grid: tuple[int, int, int], head_dim: int, theta: float, device=None) -> torch.Tensor:
    """Rotation angles (N, head_dim/2) for the tokens of a (t, h, w) grid, in row-major order.

    The rotary pairs of a head are split between time, height and width (about a third
    each, time taking the remainder), so attention sees relative offsets along each axis.
    Computed for whatever grid comes in: no table fixes the clip's size or length.
    """
    pairs = head_dim // 2
    n_hw = pairs // 3
    axes = []
    for n, size in zip((pairs - 2 * n_hw, n_hw, n_hw), grid, strict=True):
        freqs = theta ** (-torch.arange(n, device=device, dtype=torch.float64) / n)
        axes.append(torch.outer(torch.arange(size, device=device, dtype=torch.float64), freqs))
    t, h, w = grid
    angles = torch.cat(
        [
            axes[0][:, None, None].expand(t, h, w, -1),
            axes[1][None, :, None].expand(t, h, w, -1),
            axes[2][None, None, :].expand(t, h, w, -1),
        ],
        dim=-1,
    )
    return angles.reshape(t * h * w, pairs).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of x (B, heads, N, head_dim) by the per-token angles."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2).type_as(x)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sin-cos features (B, dim) of t in [0, 1]; scaled by 1000 so the frequencies span it as in DiT."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


# --- attention and block ----------------------------------------------------------------------


class HeadNorm(nn.RMSNorm):
    """RMS norm of query/key heads in the input's dtype: under bf16 autocast an fp32 weight
    would send torch.rms_norm to its slow unfused path (the weight's values are unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.eps)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        # q/k RMS norm (as Wan) keeps attention logits bounded when the learning rate is high.
        self.q_norm = HeadNorm(width // heads, eps=1e-6)
        self.k_norm = HeadNorm(width // heads, eps=1e-6)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        q, k = apply_rope(self.q_norm(q), *rope), apply_rope(self.k_norm(k), *rope)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.out(rearrange(x, "b h n d -> b n (h d)"))


class CrossAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.q_norm = HeadNorm(width // heads, eps=1e-6)
        self.k_norm = HeadNorm(width // heads, eps=1e-6)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.kv(text), "b l (two h d) -> two b h l d", two=2, h=self.heads)
        mask = text_mask[:, None, None, :]  # (B, 1, 1, L): padded tokens get no weight at all
        x = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v, attn_mask=mask)
        return self.out(rearrange(x, "b h n d -> b n (h d)"))


class Block(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        w = cfg.width
        self.norm1 = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(w, cfg.heads)
        self.norm2 = nn.LayerNorm(w, eps=1e-6)
        self.cross = CrossAttention(w, cfg.heads)
        self.norm3 = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        hidden = int(w * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(w, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, w))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(w, 6 * w))

    def forward(self, x, c, text, text_mask, rope):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), rope)
        x = x + self.cross(self.norm2(x), text, text_mask)
        return x + gate2 * self.mlp(modulate(self.norm3(x), shift2, scale2))


# --- the model --------------------------------------------------------------------------------


class DiT(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = cfg = config
        w, patch_volume = cfg.width, math.prod(cfg.patch)
        self.patch_embed = nn.Linear(cfg.in_channels * patch_volume, w)
        self.time_embed = nn.Sequential(nn.Linear(256, w), nn.SiLU(), nn.Linear(w, w))
        self.text_embed = nn.Sequential(
            nn.LayerNorm(cfg.text_dim),
            nn.Linear(cfg.text_dim, w),
            nn.GELU(approximate="tanh"),
            nn.Linear(w, w),
        )
        # The pooled prompt joins the timestep in c, so global facts (colour, shape) reach
        # every token through adaLN as well as through cross-attention (as SD3's pooled text).
        self.text_pool = nn.Linear(w, w)
        # An always-visible extra key: an empty or fully padded prompt still has something to
        # attend to (softmax over no keys is NaN), and the model may learn to "attend nowhere".
        self.null_text = nn.Parameter(torch.randn(1, 1, w) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.final = nn.Linear(w, patch_volume * cfg.latent_channels)
        self.reset_parameters()

    def reset_parameters(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.time_embed:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        # adaLN-Zero: every gate and the cross-attention output start at zero, so each block
        # starts as the identity; the zero output layer makes the untrained model predict 0.
        zero = [self.final_modulation[-1], self.final]
        for block in self.blocks:
            zero += [block.modulation[-1], block.cross.out]
        for m in zero:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | float,
        text: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        control=None,
        reference=None,
    ) -> torch.Tensor:
        """Velocity (B, C, T, H, W) for noisy latents x (B, C, T, H, W) at time t.

        t: a float, or one value in [0, 1] per batch element (1 = pure noise).
        text: (B, L, text_dim) token states; text_mask: (B, L) bool, True = real token.
        cond: clean conditioning latents shaped like x; cond_mask: broadcastable to
        (B, 1, T, H, W), 1 where cond is given (a frame: (B, 1, T, 1, 1); a region: full).
        Both default to "nothing given". Any T, H, W works: sizes that the patch does not
        divide are zero-padded and the padding cropped from the output.
        control: a callable (a kinema.models.control.Steering) given the embedded tokens,
        c, the text and the rotary angles; it returns residuals added to the tokens after
        the first blocks (a ControlNet's), one per block. reference: a
        kinema.models.reference.Referencing: its `pooled` joins c, and `after(i, x)` is
        added to the tokens after block i where it is not None (an IP-Adapter's
        attention to an image).
        """
        cfg = self.config
        B, C, T, H, W = x.shape
        if cfg.cond:
            cond_mask = x.new_zeros(B, 1, T, H, W) if cond_mask is None else cond_mask.to(x.dtype)
            cond_mask = cond_mask.expand(B, 1, T, H, W)
            cond = torch.zeros_like(x) if cond is None else cond * cond_mask  # zeros where absent
            x = torch.cat([x, cond, cond_mask], dim=1)
        elif cond is not None or cond_mask is not None:
            raise ValueError("this model was built without conditioning input (config.cond is False)")

        pt, ph, pw = cfg.patch
        pad = (0, -W % pw, 0, -H % ph, 0, -T % pt)
        x = F.pad(x, pad)
        grid = (x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw)
        x = rearrange(x, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw)
        x = self.patch_embed(x)  # (B, N, width)
        angles = rope_angles(grid, cfg.width // cfg.heads, cfg.rope_theta, x.device)
        rope = (angles.cos().to(x.dtype), angles.sin().to(x.dtype))

        if text_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        text = self.text_embed(text.to(x.dtype))  # (B, L, width)
        # torch.where, not a product: whatever sits in padded slots cannot leak in.
        count = text_mask.sum(1, keepdim=True).clamp(min=1)
        pooled = torch.where(text_mask[..., None], text, 0).sum(1) / count  # (B, width)
        text = torch.cat([self.null_text.expand(B, -1, -1).to(text.dtype), text], dim=1)
        text_mask = F.pad(text_mask, (1, 0), value=True)

        t = torch.as_tensor(t, device=x.device, dtype=torch.float32).expand(B)
        c = self.time_embed(timestep_embedding(t, 256).to(x.dtype)) + self.text_pool(pooled)  # (B, width)
        if reference is not None:
            c = c + reference.pooled.to(c.dtype)

        residuals = [] if control is None else control(x, c, text, text_mask, rope)
        for index, block in enumerate(self.blocks):
            x = block(x, c, text, text_mask, rope)
            if index < len(residuals):
                x = x + residuals[index]
            extra = None if reference is None else reference.after(index, x)
            if extra is not None:
                x = x + extra

        shift, scale = self.final_modulation(c)[:, None].chunk(2, dim=-1)
        x = self.final(modulate(self.final_norm(x), shift, scale))
        x = rearrange(
            x, "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)", t=grid[0], h=grid[1], pt=pt, ph=ph, pw=pw
        )
        return x[:, :, :T, :H, :W]


def block_count(weights: dict[str, torch.Tensor]) -> int:
    """How many transformer blocks a DiT state dict holds."""
    return 1 + max((int(k.split(".")[1]) for k in weights if k.startswith("blocks.")), default=-1)


def deepen(weights: dict[str, torch.Tensor], model: DiT) -> dict[str, torch.Tensor]:
    """`model`'s state with a shallower DiT's `weights` in it: the old blocks keep their order,
    spread evenly among the new depth, and every other tensor is the old model's; the new
    blocks keep `model`'s adaLN-Zero init, so at first they pass their input through and
    the deeper model computes exactly what the shallow one did (growing a trained model
    instead of starting a bigger one from nothing)."""
    old_depth, new_depth = block_count(weights), model.config.depth
    if old_depth > new_depth:
        raise ValueError(f"cannot deepen a {old_depth}-block DiT into {new_depth} blocks")
    place = {i: i * new_depth // old_depth for i in range(old_depth)}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for key, value in weights.items():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            key = f"blocks.{place[int(index)]}.{rest}"
        if key not in state or state[key].shape != value.shape:
            raise ValueError(f"weight '{key}' {tuple(value.shape)} does not fit this DiT")
        state[key] = value
    return state
