"""`kinema eval --modes`: how well a model does what the conditioning issue asks of it.

Each mode is measured on the same fixed single-object prompts with seen colour–shape
pairs (`evaluate.prompt_sets`), starting from world renders of those prompts, and scored
by the world checker and by pixel measurements:

- image-to-video: frame 0 of a render as the first frame; PSNR of output frame 0
  against it, and the checker on the prompt;
- keyframes: frames 0 and 15 of a render as first and last images; the object's
  centroid within 0.05 of the canvas of the render's at both ends;
- extension: 16 new frames after a 16-frame render; the seam rule (below), and the
  checker on the new frames alone as frames 16..31 of the prompt's clip, without the
  direction of motion (WORLD.md: an extension is judged for colour, shape, identity and
  the join); extension_backward the same with the 16 new frames before the render
  (frames -16..-1);
- loop: a 30-frame loop (one period, as `generate --loop` makes); the seam rule between its last and first frames;
- remix: a render remixed into a prompt with one of colour, shape or background changed
  (the motion kept); the checker on the new prompt;
- inpaint: a box around the object's whole path regenerated under a prompt with a new
  colour; every pixel outside it unchanged, and the checker on the new prompt;
- outpaint: a render OUTPAINT_BORDER pixels smaller on each side grown back to the model's
  size; the new size, every original pixel in place, and the new area plain background
  (the checker's background right and no extra object).

Every verdict is the strict world checker's (`kinema.world.check`: every object in every
frame, its colour, shape and size in every frame, nothing else in any frame). The prompts
and layout seeds are `kinema eval`'s (≥ 2**62, never drawn by training).

Seam rule (the issue's): the mean absolute difference across the seam is at most 1.5×
the median over the clip's other consecutive frame pairs, as generation QA and storyboards
judge it (kinema.metrics.temporal.seam_ratio). A clip of a still object has inner
differences near 0, so they count as at least SEAM_FLOOR grey levels (a mean difference
no one can see).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from kinema.io import Video
from kinema.metrics.temporal import SEAM_RATIO, frame_differences, seam_ratio
from kinema.pipelines.t2v import TextToVideo
from kinema.provenance.watermark import psnr
from kinema.train.evaluate import prompt_sets
from kinema.world import COLOURS, SHAPES, check, format_prompt, parse, render_frames
from kinema.world.checker import border_colour, find_regions
from kinema.world.scene import BACKGROUNDS, HELD_OUT_PAIRS

CENTROID_TOLERANCE = 0.05  # of the canvas
LOOP_FRAMES = 30  # one ping-pong period, as `kinema generate --loop` makes
OUTPAINT_BORDER = 8  # pixels added on each side of a render one model cell smaller
MODES = (
    "image_to_video",
    "keyframes",
    "extension",
    "extension_backward",
    "loop",
    "remix",
    "inpaint",
    "outpaint",
)


def seam(frames: np.ndarray, at: int) -> dict:
    """The seam rule between frames at-1 and at (at = len(frames): the last and first)."""
    diffs = frame_differences(np.concatenate([frames, frames[:1]]) if at == len(frames) else frames)
    ratio, inner = seam_ratio(diffs[at - 1], np.delete(diffs, at - 1))
    return {
        "ok": ratio <= SEAM_RATIO,
        "across": round(float(diffs[at - 1]), 2),
        "inner_median": round(inner, 2),
    }


def centroid(frame: np.ndarray, colour: str) -> tuple[float, float] | None:
    """The centroid (fractions of the canvas) of the largest region of that colour."""
    regions = [r for r in find_regions(frame, border_colour(frame)) if r.colour == colour]
    return (regions[0].cx, regions[0].cy) if regions else None


def passes_without_motion(report: dict) -> bool:
    """The checker's verdict on everything but the direction and amount of motion: the
    background, and every object found, in its colour, shape and a steady size in every
    frame, its size word, and nothing else in any frame."""
    objects_ok = all(
        all(o.get(rule, {}).get("ok", False) for rule in ("found", "colour", "shape", "extent"))
        and o.get("size", {}).get("ok", True)
        for o in report["objects"]
    )
    return bool(report["background"]["ok"] and objects_ok and not report["extra_objects"])


def changed_prompt(prompt: str, kind: str) -> str:
    """The prompt with its object's colour, shape or the background changed (motion kept),
    to another seen combination."""
    scene = parse(prompt)
    obj = scene.objects[0]
    if kind == "background":
        options = [b for b in BACKGROUNDS if b != scene.background and b != obj.colour]
        return format_prompt(dataclasses.replace(scene, background=options[len(prompt) % len(options)]))
    if kind == "colour":
        options = [
            c
            for c in COLOURS
            if c != obj.colour and c != scene.background and (c, obj.shape) not in HELD_OUT_PAIRS
        ]
        new = dataclasses.replace(obj, colour=options[len(prompt) % len(options)])
    else:
        options = [s for s in SHAPES if s != obj.shape and (obj.colour, s) not in HELD_OUT_PAIRS]
        new = dataclasses.replace(obj, shape=options[len(prompt) % len(options)])
    return format_prompt(dataclasses.replace(scene, objects=(new,)))


def object_box(frames: np.ndarray, margin: int, factor: int) -> np.ndarray:
    """A region (bool H×W) covering everything that differs from the background in any
    frame, grown by `margin` pixels and out to whole cells of `factor` pixels."""
    h, w = frames.shape[1:3]
    touched = np.zeros((h, w), bool)
    for frame in frames:
        touched |= np.abs(frame.astype(np.int16) - border_colour(frame)).max(axis=-1) > 8
    ys, xs = np.nonzero(touched)
    y0, y1 = max(0, ys.min() - margin), min(h, ys.max() + 1 + margin)
    x0, x1 = max(0, xs.min() - margin), min(w, xs.max() + 1 + margin)
    y0, x0 = y0 // factor * factor, x0 // factor * factor
    y1, x1 = -(-y1 // factor) * factor, -(-x1 // factor) * factor
    region = np.zeros((h, w), bool)
    region[y0:y1, x0:x1] = True
    return region


def _one(pipe: TextToVideo, mode: str, prompt: str, seed: int, steps: int | None, size: int) -> dict:
    """One case of one mode: its measurements and "pass". `seed` is the prompt's layout
    seed (≥ 2**62, never drawn by training); the noise seed is that modulo 2**31."""
    ref = render_frames(parse(prompt), seed=seed, frames=16, size=size)
    kw = {"seed": seed % 2**31, "steps": steps}
    if mode == "image_to_video":
        out = pipe(prompt, frames=16, keyframes={0: ref[0]}, **kw).frames
        first = psnr(out[0], ref[0])
        ok = check(out, prompt)["pass"]
        return {"pass": bool(ok and first >= 28), "checker": bool(ok), "first_frame_psnr": round(first, 2)}
    if mode == "keyframes":
        out = pipe(prompt, frames=16, keyframes={0: ref[0]}, last_image=ref[15], **kw).frames
        colour = parse(prompt).objects[0].colour
        errors = []
        for got, want in ((out[0], ref[0]), (out[-1], ref[15])):
            a, b = centroid(got, colour), centroid(want, colour)
            errors.append(float(np.hypot(a[0] - b[0], a[1] - b[1])) if a and b else float("inf"))
        return {"pass": max(errors) <= CENTROID_TOLERANCE, "centroid_error": [round(e, 3) for e in errors]}
    if mode == "extension":
        out = pipe.extend(Video(ref), prompt, 16, **kw).frames
        joined = seam(out, 16)
        new_ok = passes_without_motion(check(out[16:], prompt, first_frame=16))
        return {"pass": bool(joined["ok"] and new_ok), "seam": joined, "new_frames_ok": new_ok}
    if mode == "extension_backward":
        out = pipe.extend(Video(ref), prompt, 16, backward=True, **kw).frames
        joined = seam(out, 16)
        new_ok = passes_without_motion(check(out[:16], prompt, first_frame=-16))
        return {"pass": bool(joined["ok"] and new_ok), "seam": joined, "new_frames_ok": new_ok}
    if mode == "outpaint":
        b = OUTPAINT_BORDER
        small = render_frames(parse(prompt), seed=seed, frames=16, size=size - 2 * b)
        out = pipe.outpaint(Video(small), prompt, b, b, b, b, **kw).frames
        sized = out.shape[1:3] == (size, size)
        kept = bool(sized and np.array_equal(out[:, b:-b, b:-b], small))
        report = check(out, prompt)
        plain = bool(
            report["background"]["ok"] and not any(r.startswith("extra ") for r in report["reasons"])
        )
        return {"pass": kept and plain, "new_size": sized, "original_in_place": kept, "plain_border": plain}
    if mode == "loop":
        out = pipe(prompt, frames=LOOP_FRAMES, loop=True, **kw).frames
        closing = seam(out, len(out))
        return {"pass": closing["ok"], "seam": closing}
    if mode == "remix":
        kind = ("colour", "shape", "background")[seed % 2**31 % 3]
        target = changed_prompt(prompt, kind)
        out = pipe.remix(Video(ref), target, **kw).frames
        return {"pass": bool(check(out, target)["pass"]), "change": kind, "new_prompt": target}
    if mode == "inpaint":
        target = changed_prompt(prompt, "colour")
        region = object_box(ref, margin=4, factor=pipe.spatial_factor)
        out = pipe.inpaint(Video(ref), target, region, **kw).frames
        kept = bool(np.array_equal(out[:, ~region], ref[:, ~region]))
        ok = check(out, target)["pass"]
        return {
            "pass": bool(kept and ok),
            "outside_identical": kept,
            "checker": bool(ok),
            "new_prompt": target,
        }
    raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")


def _summary(mode: str, cases: list[dict]) -> dict:
    summary: dict = {"pass_rate": round(sum(c["pass"] for c in cases) / len(cases), 3), "total": len(cases)}
    summary["passed"] = sum(c["pass"] for c in cases)
    if mode == "image_to_video":
        summary["first_frame_psnr_median"] = round(
            float(np.median([c["first_frame_psnr"] for c in cases])), 2
        )
        summary["checker_rate"] = round(sum(c["checker"] for c in cases) / len(cases), 3)
    if mode in ("extension", "extension_backward", "loop"):
        summary["seam_rate"] = round(sum(c["seam"]["ok"] for c in cases) / len(cases), 3)
        ratios = [c["seam"]["across"] / max(c["seam"]["inner_median"], 1e-6) for c in cases]
        summary["seam_ratio_median"] = round(float(np.median(ratios)), 2)
    if mode in ("extension", "extension_backward"):
        summary["new_frames_rate"] = round(sum(c["new_frames_ok"] for c in cases) / len(cases), 3)
    if mode == "keyframes":
        summary["centroid_error_median"] = round(
            float(np.median([max(c["centroid_error"]) for c in cases])), 3
        )
    if mode == "outpaint":
        summary["original_in_place_rate"] = round(sum(c["original_in_place"] for c in cases) / len(cases), 3)
    if mode == "inpaint":
        summary["outside_identical_rate"] = round(sum(c["outside_identical"] for c in cases) / len(cases), 3)
        summary["checker_rate"] = round(sum(c["checker"] for c in cases) / len(cases), 3)
    summary["failures"] = [c for c in cases if not c["pass"]][:5]
    return summary


def evaluate_modes(
    pipe: TextToVideo,
    n: int = 20,
    steps: int | None = None,
    modes: tuple[str, ...] = MODES,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Each mode on n fixed seen-pair prompts; a JSON-ready dict of rates and numbers."""
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"unknown modes {sorted(unknown)}; modes: {', '.join(MODES)}")
    prompts = prompt_sets(n)["seen_single"]
    size = pipe.defaults["size"]
    start = time.monotonic()
    results: dict = {"modes": {}, "per_mode": len(prompts), "steps": steps or pipe.defaults["steps"]}
    done, total = 0, len(prompts) * len(modes)
    for mode in modes:
        cases = []
        for prompt, seed in prompts:
            case = _one(pipe, mode, prompt, seed, steps, size)
            cases.append({"prompt": prompt, "seed": seed % 2**31, **case})
            done += 1
            if progress:
                progress(done, total)
        results["modes"][mode] = _summary(mode, cases)
    results["seconds"] = round(time.monotonic() - start, 1)
    return results
