"""Live previews: while a clip is sampled, the model's current estimate of the clean
latents (the sampler's `denoised`) shown as frames every few steps.

A `Preview` is the hook a door hands down through the request layer: the pipeline calls
`show(step, total, frames)` at the steps `due` names, with uint8 frames (T, H, W, 3) of
the clip as the user will get it (known frames included). The frames come from a
`LatentPreviewer` (kinema.pipelines.latent_preview), a linear map from latents to
pixels fitted to the model's own VAE
(ComfyUI's latent2rgb idea, per patch and per frame instead of per pixel): applying it
is a matrix product, where a VAE decode costs about a sampler step. Previews read the
sampler's state and never change it, so a clip is the same file with or without them.
This module imports no torch: the doors build a Preview before any model is loaded, and
a refused request must not pay for torch's import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ShowFrames = Callable[[int, int, np.ndarray], None]  # (step, steps in all, uint8 (T, H, W, 3))

DEFAULT_EVERY = 4


@dataclass(frozen=True)
class Preview:
    """Show the clip being made: show(step, total, frames) every `every` steps and at
    the last step of each sampler run (a long clip is made window by window; each window
    is a run with its own step count, as the progress display counts them)."""

    show: ShowFrames
    every: int = DEFAULT_EVERY

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"a preview comes every 1 or more steps, not every {self.every}")

    def due(self, step: int, total: int) -> bool:
        """Whether the preview is shown after STEP of TOTAL (steps count from 1)."""
        return step == total or step % self.every == 0
