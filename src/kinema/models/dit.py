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
from dataclasses import dataclass, field

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


class Rotary:
    """The rotary table of one token grid: each consecutive pair (a, b) of a head is the
    complex number a + ib, turned by its token's angle in one complex product (a dozen
    real operations on the halves cost more than their arithmetic at 80 tokens, where a
    DiT call is bound by the count of operations)."""

    def __init__(self, grid: tuple[int, int, int], head_dim: int, theta: float, device=None):
        angles = rope_angles(grid, head_dim, theta, device)  # (N, head_dim/2)
        # (N, 1, 1, head_dim/2): broadcast over (B, N, q|k, heads, pairs)
        self.turns = torch.polar(torch.ones_like(angles), angles)[:, None, None]

    def rotate(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """x (B, N, k, heads, head_dim) times WEIGHT (the q/k norms' weights), each pair
        rotated by its token's angle; in fp32 whatever the autocast."""
        pairs = torch.view_as_complex((x * weight).float().unflatten(-1, (-1, 2)))
        return torch.view_as_real(pairs * self.turns).flatten(-2).type_as(x)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sin-cos features (B, dim) of t in [0, 1]; scaled by 1000 so the frequencies span it as in DiT."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return torch.addcmul(shift, x, 1 + scale)


class TanhGELU(nn.GELU):
    """GELU, tanh approximation. Without autograd it is computed as x·σ(2u), the same
    function as 0.5·x·(1 + tanh u), in place: this CPU's tanh is a scalar loop, twice the
    time of the sigmoid form."""

    K = math.sqrt(8 / math.pi)  # 2·√(2/π): σ(2u) = (1 + tanh u) / 2
    # a 0-dim CPU tensor mixes with tensors on any device as a scalar does
    K_TENSOR = torch.tensor(K)

    def __init__(self):
        super().__init__(approximate="tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return super().forward(x)
        u = torch.addcmul(self.K_TENSOR, x, x, value=0.044715 * self.K).mul_(x)  # 2u
        return torch.sigmoid_(u).mul_(x)


@dataclass
class Modulation:
    """The adaLN inputs of one DiT call: c (timestep and pooled prompt) and what each
    block's and the final layer's modulation makes of it."""

    c: torch.Tensor  # (B, width)
    blocks: list[torch.Tensor]  # per block (B, 1, 6 width): shift, scale, gate ×2
    final: torch.Tensor  # (B, 1, 2 width): shift, scale


@dataclass
class TextStates:
    """The prompt as every block reads it, made once per prompt (DiT.text_states): the
    sampler calls the DiT 24 times with the same words, so their embedding and each
    cross-attention's keys and values are not made again at every step.

    Given the run's TIMES (its schedule), it also holds the modulation at each of them,
    made for all the times in one batched product per block on first use: a block's
    modulation is a (width × 6 width) product of only B rows, so a call spends its time
    reading the weights, and reading them once a run instead of once a step saves a
    tenth of a guided step."""

    tokens: torch.Tensor  # (B, 1 + L, width): the null key, then the embedded prompt
    bias: torch.Tensor  # (B, 1, 1, 1 + L): 0 on real tokens, -inf on padding
    pooled: torch.Tensor  # (B, width): the mean of the real tokens
    keys_values: dict = field(default_factory=dict)  # CrossAttention -> (k, v), filled on use
    # a reference image's tokens for each cross-attention's own second attention
    # (kinema.models.reference.ReferenceStates; Referencing.joined adds it)
    reference: object | None = None
    times: tuple[float, ...] = ()  # the run's schedule, as the sampler passes t
    modulations: dict = field(default_factory=dict)  # time -> Modulation, filled on use
    folded: dict = field(default_factory=dict)  # CrossAttention -> its FoldedText, filled on use

    def for_layer(self, cross: CrossAttention) -> tuple[torch.Tensor, torch.Tensor]:
        kv = self.keys_values.get(cross)
        if kv is None:
            kv = self.keys_values[cross] = cross.keys_values(self.tokens)
        return kv

    def folded_for_layer(self, cross: CrossAttention) -> FoldedText:
        made = self.folded.get(cross)
        if made is None:
            made = self.folded[cross] = cross.folded_text(*self.for_layer(cross), self.bias)
        return made

    def modulation_at(self, dit: DiT, t) -> Modulation | None:
        """The modulation at time T if T is one of the run's times (a Python float, as the
        samplers pass it), made with the others on first use; None otherwise. A reference
        changes the pooled prompt (Referencing.joined), so its states make their own."""
        if self.reference is not None or not isinstance(t, float) or t not in self.times:
            return None
        if not self.modulations:
            self.modulations = dit.modulations(self.pooled, self.times)
        return self.modulations[t]


# --- attention and block ----------------------------------------------------------------------


def rms_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x over its root mean square on the last dimension (F.rms_norm without a weight),
    in fp32 whatever the autocast: one fused norm reduction and rsqrt(eps + ‖x‖²/d) in
    one addcmul, where CPU torch's rms_norm makes five passes and copies."""
    norm = torch.linalg.vector_norm(x.float(), dim=-1, keepdim=True)
    scale = torch.rsqrt(torch.addcmul(torch.full_like(norm, eps), norm, norm, value=1 / x.shape[-1]))
    return x * scale.to(x.dtype)


class HeadNorm(nn.RMSNorm):
    """RMS norm of query/key heads (rms_normalize, then the weight in the input's dtype, so
    bf16 autocast keeps bf16 activations; the weight's values are unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_normalize(x, self.eps) * self.weight.to(x.dtype)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        # q/k RMS norm (as Wan) keeps attention logits bounded when the learning rate is high.
        self.q_norm = HeadNorm(width // heads, eps=1e-6)
        self.k_norm = HeadNorm(width // heads, eps=1e-6)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, rotary: Rotary) -> torch.Tensor:
        B, N, width = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.heads, -1)
        # q and k normalised together, then weighted by their norms' weights as they turn
        qk = rms_normalize(qkv[:, :, :2], self.q_norm.eps)
        qk = rotary.rotate(qk, torch.stack((self.q_norm.weight, self.k_norm.weight))[:, None])
        q, k, v = qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, head_dim)
        return self.out(x.transpose(1, 2).reshape(B, N, width))


@dataclass
class FoldedText:
    """A cross-attention's text in the form of two batched products (CrossAttention's
    folded path): every head's keys in one block-diagonal matrix, the values already
    through the output projection."""

    keys: torch.Tensor  # (B, width, heads·(1 + L)): head h's keys, scaled, in rows and columns h
    values_out: torch.Tensor  # (B, heads·(1 + L), width): each head's values times its slice of W_out
    bias: torch.Tensor  # (B, 1, heads·(1 + L)): the padding mask, once per head


class CrossAttention(nn.Module):
    """Attention from the video tokens to the prompt's. With the prompt's states made once a
    run (TextStates), the keys of all heads sit in one block-diagonal matrix and the values
    are carried through the output projection beforehand: softmax(q Kᵀ) V W_outᵀ is then
    two batched products of 4·13 columns, where attention per head, its transposes and a
    width × width output projection cost a DiT call about 5 % more on a CPU."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.q_norm = HeadNorm(width // heads, eps=1e-6)
        self.k_norm = HeadNorm(width // heads, eps=1e-6)
        self.out = nn.Linear(width, width)

    def keys_values(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (B, heads, L, head_dim) of the text TOKENS (B, L, width). The
        keys are normed and carry the query norm's weight too: (q̂·w)·k = q̂·(w·k), so
        the per-step queries need only be normalised."""
        B, L, _ = tokens.shape
        k, v = self.kv(tokens).view(B, L, 2, self.heads, -1).unbind(2)
        k = self.k_norm(k) * self.q_norm.weight.to(k.dtype)
        return k.transpose(1, 2), v.transpose(1, 2)

    def folded_text(self, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> FoldedText:
        """The FoldedText of keys_values' K, V (B, heads, L, head_dim) and the additive
        padding mask BIAS (B, 1, 1, L)."""
        B, heads, L, head_dim = k.shape
        # scaled as scaled_dot_product_attention scales; zero off each head's own block
        one_head = torch.eye(heads, dtype=k.dtype, device=k.device)
        keys = torch.einsum("bhld,hg->bhdgl", k * head_dim**-0.5, one_head).reshape(B, heads * head_dim, -1)
        per_head = self.out.weight.view(-1, heads, head_dim)  # (width, heads, head_dim)
        values_out = torch.einsum("bhld,ohd->bhlo", v, per_head.to(v.dtype)).reshape(B, heads * L, -1)
        return FoldedText(keys, values_out, bias.expand(B, 1, heads, L).reshape(B, 1, heads * L))

    def forward(self, x: torch.Tensor, text: TextStates) -> torch.Tensor:
        B, N, width = x.shape
        q = rms_normalize(self.q(x).view(B, N, self.heads, -1), self.q_norm.eps)  # (B, N, heads, hd)
        reference = text.reference
        weight = None if reference is None else reference.weights.get(self)
        if type(self.out) is not nn.Linear:  # a peft wrapper in training, or an int8 linear
            return self._per_head(q, text, weight)
        folded = text.folded_for_layer(self)
        keys, values_out = folded.keys.expand(B, -1, -1), folded.values_out.expand(B, -1, -1)
        # the additive mask: padded tokens get no weight at all
        scores = torch.baddbmm(folded.bias.to(q.dtype), q.view(B, N, width), keys)
        attention = torch.softmax(scores.view(B, N, self.heads, -1), dim=-1)
        out = torch.baddbmm(self.out.bias.to(q.dtype), attention.view(B, N, -1), values_out)
        if weight is not None:  # IP-Adapter's decoupled attention: its own softmax, added
            seen = (
                self._reference_attention(q.transpose(1, 2), reference).transpose(1, 2).reshape(B, N, width)
            )
            # the weight is a scalar a row, so it passes the projection (a gate of 0 adds 0)
            out = torch.addcmul(out, weight.reshape(-1, 1, 1).to(out.dtype), F.linear(seen, self.out.weight))
        return out

    def _reference_attention(self, q: torch.Tensor, reference) -> torch.Tensor:
        """q (B, heads, N, hd) attending to the reference image's tokens."""
        k, v = reference.for_layer(self)
        return F.scaled_dot_product_attention(
            q, k.expand(q.shape[0], -1, -1, -1), v.expand(q.shape[0], -1, -1, -1)
        )

    def _per_head(self, q: torch.Tensor, text: TextStates, weight) -> torch.Tensor:
        """forward as attention per head, then the output projection as a module: for an
        output projection that is not a plain linear."""
        B, N, _, _ = q.shape
        q = q.transpose(1, 2)
        k, v = text.for_layer(self)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=text.bias.to(q.dtype))
        if weight is not None:
            x = torch.addcmul(x, weight.to(x.dtype), self._reference_attention(q, text.reference))
        return self.out(x.transpose(1, 2).reshape(B, N, -1))


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
        self.mlp = nn.Sequential(nn.Linear(w, hidden), TanhGELU(), nn.Linear(hidden, w))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(w, 6 * w))

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        text: TextStates,
        rotary: Rotary,
        modulation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """MODULATION, if given, is this block's modulation of c, made before (TextStates)."""
        if modulation is None:
            modulation = self.modulation(c)[:, None]
        shift1, scale1, gate1, shift2, scale2, gate2 = modulation.chunk(6, dim=-1)
        x = torch.addcmul(x, gate1, self.attn(modulate(self.norm1(x), shift1, scale1), rotary))
        x = x + self.cross(self.norm2(x), text)
        return torch.addcmul(x, gate2, self.mlp(modulate(self.norm3(x), shift2, scale2)))


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

    def text_states(self, text: torch.Tensor, text_mask: torch.Tensor | None = None, times=()) -> TextStates:
        """The prompt's TextStates, for the forward calls of one sampler run.
        text: (B, L, text_dim) token states; text_mask: (B, L) bool, True = real token;
        times: the run's schedule (a tensor or floats), whose modulations the states then
        make once for all the steps."""
        B = text.shape[0]
        if text_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        tokens = self.text_embed(text.to(self.null_text.dtype))  # (B, L, width)
        # torch.where, not a product: whatever sits in padded slots cannot leak in.
        count = text_mask.sum(1, keepdim=True).clamp(min=1)
        pooled = torch.where(text_mask[..., None], tokens, 0).sum(1) / count  # (B, width)
        tokens = torch.cat([self.null_text.expand(B, -1, -1).to(tokens.dtype), tokens], dim=1)
        visible = F.pad(text_mask, (1, 0), value=True)
        bias = torch.zeros(visible.shape, dtype=tokens.dtype, device=tokens.device)
        bias = bias.masked_fill(~visible, float("-inf"))[:, None, None, :]
        times = tuple(times.tolist() if isinstance(times, torch.Tensor) else map(float, times))
        return TextStates(tokens, bias, pooled, times=times)

    def conditioning(self, t: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """c (…, width): the timesteps T (…) embedded, plus the pooled prompt's projection."""
        return self.time_embed(timestep_embedding(t.flatten(), 256).to(pooled.dtype)).view(
            *t.shape, -1
        ) + self.text_pool(pooled)

    def modulations(self, pooled: torch.Tensor, times: tuple[float, ...]) -> dict[float, Modulation]:
        """The Modulation at each of TIMES for the pooled prompt POOLED (B, width): one
        product per block for all the times and rows together."""
        t = torch.tensor(times, dtype=torch.float32, device=pooled.device)
        c = self.conditioning(t[:, None].expand(-1, pooled.shape[0]), pooled)  # (S, B, width)
        flat = c.flatten(0, 1)
        blocks = [block.modulation(flat).unflatten(0, c.shape[:2])[:, :, None] for block in self.blocks]
        final = self.final_modulation(flat).unflatten(0, c.shape[:2])[:, :, None]
        return {
            time: Modulation(c[i], [block[i] for block in blocks], final[i]) for i, time in enumerate(times)
        }

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | float,
        text: torch.Tensor | TextStates,
        text_mask: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        control=None,
        reference=None,
    ) -> torch.Tensor:
        """Velocity (B, C, T, H, W) for noisy latents x (B, C, T, H, W) at time t.

        t: a float, or one value in [0, 1] per batch element (1 = pure noise).
        text: (B, L, text_dim) token states with text_mask (B, L) bool, True = real
        token; or the TextStates of text_states(text, text_mask), made once for a run.
        cond: clean conditioning latents shaped like x; cond_mask: broadcastable to
        (B, 1, T, H, W), 1 where cond is given (a frame: (B, 1, T, 1, 1); a region: full).
        Both default to "nothing given". Any T, H, W works: sizes that the patch does not
        divide are zero-padded and the padding cropped from the output.
        control: a callable (a kinema.models.control.Steering) given the embedded tokens,
        c, the TextStates and the Rotary table; it returns residuals added to the tokens
        after the first blocks (a ControlNet's), one per block. reference: a
        kinema.models.reference.Referencing: the image's tokens, which every block's
        cross-attention reads in an attention of their own, and their mean, which joins
        the pooled prompt (an IP-Adapter's).
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
        rotary = Rotary(grid, cfg.width // cfg.heads, cfg.rope_theta, x.device)

        if not isinstance(text, TextStates):
            text = self.text_states(text, text_mask)
        elif text_mask is not None:
            raise ValueError("TextStates carry their own mask: pass text_mask to text_states")
        if reference is not None:
            text = reference.joined(self, text)
        made = text.modulation_at(self, t)
        if made is None:
            t = torch.as_tensor(t, device=x.device, dtype=torch.float32).expand(B)
            c = self.conditioning(t, text.pooled)  # (B, width)
            made = Modulation(c, [None] * len(self.blocks), self.final_modulation(c)[:, None])
        c = made.c

        residuals = [] if control is None else control(x, c, text, rotary)
        for index, (block, modulation) in enumerate(zip(self.blocks, made.blocks, strict=True)):
            x = block(x, c, text, rotary, modulation)
            if index < len(residuals):
                x = x + residuals[index]

        shift, scale = made.final.chunk(2, dim=-1)
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
