"""The VAE ceiling of one or more VAE checkpoints: the world checker's verdict on the
renderer's clips of `kinema eval`'s prompt sets (same prompts, same layout seeds) after
an encode and decode, with PSNR, the corner/edge measures of kinema.world.sharpness,
and the PSNR of free-colour clips (any RGB object on any RGB background, a stream no
training run draws). Also each clip written as the H.264 mp4 a user gets (`--files`).

    PYTHONPATH=src python tools/vae_ceiling.py src/kinema/weights/builtin/vae runs/vae-decoder-gan --prompts 50
    PYTHONPATH=src python tools/vae_ceiling.py runs/refined-vae --lesson pink   # + a taught colour
    PYTHONPATH=src python tools/vae_ceiling.py src/kinema/weights/builtin/vae --by-look 12

Prints one JSON object per VAE.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from kinema.io.video import Video, read_video, write_video
from kinema.train.data import pixels_to_tensor, tensor_to_pixels
from kinema.train.evaluate import prompt_sets
from kinema.train.stages import load_vae, psnr
from kinema.world import check, parse, render_frames
from kinema.world.dataset import free_colour_sample
from kinema.world.grammar import format_prompt
from kinema.world.lessons import lesson_test
from kinema.world.scene import BACKGROUNDS, HELD_OUT_PAIRS, MOTIONS, PALETTE, SHAPES, Scene, WorldObject
from kinema.world.sharpness import clip_sharpness, summarise


def _round_trip(vae, clip: np.ndarray) -> np.ndarray:
    return tensor_to_pixels(vae.decode(vae.encode(pixels_to_tensor(clip))))[0]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr(pixels_to_tensor(a), pixels_to_tensor(b))


@torch.inference_mode()
def ceiling(folder: str, n: int, files: bool, lessons: tuple[str, ...] = ()) -> dict:
    vae = load_vae(folder)
    out: dict = {"vae": folder, "per_set": n, "sets": {}}
    sets = prompt_sets(n)
    for colour in lessons:  # a colour outside v1, as an adapter would be taught it
        sets[f"taught_{colour}"] = lesson_test(colour, n)
    with tempfile.TemporaryDirectory() as tmp:
        for name, prompts in sets.items():
            passed, written, psnrs, measures, failures = 0, 0, [], [], []
            for i, (prompt, seed) in enumerate(prompts):
                clip = render_frames(parse(prompt), seed=seed, frames=17, size=64)
                frames = _round_trip(vae, clip)[:16]
                psnrs.append(_psnr(frames, clip[:16]))
                report = check(frames, prompt)
                passed += bool(report["pass"])
                if not report["pass"]:
                    failures.append(report["reasons"][:2])
                measures.append(clip_sharpness(frames, prompt))
                if files:
                    path = Path(tmp) / f"{name}-{i}.mp4"
                    write_video(Video(frames, 8.0), path)
                    written += bool(check(read_video(path).frames, prompt)["pass"])
            out["sets"][name] = {
                "passed": passed,
                "total": len(prompts),
                "psnr": round(float(np.mean(psnrs)), 2),
                "sharpness": summarise(measures),
                "failures": failures[:4],
                **({"passed_as_mp4": written} if files else {}),
            }
    free = [free_colour_sample(0, 1_000_003, i, 17, 64).frames for i in range(16, 48)]
    decoded = [_round_trip(vae, c) for c in free]
    out["psnr_free_colour"] = round(
        float(np.mean([_psnr(d, c) for d, c in zip(decoded, free, strict=True)])), 2
    )
    return out


@torch.inference_mode()
def by_look(folder: str, layouts: int) -> dict:
    """The round trip's pass count for every (background, colour, shape) of the palette
    (pink included), LAYOUTS one-object clips each (any motion and size word; eval layout
    seeds): where the decoder's shapes depend on the colour. Held-out pairs are marked."""
    vae = load_vae(folder)
    rng = np.random.default_rng(5)
    table: dict = {}
    for background, colour, shape in itertools.product(BACKGROUNDS, PALETTE, SHAPES):
        passed = 0
        for i in range(layouts):
            motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
            obj = WorldObject(colour, shape, motion, (None, "small", "big")[int(rng.integers(3))])
            scene = Scene((obj,), background)
            clip = render_frames(scene, seed=2**62 + 1000 + i, frames=17, size=64)
            passed += bool(check(_round_trip(vae, clip)[:16], format_prompt(scene))["pass"])
        held = "*" if (colour, shape) in HELD_OUT_PAIRS else ""
        table[f"{colour} {shape}{held} on {background}"] = f"{passed}/{layouts}"
    return {"vae": folder, "layouts": layouts, "by_look": table, "held_out": "* marks a held-out pair"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vae", nargs="+", help="VAE checkpoint folders")
    parser.add_argument("--prompts", type=int, default=50, help="prompts a set (default 50)")
    parser.add_argument("--files", action="store_true", help="also judge each clip written as mp4")
    parser.add_argument(
        "--lesson",
        action="append",
        default=[],
        help="also a colour outside v1 (e.g. pink): lesson_test's set",
    )
    parser.add_argument(
        "--by-look",
        type=int,
        default=0,
        metavar="N",
        help="instead: N clips of every background, colour and shape (pink included)",
    )
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    for folder in args.vae:
        if args.by_look:
            print(json.dumps(by_look(folder, args.by_look)), flush=True)
        else:
            print(json.dumps(ceiling(folder, args.prompts, args.files, tuple(args.lesson))), flush=True)


if __name__ == "__main__":
    main()
