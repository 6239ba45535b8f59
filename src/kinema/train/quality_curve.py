"""Quality against speed: the world checker's pass rate of a model at 1, 2, 4, 8, 16 and 24
sampler steps, with the seconds a clip took at each, drawn as a PNG (`kinema bench
--curve FILE.png`).

Every count runs the same prompts and layout seeds (`kinema eval`'s sets, seeds no
training run drew) through the same pipeline, so the points differ only in steps. The
seconds are the pipeline call alone (prompt encoding, sampling, VAE decoding), the median
over the set's clips: what the step count buys, without the process's start or the
publishing steps, which do not depend on it.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from kinema.io import write_png
from kinema.train.evaluate import prompt_sets
from kinema.train.plot import draw_text
from kinema.world import check

CURVE_STEPS = (1, 2, 4, 8, 16, 24)
FAST_CURVE_STEPS = (1, 2, 4, 8)  # the few-step adapter's line
SET_COLOURS = {  # RGB, as write_png takes it
    "seen_single": (30, 60, 220),
    "held_out": (245, 130, 20),
    "two_object": (30, 180, 50),
}
WIDTH, HEIGHT, MARGIN = 720, 420, 56


def quality_curve(
    pipe,
    n: int = 20,
    steps: Sequence[int] = CURVE_STEPS,
    progress: Callable[[int, int], None] | None = None,
    fast=None,
    fast_steps: Sequence[int] = FAST_CURVE_STEPS,
) -> dict:
    """Generate each of `kinema eval`'s sets (N prompts each, 16 frames) at every step
    count of STEPS and judge each clip with the world checker. Returns a JSON-ready dict:
    "per_set", "points" (one per step count: "steps", "pass_rate" over all sets, "sets"
    {name: pass rate}, "seconds_per_clip" (median), "seconds_per_clip_max"), "seconds".
    With FAST (the model's few-step AdapterFile) also "fast_points": the same at each of
    FAST_STEPS with the adapter mixed in and no guidance."""
    sets = prompt_sets(n)
    runs = len(steps) + (len(fast_steps) if fast is not None else 0)
    total, done = runs * sum(len(v) for v in sets.values()), 0
    start = time.monotonic()

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    result = {"per_set": n, "points": [_point(pipe, sets, count, None, tick) for count in steps]}
    if fast is not None:
        with pipe.adapted((fast,)):
            result["fast_points"] = [_point(pipe, sets, count, 1.0, tick) for count in fast_steps]
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def _point(pipe, sets: dict, count: int, guidance: float | None, tick: Callable[[], None]) -> dict:
    """One point of the curve: every set made at COUNT steps and judged."""
    rates, passed, made, seconds = {}, 0, 0, []
    for name, prompts in sets.items():
        ok = 0
        for prompt, seed in prompts:
            t0 = time.perf_counter()
            video = pipe(prompt, seed=seed % 2**31, frames=16, steps=count, guidance=guidance)
            seconds.append(time.perf_counter() - t0)
            ok += bool(check(video.frames, prompt)["pass"])
            tick()
        rates[name] = round(ok / len(prompts), 3)
        passed, made = passed + ok, made + len(prompts)
    return {
        "steps": count,
        "pass_rate": round(passed / made, 3),
        "sets": rates,
        "seconds_per_clip": round(statistics.median(seconds), 3),
        "seconds_per_clip_max": round(max(seconds), 3),
    }


def draw_curve(result: dict, path: str | os.PathLike, title: str) -> None:
    """The pass rate of each set (0-100 %) against steps on a log2 axis, the seconds a clip
    took written under each step count; a PNG at PATH."""
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    left, right, top, bottom = MARGIN, WIDTH - MARGIN, MARGIN, HEIGHT - MARGIN - 24
    cv2.rectangle(canvas, (left, top), (right, bottom), (200, 200, 200), 1)
    points = result["points"]
    fast = result.get("fast_points") or []
    logs = [math.log2(p["steps"]) for p in points + fast]
    lo, hi = min(logs), max(logs) if max(logs) > min(logs) else min(logs) + 1

    def x_of(steps: int) -> int:
        return round(left + (math.log2(steps) - lo) / (hi - lo) * (right - left))

    def y_of(rate: float) -> int:
        return round(bottom - rate * (bottom - top))

    for rate in (0.0, 0.5, 1.0):
        draw_text(canvas, f"{rate:.0%}", (8, y_of(rate) + 4), (80, 80, 80))
        cv2.line(canvas, (left, y_of(rate)), (right, y_of(rate)), (230, 230, 230), 1)
    for p in points:
        x = x_of(p["steps"])
        draw_text(canvas, str(p["steps"]), (x - 6, bottom + 16), (80, 80, 80))
        draw_text(canvas, f"{p['seconds_per_clip']:.2f}s", (x - 16, bottom + 34), (120, 120, 120), 0.38)
    for row, (name, colour) in enumerate(SET_COLOURS.items()):
        xy = [(x_of(p["steps"]), y_of(p["sets"][name])) for p in points if name in p["sets"]]
        if len(xy) >= 2:
            cv2.polylines(canvas, [np.array(xy, np.int32)], False, colour, 2, cv2.LINE_AA)
        for x, y in xy:
            cv2.circle(canvas, (x, y), 3, colour, -1, cv2.LINE_AA)
        if xy:
            last = points[-1]["sets"].get(name)
            draw_text(
                canvas,
                f"{name} {last:.0%}" if last is not None else name,
                (left + 6, top + 16 + 16 * row),
                colour,
            )
    for name, colour in SET_COLOURS.items():  # the few-step adapter: thin lines, hollow points
        xy = [(x_of(p["steps"]), y_of(p["sets"][name])) for p in fast if name in p["sets"]]
        if len(xy) >= 2:
            cv2.polylines(canvas, [np.array(xy, np.int32)], False, colour, 1, cv2.LINE_AA)
        for x, y in xy:
            cv2.circle(canvas, (x, y), 4, colour, 1, cv2.LINE_AA)
    if fast:
        draw_text(canvas, "thin, hollow: --fast", (left + 6, top + 16 + 16 * len(SET_COLOURS)), (80, 80, 80))
    draw_text(canvas, title, (left, 30), (0, 0, 0), 0.55)
    draw_text(canvas, "steps (seconds per clip below)", (right - 230, HEIGHT - 8), (80, 80, 80), 0.4)
    write_png(canvas, path)
