"""A causal 3D convolutional video VAE: pixels (B, 3, 1+4k, H, W) ⇄ latents (B, C, 1+k, H/8, W/8).

Causal in time (Wan, LTX-Video): every convolution pads only the past, so frame 0 is
encoded on its own and a latent frame never sees the future; a clip of 1+4k frames
becomes 1+k latent frames. The input is first folded into 4×4 pixel patches (LTX does
the same): convolutions then run at a quarter of the resolution, which on a CPU is the
difference between minutes and hours of training. Decoding runs latent frame by latent
frame with a cache of each causal convolution's past inputs, so memory does not grow
with the clip's length.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kinema.models.refiner import PictureRefiner


@dataclass
class VAEConfig:
    latent_channels: int = 8
    patch: int = 4  # pixels folded into channels before the first convolution
    channels: tuple[int, ...] = (64, 128)  # width after the patch, and after the ×2 spatial step
    blocks: int = 1  # residual blocks per stage
    kl_weight: float = 1e-6
    # widths of the picture refiner's levels after the decoder (empty: none; see
    # models.refiner.PictureRefiner)
    refiner: tuple[int, ...] = ()

    @property
    def spatial_factor(self) -> int:
        return self.patch * 2 ** (len(self.channels) - 1)

    temporal_factor: int = 4

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        d["refiner"] = tuple(d.get("refiner", ()))
        return cls(**d)


class CausalConv3d(nn.Module):
    """Conv3d that pads the past only in time (replicating frame 0) and both sides in space.

    With `cache` on, the last (k_t − 1) input frames are kept between calls, so a clip can
    be processed chunk by chunk with the same result as all at once.
    """

    def __init__(self, cin: int, cout: int, kernel=(3, 3, 3), stride=(1, 1, 1)):
        super().__init__()
        self.kt, kh, kw = kernel
        self.stride_t = stride[0]
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=(0, kh // 2, kw // 2))
        self.cache: torch.Tensor | None = None
        self.caching = False
        self._forms: dict = {}  # the weight's other layouts, and the identity they were made from

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        past = self.kt - 1
        if past:
            if self.caching and self.cache is not None:
                x = torch.cat([self.cache, x], dim=2)
            else:
                x = torch.cat([x[:, :, :1].expand(-1, -1, past, -1, -1), x], dim=2)
            if self.caching:
                # keep what the next chunk's first output needs, stride included
                keep = past - (x.shape[2] - past - 1) % self.stride_t if self.stride_t > 1 else past
                self.cache = x[:, :, x.shape[2] - keep :].detach() if keep > 0 else x[:, :, :0].detach()
        return self.conv(x)

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """The same convolution (stride 1) on a frames-major clip x (B, T, C, H, W) →
        (B, T, Cout, H, W): one 2-D convolution over every frame, its kt time taps (the
        frame and the kt − 1 before it, frame 0 standing in before the start) stacked
        into the channels. CPU torch sends a one-clip 3-D convolution this small to its
        unfused im2col path; the 2-D one goes to oneDNN, 2-3x faster."""
        B, T = x.shape[:2]
        y = F.conv2d(self._stacked(x), self._weight("2d"), self.conv.bias, padding=self.conv.padding[1:])
        return y.view(B, T, -1, *y.shape[-2:])

    def forward_frames_doubled(self, x: torch.Tensor) -> torch.Tensor:
        """forward_frames of x (B, T, C, H, W) doubled in space by nearest neighbours,
        without making the doubled frames: each of the 4 output phases (row and column
        parity) sees 2×2 of the small frame's pixels, so it is a 2×2 convolution whose
        taps are sums of the 3×3 kernel's (2.25× less arithmetic, the same numbers to
        float rounding). Takes the decoder's 3×3 kernels, padding 1."""
        if self.conv.kernel_size[1:] != (3, 3) or self.conv.padding[1:] != (1, 1):
            raise ValueError("forward_frames_doubled takes 3x3 kernels with padding 1")
        B, T, _, H, W = x.shape
        padded = F.pad(self._stacked(x), (1, 1, 1, 1))
        phases = self._weight("phases")  # (2, 2, Cout, kt·C, 2, 2): [row parity][column parity]
        rows = [
            torch.stack(
                [
                    F.conv2d(padded[..., a : a + H + 1, b : b + W + 1], phases[a, b], self.conv.bias)
                    for b in (0, 1)
                ],
                dim=-1,
            )
            for a in (0, 1)
        ]  # each (B·T, Cout, H, W, 2)
        return torch.stack(rows, dim=-3).reshape(B, T, -1, 2 * H, 2 * W)

    def _stacked(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) → (B·T, kt·C, H, W): each frame with its kt time taps in the channels."""
        if self.stride_t != 1:
            raise ValueError("frames-major convolutions take stride 1 in time (the decoder's)")
        B, T, C, H, W = x.shape
        taps = (torch.arange(T)[:, None] + torch.arange(self.kt) - (self.kt - 1)).clamp(min=0)
        return x[:, taps.flatten().to(x.device)].reshape(B * T, self.kt * C, H, W)

    def _weight(self, form: str) -> torch.Tensor:
        """The weight (Cout, C, kt, kh, kw) in FORM: "2d", (Cout, kt·C, kh, kw); "phases",
        the 2×2 kernels of forward_frames_doubled. Remade only when the weight changes
        (its storage or version) and kept only outside autograd; a weight made under
        inference mode has no version counter, so it is never kept."""
        w = self.conv.weight
        if torch.is_grad_enabled() or w.is_inference():
            return _weight_form(w, form)
        identity = (w.data_ptr(), w._version, w.device)
        if self._forms.get("identity") != identity:
            self._forms = {"identity": identity}
        if form not in self._forms:
            self._forms[form] = _weight_form(w, form).contiguous()
        return self._forms[form]


# Which of a 3×3 kernel's rows (columns) a doubled frame's even and odd rows (columns)
# see at the small frame's offsets −1, 0 (even) and 0, +1 (odd).
_PHASE_TAPS = torch.tensor([[[1.0, 0, 0], [0, 1, 1]], [[1.0, 1, 0], [0, 0, 1]]])


def _weight_form(w: torch.Tensor, form: str) -> torch.Tensor:
    flat = w.transpose(1, 2).flatten(1, 2)  # (Cout, kt·C, kh, kw)
    if form == "2d":
        return flat
    taps = _PHASE_TAPS.to(w.device, w.dtype)
    return torch.einsum("aij,ocjk,blk->abocil", taps, flat, taps)


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels)
        self.conv1 = CausalConv3d(channels, channels)
        self.norm2 = nn.GroupNorm(8, channels)
        self.conv2 = CausalConv3d(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(_group_norm(self.norm1, x)))
        h = self.conv2(F.silu(_group_norm(self.norm2, h)))
        return x + h

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """forward on a frames-major clip (B, T, C, H, W)."""
        h = self.conv1.forward_frames(F.silu(_frame_norm(self.norm1, x)))
        h = self.conv2.forward_frames(F.silu(_frame_norm(self.norm2, h)))
        return x + h


def _group_norm(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    # normalise each frame on its own: statistics over time would leak the future
    # into the past and break chunked decoding
    b, c, t, h, w = x.shape
    y = norm(x.transpose(1, 2).reshape(b * t, c, h, w))
    return y.reshape(b, t, c, h, w).transpose(1, 2)


def _frame_norm(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """_group_norm on a frames-major clip (B, T, C, H, W): its frames already are a batch."""
    return norm(x.flatten(0, 1)).view(x.shape)


class TimeDown(nn.Module):
    """Halve 1+2k frames to 1+k with a causal stride-2 convolution (frame 0 stays alone)."""

    def __init__(self, cin: int, cout: int, spatial: bool):
        super().__init__()
        s = 2 if spatial else 1
        self.conv = CausalConv3d(cin, cout, kernel=(3, 3, 3), stride=(2, s, s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class TimeUp(nn.Module):
    """Double 1+k frames to 1+2k (frame 0 is not repeated), optionally ×2 in space."""

    def __init__(self, cin: int, cout: int, spatial: bool):
        super().__init__()
        self.spatial = spatial
        self.conv = CausalConv3d(cin, cout)

    def forward(self, x: torch.Tensor, first_chunk: bool = True) -> torch.Tensor:
        x = x.repeat_interleave(2, dim=2)
        if first_chunk:
            x = x[:, :, 1:]
        if self.spatial:
            b, c, t, h, w = x.shape
            x = F.interpolate(x.transpose(1, 2).reshape(b * t, c, h, w), scale_factor=2, mode="nearest")
            x = x.reshape(b, t, c, 2 * h, 2 * w).transpose(1, 2)
        return self.conv(x)

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """forward (a whole clip) on a frames-major clip (B, T, C, H, W)."""
        x = x.repeat_interleave(2, dim=1)[:, 1:]
        return self.conv.forward_frames_doubled(x) if self.spatial else self.conv.forward_frames(x)


def _unpatch(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C·p·p, T, h, w) → (B, C, T, h·p, w·p): the inverse of the encoder's patch fold."""
    b, cpp, t, h, w = x.shape
    x = x.reshape(b, cpp // (p * p), p, p, t, h, w).permute(0, 1, 4, 5, 2, 6, 3)
    return x.reshape(b, cpp // (p * p), t, h * p, w * p)


# Latent cells (frames × rows × columns) a clip may have to be decoded at once: a 16-frame
# clip at 128 px has 1,280; its decoder activations are a few MB, where a 256-frame clip
# decoded at once would hold them for every frame (the length bench's flat peak).
WHOLE_DECODE_CELLS = 1536


class VideoVAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = c = config
        p2 = 3 * c.patch * c.patch
        widths = c.channels
        # Encoder: (patch) → stage 0 → time ÷2 → stage → (time ÷2, space ÷2 per extra width) …
        self.enc_in = CausalConv3d(p2, widths[0])
        self.enc_blocks = nn.ModuleList()
        self.enc_down = nn.ModuleList()
        downs = self._down_plan()
        for cin, cout, spatial in downs:
            self.enc_blocks.append(nn.Sequential(*[ResBlock(cin) for _ in range(c.blocks)]))
            self.enc_down.append(TimeDown(cin, cout, spatial))
        self.enc_mid = nn.Sequential(*[ResBlock(widths[-1]) for _ in range(c.blocks + 1)])
        self.enc_norm = nn.GroupNorm(8, widths[-1])
        self.enc_out = CausalConv3d(widths[-1], 2 * c.latent_channels)
        # Decoder mirrors it
        self.dec_in = CausalConv3d(c.latent_channels, widths[-1])
        self.dec_mid = nn.Sequential(*[ResBlock(widths[-1]) for _ in range(c.blocks + 1)])
        self.dec_up = nn.ModuleList()
        self.dec_blocks = nn.ModuleList()
        for cin, cout, spatial in reversed(downs):
            self.dec_up.append(TimeUp(cout, cin, spatial))
            self.dec_blocks.append(nn.Sequential(*[ResBlock(cin) for _ in range(c.blocks)]))
        self.dec_norm = nn.GroupNorm(8, widths[0])
        self.dec_out = CausalConv3d(widths[0], p2)
        # a learned last stage on the decoded pictures, trained apart (kinema.train.refiner)
        self.refiner = PictureRefiner(c.refiner) if c.refiner else None
        # latents are standardised with these (set from data after training)
        self.register_buffer("latent_mean", torch.zeros(c.latent_channels))
        self.register_buffer("latent_std", torch.ones(c.latent_channels))

    def _down_plan(self) -> list[tuple[int, int, bool]]:
        """Two time-halvings; each extra width also halves space. Returns (cin, cout, spatial)."""
        widths = self.config.channels
        steps = int(math.log2(self.config.temporal_factor))
        plan = []
        for i in range(steps):
            cin = widths[min(i, len(widths) - 1)]
            cout = widths[min(i + 1, len(widths) - 1)]
            plan.append((cin, cout, i + 1 < len(widths)))
        return plan

    # ---------------------------------------------------------------- shapes

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        c = self.config
        return (
            c.latent_channels,
            1 + (frames - 1) // c.temporal_factor,
            height // c.spatial_factor,
            width // c.spatial_factor,
        )

    def check_input(self, frames: int, height: int, width: int) -> None:
        c = self.config
        if (frames - 1) % c.temporal_factor:
            raise ValueError(f"the VAE takes 1+{c.temporal_factor}k frames, got {frames}")
        if height % c.spatial_factor or width % c.spatial_factor:
            raise ValueError(f"the VAE takes sizes divisible by {c.spatial_factor}, got {width}x{height}")

    # ---------------------------------------------------------------- encode

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels in [-1, 1], (B, 3, 1+4k, H, W) → (mean, logvar), each (B, C, 1+k, H/8, W/8)."""
        self.check_input(x.shape[2], x.shape[3], x.shape[4])
        p = self.config.patch
        b, _, t, h, w = x.shape
        x = x.reshape(b, 3, t, h // p, p, w // p, p).permute(0, 1, 4, 6, 2, 3, 5)
        x = x.reshape(b, 3 * p * p, t, h // p, w // p)
        x = self.enc_in(x)
        for blocks, down in zip(self.enc_blocks, self.enc_down, strict=True):
            x = down(blocks(x))
        x = self.enc_mid(x)
        mean, logvar = self.enc_out(F.silu(_group_norm(self.enc_norm, x))).chunk(2, dim=1)
        return mean, logvar.clamp(-20, 10)

    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Standardised latents of pixel clips (the DiT's data space)."""
        mean, logvar = self.encode_dist(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
        return (z - self.latent_mean.view(1, -1, 1, 1, 1)) / self.latent_std.view(1, -1, 1, 1, 1)

    # ---------------------------------------------------------------- decode

    def decode_raw(self, z: torch.Tensor, first_chunk: bool = True) -> torch.Tensor:
        x = self.dec_mid(self.dec_in(z))
        for up, blocks in zip(self.dec_up, self.dec_blocks, strict=True):
            x = blocks(up(x, first_chunk=first_chunk))
        h = F.silu(_group_norm(self.dec_norm, x))
        p = self.config.patch
        return _unpatch(self.dec_out(h), p)

    def decode_frames(self, z: torch.Tensor) -> torch.Tensor:
        """decode_raw of a whole clip, computed frames-major: every layer sees the frames
        as a batch (B·T, C, H, W), so group norms need no transposes and convolutions run
        as 2-D ones (CausalConv3d.forward_frames). The same numbers to float rounding."""
        x = self.dec_in.forward_frames(z.transpose(1, 2).contiguous())
        for block in self.dec_mid:
            x = block.forward_frames(x)
        for up, blocks in zip(self.dec_up, self.dec_blocks, strict=True):
            x = up.forward_frames(x)
            for block in blocks:
                x = block.forward_frames(x)
        h = F.silu(_frame_norm(self.dec_norm, x))
        return _unpatch(self.dec_out.forward_frames(h).transpose(1, 2), self.config.patch)

    def decoder_last_weight(self) -> torch.Tensor:
        """The weight of the decoder's last layer (where a GAN's loss terms are balanced)."""
        return self.dec_out.conv.weight

    def decode(self, latents: torch.Tensor, chunked: bool | None = None) -> torch.Tensor:
        """Standardised latents (B, C, 1+k, h, w) → pixels (B, 3, 1+4k, 8h, 8w) in [-1, 1].

        Chunked decoding feeds one latent frame at a time through caching convolutions:
        the same output as decoding at once (to float rounding), with memory independent
        of the length. By default (None) a clip of at most WHOLE_DECODE_CELLS latent cells
        a batch item is decoded at once, frames-major (decode_frames), which is faster (a
        default clip: 0.03-0.04 s against 0.07-0.09 s as 3-D convolutions and 0.09-0.13 s
        chunked on 2 CPU cores), and a longer or larger one chunk by chunk.
        A VAE with a picture refiner refines the decoded clip last.
        """
        pictures = self.decode_pictures(latents, chunked)
        return pictures if self.refiner is None else self.refiner(pictures)

    def unstandardised(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents (the DiT's data space) → the decoder's raw input (encode's
        standardising undone)."""
        return latents * self.latent_std.view(1, -1, 1, 1, 1) + self.latent_mean.view(1, -1, 1, 1, 1)

    def decode_pictures(self, latents: torch.Tensor, chunked: bool | None) -> torch.Tensor:
        z = self.unstandardised(latents)
        if chunked is None:
            chunked = z.shape[2] * z.shape[3] * z.shape[4] > WHOLE_DECODE_CELLS
        if not chunked or z.shape[2] == 1:
            return self.decode_frames(z).clamp(-1, 1)
        convs = [m for m in self.modules() if isinstance(m, CausalConv3d)]
        for m in convs:
            m.caching, m.cache = True, None
        try:
            out = [self.decode_raw(z[:, :, i : i + 1], first_chunk=(i == 0)) for i in range(z.shape[2])]
        finally:
            for m in convs:
                m.caching, m.cache = False, None
        return torch.cat(out, dim=2).clamp(-1, 1)

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction and KL term for training: returns (recon, kl). `noise` is the
        reparameterisation noise, shaped like the latents (drawn here when None)."""
        mean, logvar = self.encode_dist(x)
        # fp32 noise whatever autocast made of `mean`: the same draws on every device and rank
        noise = torch.randn(mean.shape, device=mean.device) if noise is None else noise
        z = mean + noise * (0.5 * logvar).exp()
        recon = self.decode_raw(z)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        return recon, kl
