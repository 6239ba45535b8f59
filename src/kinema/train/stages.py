"""What each training stage builds, optimises and validates; the loop itself is generic."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kinema.diffusion.flow import flow_loss, sample_time
from kinema.errors import InputError
from kinema.models.dit import DiT, DiTConfig, block_count, deepen
from kinema.models.vae import VAEConfig, VideoVAE
from kinema.train.checkpoint import CheckpointError, load_config, load_weights
from kinema.train.data import pixels_to_tensor, preset_samples
from kinema.train.distributed import Shard
from kinema.train.latent_cache import LatentCache, build_cache, cache_folder, encode_clips
from kinema.train.presets import Preset
from kinema.world import parse, render_frames
from kinema.world.dataset import Sample, validation_split


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [-1, 1] tensors, on the 0-255 scale."""
    mse = F.mse_loss((a.clamp(-1, 1) + 1) * 127.5, (b.clamp(-1, 1) + 1) * 127.5).item()
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def training_batch(preset: Preset, step: int, rows: slice | None = None) -> list[Sample]:
    """The samples of a step: step·B … step·B + B − 1 of stream 0 (exact resume), or the
    `rows` of them that one of several processes takes."""
    rows = rows or slice(0, preset.batch)
    return preset_samples(preset, 0, step * preset.batch + rows.start, step * preset.batch + rows.stop)


class ShardedVAEForward(nn.Module):
    """VideoVAE.forward for one process's rows of a global batch: the reparameterisation
    noise is drawn for the whole batch and sliced, so each item gets the noise it gets in
    a single process (and the random state moves on as it does there)."""

    def __init__(self, vae: VideoVAE, batch: int, rows: slice):
        super().__init__()
        self.vae, self.batch, self.rows = vae, batch, rows

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.vae.latent_shape(x.shape[2], x.shape[3], x.shape[4])
        noise = torch.randn((self.batch, *latent), device=x.device)
        return self.vae(x, noise=noise[self.rows])


class VAEStage:
    """Reconstruction (L1 + MSE) with a small KL; validated by PSNR on held-aside clips.

    With the preset's freeze_encoder, only the decoder learns (from init_from weights):
    the latents stay exactly what they were, so a DiT trained on them stays valid while
    the pictures it is decoded into get sharper.

    Among several processes (`shard`) each takes its rows of the step's batch; every loss
    term is a mean over equally many items a process, so the processes' mean is the batch's.
    """

    def __init__(self, preset: Preset, device: torch.device | str = "cpu", shard: Shard | None = None):
        self.preset, self.device, self.shard = preset, torch.device(device), shard or Shard()
        self.config = VAEConfig.from_dict({**VAEConfig().to_dict(), **preset.model})
        self._val: torch.Tensor | None = None

    def build(self) -> VideoVAE:
        model = VideoVAE(self.config)
        if self.preset.freeze_encoder:
            for name, p in model.named_parameters():
                if name.startswith("enc_"):
                    p.requires_grad_(False)
        return model

    def adapt_init(self, weights: dict[str, torch.Tensor], model: VideoVAE) -> dict[str, torch.Tensor]:
        """Warm-start weights for `model`: a VAE's are taken as they are, less a picture
        refiner (models.refiner): it was fitted to the source decoder's pictures, which
        this training changes; train a new one on the result (kinema.train.refiner)."""
        own = model.state_dict()
        return {k: v for k, v in weights.items() if not k.startswith("refiner.") or k in own}

    def training_module(self, model: VideoVAE) -> nn.Module:
        """What a training step calls `model` through (and DDP wraps among several processes)."""
        if self.shard.world == 1:
            return model
        return ShardedVAEForward(model, self.preset.batch, self.shard.rows(self.preset.batch))

    def loss(self, model: nn.Module, step: int) -> tuple[torch.Tensor, dict]:
        rows = self.shard.rows(self.preset.batch)
        frames = np.stack([s.frames for s in training_batch(self.preset, step, rows)])
        x = pixels_to_tensor(frames).to(self.device, non_blocking=True)
        recon, kl = model(x)
        recon = recon.float()  # under autocast the decoder's output is bf16
        rec = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        loss = rec + self.config.kl_weight * kl
        return loss, {"rec": rec.detach(), "kl": kl.detach()}

    def validation_clips(self) -> torch.Tensor:
        if self._val is None:
            frames = 1 + 4 * 4 if self.preset.size >= 64 else self.preset.frames
            clips = [
                render_frames(parse(p), seed=s, frames=frames, size=self.preset.size)
                for p, s in validation_split(16)
            ]
            self._val = pixels_to_tensor(np.stack(clips)).to(self.device)
        return self._val

    @torch.no_grad()
    def validate(self, model: VideoVAE) -> dict:
        x = self.validation_clips()
        recon = torch.cat([model.decode(model.encode(x[i : i + 4])) for i in range(0, len(x), 4)])
        return {"psnr": round(psnr(recon, x), 3)}

    @torch.no_grad()
    def finalise(self, model: VideoVAE) -> None:
        """Set the latent standardisation from validation clips, so the DiT sees unit-scale data."""
        if self.preset.freeze_encoder:  # the latents, and so their statistics, did not change
            return
        x = self.validation_clips()
        mean, _ = model.encode_dist(x)
        model.latent_mean.copy_(mean.mean(dim=(0, 2, 3, 4)))
        model.latent_std.copy_(mean.std(dim=(0, 2, 3, 4)).clamp_min(1e-3))


def load_vae(folder) -> VideoVAE:
    """A trained VAE from its checkpoint folder, frozen, in eval mode."""
    config = load_config(folder)
    if config.get("kind") != "vae":
        raise CheckpointError(f"'{folder}' is not a VAE checkpoint (kind {config.get('kind')!r})")
    vae = VideoVAE(VAEConfig.from_dict(config["model"]))
    vae.load_state_dict(load_weights(folder))
    return vae.eval().requires_grad_(False)


def condition_masks(
    kinds: np.ndarray, latent_frames: int, h: int, w: int, rng: np.random.Generator
) -> torch.Tensor:
    """Which latents each clip is given as clean conditions: (B, 1, T, h, w) in {0, 1}, for
    condition kinds (indices into CONDITION_KINDS), drawn for the whole batch at once (a
    loop over clips cost more than the GPU's step at batch 1,024).

    One model learns every mode the conditioning issue needs: none (text-to-video), the
    first latent frame (image-to-video; the causal VAE encodes pixel frame 0 on its own),
    first and last (keyframes), a prefix (extension / long-video context), scattered
    keyframes, and a spatial region kept over time (inpainting).
    """
    kinds = np.asarray(kinds)
    b, t = len(kinds), latent_frames
    m = np.zeros((b, t, h, w), np.float32)
    frame = np.arange(t)
    m[kinds == 1, 0] = 1  # first
    m[kinds == 2, 0] = m[kinds == 2, -1] = 1  # first and last
    prefix = np.flatnonzero(kinds == 3)
    lengths = rng.integers(1, max(2, t - 1), size=len(prefix))
    m[prefix] = (frame[None, :] < lengths[:, None])[:, :, None, None]
    scattered = np.flatnonzero(kinds == 4)
    m[scattered] = (rng.random((len(scattered), t)) < 0.4)[:, :, None, None]
    region = np.flatnonzero(kinds == 5)  # keep everything but a box, which is to be generated
    n = len(region)
    bh, bw = rng.integers(h // 4 + 1, h + 1, size=n), rng.integers(w // 4 + 1, w + 1, size=n)
    y, x = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
    rows = (np.arange(h)[None] >= y[:, None]) & (np.arange(h)[None] < (y + bh)[:, None])
    cols = (np.arange(w)[None] >= x[:, None]) & (np.arange(w)[None] < (x + bw)[:, None])
    m[region] = (~(rows[:, :, None] & cols[:, None, :]))[:, None].astype(np.float32)
    return torch.from_numpy(m)[:, None]


CONDITION_KINDS = ("none", "first", "first_last", "prefix", "keyframes", "region")
KEYFRAME_KINDS = np.array([2, 4])  # first_last, keyframes: given single-frame encodings


def condition_mix(weights: dict[str, float], context: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A preset's condition weights (by kind name) as probabilities over CONDITION_KINDS,
    and its context kinds as indices into it."""
    unknown = (set(weights) | set(context)) - set(CONDITION_KINDS)
    if unknown:
        raise InputError(
            f"unknown condition kinds {sorted(unknown)}: choose from {', '.join(CONDITION_KINDS)}"
        )
    p = np.array([float(weights.get(kind, 0.0)) for kind in CONDITION_KINDS])
    spans = np.array([CONDITION_KINDS.index(kind) for kind in context])
    if p.min() < 0 or p.sum() <= 0 or len(spans) == 0 or p[spans].sum() <= 0:
        raise InputError("condition weights must be non-negative, and some context kind must have weight")
    return p / p.sum(), spans


def condition_kinds(
    offsets: np.ndarray, rng: np.random.Generator, p: np.ndarray, context: np.ndarray
) -> np.ndarray:
    """Each clip's condition kind (an index into CONDITION_KINDS), drawn with probabilities
    `p` (condition_mix's).

    A window that starts mid-cycle (offset > 0) may run against its prompt, and only a
    condition that spans time shows which way it goes: such clips draw among the `context`
    kinds alone, in the same proportions."""
    kinds = rng.choice(len(CONDITION_KINDS), size=len(offsets), p=p)
    mid_cycle = np.asarray(offsets) > 0
    kinds[mid_cycle] = rng.choice(context, size=int(mid_cycle.sum()), p=p[context] / p[context].sum())
    return kinds


def prompt_draw_probabilities(prompts: list[str], weights: dict[str, float]) -> np.ndarray:
    """How often to draw each clip: the product of the weights of the words (or phrases)
    its prompt contains, normalised. Words absent from `weights` weigh 1."""
    unknown = [w for w, v in weights.items() if not isinstance(v, (int, float)) or v <= 0]
    if unknown:
        raise InputError(f"prompt weights must be positive numbers: {', '.join(map(str, unknown))}")
    p = np.ones(len(prompts))
    for i, prompt in enumerate(prompts):
        padded = f" {prompt} "
        for word, weight in weights.items():
            if f" {word} " in padded:
                p[i] *= float(weight)
    return p / p.sum()


class PromptTable:
    """Token states of a fixed set of prompts (a latent cache's, and the empty prompt),
    encoded once: a training step looks its batch up instead of running the encoder."""

    def __init__(self, text, prompts: list[str], device: torch.device):
        prompts = sorted(set(prompts) | {""})
        self.row = {p: i for i, p in enumerate(prompts)}
        tokens, mask = text.encode_many(prompts)
        self.tokens, self.mask = tokens.to(device), mask.to(device)

    def __contains__(self, prompt: str) -> bool:
        return prompt in self.row

    def lookup(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        # always the table's full width: padding is masked out, and one shape a step keeps
        # a compiled model from recompiling for every batch's longest prompt
        index = torch.tensor([self.row[p] for p in prompts]).to(self.tokens.device, non_blocking=True)
        return self.tokens[index], self.mask[index]


class DiTStage:
    """Flow matching on the frozen VAE's latents, with text dropout (for classifier-free
    guidance) and randomly drawn clean conditions (for every conditioning mode).

    On a GPU the latent cache and its prompts' token states live on the device, so a step
    moves only indices; validation generates on CPU copies with the pipeline users run.

    Among several processes (`shard`) each takes its rows of the step's batch; the loss's
    weighted mean is rescaled to the whole batch's weight, since a process's rows carry
    a different share of it (conditioned latents weigh 0).
    """

    text_dropout = 0.1

    def __init__(self, preset: Preset, device: torch.device | str = "cpu", shard: Shard | None = None):
        from kinema.models.text import MiniLMTextEncoder

        if not preset.vae:
            raise CheckpointError(f"preset '{preset.name}' needs a trained VAE checkpoint (--vae)")
        self.preset, self.device, self.shard = preset, torch.device(device), shard or Shard()
        self.condition_mix = condition_mix(preset.condition_weights, preset.context_conditions)
        self.vae = load_vae(preset.vae).to(self.device)
        self.config = DiTConfig(**{"latent_channels": self.vae.config.latent_channels, **preset.model})
        self.text = MiniLMTextEncoder(device=self.device)
        self.cache, self.prompts = None, None
        self._cpu_parts = None
        self._draw_p: np.ndarray | None = None
        if preset.cache_clips:
            folder = cache_folder(preset)
            if self.shard.main:  # the others wait, then read what it wrote
                build_cache(self.vae, preset, folder, preset.cache_clips, workers=preset.render_workers)
            self.shard.barrier()
            self.cache = LatentCache(folder, preset.cache_clips).to(self.device)
            self.prompts = PromptTable(self.text, self.cache.prompts, self.device)

    def _cache_indices(self, step: int) -> np.ndarray:
        """The cache clips of a step's whole batch, drawn from the step number (with the
        preset's prompt weights, when it has any)."""
        rng = np.random.default_rng([self.preset.seed, step, 11])
        if not self.preset.prompt_weights:
            return rng.integers(len(self.cache), size=self.preset.batch)
        if self._draw_p is None:
            self._draw_p = prompt_draw_probabilities(self.cache.prompts, self.preset.prompt_weights)
        return rng.choice(len(self.cache), size=self.preset.batch, p=self._draw_p)

    def _captions(self, step: int, prompts: list[str], first_row: int) -> list[str]:
        """The step's captions: a paraphrase_fraction of the prompts said in other words
        (training wordings only: the held-out ones measure generalisation). Each batch row
        draws from its own generator, so a row's caption is the same in any process."""
        if self.preset.paraphrase_fraction <= 0:
            return prompts
        from kinema.world.paraphrase import paraphrase

        captions = []
        for row, prompt in enumerate(prompts, start=first_row):
            rng = np.random.default_rng([self.preset.seed, step, 13, row])
            said = prompt and rng.random() < self.preset.paraphrase_fraction
            captions.append(paraphrase(parse(prompt), rng, split="train") if said else prompt)
        return captions

    def batch(self, step: int) -> tuple[list[str], torch.Tensor, torch.Tensor, np.ndarray]:
        """Prompts, latents, keyframe latents and window offsets of a step (this process's
        rows of it): from the cache when there is one, else rendered and encoded now."""
        rows = self.shard.rows(self.preset.batch)
        if self.cache is not None:
            return self.cache.batch(self._cache_indices(step)[rows])
        samples = training_batch(self.preset, step, rows)
        pixels = pixels_to_tensor(np.stack([s.frames for s in samples])).to(self.device)
        offsets = np.array([s.offset for s in samples])
        return ([s.prompt for s in samples], *encode_clips(self.vae, pixels), offsets)

    def _batch_offsets(self, step: int, offsets: np.ndarray) -> np.ndarray:
        """The window offsets of the step's whole batch, given this process's rows of them:
        condition kinds are drawn for the whole batch, and they depend on every offset."""
        if self.shard.world == 1:
            return offsets
        if self.cache is not None:
            return self.cache.offsets[self._cache_indices(step)]
        return np.array(self.shard.gather(offsets.tolist()))

    def encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.prompts is not None and all(p in self.prompts for p in prompts):
            return self.prompts.lookup(prompts)
        return self.text.encode(prompts)

    def build(self) -> DiT:
        return DiT(self.config)

    def adapt_init(self, weights: dict[str, torch.Tensor], model: DiT) -> dict[str, torch.Tensor]:
        """Warm-start weights for `model`: a shallower DiT's are grown to its depth."""
        return deepen(weights, model) if block_count(weights) < model.config.depth else weights

    def training_module(self, model: DiT) -> nn.Module:
        """What a training step calls `model` through (and DDP wraps among several processes)."""
        return model

    def loss(self, model: nn.Module, step: int) -> tuple[torch.Tensor, dict]:
        prompts, x0, keyframes, offsets = self.batch(step)
        # every random draw is made for the whole batch (b items) and sliced to our rows
        b, rows = self.preset.batch, self.shard.rows(self.preset.batch)
        rng = np.random.default_rng([self.preset.seed, step, 7])
        _, _, t, h, w = x0.shape
        dropped = (rng.random(b) < self.text_dropout)[rows]
        prompts = [
            "" if drop else p
            for drop, p in zip(dropped, self._captions(step, prompts, rows.start), strict=True)
        ]
        all_kinds = condition_kinds(self._batch_offsets(step, offsets), rng, *self.condition_mix)
        all_mask = condition_masks(all_kinds, t, h, w, rng)
        kinds, mask = all_kinds[rows], all_mask[rows]
        weight_share = float((1 - mask).sum()) / max(float((1 - all_mask).sum()), 1e-8)
        mask = mask.to(self.device, non_blocking=True)
        cond = x0.clone()
        keyed = np.flatnonzero(np.isin(kinds, KEYFRAME_KINDS))
        if len(keyed):
            keyed = torch.from_numpy(keyed).to(self.device, non_blocking=True)
            cond[keyed, :, 1:] = keyframes[keyed]
        text, text_mask = self.encode_text(prompts)
        times = sample_time(b, device=self.device)[rows]
        noise = torch.randn((b, *x0.shape[1:]), device=self.device, dtype=x0.dtype)[rows]

        def velocity(x_t, tt):
            return model(x_t, tt, text, text_mask, cond=cond, cond_mask=mask)

        # conditioned latents travel towards their clean condition, as the sampler holds them
        target = torch.where(mask.bool(), cond, x0)
        loss = flow_loss(velocity, target, t=times, noise=noise, weight=1 - mask)
        if self.shard.world > 1:
            # flow_loss divides by this process's weight; DDP averages over the processes:
            # together they give the whole batch's weighted mean, as one process computes it
            loss = loss * (self.shard.world * weight_share)
        return loss, {"conditioned": float((all_kinds > 0).mean())}

    def _validation_parts(self, model: DiT):
        """The model, VAE and text encoder on the CPU, where users generate."""
        if self.device.type == "cpu":
            return model, self.vae, self.text
        from kinema.models.text import MiniLMTextEncoder

        if self._cpu_parts is None:
            self._cpu_parts = (copy.deepcopy(self.vae).cpu(), MiniLMTextEncoder())
        return copy.deepcopy(model).float().cpu(), *self._cpu_parts

    @torch.no_grad()
    def validate(self, model: DiT) -> dict:
        """World-checker pass rate of short generations on fixed validation prompts."""
        from kinema.pipelines.t2v import TextToVideo
        from kinema.world import check

        dit, vae, text = self._validation_parts(model)
        pipe = TextToVideo(vae, dit, text, name="validation")
        prompts = validation_split(self.preset.validation_clips)
        passed = 0
        for prompt, seed in prompts:
            video = pipe(
                prompt,
                seed=seed % 2**31,
                frames=16,
                size=self.preset.size,
                steps=self.preset.validation_steps,
            )
            passed += bool(check(video.frames, prompt)["pass"])
        return {"pass_rate": round(passed / len(prompts), 3)}


STAGES = {"vae": VAEStage, "dit": DiTStage}
