"""`kinema eval --control`: how well the control branch makes a clip follow a path or a
control clip, and the reference branch gives it a reference image's object, judged from
outside.

Sets, fixed and drawn from seeds no training run uses (the branches train on
kinema.train.control's and kinema.train.reference's streams, seeded below 10**6; these
start at 10**9):

- **paths**: held-out paths of five kinds in turn (curves, zig-zags, stops, diagonal
  lines, loops), each given as the points of a path file and made into the same track a
  user's `--path` becomes. A clip passes when its object's box centre lies within
  PATH_TOLERANCE of the path's point at the same frame on average over the frames, and the
  world checker passes the prompt it implies for colour, shape, size, identity and
  nothing else on the canvas (its motion is the path's, judged by the distance).
- **control clips**: world renders of one object in any of WORLD.md's motions, and a
  prompt with another colour, another shape and another background. A clip passes when
  the box centre is within PATH_TOLERANCE of the control's on average, its box extent
  (the larger of width and height) within EXTENT_TOLERANCE of the control's on average,
  and the world checker passes the whole prompt the control implies (the control's
  motion and size word, the prompt's colour and shape, strictly, every frame).
- **references**: a still of one object (any colour and shape of the world, the held-out
  pairs included, anywhere, any size, any background) and a prompt that leaves colour and
  shape out ("an object moving up on a gray background"). A clip passes when the world
  checker passes the prompt the reference implies ("a green square moving up on …").
- **reference boards** (a third as many): four shots with one reference, four motions and
  backgrounds; a board passes when every shot passes its implied prompt (the same object
  throughout).

Boxes are read by the same preprocessor a control clip goes through
(kinema.pipelines.motion_track.object_box), on the generated clip and on the control.
"""

from __future__ import annotations

import time

import numpy as np

from kinema.pipelines.motion_track import MotionTrack, object_box, track_of_clip, track_of_path
from kinema.world import check, render_frames
from kinema.world.render import render_track
from kinema.world.scene import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES, Scene, WorldObject

PATH_TOLERANCE = 0.05  # mean box-centre distance, fractions of the canvas
EXTENT_TOLERANCE = 0.25  # mean relative error of the box extent
PATH_KINDS = ("curve", "zig-zag", "stops", "diagonal", "loop")
FRAMES = 16
SEED_BASE = 10**9


def held_out_path(index: int) -> tuple[str, list[tuple[int, float, float]]]:
    """Path INDEX of the eval set: its kind and its points [frame, x, y] (inside the canvas)."""
    kind = PATH_KINDS[index % len(PATH_KINDS)]
    rng = np.random.default_rng([SEED_BASE, index])
    last = FRAMES - 1
    if kind == "curve":  # a quadratic Bézier, sampled at every frame
        p0, p2 = rng.uniform(0.2, 0.8, size=(2, 2))
        p1 = rng.uniform(0.15, 0.85, size=2)
        u = np.linspace(0, 1, FRAMES)[:, None]
        xy = (1 - u) ** 2 * p0 + 2 * u * (1 - u) * p1 + u**2 * p2
        points = [(t, *xy[t]) for t in range(FRAMES)]
    elif kind == "zig-zag":  # across the canvas, up and down in turn
        n = int(rng.integers(4, 6))
        xs = np.linspace(rng.uniform(0.2, 0.3), rng.uniform(0.7, 0.8), n)
        ys = np.where(np.arange(n) % 2 == 0, rng.uniform(0.25, 0.4), rng.uniform(0.6, 0.75))
        frames = np.round(np.linspace(0, last, n)).astype(int)
        points = [(int(f), x, y) for f, x, y in zip(frames, xs, ys, strict=True)]
        if rng.random() < 0.5:
            points = [(f, y, x) for f, x, y in points]  # down the canvas instead
    elif kind == "stops":  # move, stop a while, move on
        a, b, c = rng.uniform(0.2, 0.8, size=(3, 2))
        stop, go = int(rng.integers(4, 7)), int(rng.integers(9, 12))
        points = [(0, *a), (stop, *b), (go, *b), (last, *c)]
    elif kind == "diagonal":
        lo, hi = rng.uniform(0.18, 0.28), rng.uniform(0.72, 0.82)
        start, end = [(lo, lo), (hi, hi)] if rng.random() < 0.5 else [(lo, hi), (hi, lo)]
        if rng.random() < 0.5:
            start, end = end, start
        points = [(0, *start), (last, *end)]
    else:  # a loop: once around a circle, back where it began
        centre = rng.uniform(0.45, 0.55, size=2)
        radius = rng.uniform(0.2, 0.26)
        phase, turn = rng.uniform(0, 2 * np.pi), rng.choice([-1, 1])
        angle = phase + turn * 2 * np.pi * np.arange(FRAMES) / last
        points = [
            (t, centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)) for t, a in enumerate(angle)
        ]
    return kind, [(int(f), round(float(x), 4), round(float(y), 4)) for f, x, y in points]


def _look(index: int, rng: np.random.Generator) -> tuple[str, str, str]:
    colour = list(COLOURS)[index % len(COLOURS)]
    shape = SHAPES[(index // len(COLOURS)) % len(SHAPES)]
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    return colour, shape, background


def path_cases(n: int) -> list[dict]:
    """N path cases: kind, points, the prompt (no motion), the size word, the seed."""
    cases = []
    for i in range(n):
        rng = np.random.default_rng([SEED_BASE + 1, i])
        colour, shape, background = _look(i, rng)
        size = [None, "big", None, "small"][i % 4]
        kind, points = held_out_path(i)
        words = " ".join(w for w in (size, colour, shape) if w)
        article = "an" if words[0] in "aeiou" else "a"
        prompt = f"{article} {words} on a {background} background"
        cases.append({"kind": kind, "points": points, "prompt": prompt, "size": size, "seed": SEED_BASE + i})
    return cases


def control_cases(n: int) -> list[dict]:
    """N control cases: a world scene for the control clip, and the prompt's colour, shape
    and background (each different from the control's)."""
    cases = []
    for i in range(n):
        rng = np.random.default_rng([SEED_BASE + 2, i])
        colour, shape, background = _look(i, rng)
        other_colour = [c for c in COLOURS if c != colour][int(rng.integers(len(COLOURS) - 1))]
        other_shape = [s for s in SHAPES if s != shape][int(rng.integers(len(SHAPES) - 1))]
        other_background = [b for b in BACKGROUNDS if b != background][
            int(rng.integers(len(BACKGROUNDS) - 1))
        ]
        motion = MOTIONS[i % len(MOTIONS)]
        size = [None, "small", "big"][int(rng.integers(3))]
        control = Scene((WorldObject(other_colour, other_shape, motion, size),), other_background)
        cases.append(
            {
                "control": control,
                "prompt": f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape} on a {background} background",
                "implied": f"a {size + ' ' if size else ''}{colour} {shape} {motion} on a {background} background",
                "seed": SEED_BASE + 10_000 + i,
            }
        )
    return cases


def _boxes(frames: np.ndarray) -> np.ndarray:
    """Per frame (cx, cy, extent), NaN where no object is found."""
    out = np.full((len(frames), 3), np.nan)
    for t, frame in enumerate(frames):
        box, _ = object_box(frame)
        if box is not None:
            out[t] = box
    return out


def _centre_error(boxes: np.ndarray, target: np.ndarray) -> float:
    """Mean distance of the boxes' centres from the target's, a frame without an object
    counting as half the canvas away."""
    distance = np.linalg.norm(boxes[:, :2] - target[:, :2], axis=1)
    return float(np.mean(np.where(np.isnan(distance), 0.5, distance)))


MOTION_CYCLE = (
    "moving up",
    "moving left",
    "growing",
    "moving right",
    "staying still",
    "shrinking",
    "moving down",
)


def reference_cases(n: int, seed: int = SEED_BASE + 3) -> list[dict]:
    """N reference cases: the reference still, its look ("green square"), a prompt without
    colour and shape, and the prompt the reference implies."""
    cases = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        colour, shape, background = _look(i, rng)
        still_background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
        state = [[*rng.uniform(0.3, 0.7, size=2), list(SIZES.values())[int(rng.integers(len(SIZES)))]]]
        image = render_track(shape, COLOURS[colour], BACKGROUNDS[still_background], np.array(state), 64)[0]
        motion = MOTION_CYCLE[i % len(MOTION_CYCLE)]
        cases.append(
            {
                "reference": image,
                "look": f"{colour} {shape}",
                "prompt": object_prompt(motion, background),
                "implied": implied_prompt(colour, shape, motion, background),
                "seed": seed + i,
            }
        )
    return cases


def object_prompt(motion: str, background: str) -> str:
    return f"an object {motion} on a {background} background"


def implied_prompt(colour: str, shape: str, motion: str, background: str) -> str:
    return f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape} {motion} on a {background} background"


def boards_for(n: int) -> int:
    """Reference boards in a run of N clips a set: a third as many (each is four clips)."""
    return max(1, n // 3)


def evaluate_control(pipe, n: int = 30, steps: int | None = None, scale: float = 1.0, progress=None) -> dict:
    """The sets of the branches the model has (paths and control clips for the control
    branch, references and reference boards for the reference branch), N clips or boards
    each, 16 frames at the model's size; a JSON-ready dict."""
    start = time.monotonic()
    results: dict = {
        "per_set": n,
        "steps": steps or pipe.defaults["steps"],
        "control_scale": scale,
        "sets": {},
    }
    has = pipe.controls
    count = {
        "done": 0,
        "total": (2 * n if "path" in has else 0) + (n + 4 * boards_for(n) if "reference" in has else 0),
    }

    def tick() -> None:
        count["done"] += 1
        if progress:
            progress(count["done"], count["total"])

    if "path" in has:
        results["sets"]["paths"] = _path_set(pipe, n, steps, scale, tick)
        results["sets"]["control_clips"] = _control_clip_set(pipe, n, steps, scale, tick)
    if "reference" in has:
        results["sets"].update(_reference_sets(pipe, n, steps, tick))
    results["seconds"] = round(time.monotonic() - start, 1)
    return results


def _path_set(pipe, n: int, steps: int | None, scale: float, tick) -> dict:
    rows = []
    for case in path_cases(n):
        track = track_of_path(case["points"], FRAMES, SIZES[case["size"]])
        video = pipe(
            case["prompt"],
            seed=case["seed"] % 2**31,
            frames=FRAMES,
            steps=steps,
            control=track,
            control_scale=scale,
        )
        error = _centre_error(_boxes(video.frames), track.states)
        still = case["prompt"].replace(" on a ", " staying still on a ")
        report = check(video.frames, still, first_frame=30)  # the motion is the path's, judged by distance
        rows.append(
            {
                "kind": case["kind"],
                "prompt": case["prompt"],
                "seed": case["seed"],
                "centre_error": round(error, 4),
                "checker": report["pass"],
                "reasons": report["reasons"][:3],
                "pass": error <= PATH_TOLERANCE and report["pass"],
            }
        )
        tick()
    return _summary(rows, by="kind")


def _control_clip_set(pipe, n: int, steps: int | None, scale: float, tick) -> dict:
    rows = []
    for case in control_cases(n):
        scene = case["control"]
        control_frames = render_frames(
            scene, seed=case["seed"], frames=FRAMES, size=int(pipe.defaults["size"])
        )
        target = track_of_clip(control_frames).states
        video = pipe(
            case["prompt"],
            seed=case["seed"] % 2**31,
            frames=FRAMES,
            steps=steps,
            control=MotionTrack(target),
            control_scale=scale,
        )
        boxes = _boxes(video.frames)
        error = _centre_error(boxes, target)
        found = ~np.isnan(boxes[:, 2])
        extent = (
            float(np.mean(np.abs(boxes[found, 2] - target[found, 2]) / target[found, 2]))
            if found.any()
            else 1.0
        )
        report = check(video.frames, case["implied"])
        rows.append(
            {
                "motion": scene.objects[0].motion,
                "prompt": case["prompt"],
                "implied": case["implied"],
                "seed": case["seed"],
                "centre_error": round(error, 4),
                "extent_error": round(extent, 4),
                "checker": report["pass"],
                "reasons": report["reasons"][:3],
                "pass": error <= PATH_TOLERANCE and extent <= EXTENT_TOLERANCE and report["pass"],
            }
        )
        tick()
    return _summary(rows, by="motion")


def _reference_sets(pipe, n: int, steps: int | None, tick) -> dict:
    rows = []
    for case in reference_cases(n):
        video = pipe(
            case["prompt"], seed=case["seed"] % 2**31, frames=FRAMES, steps=steps, reference=case["reference"]
        )
        report = check(video.frames, case["implied"])
        rows.append(
            {
                **{k: case[k] for k in ("look", "prompt", "seed")},
                "reasons": report["reasons"][:3],
                "pass": report["pass"],
            }
        )
        tick()
    boards = []
    for b, case in enumerate(reference_cases(boards_for(n), seed=SEED_BASE + 4)):
        colour, shape = case["look"].split()
        shots = []
        for k in range(4):  # one reference, four motions on the backgrounds in turn
            motion = MOTION_CYCLE[(b + 2 * k) % len(MOTION_CYCLE)]
            background = list(BACKGROUNDS)[(b + k) % len(BACKGROUNDS)]
            video = pipe(
                object_prompt(motion, background),
                seed=(case["seed"] + k) % 2**31,
                frames=FRAMES,
                steps=steps,
                reference=case["reference"],
            )
            shots.append(bool(check(video.frames, implied_prompt(colour, shape, motion, background))["pass"]))
            tick()
        boards.append({"look": case["look"], "shots_passed": sum(shots), "pass": all(shots)})
    return {
        "references": {**_tally(rows), "by_look": _by(rows, "look")},
        "reference_boards": {
            **_tally(boards),
            "shots_passed": sum(b["shots_passed"] for b in boards),
            "shots": 4 * len(boards),
        },
    }


def _tally(rows: list[dict]) -> dict:
    passed = sum(r["pass"] for r in rows)
    return {
        "pass_rate": round(passed / max(1, len(rows)), 3),
        "passed": passed,
        "total": len(rows),
        "failures": [r for r in rows if not r["pass"]][:10],
    }


def _by(rows: list[dict], key: str) -> dict:
    groups: dict[str, list[int]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(int(r["pass"]))
    return {k: f"{sum(v)}/{len(v)}" for k, v in sorted(groups.items())}


def _summary(rows: list[dict], by: str) -> dict:
    return {
        **_tally(rows),
        "mean_centre_error": round(float(np.mean([r["centre_error"] for r in rows])), 4),
        "within_tolerance": sum(r["centre_error"] <= PATH_TOLERANCE for r in rows),
        "checker_passed": sum(r["checker"] for r in rows),
        f"by_{by}": _by(rows, by),
    }
