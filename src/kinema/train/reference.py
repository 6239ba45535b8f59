"""Train the built-in model's reference branch (kinema.models.reference) on world clips
whose prompt leaves colour and shape to an image.

    python -m kinema.train.reference --out runs/reference [--steps N] [--resume]
    python -m kinema.train.reference --out runs/reference --export src/kinema/weights/builtin

The data: one-object clips of the shapes world (every motion and size word, the
held-out colour–shape pairs left out), each with a reference image: the same colour and
shape drawn once more, elsewhere, at another size, on any background. Most captions say
"an object moving right on a gray background" (colour and shape left to the reference,
as WORLD.md's prompts under a reference do); a share say them too, agreeing with it.
Each clip's teacher caption is its canonical prompt: the frozen DiT's velocity under
those words is a second target (`--distill`), so the branch learns to say in the DiT's
own terms what the image shows. Clips and references are encoded once by the model's
VAE and cached beside the run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kinema.models.reference import ReferenceBranch, ReferenceConfig, Referencing
from kinema.world.grammar import format_prompt
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
    distill: float = 1.0  # weight of the DiT's velocity under the canonical prompt as a target
    # weight of the word anchor: the pseudo-words' mean held to the text encoder's mean
    # token state of the words they stand for ("red circle")
    word_anchor: float = 1.0
    # the anchor per word instead: pseudo-word 0 held to the colour word's token state and
    # pseudo-word 1 to the shape word's, each as the canonical caption says it (in context),
    # so the shape has a target of its own (the phrases' means differ mostly by colour)
    anchor_words: bool = False
    # weight of the look lesson: a training-only linear head must read the reference's
    # colour and shape from the pseudo-words' mean (cross-entropy), so they say the shape
    look_weight: float = 0.0
    checkpoint_every: int = 100
    # a run's state.pt to start the branch from (parts it lacks keep their first weights)
    init_from: str = ""


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


def training_clip(index: int, settings: ReferenceSettings) -> tuple[str, np.ndarray, np.ndarray, str]:
    """Clip INDEX of the reference stream: its caption, frames (T, S, S, 3), reference and
    canonical prompt (the teacher's caption)."""
    rng = np.random.default_rng([settings.seed, 104729, index])
    pairs = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT_PAIRS]
    colour, shape = pairs[rng.integers(len(pairs))]
    motion = MOTIONS[rng.integers(len(MOTIONS))]
    size = [None, "small", "big"][rng.integers(3)]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    scene = Scene((WorldObject(colour, shape, motion, size),), background)
    frames = render_frames(scene, seed=int(rng.integers(2**31)), frames=settings.frames, size=settings.size)
    canonical = format_prompt(scene)
    prompt = canonical if rng.random() < settings.named_fraction else object_prompt(size, motion, background)
    return prompt, frames, reference_image(colour, shape, rng, settings.size), canonical


def train_reference(
    model: str | None, out: Path, settings: ReferenceSettings, resume: bool, command: str, say=print
):
    """Train the reference branch of MODEL (the built-in one when None) into run folder OUT."""
    from kinema.pipelines.loading import load
    from kinema.train.branch import Captioned, build_stream, train_branch

    pipe = load(model)
    dit = pipe.dit
    config = ReferenceConfig(latent_channels=pipe.vae.config.latent_channels, patch=dit.config.patch[1])
    data = build_stream(pipe, settings, out, lambda i: training_clip(i, settings), True, say)
    torch.manual_seed(settings.seed)  # the branch's first weights: the same in every run of these settings
    branch = ReferenceBranch(config, dit.config)
    if settings.init_from and not (resume and (out / "state.pt").exists()):
        missing, unexpected = branch.load_state_dict(torch.load(settings.init_from)["branch"], strict=False)
        if unexpected or any(not k.startswith("pixel_stem.") for k in missing):
            raise ValueError(f"{settings.init_from} is not a reference branch of this shape")
    references = data["extras"]
    pictures = data["extra_pixels"]

    anchors = (word_anchors if settings.anchor_words else look_anchors)(data, pipe.text_encoder)
    colours, shapes = look_labels(data)
    head = nn.Linear(dit.config.text_dim, len(COLOURS) + len(SHAPES))

    def steer(rows: torch.Tensor) -> dict:
        shown = pictures[rows].permute(0, 3, 1, 2).float() / 127.5 - 1
        return {"reference": Referencing(branch, branch.tokens(references[rows].float(), shown))}

    def anchor(rows: torch.Tensor, steering: dict) -> torch.Tensor:
        tokens = steering["reference"].tokens
        words = tokens.mean(1)
        held = tokens[:, :2] if settings.anchor_words else words  # what the anchors are targets for
        loss = settings.word_anchor * (held - anchors[rows]).square().mean()
        if settings.look_weight:
            logits = head(words)
            lesson = F.cross_entropy(logits[:, : len(COLOURS)], colours[rows]) + F.cross_entropy(
                logits[:, len(COLOURS) :], shapes[rows]
            )
            loss = loss + settings.look_weight * lesson
        return loss

    record = {"config": dataclasses.asdict(config), "command": command}
    train_branch(
        dit,
        branch,
        Captioned.of(data, pipe.text_encoder),
        steer,
        settings,
        out,
        resume,
        record,
        say,
        anchor if settings.word_anchor or settings.look_weight else None,
        head if settings.look_weight else None,
        distill=settings.distill,
    )
    return branch, config


def look_anchors(data: dict, text_encoder) -> torch.Tensor:
    """Each clip's word anchor (N, text_dim): the mean token state of "COLOUR SHAPE", the
    words its reference shows, read from its teacher caption (the canonical prompt)."""
    from kinema.world.grammar import parse

    looks = {}
    for name in data["prompts"]:
        if "object" not in name:
            obj = parse(name).objects[0]
            looks[name] = f"{obj.colour} {obj.shape}"
    phrases = sorted(set(looks.values()))
    states, mask = text_encoder.encode(phrases)
    means = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    row = {p: means[i] for i, p in enumerate(phrases)}
    return torch.stack([row[looks[data["prompts"][i]]] for i in data["teacher_ids"].tolist()])


def word_anchors(data: dict, text_encoder) -> torch.Tensor:
    """Each clip's per-word anchors (N, 2, text_dim): the token states of its colour word
    and its shape word inside its teacher caption (the canonical prompt), each the mean of
    the word's word pieces. Needs a text encoder with a `tokenizers` tokenizer (MiniLM)."""
    from kinema.world.grammar import parse

    rows = {}
    for name in {data["prompts"][i] for i in data["teacher_ids"].tolist()}:
        obj = parse(name).objects[0]
        encoding = text_encoder.tokenizer.encode(name)
        spoken = name.split()
        states, _ = text_encoder.encode([name])
        pieces = [
            [t for t, w in enumerate(encoding.word_ids) if w == spoken.index(word)]
            for word in (obj.colour, obj.shape)
        ]
        rows[name] = torch.stack([states[0, p].mean(0) for p in pieces])
    return torch.stack([rows[data["prompts"][i]] for i in data["teacher_ids"].tolist()])


def look_labels(data: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's reference colour and shape (indices into COLOURS and SHAPES), read from
    its teacher caption."""
    from kinema.world.grammar import parse

    objects = [parse(data["prompts"][i]).objects[0] for i in data["teacher_ids"].tolist()]
    return (
        torch.tensor([list(COLOURS).index(o.colour) for o in objects]),
        torch.tensor([SHAPES.index(o.shape) for o in objects]),
    )


def export_reference(run: Path, model_folder: Path, say=print) -> Path:
    """Write the branch of RUN's last checkpoint beside MODEL_FOLDER's DiT (reference/), with its card."""
    from kinema.train.branch import export_run

    return export_run(run, model_folder, "reference", say)


def main(argv: list[str] | None = None) -> None:
    from kinema.train.branch import branch_main

    branch_main(argv, "kinema.train.reference", __doc__, ReferenceSettings, train_reference, export_reference)


if __name__ == "__main__":
    main()
