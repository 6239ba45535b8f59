"""The picture refiner: a learned last stage of the VAE decoder that works on decoded
frames, (B, 3, T, H, W) in [-1, 1] → the same, corrected.

Why a stage in picture space: the decoder's round trip of a growing square comes back a
rounded blob in the frames where it is small, because one latent frame holds four
pixel frames of different sizes. Its shape is plain in the frames where it is big, and
WORLD.md keeps an object's shape for the whole clip. So the refiner is a per-frame
U-Net (receptive field larger than any object at 64 px) whose bottleneck tokens attend
to every token of the clip's other frames: a frame borrows the shape its clip shows
clearly. Its last layers start at zero, so an untrained refiner returns its input.

It is trained on (decoded, rendered) pairs cached once (`kinema.train.refiner`): the
decoder does not run in its training loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# frames the refiner sees at once: a 17-frame window, as it was trained on
WINDOW = 17


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.SiLU(),
    )


class ClipAttention(nn.Module):
    """Each bottleneck token attends to every bottleneck token of its window (all frames)."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        self.heads = heads
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor, frames: int) -> torch.Tensor:
        bt, c, hh, ww = h.shape
        b, n = bt // frames, hh * ww
        x = self.norm(h).reshape(b, frames, c, n).permute(0, 1, 3, 2).reshape(b, frames * n, c)
        q, k, v = self.qkv(x).reshape(b, frames * n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, frames * n, c)
        y = self.out(y).reshape(b, frames, n, c).permute(0, 1, 3, 2).reshape(bt, c, hh, ww)
        return h + y


class PictureRefiner(nn.Module):
    """A U-Net over frames, widths per level (each level halves the size), with clip
    attention at the bottleneck. Frames need sides divisible by 2**(levels − 1)."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 96, 128)):
        super().__init__()
        w = widths
        self.downs = nn.ModuleList([_block(3, w[0])] + [_block(w[i], w[i + 1]) for i in range(len(w) - 1)])
        self.ups = nn.ModuleList([_block(w[i + 1] + w[i], w[i]) for i in reversed(range(len(w) - 1))])
        self.temporal = ClipAttention(w[-1])
        self.out = nn.Conv2d(w[0], 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def refine_frames(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """(B·T, 3, H, W) frames of B clips of T frames each → refined, same shape."""
        skips = []
        h = x
        for i, down in enumerate(self.downs):
            h = down(F.avg_pool2d(h, 2) if i else h)
            skips.append(h)
        h = self.temporal(skips.pop(), frames)
        for up in self.ups:
            h = up(torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), skips.pop()], 1))
        return x + self.out(h)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips (B, 3, T, H, W) in [-1, 1] → refined clips in [-1, 1], in windows of at
        most WINDOW frames, of near-equal length (a long clip's memory stays flat, and no
        window is left a frame or two without context)."""
        b, c, t, h, w = clips.shape
        windows = -(-t // WINDOW)
        bounds = [round(i * t / windows) for i in range(windows + 1)]
        out = []
        for start, stop in zip(bounds, bounds[1:], strict=False):
            n = stop - start
            flat = clips[:, :, start:stop].transpose(1, 2).reshape(b * n, c, h, w)
            out.append(self.refine_frames(flat, n).reshape(b, n, c, h, w).transpose(1, 2))
        return torch.cat(out, dim=2).clamp(-1, 1)
