"""Train the built-in model's reference branch (kinema.models.reference) on world clips
whose prompt leaves colour and shape to an image.

    python -m kinema.train.reference --out runs/reference [--steps N] [--resume]
    python -m kinema.train.reference --out runs/reference --export src/kinema/weights/builtin

The data: one-object clips of the shapes world (every motion and size word, the
held-out colour–shape pairs left out), each with a reference image: the same colour and
shape drawn once more, elsewhere, at another size, on any background. Most captions say
"an object moving right on a gray background" (colour and shape left to the reference,
as WORLD.md's prompts under a reference do); a share say them too, agreeing with it.
Clips and references are encoded once by the model's VAE and cached beside the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kinema.models.reference import ReferenceBranch, ReferenceConfig, Referencing
from kinema.world.render import render_frames, render_track
from kinema.world.scene import (
    BACKGROUNDS,
    COLOURS,
    HELD_OUT_PAIRS,
    MOTIONS,
    SHAPES,
    SIZES,
    Scene,
    WorldObject,
)


@dataclass(frozen=True)
class ReferenceSettings:
    steps: int = 2000
    lr: float = 2e-4
    batch: int = 16
    clips: int = 6144
    frames: int = 17
    size: int = 64
    seed: int = 0
    warmup: int = 100
    text_dropout: float = 0.1
    named_fraction: float = 0.2  # captions that also name colour and shape
    checkpoint_every: int = 100


def object_prompt(size: str | None, motion: str, background: str) -> str:
    """A prompt under a reference: the canonical one-object prompt with "object" for its
    colour and shape."""
    article = "an" if size is None else "a"
    return f"{article} {size + ' ' if size else ''}object {motion} on a {background} background"


def reference_image(colour: str, shape: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """COLOUR's SHAPE drawn once, somewhere on the canvas, at any of the world's sizes, on
    any background: (S, S, 3) uint8."""
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    state = [[*rng.uniform(0.3, 0.7, size=2), list(SIZES.values())[rng.integers(len(SIZES))]]]
    return render_track(shape, COLOURS[colour], BACKGROUNDS[background], np.array(state), size)[0]


def training_clip(index: int, settings: ReferenceSettings) -> tuple[str, np.ndarray, np.ndarray]:
    """Clip INDEX of the reference stream: its caption, frames (T, S, S, 3) and reference."""
    rng = np.random.default_rng([settings.seed, 104729, index])
    pairs = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT_PAIRS]
    colour, shape = pairs[rng.integers(len(pairs))]
    motion = MOTIONS[rng.integers(len(MOTIONS))]
    size = [None, "small", "big"][rng.integers(3)]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    scene = Scene((WorldObject(colour, shape, motion, size),), background)
    frames = render_frames(scene, seed=int(rng.integers(2**31)), frames=settings.frames, size=settings.size)
    if rng.random() < settings.named_fraction:
        words = " ".join(w for w in (size, colour, shape) if w)
        prompt = f"{'an' if words[0] in 'aeiou' else 'a'} {words} {motion} on a {background} background"
    else:
        prompt = object_prompt(size, motion, background)
    return prompt, frames, reference_image(colour, shape, rng, settings.size)


def build_data(pipe, settings: ReferenceSettings, folder: Path, say=print) -> dict:
    """The stream's latents, reference latents and prompts, encoded once into FOLDER/data.pt."""
    path = folder / "data.pt"
    if path.exists():
        data = torch.load(path)
        if data["clips"] == settings.clips and data["seed"] == settings.seed:
            return data
    began = time.perf_counter()
    prompts, latents, references = [], [], []
    chunk = 64
    for start in range(0, settings.clips, chunk):
        rows = [training_clip(i, settings) for i in range(start, min(settings.clips, start + chunk))]
        pixels = torch.from_numpy(np.stack([r[1] for r in rows])).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
        images = (
            torch.from_numpy(np.stack([r[2] for r in rows]))[:, None].permute(0, 4, 1, 2, 3).float() / 127.5
            - 1
        )
        with torch.no_grad():
            latents.append(pipe.vae.encode(pixels).to(torch.float16))
            references.append(pipe.vae.encode(images).to(torch.float16))
        prompts += [r[0] for r in rows]
        if start % 1024 == 0:
            say(f"data: {start + len(rows)}/{settings.clips} clips, {time.perf_counter() - began:.0f} s")
    names = sorted(set(prompts))
    data = {
        "clips": settings.clips,
        "seed": settings.seed,
        "latents": torch.cat(latents),
        "references": torch.cat(references),
        "prompt_ids": torch.tensor([names.index(p) for p in prompts]),
        "prompts": names,
    }
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(data, folder / "data.tmp")
    (folder / "data.tmp").replace(path)
    say(f"data: {settings.clips} clips encoded in {time.perf_counter() - began:.0f} s")
    return data


def train_reference(
    model: str | None, out: Path, settings: ReferenceSettings, resume: bool, command: str, say=print
):
    """Train the reference branch of MODEL (the built-in one when None) into run folder OUT."""
    from kinema.pipelines.loading import load
    from kinema.train.branch import train_branch

    pipe = load(model)
    dit = pipe.dit
    config = ReferenceConfig(latent_channels=pipe.vae.config.latent_channels, patch=dit.config.patch[1])
    data = build_data(pipe, settings, out, say)
    text, text_mask = pipe.text_encoder.encode([*data["prompts"], ""])
    torch.manual_seed(settings.seed)  # the branch's first weights: the same in every run of these settings
    branch = ReferenceBranch(config, dit.config)
    references = data["references"]

    def steer(rows: torch.Tensor) -> dict:
        return {"reference": Referencing(branch, branch.tokens(references[rows].float()))}

    record = {"config": dataclasses.asdict(config), "command": command}
    train_branch(
        dit,
        branch,
        data["latents"],
        text,
        text_mask,
        data["prompt_ids"],
        steer,
        settings,
        out,
        resume,
        record,
        say,
    )
    return branch, config


def export_reference(run: Path, model_folder: Path, say=print) -> Path:
    """Write the branch of RUN's last checkpoint beside MODEL_FOLDER's DiT (reference/)."""
    from kinema.models.dit import DiTConfig
    from kinema.pipelines.branch_weights import save_branch
    from kinema.train.branch import run_card

    state, card = run_card(run)
    dit_config = DiTConfig(**json.loads((model_folder / "dit" / "config.json").read_text())["model"])
    branch = ReferenceBranch(ReferenceConfig(**state["config"]), dit_config)
    branch.load_state_dict(state["branch"])
    save_branch(model_folder / "reference", branch, "reference", card)
    say(f"wrote {model_folder / 'reference'} (step {state['step']})")
    return model_folder / "reference"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m kinema.train.reference", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--export", type=Path, default=None, help="write the run's branch beside this model folder's DiT"
    )
    for field in dataclasses.fields(ReferenceSettings):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    args = parser.parse_args(argv)
    if args.export is not None:
        export_reference(args.out, args.export)
        return
    settings = ReferenceSettings(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(ReferenceSettings)}
    )
    command = "python -m kinema.train.reference " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    train_reference(args.model, args.out, settings, args.resume, command, say=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
