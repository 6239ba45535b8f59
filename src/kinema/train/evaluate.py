"""`kinema eval`: a model's world-checker pass rate on fixed prompt sets.

Three sets, each a fixed list of (prompt, seed): single objects with colour–shape pairs
seen in training, prompts with the held-out pairs (compositional generalisation), and
two-object scenes. The sets never change between runs, so numbers compare across
checkpoints. They come from `kinema.world.dataset.validation_split`, whose layout seeds
are ≥ 2**62: training draws its layouts below that, so no training run renders these
clips (the renderer's clips here, for the VAE ceiling and for the conditioning modes, use
those seeds in full). The noise seed a clip is generated from is the layout seed modulo
2**31, i.e. the prompt's place in its list. Anything that weights training by what fails
(failure weighting) must draw from its own prompts, never from these sets.

Every clip is judged by the world checker (`kinema.world.check`, the strict per-frame
rules of WORLD.md: every object in every frame, its colour and shape in every frame,
nothing else in any frame, a steady size). Each set also reports:

- its VAE ceiling: the pass rate of the world renderer's own clip for each (prompt,
  seed), encoded and decoded by the model's VAE. A DiT that made perfect latents would
  score that, so a set's failures split into the VAE's and the DiT's;
- sharpness (`kinema.world.sharpness.summarise`) of the generated clips and of the VAE
  round trips: per shape the mean fill ratio, its mean spread over a clip (corners that
  come and go) and the mean edge jitter in pixels;
- with `files`, the verdict on the files users get: each generated clip watermarked and
  written as `kinema generate` writes it (H.264 mp4 through kinema.io's writer) to a
  temporary folder, read back and checked ("files": pass rate, failures, sharpness).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kinema.io import Video, read_video, write_video
from kinema.pipelines.t2v import TextToVideo
from kinema.provenance.watermark import embed
from kinema.provenance.watermark_code import PAYLOAD_BYTES
from kinema.train.data import pixels_to_tensor
from kinema.world import check, parse, render_frames
from kinema.world.dataset import validation_split
from kinema.world.sharpness import clip_sharpness, summarise

# A fixed key and payload: the mark's strength (its PSNR) is what touches the pixels,
# and it does not depend on either.
_EVAL_KEY = hashlib.sha256(b"kinema eval").digest()
_EVAL_PAYLOAD = bytes(PAYLOAD_BYTES)


def prompt_sets(n: int) -> dict[str, list[tuple[str, int]]]:
    """n prompts for each set, with their layout seeds (≥ 2**62, never drawn by training)."""
    pool = validation_split(6 * n, seed=1)
    single = [(p, s) for p, s in pool if len(parse(p).objects) == 1][:n]
    two = [(p, s) for p, s in pool if len(parse(p).objects) == 2][:n]
    held = validation_split(n, held_out=True, seed=1)
    return {"seen_single": single, "held_out": held, "two_object": two}


def taught_colours(adapters) -> list[str]:
    """The colours outside v1 (WORLD.md) that the adapters' training captions name."""
    from kinema.world.scene import EXTRA_COLOURS

    words: set[str] = set()
    for adapter in adapters:
        card = adapter.metadata.get("card") or {}
        for caption in card.get("captions", []):
            words.update(str(caption).lower().split())
    return [c for c in EXTRA_COLOURS if c in words]


def evaluate(
    pipe: TextToVideo,
    n: int = 20,
    steps: int | None = None,
    progress=None,
    files: bool = False,
    adapters: tuple = (),
    guidance: float | None = None,
) -> dict:
    """Generate each prompt of each set (16 frames at the model's size) and check it, and
    check the VAE's round trip of the renderer's clip of it (the set's `vae_ceiling`);
    with `files`, also check each clip as the mp4 file `kinema generate` would write.
    Returns a JSON-ready dict: "sets" (per set: pass_rate, passed, total, failures,
    vae_ceiling, sharpness, vae_sharpness, and "files" when asked), "steps", "per_set",
    "seconds".

    With ADAPTERS (checked AdapterFiles) every clip is made with them mixed in, and each
    colour outside v1 their captions name adds a set "taught_<colour>" (kinema.world.
    lessons.lesson_test: the colour on shapes, motions and backgrounds its lesson never
    combined)."""
    from contextlib import nullcontext

    from kinema.world.lessons import lesson_test

    results: dict = {
        "sets": {},
        "steps": steps or pipe.defaults["steps"],
        "guidance": pipe.defaults.get("guidance") if guidance is None else guidance,
        "per_set": n,
    }
    start = time.monotonic()
    sets = prompt_sets(n)
    for colour in taught_colours(adapters):
        sets[f"taught_{colour}"] = lesson_test(colour, n)
    if adapters:
        results["adapters"] = [a.record() for a in adapters]
    done, total = 0, sum(len(v) for v in sets.values())
    mixed = pipe.adapted(adapters) if adapters else nullcontext()
    with tempfile.TemporaryDirectory(prefix="kinema-eval-") as folder, mixed:
        for name, prompts in sets.items():
            made, ceiling, written = _Tally(), _Tally(), _Tally()
            for prompt, seed in prompts:
                video = pipe(prompt, seed=seed % 2**31, frames=16, steps=steps, guidance=guidance)
                made.add(video.frames, prompt, seed)
                ceiling.add(vae_round_trip(pipe, prompt, seed), prompt, seed)
                if files:
                    written.add(as_written(video, Path(folder) / f"{name}-{done:04d}.mp4"), prompt, seed)
                done += 1
                if progress:
                    progress(done, total)
            vae = ceiling.summary()
            results["sets"][name] = {
                **made.summary(),
                "vae_ceiling": vae["pass_rate"],
                "vae_sharpness": vae["sharpness"],
            }
            if files:
                results["sets"][name]["files"] = written.summary()
    results["seconds"] = round(time.monotonic() - start, 1)
    return results


class _Tally:
    """Verdicts and sharpness of one kind of clip over a set."""

    def __init__(self) -> None:
        self.passed, self.total, self.failures, self.measures = 0, 0, [], []

    def add(self, frames: np.ndarray, prompt: str, seed: int) -> None:
        report = check(frames, prompt)
        self.total += 1
        self.passed += bool(report["pass"])
        if not report["pass"]:
            self.failures.append({"prompt": prompt, "seed": seed % 2**31, "reasons": report["reasons"][:3]})
        self.measures.append(clip_sharpness(frames, prompt))

    def summary(self) -> dict:
        return {
            "pass_rate": round(self.passed / max(self.total, 1), 3),
            "passed": self.passed,
            "total": self.total,
            "failures": self.failures[:5],
            "sharpness": summarise(self.measures),
        }


def as_written(video: Video, path: Path) -> np.ndarray:
    """The frames a user's file holds: `video` watermarked and written as `kinema generate`
    writes an .mp4 (kinema.io's H.264 writer), then decoded."""
    marked = embed(Video(video.frames, video.fps), _EVAL_PAYLOAD, _EVAL_KEY)
    write_video(marked, path)
    return read_video(path).frames


@torch.inference_mode()
def vae_round_trip(pipe: TextToVideo, prompt: str, seed: int, frames: int = 16) -> np.ndarray:
    """The renderer's clip of (prompt, layout seed) at the model's size, through the VAE and back."""
    made = 1 + pipe.vae.config.temporal_factor * (pipe.latent_frames(frames) - 1)  # the 1+4k that covers it
    clip = render_frames(parse(prompt), seed=seed, frames=made, size=pipe.defaults["size"])
    pixels = pipe.vae.decode(pipe.vae.encode(pixels_to_tensor(clip)))
    return pipe.to_video(pixels, pipe.defaults["fps"]).frames[:frames]
