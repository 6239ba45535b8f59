"""Text-to-video with kinema's own model: prompt → text tokens → noise → sampler loop
(flow matching, classifier-free guidance, clean conditions) → VAE decode → Video.

The VAE makes 1+4k frames; a request for any other count is generated at the next length
that covers it and trimmed. Conditions (a first image, keyframes, context) are clean
latents the DiT sees beside the noise and that the sampler holds fixed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from kinema.diffusion.samplers import SAMPLERS, cfg, timesteps, with_conditioning
from kinema.errors import InputError
from kinema.io import Video
from kinema.models.control import ControlBranch, Steering, signal_tokens
from kinema.models.dit import DiT
from kinema.models.reference import Referencing
from kinema.models.vae import VideoVAE
from kinema.pipelines.conditioning import frame_map
from kinema.pipelines.facts import steering_inputs
from kinema.pipelines.latent_preview import LatentPreviewer
from kinema.pipelines.motion_track import MotionTrack, track_masks, track_of_clip
from kinema.pipelines.preview import Preview
from kinema.pipelines.protocol import MODES, resolve_settings

# (step, steps in all, latents of the clip so far): what the sampler hands a preview
Look = Callable[[int, int, torch.Tensor], None]


class TextToVideo:
    """A callable pipeline over a VAE, a DiT and a text encoder (a Pipeline: it serves
    every mode kinema has)."""

    modes = frozenset(MODES)

    def __init__(
        self,
        vae: VideoVAE,
        dit: DiT,
        text_encoder,
        name: str = "kinema",
        model_hash: str | None = None,
        defaults: dict | None = None,
        folder: Path | None = None,
    ):
        self.vae, self.dit, self.text_encoder = vae.eval(), dit.eval(), text_encoder
        self.folder = folder  # the model folder: its branches (control/, reference/) load on first use
        self._branches: dict = {}
        self.name, self.model_hash = name, model_hash
        self.defaults = {
            "frames": 16,
            "size": 64,
            "fps": 8.0,
            "steps": 24,
            "guidance": 4.0,
            "shift": 2.0,
            "sampler": "dpmpp_2m",
            "window": 17,
            **(defaults or {}),
        }
        self._previewer: LatentPreviewer | None = None

    def adapted(self, adapters):
        """A context manager: ADAPTERS (kinema.pipelines.adapters.AdapterFile, checked to fit
        this model) mixed into the DiT, and the VAE's decoder where they carry decoder
        pairs, by their scales for the calls inside it; the model's own weights come back
        exactly on exit."""
        from kinema.pipelines.lora import mixed_in

        return mixed_in(self.dit, adapters, vae=self.vae)

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

    def _settings(self, steps, guidance, sampler, shift) -> dict:
        """The sampler run: steps and guidance resolved as every pipeline resolves them,
        plus kinema's own sampler and schedule shift."""
        d = self.defaults
        resolved = resolve_settings(d, steps=steps, guidance=guidance)
        name = sampler or d["sampler"]
        if name not in SAMPLERS:
            raise InputError(f"unknown sampler '{name}': choose one of {', '.join(SAMPLERS)}")
        return {
            "steps": resolved.steps,
            "guidance": resolved.guidance,
            "sampler": SAMPLERS[name],
            "shift": d["shift"] if shift is None else shift,
        }

    def _sample(
        self,
        noise,
        text,
        text_mask,
        cond,
        mask,
        run: dict,
        progress=None,
        look: Look | None = None,
        steering: Steering | None = None,
        reference: Referencing | None = None,
    ) -> torch.Tensor:
        """One sampler run: noise (1, C, T, h, w) → clean latents, CFG on the prompt pair
        (row 0 the prompt, row 1 the negative), known latents held where mask is 1. LOOK,
        if given, gets the current estimate of the clean latents after every step;
        STEERING, the control branch with its signal for these latent frames, steers both
        rows (the control holds whatever the prompt says); REFERENCE, the reference branch
        with an image's tokens, steers the prompt's row only, so that guidance strengthens
        it as it strengthens the words."""

        schedule = run.get("schedule")
        if schedule is None:
            schedule = timesteps(run["steps"], run["shift"])
        # The prompt's keys and values, and its modulation at each time of the schedule,
        # made once for every step of the run.
        prompt_only = self.dit.text_states(text[:1], text_mask[:1], times=schedule)
        both_rows = self.dit.text_states(text[:2], text_mask[:2], times=schedule)

        def prompt(x, t):
            return self.dit(
                x, t, prompt_only, cond=cond, cond_mask=mask, control=steering, reference=reference
            )

        prompt_row_only = None if reference is None else reference.rows([reference.scale, 0.0])

        def both(x, t):
            v = self.dit(
                torch.cat([x, x]),
                t,
                both_rows,
                cond=cond,
                cond_mask=mask,
                control=steering,
                reference=prompt_row_only,
            )
            return v[:1], v[1:2]

        denoise = cfg(both, prompt, run["guidance"])
        if mask is not None:
            denoise = with_conditioning(denoise, cond, mask)

        def callback(info: dict) -> None:
            if progress is not None:
                progress(info["i"] + 1, run["steps"])
            if look is not None:
                look(info["i"] + 1, run["steps"], info["denoised"])

        if progress is None and look is None:
            callback = None
        return run["sampler"](denoise, noise, schedule, callback)

    def _continue(
        self,
        latents,
        target,
        text,
        text_mask,
        run,
        generator,
        progress,
        closing=None,
        look=None,
        steering=None,
        reference=None,
    ) -> torch.Tensor:
        """Append latent frames until there are `target`, a window at a time, each window
        holding the last half-window of what exists as its clean prefix (how the model was
        trained for extension), so the DiT never sees more than one window. `closing`, a
        latent frame (1, C, 1, h, w), is held as the very last frame (a loop's return).
        LOOK sees the latents made so far followed by the window's current estimate."""
        _, c, _, h, w = latents.shape
        window = self.latent_frames(self.defaults.get("window", 17))
        context = max(1, window // 2)
        while latents.shape[2] < target:
            held = latents[:, :, -min(latents.shape[2], context) :]
            new = min(window - held.shape[2], target - latents.shape[2])
            cond = torch.cat([held, torch.zeros(1, c, new, h, w)], dim=2)
            mask = torch.zeros(1, 1, held.shape[2] + new, 1, 1)
            mask[:, :, : held.shape[2]] = 1
            if closing is not None and latents.shape[2] + new == target:
                cond[:, :, -1:] = closing
                mask[:, :, -1] = 1
            noise = torch.randn((1, c, held.shape[2] + new, h, w), generator=generator)
            window_look = None
            if look is not None:

                def window_look(step, total, x0, made=latents, start=held.shape[2]):
                    look(step, total, torch.cat([made, x0[:, :, start:]], dim=2))

            start = latents.shape[2] - held.shape[2]
            window_steering = (
                None if steering is None else steering.window(start, start + held.shape[2] + new)
            )
            out = self._sample(
                noise, text, text_mask, cond, mask, run, progress, window_look, window_steering, reference
            )
            latents = torch.cat([latents, out[:, :, held.shape[2] :]], dim=2)
        return latents

    @property
    def previewer(self) -> LatentPreviewer:
        """The linear latents → frames map of this pipeline's VAE, fitted on first use."""
        if self._previewer is None:
            c = self.vae.config
            self._previewer = LatentPreviewer.fit(
                self.vae.encode, self.vae.decode, c.spatial_factor, c.temporal_factor
            )
        return self._previewer

    def _look(self, preview: Preview | None, finish: Callable[[np.ndarray], np.ndarray]) -> Look | None:
        """The sampler's hook for PREVIEW (None without one): at the steps it is due, the
        latents of the clip so far as preview frames, made into the clip the user will get
        by FINISH (uint8 frames → uint8 frames: trimmed, known frames put in)."""
        if preview is None:
            return None

        def look(step: int, total: int, latents: torch.Tensor) -> None:
            if preview.due(step, total):
                preview.show(step, total, np.ascontiguousarray(finish(self.previewer(latents))))

        return look

    def to_video(self, pixels: torch.Tensor, fps: float) -> Video:
        """Decoded pixels (1, 3, T, H, W) in [-1, 1] → a uint8 Video."""
        out = ((pixels[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
        return Video(out, fps)

    # ---------------------------------------------------------------- control

    @property
    def controls(self) -> tuple[str, ...]:
        """The steering inputs this model has branches for."""
        return steering_inputs(self.folder)

    def branch(self, kind: str):
        """The control or reference branch, loaded on first use (the base model never reads
        them)."""
        if kind not in self._branches:
            if self.folder is None or not (self.folder / kind / "model.safetensors").is_file():
                raise InputError(f"{self.name} has no {kind} branch")
            from kinema.pipelines.branch_weights import load_branch

            device = next(self.dit.parameters()).device
            self._branches[kind] = load_branch(self.folder / kind, self.dit).to(device).eval()
        return self._branches[kind]

    def branch_sha256(self, kind: str) -> str:
        """SHA-256 of the control or reference branch's weights (the sidecar names it)."""
        from kinema.pipelines.weights_hash import cached_hash, sha256_files

        files = [self.folder / kind / "model.safetensors"]
        return cached_hash(files, lambda: sha256_files(files))

    def control_branch(self) -> ControlBranch:
        return self.branch("control")

    def referencing(self, image: np.ndarray, width: int, height: int, scale: float = 1.0) -> Referencing:
        """The reference branch with IMAGE's tokens (an image of the clip's size, encoded by
        the VAE as one frame)."""
        branch = self.branch("reference")
        device = next(self.dit.parameters()).device
        pixels = torch.from_numpy(np.ascontiguousarray(image[:height, :width])).to(device)
        pixels = pixels.permute(2, 0, 1)[None, :, None].float() / 127.5 - 1
        return Referencing(branch, branch.tokens(self.vae.encode(pixels), pixels[:, :, 0]), scale)

    def steering(
        self, control: Video | MotionTrack, frames: int, width: int, height: int, scale: float
    ) -> Steering:
        """The branch and its signal for a clip of FRAMES (1+4k) frames: a blob per frame
        where the control's object is (a control clip shorter than FRAMES holds its last
        state over the frames made beyond the request)."""
        track = control if isinstance(control, MotionTrack) else track_of_clip(control.frames)
        branch = self.control_branch()
        masks = torch.from_numpy(track_masks(track.cut(frames), width, height))[None]
        cell = branch.config.cell
        masks = torch.nn.functional.pad(masks, (0, -width % cell, 0, -height % cell))  # the DiT's padding
        signal = signal_tokens(masks, branch.config.temporal, cell)
        return Steering(branch, signal.to(next(self.dit.parameters()).device), scale)

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
        loop: bool = False,
        progress: Callable[[int, int], None] | None = None,
        preview: Preview | None = None,
        control: Video | MotionTrack | None = None,
        control_scale: float = 1.0,
        reference: np.ndarray | None = None,
    ) -> Video:
        """Generate a clip. Size is S or (W, H); keyframes maps pixel frame indices (0 or a
        multiple of 4) to uint8 images (H, W, 3) the clip must show there; last_image is
        the image the clip ends on (first–last frame with keyframes={0: first}). With
        `loop`, the frame after the last is the first again (frames: the loop's length).

        CONTROL moves the clip's object: a clip (its single object's box, frame by frame,
        read by the preprocessor) or a MotionTrack (a path's); the control branch steers
        the DiT with it at CONTROL_SCALE (0: the base model, untouched). REFERENCE, an
        image (H, W, 3 uint8) of one object, gives the clip's object its colour and shape
        through the reference branch.

        Clips longer than the model's window are made window by window, each conditioned
        on the latent frames before it, so the DiT's memory is that of one window and the
        VAE decodes chunk by chunk. PREVIEW, if given, is shown the clip's frames as
        sampled so far (kinema.pipelines.preview), keyframes and a first image included.
        """
        d = self.defaults
        settings = resolve_settings(d, frames, size, steps, guidance, fps)
        frames, width, height = settings.frames, settings.width, settings.height
        self.check_size(width, height)
        run = self._settings(settings.steps, settings.guidance, sampler, shift)

        made = frames + 1 if loop else frames  # a loop also makes its closing frame, then drops it
        latent_t = self.latent_frames(made)
        window = self.latent_frames(d.get("window", 17))
        if loop and (last_image is not None or latent_t <= window):
            raise InputError(f"loop needs more than {d.get('window', 17) - 1} frames and no last_image")
        keyframes = dict(keyframes or {})
        if last_image is not None:
            if latent_t > window:
                raise InputError(f"last_image works up to the model's window of {d.get('window', 17)} frames")
            keyframes[self.vae.config.temporal_factor * (latent_t - 1)] = last_image
        f = self.spatial_factor
        first = (1, self.vae.config.latent_channels, min(latent_t, window), height // f, width // f)
        generator = torch.Generator().manual_seed(seed)
        text, text_mask = self.text_encoder.encode([prompt, negative])
        cond, mask = self.conditions(keyframes, first)

        whole = 1 + self.vae.config.temporal_factor * (latent_t - 1)

        def kept(made_frames: int) -> list[int]:
            # trim to the request; with a last image, drop frames evenly so the clip still ends
            # on it; a preview of part of a long clip shows the part made so far
            if loop and made_frames == whole:
                return frame_map(made, made_frames)[:frames]
            if last_image is not None:
                return frame_map(frames, made_frames)
            return list(range(min(frames, made_frames)))

        look = self._look(preview, lambda shown: shown[kept(len(shown))])
        steering = None
        if control is not None and control_scale != 0:
            if loop:
                raise InputError("a loop returns to its start by itself; it takes no control or path")
            steering = self.steering(control, whole, width, height, control_scale)
        window_steering = None if steering is None else steering.window(0, first[2])
        referencing = None if reference is None else self.referencing(reference, width, height)
        latents = self._sample(
            torch.randn(first, generator=generator),
            text,
            text_mask,
            cond,
            mask,
            run,
            progress,
            look,
            window_steering,
            referencing,
        )
        closing = latents[:, :, :1] if loop else None  # latent 0 is frame 0 encoded on its own
        latents = self._continue(
            latents, latent_t, text, text_mask, run, generator, progress, closing, look, steering, referencing
        )
        pixels = self.vae.decode(latents)
        return self.to_video(pixels[:, :, kept(pixels.shape[2])], settings.fps)

    @torch.inference_mode()
    def extend(
        self,
        video: Video,
        prompt: str,
        frames: int,
        *,
        backward: bool = False,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        negative: str = "",
        progress: Callable[[int, int], None] | None = None,
        preview: Preview | None = None,
    ) -> Video:
        """The clip followed (or, backward, preceded) by `frames` new frames.

        The last 1+4m frames of the clip (up to half a window) are encoded and held as the
        first latent frames; the input's own frames are kept exactly and only the new ones
        are added. Backward extension runs the same process on the reversed clip. A
        PREVIEW is shown the whole clip: the input's frames and the new ones so far.
        """
        if frames < 1:
            raise InputError(f"frames to add must be at least 1, got {frames}")
        self.check_size(video.width, video.height)
        run = self._settings(steps, guidance, None, None)
        source = video.frames[::-1] if backward else video.frames
        step = self.vae.config.temporal_factor
        window = self.latent_frames(self.defaults.get("window", 17))
        m = min((len(source) - 1) // step, max(1, window // 2) - 1)
        context = np.ascontiguousarray(source[len(source) - (1 + step * m) :])
        pixels = torch.from_numpy(context).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]
        known = self.vae.encode(pixels)  # (1, C, 1+m, h, w)
        generator = torch.Generator().manual_seed(seed)
        text, text_mask = self.text_encoder.encode([prompt, negative])
        target = known.shape[2] + -(-frames // step)

        def joined(made: np.ndarray) -> np.ndarray:
            added = made[len(context) : len(context) + frames]
            return np.concatenate([added[::-1], video.frames] if backward else [video.frames, added])

        look = self._look(preview, joined)
        latents = self._continue(known, target, text, text_mask, run, generator, progress, look=look)
        decoded = self.to_video(self.vae.decode(latents), video.fps).frames
        return Video(np.ascontiguousarray(joined(decoded)), video.fps)

    # ---------------------------------------------------------------- editing

    def _encode_clip(self, video: Video) -> tuple[torch.Tensor, int]:
        """Latents of a clip, padded at the end to 1+4k frames by repeating its last frame."""
        self.check_size(video.width, video.height)
        frames = video.num_frames
        padded = 1 + self.vae.config.temporal_factor * (self.latent_frames(frames) - 1)
        pixels = np.concatenate([video.frames, np.repeat(video.frames[-1:], padded - frames, axis=0)])
        x = torch.from_numpy(np.ascontiguousarray(pixels)).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]
        return self.vae.encode(x), frames

    @torch.inference_mode()
    def remix(
        self,
        video: Video,
        prompt: str,
        *,
        strength: float = 0.6,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        negative: str = "",
        progress: Callable[[int, int], None] | None = None,
        preview: Preview | None = None,
    ) -> Video:
        """Video-to-video (SDEdit on the flow): noise the clip's latents to t = strength and
        denoise them under the new prompt. Low strength keeps more of the clip (layout and
        motion survive the partial noise), high strength follows the prompt more."""
        if not 0 <= strength <= 1:
            raise InputError(f"strength must be between 0 and 1, got {strength}")
        run = self._settings(steps, guidance, None, None)
        x0, frames = self._encode_clip(video)
        if strength == 0:
            return Video(video.frames.copy(), video.fps)
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
        x = (1 - strength) * x0 + strength * noise
        schedule = timesteps(run["steps"], run["shift"])
        schedule = torch.cat([schedule.new_tensor([strength]), schedule[schedule < strength]])
        text, text_mask = self.text_encoder.encode([prompt, negative])
        run = {**run, "steps": len(schedule) - 1}  # for the progress bar
        look = self._look(preview, lambda shown: shown[:frames])
        latents = self._sample(x, text, text_mask, None, None, {**run, "schedule": schedule}, progress, look)
        return self.to_video(self.vae.decode(latents)[:, :, :frames], video.fps)

    @torch.inference_mode()
    def inpaint(
        self,
        video: Video,
        prompt: str,
        region: np.ndarray,
        *,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        negative: str = "",
        progress: Callable[[int, int], None] | None = None,
        preview: Preview | None = None,
    ) -> Video:
        """Regenerate `region` (bool H×W, True = regenerate) in every frame; every pixel
        outside it is the input's, exactly. Latent cells touched by the region are
        generated, the others held as clean conditions, so the new content joins the kept
        surroundings; the result is then composited over the input at pixel level (a
        PREVIEW's frames too)."""
        region = np.asarray(region, bool)
        if region.shape != (video.height, video.width):
            raise InputError(
                f"the mask is {region.shape[1]}x{region.shape[0]}, the clip {video.width}x{video.height}"
            )
        run = self._settings(steps, guidance, None, None)
        x0, frames = self._encode_clip(video)
        f = self.spatial_factor
        h, w = video.height // f, video.width // f
        touched = region.reshape(h, f, w, f).any(axis=(1, 3))
        keep = (
            torch.from_numpy(~touched).float()[None, None, None].expand(1, 1, x0.shape[2], h, w).contiguous()
        )
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
        text, text_mask = self.text_encoder.encode([prompt, negative])

        def composited(made: np.ndarray) -> np.ndarray:
            return np.where(region[None, :, :, None], made[:frames], video.frames)

        look = self._look(preview, composited)
        latents = self._sample(noise, text, text_mask, x0, keep, run, progress, look)
        made = self.to_video(self.vae.decode(latents)[:, :, :frames], video.fps).frames
        return Video(np.ascontiguousarray(composited(made)), video.fps, video.audio)

    def outpaint(
        self, video: Video, prompt: str, left: int, top: int, right: int, bottom: int, **kw
    ) -> Video:
        """Extend the canvas by the given pixels on each side and fill the new area."""
        if min(left, top, right, bottom) < 0 or left + top + right + bottom == 0:
            raise InputError("outpaint takes four non-negative pixel counts L,T,R,B, not all zero")
        width, height = video.width + left + right, video.height + top + bottom
        self.check_size(width, height)
        canvas = np.zeros((video.num_frames, height, width, 3), np.uint8)
        canvas[:, top : top + video.height, left : left + video.width] = video.frames
        region = np.ones((height, width), bool)
        region[top : top + video.height, left : left + video.width] = False
        return self.inpaint(Video(canvas, video.fps, video.audio), prompt, region, **kw)

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
