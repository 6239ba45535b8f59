"""Rectified flow: the interpolation, the target, the timestep distribution and the loss.

    x_t = (1 - t) * x0 + t * noise,    t in [0, 1], t = 1 is pure noise
    v   = d x_t / dt = noise - x0      (what the model regresses)
    x0  = x_t - t * v                  (the data a velocity implies; samplers use it)

Takes any `model_fn(x_t, t) -> velocity`; imports no model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3's shift: shift > 1 moves time towards the noise end, where bigger (and more
    frames of) latents still hold structure that the model must learn to make."""
    return shift * t / (1 + (shift - 1) * t)


def sample_time(
    n: int,
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """n training times (n,) in (0, 1): logit-normal(mean, std), then shifted. The logit-normal
    puts the weight on the middle, where the velocity is hardest to predict (SD3)."""
    u = torch.randn(n, generator=generator, device=device) * std + mean
    return shift_time(torch.sigmoid(u), shift)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t for data x0 and noise of the same shape; t (B,) broadcasts over the other dims."""
    t = t.reshape(-1, *[1] * (x0.dim() - 1))
    return (1 - t) * x0 + t * noise


def flow_loss(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean squared error between model_fn(x_t, t) and the velocity noise - x0.

    t and noise are drawn when not given. weight, broadcastable to x0, scales each element's
    error and the mean is taken over the weight: a 0 there (e.g. on the conditioning frames,
    whose velocity the sampler imposes anyway) removes those elements from the loss.
    """
    if t is None:
        t = sample_time(x0.shape[0], mean, std, shift, generator, x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    error = (model_fn(interpolate(x0, noise, t), t) - (noise - x0)).square()
    if weight is None:
        return error.mean()
    weight = weight.to(error.dtype).expand_as(error)
    return (weight * error).sum() / weight.sum().clamp(min=1e-8)
