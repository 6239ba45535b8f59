"""`kinema lora train`: teach kinema's DiT a subject from a handful of captioned clips.

A folder holds clips (mp4, webm, gif, or folders of PNG frames), each with a caption in
a .txt of the same stem. The clips are checked (likeness consent, like any input),
centre-cropped and resized to the model's size, cut to one common 1+4k length, encoded
by the model's VAE once and cached. peft puts rank-r LoRA pairs on the DiT's attention,
MLP and text projections (kinema.pipelines.lora.target_names); only they train, by the
model's own flow-matching loss with text dropout (so guidance works) and a share of
first-frame conditions (so image-to-video and extension keep working with the adapter).

A share of every batch (prior_fraction) are clips of the model's own world with their
canonical captions, rendered and encoded once: DreamBooth's prior preservation, so the
adapter does not make the model forget what it knew.

A colour the codec never learned cannot come out of the decoder however well the DiT
learns it (the built-in VAE returns pink as red or purple). So an adapter also carries
rank-r pairs on the VAE decoder's convolutions (decoder_rank; 0: none), trained in the
same steps on the clips' own round trip (L1 + MSE; the clips also mirrored, beside world
clips). The encoder stays as it is, so the latents the DiT pairs learn from are the
model's own.

A step's batch, times and noise are pure functions of the step number, so a run killed
between checkpoints resumes (--resume) onto the same numbers. What it writes, in
KINEMA_HOME/loras: NAME.safetensors (fp16, diffusers/peft key names, metadata with the
card), NAME.json (the card), NAME.loss.png, and the run's state in .NAME.train/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kinema.errors import InputError
from kinema.pipelines.adapters import FORMAT, SUFFIX, check_name, loras_dir
from kinema.pipelines.lora import (
    PREFIX,
    VAE_PREFIX,
    decoder_target_names,
    dit_sha256,
    target_names,
    vae_sha256,
)

CLIP_SUFFIXES = (".mp4", ".webm", ".gif")
MIN_FRAMES = 5  # one latent step of the causal VAE (1 + 4)
PRIOR_STREAM = 0x9A10  # the world stream they come from (training_sample's stream)


@dataclass(frozen=True)
class LoRASettings:
    """How an adapter trains: rank and alpha (alpha = rank when None) of every pair, steps,
    learning rate (AdamW, linear warmup then constant), clips a step, the seed of the
    batch draws, the share of steps given the first frame as a condition, and how often
    the run's state is saved; the share of every batch drawn from the model's own world
    (prior preservation; 0: only the user's clips), the rank of the pairs on the VAE
    decoder's convolutions (0: the adapter leaves the codec as it is) and the clips of a
    decoder step."""

    rank: int = 8
    alpha: float | None = None
    steps: int = 600
    lr: float = 1e-3
    batch: int = 8
    seed: int = 0
    warmup: int = 20
    first_frame_fraction: float = 0.2
    text_dropout: float = 0.1
    checkpoint_every: int = 50
    prior_fraction: float = 0.5
    prior_clips: int = 256  # world clips a run holds for prior preservation (rendered once)
    decoder_rank: int = 8
    decoder_batch: int = 4

    def check(self) -> None:
        """Refuse (InputError) settings out of range, before any work."""
        if not 1 <= self.rank <= 256:
            raise InputError(f"rank must be between 1 and 256, got {self.rank}")
        if not 1 <= self.steps <= 1_000_000:
            raise InputError(f"steps must be between 1 and 1000000, got {self.steps}")
        if not 0 < self.lr <= 1:
            raise InputError(f"lr must be in (0, 1], got {self.lr}")
        if not 1 <= self.batch <= 1024:
            raise InputError(f"batch must be between 1 and 1024, got {self.batch}")
        if not 0 <= self.decoder_rank <= 256:
            raise InputError(
                f"decoder rank must be between 0 (no decoder pairs) and 256, got {self.decoder_rank}"
            )
        if not 0 <= self.prior_fraction < 1:
            raise InputError(f"prior fraction must be in [0, 1), got {self.prior_fraction}")
        if not 1 <= self.prior_clips <= 100_000:
            raise InputError(f"prior clips must be between 1 and 100000, got {self.prior_clips}")
        if not 1 <= self.decoder_batch <= 1024:
            raise InputError(f"decoder batch must be between 1 and 1024, got {self.decoder_batch}")

    def prior_rows(self, batch: int) -> int:
        """How many of BATCH rows are world clips (prior preservation); at least one
        user clip a batch."""
        return min(batch - 1, round(batch * self.prior_fraction))


@dataclass(frozen=True)
class TrainingClip:
    """One clip of a training folder and its caption."""

    path: Path
    caption: str


def find_clips(folder: str | Path) -> list[TrainingClip]:
    """The captioned clips of FOLDER, sorted by name. Refuses (InputError, one line) a
    missing folder, one without clips, a clip without its caption, a caption without its
    clip and an empty caption."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"'{folder}' is not a folder of clips")
    clips: dict[str, Path] = {}
    captions: dict[str, Path] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in CLIP_SUFFIXES:
            clips[entry.stem] = entry
        elif entry.is_dir() and any(entry.glob("*.png")):
            clips[entry.name] = entry
        elif entry.is_file() and entry.suffix.lower() == ".txt":
            captions[entry.stem] = entry
    if not clips:
        raise InputError(f"'{folder}' holds no clips (mp4, webm, gif, or folders of PNG frames)")
    for stem, path in clips.items():
        if stem not in captions:
            raise InputError(f"clip '{path.name}' has no caption: write its caption in {stem}.txt")
    for stem, path in captions.items():
        if stem not in clips:
            raise InputError(f"caption '{path.name}' has no clip named {stem} beside it")
    found = []
    for stem, path in clips.items():
        caption = " ".join(captions[stem].read_text(encoding="utf-8", errors="replace").split())
        if not caption:
            raise InputError(f"caption '{captions[stem].name}' is empty")
        found.append(TrainingClip(path, caption))
    return found


def clips_sha256(clips: list[TrainingClip]) -> str:
    """One SHA-256 over the clips' bytes and captions, in order (the card's data hash)."""
    digest = hashlib.sha256()
    for clip in clips:
        files = sorted(clip.path.glob("*.png")) if clip.path.is_dir() else [clip.path]
        for file in files:
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        digest.update(clip.caption.encode())
    return digest.hexdigest()


def load_clips(clips: list[TrainingClip], size: int, say: Callable[[str], None]) -> np.ndarray:
    """The clips as uint8 (N, L, size, size, 3): each checked for faces without consent,
    centre-cropped and resized to size×size, and cut to L, the longest 1+4k length (at
    most 17: the DiT's window) that every clip has. SAY prints what was done to fit them
    (one line each for resizing and cutting)."""
    from kinema.governance.policy import check_likeness
    from kinema.io import read_video
    from kinema.pipelines.conditioning import fit_image

    videos = [read_video(clip.path, max_frames=17) for clip in clips]
    shortest = min(v.num_frames for v in videos)
    if shortest < MIN_FRAMES:
        short = next(c.path.name for c, v in zip(clips, videos, strict=True) if v.num_frames < MIN_FRAMES)
        raise InputError(
            f"clip '{short}' has fewer than {MIN_FRAMES} frames; an adapter learns motion from {MIN_FRAMES} or more"
        )
    length = 1 + 4 * ((min(shortest, 17) - 1) // 4)
    resized = 0
    out = np.empty((len(videos), length, size, size, 3), np.uint8)
    for i, (clip, video) in enumerate(zip(clips, videos, strict=True)):
        check_likeness(video.frames, source=str(clip.path))
        if video.frames.shape[1:3] != (size, size):
            resized += 1
        for t in range(length):
            out[i, t] = fit_image(video.frames[t], size, size)[0]
    if resized:
        say(f"{resized} of {len(clips)} clips centre-cropped and resized to {size}x{size}")
    longer = sum(v.num_frames > length for v in videos)
    if longer:
        say(f"training on each clip's first {length} frames ({longer} clips are longer)")
    return out


def _run_folder(name: str) -> Path:
    return loras_dir() / f".{name}.train"


def _destination(name: str) -> Path:
    return loras_dir() / f"{name}{SUFFIX}"


def check_destination(name: str, resume: bool, force: bool) -> None:
    """Refuse (InputError) what an existing NAME forbids: a finished or started adapter
    without --resume or --force, --resume with nothing to resume, and both flags."""
    check_name(name)
    if resume and force:
        raise InputError("--resume continues a run and --force replaces it: choose one")
    exists = _destination(name).exists() or (_run_folder(name) / "state.json").is_file()
    if exists and not (resume or force):
        raise InputError(f"adapter '{name}' exists: --resume continues its training, --force replaces it")
    if resume and not (_run_folder(name) / "state.json").is_file():
        raise InputError(
            f"adapter '{name}' has no training run to resume (its state is gone or it never started)"
        )


def _first_frame_masks(rows: np.ndarray, t: int, h: int, w: int) -> torch.Tensor:
    mask = torch.zeros(len(rows), 1, t, h, w)
    mask[torch.from_numpy(rows.astype(bool)), :, 0] = 1
    return mask


def train_lora(
    folder: str | Path,
    name: str,
    settings: LoRASettings = LoRASettings(),
    *,
    model: str | None = None,
    resume: bool = False,
    force: bool = False,
    command: str = "",
    say: Callable[[str], None] = print,
    show_progress: bool = True,
) -> Path:
    """Train adapter NAME on FOLDER's captioned clips for MODEL (the built-in one when None)
    and write it to KINEMA_HOME/loras; returns the adapter's path. Everything is checked
    before anything is written: the name and its existing files, the settings, the clips
    and captions, the model (kinema's own), and the clips' consent."""
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    from kinema.diffusion.flow import flow_loss, sample_time
    from kinema.pipelines.loading import load, resolve_model
    from kinema.train.checkpoint import optimizer_from_tensors, optimizer_to_tensors

    settings.check()
    check_destination(name, resume, force)
    clips = find_clips(folder)
    folder_of_model = resolve_model(model)
    if not (folder_of_model / "model.json").is_file():
        raise InputError(
            f"'{folder_of_model}' is a diffusers model: kinema lora train teaches kinema's own models"
        )
    pipe = load(folder_of_model)
    size = int(pipe.defaults["size"])
    frames = load_clips(clips, size, say)
    data_hash = clips_sha256(clips)
    base_dit = dit_sha256(folder_of_model)
    run = _run_folder(name)
    if force:
        for path in (
            run,
            _destination(name),
            _destination(name).with_suffix(".json"),
            loras_dir() / f"{name}.loss.png",
        ):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    state: dict = {}
    if resume:
        state = json.loads((run / "state.json").read_text())
        if state.get("clips_sha256") != data_hash or state.get("base_dit_sha256") != base_dit:
            raise InputError(
                f"adapter '{name}' was started on other clips or another model; --force starts it again"
            )
        # a resumed run may go on for more steps; anything else would change what it learns
        kept = {
            k: v for k, v in dataclasses.asdict(settings).items() if k not in ("steps", "checkpoint_every")
        }
        started = {k: v for k, v in (state.get("settings") or {}).items() if k in kept}
        if started != kept:
            raise InputError(f"adapter '{name}' was started with other settings: {started}")
        if int(state["step"]) > settings.steps:
            raise InputError(
                f"adapter '{name}' has trained {state['step']} steps already; --steps {settings.steps} is fewer"
            )
    run.mkdir(parents=True, exist_ok=True)

    # latents once: the encoder is frozen, and a clip's latents never change
    prior_frames, prior_captions = _prior(settings, frames.shape[1], size)
    mirrored = _flips(frames) if settings.decoder_rank else frames[:0]
    cache_key = hashlib.sha256(
        f"{data_hash}:{settings.seed}:{len(prior_frames)}:{settings.decoder_rank > 0}".encode()
    ).hexdigest()
    latents_file = run / "latents.safetensors"
    cached = load_file(str(latents_file)) if latents_file.is_file() else {}
    if cached.get("hash") is not None and bytes(cached["hash"].tolist()).hex() == cache_key:
        x0, prior, variants = cached["latents"], cached["prior"], cached["variants"]
    else:
        x0, prior = _encoded(pipe.vae, frames), _encoded(pipe.vae, prior_frames)
        # the decoder also learns the clips mirrored (a codec has no left or right)
        variants = _encoded(pipe.vae, mirrored)  # none without decoder pairs
        digest = torch.tensor(list(bytes.fromhex(cache_key)), dtype=torch.uint8)
        save_file({"latents": x0, "prior": prior, "variants": variants, "hash": digest}, str(latents_file))
    captions = [c.caption for c in clips]
    with torch.no_grad():
        text, text_mask = pipe.text_encoder.encode([*captions, *prior_captions, ""])

    dit = pipe.dit.train()
    dit.requires_grad_(False)
    alpha = float(settings.alpha if settings.alpha is not None else settings.rank)
    config = LoraConfig(r=settings.rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=target_names(dit))
    vae = pipe.vae
    with torch.random.fork_rng():  # lora_A's random start from the seed: the same command, the same adapter
        torch.manual_seed(settings.seed)
        dit = inject_adapter_in_model(config, dit)
        if settings.decoder_rank:
            r = settings.decoder_rank
            decoder_config = LoraConfig(
                r=r, lora_alpha=float(r), lora_dropout=0.0, target_modules=decoder_target_names(vae)
            )
            vae = inject_adapter_in_model(decoder_config, vae)
    models = {PREFIX: dit, **({VAE_PREFIX: vae} if settings.decoder_rank else {})}
    groups = [[p for n, p in m.named_parameters() if "lora_" in n] for m in models.values()]
    optimizer = torch.optim.AdamW([{"params": g} for g in groups], lr=settings.lr, weight_decay=0.0)
    start, losses, decoder_losses, seconds = 0, [], [], 0.0
    if resume:
        tensors = load_file(str(run / "state.safetensors"))
        for prefix, m in models.items():
            set_peft_model_state_dict(
                m, {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
            )
        optimizer_from_tensors(optimizer, tensors, state["optimizer"])
        start, losses, seconds = (
            int(state["step"]),
            [tuple(x) for x in state["losses"]],
            float(state["seconds"]),
        )
        decoder_losses = [tuple(x) for x in state.get("decoder_losses", [])]

    def adapter_tensors() -> dict[str, torch.Tensor]:
        return {
            f"{prefix}{k}": v.detach().clone().contiguous()
            for prefix, m in models.items()
            for k, v in get_peft_model_state_dict(m).items()
        }

    def save_state(step: int) -> None:
        tensors = adapter_tensors()
        optimizer_tensors, optimizer_scalars = optimizer_to_tensors(optimizer)
        tensors.update(optimizer_tensors)
        save_file(tensors, str(run / "state.safetensors.tmp"))
        (run / "state.safetensors.tmp").replace(run / "state.safetensors")
        record = {
            "step": step,
            "losses": losses,
            "decoder_losses": decoder_losses,
            "seconds": seconds,
            "clips_sha256": data_hash,
            "base_dit_sha256": base_dit,
            "settings": dataclasses.asdict(settings),
            "optimizer": optimizer_scalars,
        }
        (run / "state.json.tmp").write_text(json.dumps(record))
        (run / "state.json.tmp").replace(run / "state.json")

    b, n, m_prior = settings.batch, len(clips), len(prior)
    own = (np.concatenate([frames, mirrored]), torch.cat([x0, variants])) if settings.decoder_rank else None
    x_all = torch.cat([x0, prior])
    own_rows = b - (settings.prior_rows(b) if m_prior else 0)
    _, _, t, h, w = x0.shape
    progress = _Bar(show_progress, settings.steps, start, name)
    began = time.perf_counter()
    for step in range(start, settings.steps):
        rng = np.random.default_rng([settings.seed, step])
        rows = np.concatenate(
            [rng.integers(n, size=own_rows), n + rng.integers(max(m_prior, 1), size=b - own_rows)]
        )
        dropped = rng.random(b) < settings.text_dropout
        first = rng.random(b) < settings.first_frame_fraction
        which = torch.from_numpy(np.where(dropped, n + m_prior, rows))
        generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
        times = sample_time(b, generator=generator)
        noise = torch.randn((b, *x0.shape[1:]), generator=generator)
        clean = x_all[torch.from_numpy(rows)]
        mask = _first_frame_masks(first, t, h, w)
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * min(1.0, (step + 1) / max(1, settings.warmup))

        def velocity(x_t, tt, clean=clean, mask=mask, which=which):
            return dit(x_t, tt, text[which], text_mask[which], cond=clean, cond_mask=mask)

        # the first frame is given clean (weight 0), as the sampler holds a first image
        loss = flow_loss(velocity, clean, t=times, noise=noise, weight=1 - mask)
        losses.append((step + 1, round(loss.item(), 5)))
        if settings.decoder_rank:
            decoder_loss = _decoder_loss(vae, settings, step, own, (prior_frames, prior))
            decoder_losses.append((step + 1, round(decoder_loss.item(), 5)))
            loss = loss + decoder_loss  # disjoint parameters: each part's gradient is its own
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in groups:
            torch.nn.utils.clip_grad_norm_(group, 1.0)
        optimizer.step()
        progress.advance(losses[-1][1])
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps:
            seconds_now = seconds + time.perf_counter() - began
            seconds, began = seconds_now, time.perf_counter()
            save_state(step + 1)
    progress.close()
    dit.eval()
    lora = {k: v.to(torch.float16).contiguous() for k, v in adapter_tensors().items()}
    card = {
        "name": name,
        "format": FORMAT,
        "base_model": pipe.name,
        "base_model_sha256": pipe.model_hash,
        "base_dit_sha256": base_dit,
        "rank": settings.rank,
        "alpha": alpha,
        "decoder_rank": settings.decoder_rank,
        **({"base_vae_sha256": vae_sha256(folder_of_model)} if settings.decoder_rank else {}),
        "steps": settings.steps,
        "lr": settings.lr,
        "batch": settings.batch,
        "prior_fraction": settings.prior_fraction if m_prior else 0.0,
        "prior_clips": m_prior,
        "clips": len(clips),
        "frames": int(frames.shape[1]),
        "size": size,
        "captions": captions,
        "clips_sha256": data_hash,
        "train_seconds": round(seconds, 1),
        "final_loss": _smoothed(losses),
        **({"final_decoder_loss": _smoothed(decoder_losses)} if settings.decoder_rank else {}),
        "command": command,
    }
    return _write_adapter(name, lora, card, losses, decoder_losses)


def _encoded(vae, frames: np.ndarray, chunk: int = 32) -> torch.Tensor:
    """The standardised latents of uint8 clips (N, L, S, S, 3), CHUNK clips at a time."""
    from kinema.train.data import pixels_to_tensor

    with torch.no_grad():
        parts = [vae.encode(pixels_to_tensor(frames[i : i + chunk])) for i in range(0, len(frames), chunk)]
    return torch.cat(parts).contiguous() if parts else torch.zeros(0, *vae.latent_shape(*frames.shape[1:4]))


def _flips(frames: np.ndarray) -> np.ndarray:
    """The clips mirrored left-right, then upside down: (2N, L, S, S, 3)."""
    return np.concatenate([frames[:, :, :, ::-1], frames[:, :, ::-1]]).copy()


def _prior(settings: LoRASettings, length: int, size: int) -> tuple[np.ndarray, list[str]]:
    """settings.prior_clips clips of the model's own world (the v1 training stream: no held-out
    pair, no colour outside v1), LENGTH frames at SIZE, and their captions: what the
    adapter must not forget. None of them when prior_fraction is 0."""
    from kinema.world.dataset import training_sample

    count = settings.prior_clips if settings.prior_fraction else 0
    samples = [
        training_sample(settings.seed, PRIOR_STREAM, i, frames=length, size=size) for i in range(count)
    ]
    frames = (
        np.stack([s.frames for s in samples]) if samples else np.zeros((0, length, size, size, 3), np.uint8)
    )
    return frames, [s.prompt for s in samples]


def _decoder_loss(
    vae,
    settings: LoRASettings,
    step: int,
    own: tuple[np.ndarray, torch.Tensor],
    world: tuple[np.ndarray, torch.Tensor],
) -> torch.Tensor:
    """One decoder step's loss, L1 + MSE of the round trip of the user's clips (each as
    it is or mirrored: OWN's pixels and latents) beside world clips (WORLD's), so the
    decoder keeps every colour it knew. Its draws are pure functions of the step, like
    the DiT's."""
    from kinema.train.data import pixels_to_tensor

    rng = np.random.default_rng([settings.seed, step, 0xDEC])
    d = settings.decoder_batch
    world_rows = settings.prior_rows(d) if len(world[1]) else 0
    mine = rng.integers(len(own[1]), size=d - world_rows)
    theirs = rng.integers(max(len(world[1]), 1), size=world_rows)
    x = pixels_to_tensor(np.concatenate([own[0][mine], world[0][theirs]]))
    z = torch.cat([own[1][torch.from_numpy(mine)], world[1][torch.from_numpy(theirs)]])
    error = vae.decode_raw(vae.unstandardised(z)) - x
    return error.abs().mean() + error.pow(2).mean()


def _smoothed(losses: list[tuple[int, float]], last: int = 50) -> float | None:
    """The mean loss of the last steps (one step's loss is noisy: its times are random)."""
    tail = [v for _, v in losses[-last:]]
    return round(float(np.mean(tail)), 5) if tail else None


def _write_adapter(
    name: str, lora: dict[str, torch.Tensor], card: dict, losses: list, decoder_losses: list = ()
) -> Path:
    """NAME.safetensors (the card in its metadata), NAME.json and NAME.loss.png (the DiT's
    loss, and the decoder's where it has pairs), each replaced atomically; the adapter
    last, so a finished adapter always has its card."""
    from safetensors.torch import save_file

    from kinema.io.atomic import publishable, write_json
    from kinema.train.plot import plot_curves

    folder = loras_dir(create=True)
    write_json(folder / f"{name}.json", card)
    plot_curves(
        folder / f"{name}.loss.png",
        losses,
        list(decoder_losses),
        "decoder round-trip loss" if decoder_losses else "",
        f"adapter {name}: loss",
    )
    metadata = {
        "format": FORMAT,
        "rank": str(card["rank"]),
        "alpha": str(card["alpha"]),
        "base_dit_sha256": card["base_dit_sha256"],
        "base_model": card["base_model"],
        **(
            {
                "decoder_rank": str(card["decoder_rank"]),
                "decoder_alpha": str(float(card["decoder_rank"])),
                "base_vae_sha256": card["base_vae_sha256"],
            }
            if card.get("decoder_rank")
            else {}
        ),
        "card": json.dumps(card),
    }
    path = _destination(name)
    save_file(lora, str(path.with_suffix(".tmp")), metadata=metadata)
    publishable(path.with_suffix(".tmp"))  # the user's umask, as every file kinema hands over
    path.with_suffix(".tmp").replace(path)
    return path


class _Bar:
    """A rich progress bar of the steps and the running loss (nothing when off)."""

    def __init__(self, show: bool, steps: int, start: int, name: str):
        self.progress = None
        if show:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn(f"adapter {name}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} steps · loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=steps, completed=start, loss="…")
        self.recent: list[float] = []

    def advance(self, loss: float) -> None:
        self.recent = [*self.recent[-19:], loss]
        if self.progress is not None:
            self.progress.update(self.task, advance=1, loss=f"{np.mean(self.recent):.4f}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
