"""Text-to-video with kinema's own model: prompt → text tokens → noise → sampler loop
(flow matching, classifier-free guidance, clean conditions) → VAE decode → Video.

The VAE makes 1+4k frames; a request for any other count is generated at the next length
that covers it and trimmed. Conditions (a first image, keyframes, context) are clean
latents the DiT sees beside the noise and that the sampler holds fixed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from kinema.diffusion.samplers import SAMPLERS, cfg, timesteps, with_conditioning
from kinema.errors import InputError
from kinema.io import Video
from kinema.models.dit import DiT
from kinema.models.vae import VideoVAE
from kinema.pipelines.conditioning import frame_map


class TextToVideo:
    """A callable pipeline over a VAE, a DiT and a text encoder."""

    def __init__(
        self,
        vae: VideoVAE,
        dit: DiT,
        text_encoder,
        name: str = "kinema",
        model_hash: str | None = None,
        defaults: dict | None = None,
    ):
        self.vae, self.dit, self.text_encoder = vae.eval(), dit.eval(), text_encoder
        self.name, self.model_hash = name, model_hash
        self.defaults = {
            "frames": 16,
            "size": 64,
            "fps": 8.0,
            "steps": 24,
            "guidance": 4.0,
            "shift": 2.0,
            "sampler": "dpmpp_2m",
            **(defaults or {}),
        }

    # ---------------------------------------------------------------- sizes

    @property
    def spatial_factor(self) -> int:
        return self.vae.config.spatial_factor

    def latent_frames(self, frames: int) -> int:
        """Latent frames for the shortest 1+4k clip that covers `frames`."""
        return 1 + math.ceil((frames - 1) / self.vae.config.temporal_factor)

    def check_size(self, width: int, height: int) -> None:
        f = self.spatial_factor
        for value, axis in ((width, "width"), (height, "height")):
            if value < f or value % f or value > 1024:
                nearest = min(1024, max(f, round(value / f) * f))
                raise InputError(
                    f"the model makes sizes that are multiples of {f} up to 1024; "
                    f"{axis} {value} is not (nearest valid: {nearest})"
                )

    # ---------------------------------------------------------------- generation

    @torch.inference_mode()
    def __call__(
        self,
        prompt: str,
        *,
        seed: int = 0,
        frames: int | None = None,
        size: int | tuple[int, int] | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        negative: str = "",
        fps: float | None = None,
        sampler: str | None = None,
        shift: float | None = None,
        keyframes: dict[int, np.ndarray] | None = None,
        last_image: np.ndarray | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Video:
        """Generate a clip. Size is S or (W, H); keyframes maps pixel frame indices (0 or a
        multiple of 4) to uint8 images (H, W, 3) the clip must show there; last_image is
        the image the clip ends on (first–last frame with keyframes={0: first})."""
        d = self.defaults
        frames = d["frames"] if frames is None else frames
        width, height = (size, size) if isinstance(size, int) else (size or (d["size"], d["size"]))
        steps = d["steps"] if steps is None else steps
        guidance = d["guidance"] if guidance is None else guidance
        sampler_fn = SAMPLERS[sampler or d["sampler"]]
        if frames < 1:
            raise InputError(f"frames must be at least 1, got {frames}")
        if steps < 1:
            raise InputError(f"steps must be at least 1, got {steps}")
        if guidance < 0:
            raise InputError(f"guidance must not be negative, got {guidance}")
        self.check_size(width, height)

        latent_t = self.latent_frames(frames)
        keyframes = dict(keyframes or {})
        if last_image is not None:
            keyframes[self.vae.config.temporal_factor * (latent_t - 1)] = last_image
        f = self.spatial_factor
        shape = (1, self.vae.config.latent_channels, latent_t, height // f, width // f)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        cond, mask = self.conditions(keyframes, shape)

        text, text_mask = self.text_encoder.encode([prompt, negative])

        def model(prompt_index: int):
            def denoise(x, t):
                return self.dit(
                    x,
                    t,
                    text[prompt_index : prompt_index + 1],
                    text_mask[prompt_index : prompt_index + 1],
                    cond=cond,
                    cond_mask=mask,
                )

            return denoise

        denoise = cfg(model(0), model(1), guidance)
        if mask is not None:
            denoise = with_conditioning(denoise, cond, mask)
        callback = (lambda info: progress(info["i"] + 1, steps)) if progress else None
        latents = sampler_fn(
            denoise, noise, timesteps(steps, d["shift"] if shift is None else shift), callback
        )
        pixels = self.vae.decode(latents)
        # trim to the request; with a last image, drop frames evenly so the clip still ends on it
        index = frame_map(frames, pixels.shape[2]) if last_image is not None else list(range(frames))
        pixels = pixels[:, :, index]
        out = ((pixels[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
        return Video(out, d["fps"] if fps is None else fps)

    def conditions(
        self, keyframes: dict[int, np.ndarray], shape
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Clean latents and their mask for the given keyframes (None, None when there are none).

        Pixel frame 0 is latent frame 0 (the causal VAE encodes it alone); a keyframe at
        pixel frame 4j is encoded as a single frame and given at latent frame j, as training
        gives the last frame.
        """
        if not keyframes:
            return None, None
        _, c, t, h, w = shape
        cond = torch.zeros(shape)
        mask = torch.zeros(1, 1, t, h, w)
        factor = self.vae.config.temporal_factor
        for index, image in keyframes.items():
            if index % factor or not 0 <= index // factor < t:
                raise InputError(
                    f"keyframes go at frame 0 or a multiple of {factor} inside the clip; got {index}"
                )
            if image.shape[:2] != (h * self.spatial_factor, w * self.spatial_factor):
                raise InputError(
                    f"keyframe {index} is {image.shape[1]}x{image.shape[0]}, "
                    f"the clip {w * self.spatial_factor}x{h * self.spatial_factor}"
                )
            pixels = torch.from_numpy(np.ascontiguousarray(image)).float().div(127.5).sub(1)
            latent = self.vae.encode(pixels.permute(2, 0, 1)[None, :, None])
            cond[:, :, index // factor] = latent[:, :, 0]
            mask[:, :, index // factor] = 1
        return cond, mask
