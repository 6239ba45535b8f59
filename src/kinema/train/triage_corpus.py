"""The triage classifier's retraining corpus: the built-in model's clips against the
shapes-world renderer's for the same prompts (`kinema detect --retrain`).

provenance/triage.py fits the classifier but knows no model and no renderer (provenance
may not import world); this module, which may import both, supplies them: the prompts,
the generator, the renderer, the clip cache, and the record of how the weights were made.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kinema.errors import InputError
from kinema.io import Video
from kinema.provenance import triage

MIN_PROMPTS = 5  # fewer cannot fill the 60/20/20 split by prompt
PROMPT_STREAM = 0x7219  # seeds the prompts' scenes apart from other uses of SEED


def retrain_triage(
    out: str | os.PathLike,
    *,
    prompts: int = 150,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    model: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Train the triage classifier anew and write its weights (JSON) to OUT; returns the
    report (path, command, data, metrics).

    PROMPTS shapes-world prompts are sampled from SEED; for prompt i the model (MODEL,
    default the built-in one, at its default settings) makes a clip with seed
    SEED·1,000,000 + i and the renderer draws one with layout seed i. With CACHE the
    generated clips are kept there and reused by a later run of the same model and seed.
    Refuses (InputError) an OUT that is not a .json file in an existing folder and fewer
    than MIN_PROMPTS prompts, before loading anything.
    """
    out = Path(os.fspath(out))
    if out.suffix.lower() != ".json":
        raise InputError(f"detect --retrain needs --out PATH.json, got '{out}'")
    if not out.parent.is_dir():
        raise InputError(f"output folder '{out.parent}' does not exist")
    if prompts < MIN_PROMPTS:
        raise InputError(f"a triage corpus needs at least {MIN_PROMPTS} prompts (--clips), got {prompts}")
    from kinema.pipelines.loading import load
    from kinema.world import format_prompt, parse, render_frames
    from kinema.world.dataset import sample_scene

    pipe = load(model)
    frames, size, fps = pipe.defaults["frames"], pipe.defaults["size"], pipe.defaults["fps"]
    texts = [
        format_prompt(sample_scene(np.random.default_rng([PROMPT_STREAM, seed, i]))) for i in range(prompts)
    ]

    def generate(prompt: str, index: int) -> Video:
        return pipe(prompt, seed=seed * 1_000_000 + index)

    def render(prompt: str, index: int) -> Video:
        return Video(render_frames(parse(prompt), seed=index, frames=frames, size=size), fps)

    if cache is not None:
        generate = triage.cached(generate, Path(cache), f"{(pipe.model_hash or pipe.name)[:16]}-s{seed}")
    trained_on = {
        "generated": f"{pipe.name} (model hash {pipe.model_hash}), default settings, seeds "
        f"{seed * 1_000_000}+i",
        "rendered": "shapes-world renderer, same prompts, layout seed i",
        "texture": "procedural multi-octave noise, panning (stand-in for real footage)",
    }
    return triage.retrain(
        generate,
        render,
        texts,
        out,
        command=retrain_command(out, prompts, seed, model),
        trained_on=trained_on,
        seed=seed,
        progress=progress,
    )


def retrain_command(out: Path, prompts: int, seed: int, model: str | None) -> str:
    """The command line that makes these weights again, as the weights record it."""
    command = f"kinema detect --retrain --out {out} --clips {prompts} --seed {seed}"
    return command + (f" --model {model}" if model is not None else "")
