"""`kinema eval`: a model's world-checker pass rate on fixed prompt sets.

Three sets, each a fixed list of (prompt, seed): single objects with colour–shape pairs
seen in training, prompts with the held-out pairs (compositional generalisation), and
two-object scenes. The sets never change between runs, so numbers compare across
checkpoints.

Each set also reports its VAE ceiling: the pass rate of the world renderer's own clip for
each (prompt, seed), encoded and decoded by the model's VAE. A DiT that made perfect
latents would score that, so a set's failures split into the VAE's and the DiT's.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from kinema.pipelines.t2v import TextToVideo
from kinema.train.data import pixels_to_tensor
from kinema.world import check, parse, render_frames
from kinema.world.dataset import validation_split


def prompt_sets(n: int) -> dict[str, list[tuple[str, int]]]:
    """n prompts for each set, with their noise seeds."""
    pool = validation_split(6 * n, seed=1)
    single = [(p, s) for p, s in pool if len(parse(p).objects) == 1][:n]
    two = [(p, s) for p, s in pool if len(parse(p).objects) == 2][:n]
    held = validation_split(n, held_out=True, seed=1)
    return {"seen_single": single, "held_out": held, "two_object": two}


def evaluate(pipe: TextToVideo, n: int = 20, steps: int | None = None, progress=None) -> dict:
    """Generate each prompt of each set (16 frames at the model's size) and check it, and
    check the VAE's round trip of the renderer's clip of it (the set's `vae_ceiling`)."""
    results: dict = {"sets": {}, "steps": steps or pipe.defaults["steps"], "per_set": n}
    start = time.monotonic()
    sets = prompt_sets(n)
    done, total = 0, sum(len(v) for v in sets.values())
    for name, prompts in sets.items():
        passed, failures, ceiling = 0, [], 0
        for prompt, seed in prompts:
            video = pipe(prompt, seed=seed % 2**31, frames=16, steps=steps)
            report = check(video.frames, prompt)
            passed += bool(report["pass"])
            ceiling += bool(check(vae_round_trip(pipe, prompt, seed % 2**31), prompt)["pass"])
            if not report["pass"]:
                failures.append({"prompt": prompt, "seed": seed % 2**31, "reasons": report["reasons"][:3]})
            done += 1
            if progress:
                progress(done, total)
        results["sets"][name] = {
            "pass_rate": round(passed / len(prompts), 3),
            "passed": passed,
            "total": len(prompts),
            "failures": failures[:5],
            "vae_ceiling": round(ceiling / len(prompts), 3),
        }
    results["seconds"] = round(time.monotonic() - start, 1)
    return results


@torch.inference_mode()
def vae_round_trip(pipe: TextToVideo, prompt: str, seed: int, frames: int = 16) -> np.ndarray:
    """The renderer's clip of (prompt, seed) at the model's size, through the VAE and back."""
    made = 1 + pipe.vae.config.temporal_factor * (pipe.latent_frames(frames) - 1)  # the 1+4k that covers it
    clip = render_frames(parse(prompt), seed=seed, frames=made, size=pipe.defaults["size"])
    pixels = pipe.vae.decode(pipe.vae.encode(pixels_to_tensor(clip)))
    return pipe.to_video(pixels, pipe.defaults["fps"]).frames[:frames]
