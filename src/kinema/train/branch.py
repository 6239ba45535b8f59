"""Training a branch that steers the frozen DiT (the control branch, the reference branch).

    cached latents + captions + per-clip steering data ─► each step: a batch drawn by the
    step number, text dropout, logit-normal times, noise from the step's generator ─►
    the DiT's flow-matching loss with the branch steering it ─► AdamW on the branch only

A step's batch, times and noise are pure functions of the step number, so a killed run
resumes (from RUN/state.pt, written every `checkpoint_every` steps) onto the same
numbers. What differs between branches is the data and how a batch steers the DiT:
`steer(rows)` returns the DiT's keyword arguments (control=…, reference=…).

A stream may also give each clip a teacher caption (the reference branch's: the
canonical prompt that says what the image shows). The frozen DiT's velocity under it is
then a second target (weight `settings.distill`): the branch learns to make the DiT do
what it does when told in words, a target without the data's noise.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kinema.train.run_log import RunLog

# The layout of a stream's data.pt; a cache of another layout is built again. 2: the
# images' pixels (extra_pixels) and the teacher captions (teacher_ids) are kept.
STREAM_FORMAT = 2


@dataclasses.dataclass
class Captioned:
    """A branch's cached clips with their captions' token states: clip i's caption is row
    prompt_ids[i] of text (and text_mask), its teacher caption (if the stream has them)
    row teacher_ids[i]; the last row is the empty prompt, which text dropout draws."""

    latents: torch.Tensor  # (N, C, T, h, w)
    text: torch.Tensor
    text_mask: torch.Tensor
    prompt_ids: torch.Tensor
    teacher_ids: torch.Tensor | None = None

    @classmethod
    def of(cls, stream: dict, text_encoder) -> Captioned:
        """The clips of a build_stream dict, their prompts encoded once."""
        text, text_mask = text_encoder.encode([*stream["prompts"], ""])
        return cls(stream["latents"], text, text_mask, stream["prompt_ids"], stream.get("teacher_ids"))


def train_branch(
    dit: nn.Module,
    branch: nn.Module,
    clips: Captioned,
    steer: Callable[[torch.Tensor], dict],
    settings,
    out: Path,
    resume: bool,
    record: dict,
    say: Callable[[str], None] = print,
    auxiliary: Callable[[torch.Tensor, dict], torch.Tensor] | None = None,
    auxiliary_module: nn.Module | None = None,
    distill: float = 0.0,
) -> nn.Module:
    """Train BRANCH on CLIPS for settings.steps steps, STEER(rows) giving the DiT's
    keyword arguments for a batch's rows; RECORD (JSON-ready: the branch's config, the
    command) is kept in every checkpoint; AUXILIARY(rows, steering), called after each
    step's forward with the batch's rows and what STEER gave for them, is a further loss
    on the branch (already weighted), and AUXILIARY_MODULE the
    training-only weights it learns with the branch (kept in checkpoints, never exported).
    DISTILL weighs a second target where CLIPS has teacher captions: the frozen DiT's own
    velocity under those words, at the same noisy latents. Returns the branch."""
    from kinema.diffusion.flow import interpolate, sample_time

    for p in dit.parameters():
        p.requires_grad_(False)
    trained = [*branch.parameters(), *(auxiliary_module.parameters() if auxiliary_module else ())]
    optimizer = torch.optim.AdamW(trained, lr=settings.lr, weight_decay=0.0)
    log = RunLog(out, settings, say)
    state = log.resume() if resume else None
    if state is not None:
        branch.load_state_dict(state["branch"])
        optimizer.load_state_dict(state["optimizer"])
        if auxiliary_module is not None:
            auxiliary_module.load_state_dict(state["auxiliary"])

    def weights() -> dict:
        extra = {} if auxiliary_module is None else {"auxiliary": auxiliary_module.state_dict()}
        return {"branch": branch.state_dict(), "optimizer": optimizer.state_dict(), **extra, **record}

    latents, text, text_mask = clips.latents, clips.text, clips.text_mask
    empty, n, b = len(text) - 1, len(latents), settings.batch
    branch.train()
    for step in range(log.start, settings.steps):
        rng = np.random.default_rng([settings.seed, step])
        rows = torch.from_numpy(rng.integers(n, size=b))
        dropped = torch.from_numpy(rng.random(b) < settings.text_dropout)
        which = torch.where(dropped, empty, clips.prompt_ids[rows])
        generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
        times = sample_time(b, generator=generator)
        clean = latents[rows].float()
        noise = torch.randn(clean.shape, generator=generator)
        steering = steer(rows)
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * min(1.0, (step + 1) / settings.warmup)

        x_t = interpolate(clean, noise, times)
        predicted = dit(x_t, times, text[which], text_mask[which], **steering)
        loss = (predicted - (noise - clean)).square().mean()
        if distill and clips.teacher_ids is not None:
            # rows whose caption was dropped have nothing to say in words: no teacher
            told = ~dropped
            teacher = clips.teacher_ids[rows[told]]
            with torch.no_grad():
                target = dit(x_t[told], times[told], text[teacher], text_mask[teacher])
            loss = loss + distill * (predicted[told] - target).square().mean()
        if auxiliary is not None:
            loss = loss + auxiliary(rows, steering)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(branch.parameters(), 1.0)
        optimizer.step()
        log.done(step + 1, loss.item(), weights)
    return branch


def run_card(run: Path) -> tuple[dict, dict]:
    """A run's last checkpoint (RUN/state.pt) and the card its exported branch carries:
    steps, seconds, the last 200 steps' mean loss, settings and command."""
    state = torch.load(run / "state.pt")
    tail = [v for _, v in state["losses"][-200:]]
    card = {
        "step": state["step"],
        "train_seconds": round(state["seconds"], 1),
        "final_loss": round(float(np.mean(tail)), 5) if tail else None,
        "settings": state["settings"],
        "command": state["command"],
    }
    return state, card


def export_run(run: Path, model_folder: Path, kind: str, say: Callable[[str], None] = print) -> Path:
    """Write the KIND branch ("control", "reference") of RUN's last checkpoint beside
    MODEL_FOLDER's DiT (MODEL_FOLDER/KIND), with its card."""
    import json

    from kinema.models.dit import DiTConfig
    from kinema.pipelines.branch_weights import KINDS, save_branch

    state, card = run_card(run)
    dit_config = DiTConfig(**json.loads((model_folder / "dit" / "config.json").read_text())["model"])
    branch_class, config_class = KINDS[kind]
    branch = branch_class(config_class(**state["config"]), dit_config)
    branch.load_state_dict(state["branch"])
    save_branch(model_folder / kind, branch, kind, card)
    say(f"wrote {model_folder / kind} (step {state['step']})")
    return model_folder / kind


def build_stream(
    pipe,
    settings,
    folder: Path,
    make_clip: Callable[[int], tuple[str, np.ndarray, np.ndarray]],
    encode_extras: bool,
    say: Callable[[str], None] = print,
) -> dict:
    """A branch's training stream, encoded once into FOLDER/data.pt: for each of
    settings.clips clips, make_clip(i) gives its caption, its frames (T, S, S, 3 uint8) and
    what steers it (a track; or an image, then VAE-encoded as one frame when
    ENCODE_EXTRAS, its pixels then kept too), and optionally a fourth item, its teacher
    caption. Returns latents, extras (and extra_pixels), prompt_ids (and teacher_ids) and
    the prompts; a cache of the same clips and seed is read back instead."""
    path = folder / "data.pt"
    if path.exists():
        data = torch.load(path)
        same = data["clips"] == settings.clips and data["seed"] == settings.seed
        if same and data.get("format") == STREAM_FORMAT:
            return data
    began = time.perf_counter()
    prompts, latents, extras, teachers, pictures = [], [], [], [], []

    def pixels(frames: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(frames)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1

    chunk = 64
    for start in range(0, settings.clips, chunk):
        rows = [make_clip(i) for i in range(start, min(settings.clips, start + chunk))]
        with torch.no_grad():
            latents.append(pipe.vae.encode(pixels([r[1] for r in rows])).to(torch.float16))
            if encode_extras:
                extras.append(pipe.vae.encode(pixels([r[2][None] for r in rows])).to(torch.float16))
                pictures += [r[2] for r in rows]
            else:
                extras.append(torch.from_numpy(np.stack([r[2] for r in rows])))
        prompts += [r[0] for r in rows]
        teachers += [r[3] for r in rows if len(r) > 3]
        if start % 1024 == 0:
            say(f"data: {start + len(rows)}/{settings.clips} clips, {time.perf_counter() - began:.0f} s")
    names = sorted(set(prompts) | set(teachers))
    data = {
        "format": STREAM_FORMAT,
        "clips": settings.clips,
        "seed": settings.seed,
        "latents": torch.cat(latents),
        "extras": torch.cat(extras),
        "prompt_ids": torch.tensor([names.index(p) for p in prompts]),
        "prompts": names,
    }
    if pictures:
        data["extra_pixels"] = torch.from_numpy(np.stack(pictures))  # uint8 (N, S, S, 3)
    if teachers:
        data["teacher_ids"] = torch.tensor([names.index(p) for p in teachers])
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(data, folder / "data.tmp")
    (folder / "data.tmp").replace(path)
    say(f"data: {settings.clips} clips encoded in {time.perf_counter() - began:.0f} s")
    return data


def branch_main(argv: list[str] | None, module: str, doc: str, settings_class, train, export) -> None:
    """The command line of a module that trains a part beside a model's DiT (a branch, the
    few-step adapter): --out RUN [--model M] [--resume] [--export MODEL_DIR] and one option
    per field of SETTINGS_CLASS."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--export", type=Path, default=None, help="write what the run trained beside this model folder's DiT"
    )
    for field in dataclasses.fields(settings_class):
        flag = f"--{field.name.replace('_', '-')}"
        if isinstance(field.default, bool):  # --x / --no-x (bool("False") would be True)
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    if args.export is not None:
        export(args.out, args.export)
        return
    settings = settings_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(settings_class)})
    command = f"python -m {module} " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    train(args.model, args.out, settings, args.resume, command, say=lambda s: print(s, flush=True))
