"""The shapes-world checker: does a decoded clip satisfy its prompt? (WORLD.md)

Every frame is split into measured regions (kinema.world.regions: coverage-based area,
silhouette width and height, fill ratio, errors against the ideal shapes), and each
prompted object is matched to the largest region of its colour (on its own half in a
two-object scene). WORLD.md asks that "the object keeps its colour and shape in every
frame" and that nothing else is on the canvas; the checker holds every frame to it:

1. Presence: every object is found in every frame. A frame where a region of a colour
   no prompted object has stands in its place fails for colour ("colour reads as orange
   in frame 3"); a frame with nothing there fails for presence ("not found in frame 9").
2. Colour: an object's region is one whose colour is nearest its palette colour (the
   bg→colour mix line passing nearest, within COLOUR_RESIDUAL), in every frame by (1).
3. Shape, in every frame where the object is measurable (≥ MEASURABLE_PX = 8 px wide or
   tall; smaller is judged for presence and colour only, as WORLD.md allows). A square
   is told by its fill ratio as WORLD.md says: below 0.893 (nearer π/4 than 1) the frame
   reads as a circle. Blur, which every codec and decoder adds, keeps a square's fill
   near 1 but lifts a small circle's or triangle's towards 1, and 4:2:0 chroma smears a
   small triangle until its fill looks round; so circles and triangles are told by the
   template errors (the region against each ideal shape of its area and centroid), and a
   circle reads as a square only when its fill and its template both say so
   (`reads_as`). One frame that reads as another shape fails the clip, naming the frame
   and its fill.
4. Size: in every measurable frame the object's extent √(area / ideal fill) stays within
   EXTENT_TOLERANCE (±8 %) of its steady size: the clip's median for an object that keeps
   its size, the better straight-line fit in path position u(t) or in t for a growing or
   shrinking one (`steady_path`). A frame that already reads as another shape is not
   judged twice. An object that pulses in size does not keep its shape.
5. Nothing else: a region left over in any frame is an extra object. Codec specks are
   not regions (MIN_REGION_PX 4 px of coverage, MIN_PEAK_ALPHA 0.5, FOREGROUND_DISTANCE
   40 levels, unchanged): with both speck rules off, no clean clip in any condition below
   leaves a single region that its objects do not explain; they stay for the faint
   ghosts that decoders make.
Over the clip, as before: the background (median border colour, flicker), the size word
(median extent, growth undone), and the motion from straight-line fits of the centroid
and size against u(t) over frames 0..15, with frozen steps; a clip that continues another
(`first_frame` > 0, an extension) is not judged for its motion.

Tolerances, measured (tools/checker_calibration.py --clips 1000): 1000 renderer clips
at 64×64, 16 frames (random scenes with seen pairs, a third with held-out pairs, a third
of them two-object), each raw, as H.264 mp4, VP9 webm and GIF through kinema.io's
writer, watermarked and written as `kinema generate` writes them, blurred (Gaussian
σ 0.5, 0.7) and noisy (σ 3, 6 levels): 1000/1000 pass in each of the 9 conditions. The
extremes the rules leave room for: squares' fill ≥ 0.929 (mp4; 0.905 at noise σ 6)
against the 0.893 boundary; circles' fill up to 0.871 (small circles on gray after 4:2:0
chroma); triangles' fill up to 0.789 (watermark+mp4), which is why fill alone does not
judge them; size deviation at most 3.4 % for objects that keep their size and 5.2 %
along a growth path (4.3 % H.264). A second run of 700 clips (--seed 11) gave 6.0 % (VP9)
and 5.3 % (H.264) along growth paths, so ±8 % is a third more than the worst seen; its
only failures were 2 of 700 VP9 files of small green circles growing or shrinking on
gray, which the writer's VP9 froze for 4 frames (the motion rule's frozen steps, failed
by the old checker too; VP9 at crf 6 instead of 8 keeps them moving). Nothing else is
forgiven: no share of frames may miss an object, change its colour or read as another
shape.

`check(frames, prompt)` returns a JSON-ready dict with "pass" and "reasons"; each reason
names the object, the frames and what was seen there.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from kinema.world.grammar import parse
from kinema.world.regions import (
    FILL,
    MEASURABLE_PX,
    MIN_PEAK_ALPHA,
    MIN_REGION_PX,
    Region,
    border_colour,
    find_regions,
    nearest_colour,
)
from kinema.world.scene import BACKGROUNDS, PATH_FRAMES, SIZES, Scene, WorldObject, ping_pong

__all__ = [
    "FILL",
    "MEASURABLE_PX",
    "MIN_PEAK_ALPHA",
    "MIN_REGION_PX",
    "Region",
    "border_colour",
    "check",
    "find_regions",
    "frame_list",
    "match_region",
    "nearest_colour",
    "reads_as",
    "steady_path",
]

EXTENT_TOLERANCE = 0.08  # a frame's size may stray this far from the object's steady size
BACKGROUND_DEVIATION = 24.0  # per-channel change of the border colour that counts as flicker


def match_region(obj_index: int, obj: WorldObject, n_objects: int, regions: list[Region]) -> Region | None:
    """The region that is prompted object `obj_index` in one frame: the largest one of its
    colour (on its own half of the canvas in a two-object scene), or None."""
    for r in regions:
        if r.colour != obj.colour:
            continue
        if n_objects == 2 and (r.cx < 0.5) != (obj_index == 0):
            continue
        return r
    return None


def _stand_in(obj_index: int, scene: Scene, regions: list[Region], used: set[int]) -> Region | None:
    """The region drawn where a missing object should be (the largest one left, on its
    half for two objects) when its colour is no prompted object's: the object in the
    wrong colour, judged as such rather than as an extra object."""
    prompted = {o.colour for o in scene.objects}
    for r in regions:
        if id(r) in used or r.colour in prompted:
            continue
        if len(scene.objects) == 2 and (r.cx < 0.5) != (obj_index == 0):
            continue
        return r
    return None


def frame_list(frames: list[int]) -> str:
    """'frame 3', 'frames 3, 7', 'frames 0-15, 18': frame indices for a reason."""
    runs: list[list[int]] = []
    for t in frames:
        if runs and t == runs[-1][1] + 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    return f"frame{'s' * (len(frames) > 1)} {text}"


# ---------------------------------------------------------------- over time


def _line_fit(ts: np.ndarray, values: np.ndarray, t0: float, t1: float) -> tuple[float, float]:
    """Least-squares line through (u(t), value); returns its values at u(t0), u(t1)."""
    u = np.array([ping_pong(int(t)) for t in ts])
    if len(u) >= 2 and np.ptp(u) > 0:
        slope, intercept = np.polyfit(u, values, 1)
    else:
        slope, intercept = 0.0, float(values.mean())
    return intercept + slope * ping_pong(int(t0)), intercept + slope * ping_pong(int(t1))


def _motion_verdict(obj: WorldObject, dx: float, dy: float, ratio: float, f: float) -> tuple[str, str | None]:
    """What the motion looks like, and the problem with it if any (None when right)."""
    grow, shrink, move = 1.8**f, 0.55**f, 0.2 * f
    if ratio > grow:
        seen = "growing"
    elif ratio < shrink:
        seen = "shrinking"
    elif max(abs(dx), abs(dy)) >= move:
        if abs(dx) >= abs(dy):
            seen = "moving right" if dx > 0 else "moving left"
        else:
            seen = "moving down" if dy > 0 else "moving up"
    elif math.hypot(dx, dy) < 0.08:
        seen = "staying still"
    else:
        seen = "drifting"
    expected = obj.motion
    numbers = f"dx {dx:+.2f}, dy {dy:+.2f}, area ×{ratio:.2f}"
    if seen != expected:
        if seen == "drifting" or (seen == "staying still" and expected.startswith("moving")):
            return seen, f"moves too little ({numbers}), expected {expected}"
        return seen, f"looks {seen} ({numbers}), expected {expected}"
    if expected.startswith("moving"):
        off_axis = abs(dy) if expected in ("moving left", "moving right") else abs(dx)
        if off_axis > 0.1 + 0.25 * max(abs(dx), abs(dy)):
            return "drifting", f"drifts off its axis ({numbers}), expected {expected}"
    elif expected in ("growing", "shrinking") and math.hypot(dx, dy) > 0.1:
        return "drifting", f"moves while {expected} ({numbers})"
    return seen, None


def _expected_scale(obj: WorldObject, t: int) -> float:
    u = ping_pong(t)
    if obj.motion == "growing":
        return 0.6 + 0.8 * u
    if obj.motion == "shrinking":
        return 1.4 - 0.8 * u
    return 1.0


def _size_word(extent: float) -> str | None:
    # nearest nominal extent on a log scale
    return min(SIZES, key=lambda k: abs(math.log(extent / SIZES[k])))


def _numbers(values: list[float], fmt: str = "{:.2f}", most: int = 4) -> str:
    text = ", ".join(fmt.format(v) for v in values[:most])
    return text + (", …" if len(values) > most else "")


def reads_as(region: Region, expected: str) -> str:
    """The shape one frame's region reads as, judged against `expected`.

    WORLD.md tells shapes by the fill ratio (square ≈ 1, circle ≈ 0.785, triangle ≈ 0.5;
    nearest wins, so a square below 0.893 reads as a circle). Blur, which every codec
    and decoder adds, leaves a square's fill near 1 but raises a small circle's or
    triangle's towards 1 (a blurred blob fills its silhouette box), and 4:2:0 chroma
    smears a small triangle until its fill looks round. So a square's fill is judged as
    WORLD.md says, while circles and triangles are told by the template errors (the
    region against each ideal shape of its area and centroid, both blurred by a pixel); a
    circle reads as a square only when its fill and its template both say so.
    """
    by_fill = min(FILL, key=lambda k: abs(region.fill - FILL[k]))
    by_template = region.shape
    if expected == "square":
        if by_fill != "square":
            return by_fill
        return "triangle" if by_template == "triangle" else "square"
    if expected == "circle":
        if by_template == "triangle" or (by_template == "square" and by_fill == "square"):
            return by_template
        return "circle"
    return by_template


def _judge_colour(name: str, obj: WorldObject, per_frame, stand_ins, reasons: list[str]) -> dict:
    """Found in every frame, in its own colour: a frame where another colour stands in its
    place fails for colour, a frame with nothing there for presence."""
    t_total = len(per_frame)
    missing = [t for t, r in enumerate(per_frame) if r is None]
    recoloured = [t for t in missing if stand_ins[t] is not None]
    lost = [t for t in missing if stand_ins[t] is None]
    regions = [r for r in per_frame if r is not None]
    # never seen in its colour at all: no colour to call right
    colour: dict = {
        "ok": bool(regions) and not recoloured,
        "nearest": obj.colour,
        "failing_frames": recoloured,
    }
    if regions:
        colour["measured_rgb"] = [round(float(v), 1) for v in np.median([r.rgb for r in regions], axis=0)]
    if recoloured:
        seen = [stand_ins[t].colour or "no palette colour" for t in recoloured]
        colour["seen"] = max(set(seen), key=seen.count)
        rgb = ", ".join(f"{v:.0f}" for v in stand_ins[recoloured[0]].rgb)
        reasons.append(
            f"{name}: colour reads as {colour['seen']} in {frame_list(recoloured)} "
            f"(rgb {rgb}), expected {obj.colour}"
        )
    if lost:
        reasons.append(f"{name}: not found in {frame_list(lost)} of {t_total}")
    return colour


def _judge_shape(name: str, obj: WorldObject, per_frame, found: list[int], reasons: list[str]) -> dict:
    """The expected shape in every frame where the object is measurable (≥ 8 px)."""
    judged = [t for t in found if per_frame[t].measurable]
    if not judged:
        return {"ok": True, "judged": False, "why": "smaller than 8 px", "failing_frames": []}
    seen = {t: reads_as(per_frame[t], obj.shape) for t in judged}
    failing = [t for t in judged if seen[t] != obj.shape]
    fills = [per_frame[t].fill for t in judged]
    wrong = [seen[t] for t in failing]
    shape = {
        "ok": not failing,
        "fill_ratio": round(float(np.median(fills)), 3),
        "fill_range": [round(min(fills), 3), round(max(fills), 3)],
        "nearest": max(set(wrong), key=wrong.count) if wrong else obj.shape,
        "template_error": {
            k: round(float(np.median([per_frame[t].shape_error[k] for t in judged])), 3) for k in FILL
        },
        "agreeing_frames": len(judged) - len(failing),
        "measured_frames": len(judged),
        "failing_frames": failing,
    }
    for other in sorted(set(wrong), key=wrong.count, reverse=True):
        ts = [t for t in failing if seen[t] == other]
        reasons.append(
            f"{name}: looks like a {other} in {frame_list(ts)} ({len(ts)} of {len(judged)} measured "
            f"frames; fill {_numbers([per_frame[t].fill for t in ts])}), expected {obj.shape}"
        )
    return shape


def steady_path(obj: WorldObject, found: list[int], values: np.ndarray, first_frame: int = 0) -> np.ndarray:
    """The steady value (a size, in the frames `found`) each frame should have: the median
    for an object that keeps its size; for growing and shrinking, the better of two
    straight-line fits, in the path position u(first_frame + t) (WORLD.md's ping-pong) or
    in t (a steady ramp)."""
    values = np.asarray(values, float)
    if obj.motion not in ("growing", "shrinking") or len(found) < 3:
        return np.full(len(values), float(np.median(values)))
    best = None
    for x in (np.array([ping_pong(first_frame + t) for t in found]), np.array(found, float)):
        fit = np.polyval(np.polyfit(x, values, 1), x) if np.ptp(x) > 0 else np.full(len(x), values.mean())
        fit = np.maximum(fit, 1e-6)
        if best is None or np.abs(values / fit - 1).max() < np.abs(values / best - 1).max():
            best = fit
    return best


def _judge_extent(
    name, obj, per_frame, found: list[int], wrong_shape: list[int], first_frame: int, reasons
) -> dict:
    """A steady size in every measurable frame (a pulsing object does not keep its shape).
    Frames that read as another shape already failed, and their size (read as the
    expected shape's) would be off too: they are not judged twice."""
    extents = np.array([math.sqrt(per_frame[t].area / FILL[obj.shape]) for t in found])
    path = steady_path(obj, found, extents, first_frame)
    deviation = extents / path - 1
    judged = [k for k, t in enumerate(found) if per_frame[t].measurable and t not in wrong_shape]
    failing = [k for k in judged if abs(deviation[k]) > EXTENT_TOLERANCE]
    extent = {
        "ok": not failing,
        "median_px": round(float(np.median(extents)), 2),
        "max_deviation": round(float(max((abs(deviation[k]) for k in judged), default=0.0)), 3),
        "tolerance": EXTENT_TOLERANCE,
        "failing_frames": [found[k] for k in failing],
    }
    if failing:
        worst = sorted(failing, key=lambda k: -abs(deviation[k]))[:3]
        sizes = ", ".join(f"{extents[k]:.1f} px in frame {found[k]}" for k in sorted(worst))
        steady = "its fitted growth path" if obj.motion in ("growing", "shrinking") else "its median"
        reasons.append(
            f"{name}: does not keep its size in {frame_list(extent['failing_frames'])}: {sizes} "
            f"against {path[worst[0]]:.1f} px on {steady} (±{EXTENT_TOLERANCE:.0%} allowed)"
        )
    return extent


def _judge_object(
    index: int, obj: WorldObject, per_frame: list, stand_ins: list, frames: np.ndarray, first_frame: int
) -> tuple[dict, list[str]]:
    name = f"object {index + 1} ({' '.join(w for w in (obj.size, obj.colour, obj.shape) if w)})"
    t_total, side = len(per_frame), frames.shape[2]
    found = [t for t, r in enumerate(per_frame) if r is not None]
    reasons: list[str] = []
    missing = [t for t, r in enumerate(per_frame) if r is None]
    result: dict = {
        "expected": asdict(obj),
        "found_frames": len(found),
        "frames": t_total,
        "found": {"ok": not missing, "missing_frames": missing},
    }
    result["colour"] = _judge_colour(name, obj, per_frame, stand_ins, reasons)
    if not found:
        result.update(shape={"ok": False}, extent={"ok": False}, motion={"ok": False}, ok=False)
        return result, reasons
    result["shape"] = _judge_shape(name, obj, per_frame, found, reasons)
    wrong_shape = result["shape"]["failing_frames"]
    result["extent"] = _judge_extent(name, obj, per_frame, found, wrong_shape, first_frame, reasons)

    # size word, from the area the expected shape would have, undoing growth
    extents = [
        math.sqrt(per_frame[t].area / FILL[obj.shape]) / side / _expected_scale(obj, first_frame + t)
        for t in found
    ]
    extent = float(np.median(extents))
    size = {"measured_extent": round(extent, 3), "nearest": _size_word(extent) or "default"}
    if obj.size is not None:
        size["ok"] = _size_word(extent) == obj.size
        if not size["ok"]:
            reasons.append(
                f"{name}: extent {extent:.2f} of the canvas reads as "
                f"{size['nearest']}, expected {obj.size} ({SIZES[obj.size]})"
            )
    result["size"] = size

    # motion over frames 0..15 (or the whole of a shorter clip); a clip that continues
    # another is not judged for it (WORLD.md)
    if first_frame:
        result["motion"] = {
            "ok": True,
            "judged": False,
            "why": f"continues another clip at frame {first_frame}",
        }
    else:
        last = min(PATH_FRAMES - 1, t_total - 1)
        result["motion"] = _judge_motion(obj, per_frame, found, last, frames, name, reasons)
    result["ok"] = not reasons
    return result, reasons


def _judge_motion(obj, per_frame, found, last, frames, name, reasons) -> dict:
    if last < 4:
        return {"ok": True, "judged": False, "why": "fewer than 5 frames"}
    window = [t for t in found if t <= last]
    if len(window) < 2:
        reasons.append(f"{name}: not found in enough of frames 0-{last} to judge its motion")
        return {"ok": False}
    ts = np.array(window)
    cx = np.array([per_frame[t].cx for t in window])
    cy = np.array([per_frame[t].cy for t in window])
    s = np.array([math.sqrt(per_frame[t].area) for t in window])
    x0, x1 = _line_fit(ts, cx, 0, last)
    y0, y1 = _line_fit(ts, cy, 0, last)
    s0, s1 = _line_fit(ts, s, 0, last)
    dx, dy = x1 - x0, y1 - y0
    ratio = (s1 / s0) ** 2 if s0 > 0 else float("inf")
    f = last / (PATH_FRAMES - 1)
    seen, problem = _motion_verdict(obj, dx, dy, ratio, f)
    motion = {
        "ok": problem is None,
        "seen": seen,
        "dx": round(dx, 3),
        "dy": round(dy, 3),
        "area_ratio": round(ratio, 3),
        "path_fraction": round(f, 3),
    }
    if problem:
        reasons.append(f"{name}: {problem}")
    elif obj.motion != "staying still":
        frozen = _frozen_steps(per_frame, frames, math.hypot(dx, dy) + abs(s1 - s0) / frames.shape[1], last)
        motion["frozen_steps"] = frozen
        # a lone repeated frame is what VP9 makes of a tiny chroma-only change; a frozen
        # stretch (two still steps in a row) or many still steps is a defect
        run = any(b - a == 1 for a, b in zip(frozen, frozen[1:], strict=False))
        if run or len(frozen) > 0.2 * (frames.shape[0] - 1):
            motion["ok"] = False
            reasons.append(
                f"{name}: frozen from frame {frozen[0]} "
                f"({len(frozen)} still step{'s' * (len(frozen) > 1)} in a moving clip)"
            )
    return motion


def _frozen_steps(per_frame, frames: np.ndarray, path: float, last: int) -> list[int]:
    """Frames t whose successor shows no progress although the object should move."""
    step = path / last  # the average progress per frame along the fitted path
    side = frames.shape[1]
    frozen = []
    for t in range(len(per_frame) - 1):
        a, b = per_frame[t], per_frame[t + 1]
        identical = np.array_equal(frames[t], frames[t + 1])
        if a is None or b is None:
            if identical:
                frozen.append(t)
            continue
        progress = math.hypot(b.cx - a.cx, b.cy - a.cy) + abs(math.sqrt(b.area) - math.sqrt(a.area)) / side
        if identical or progress < 0.15 * step:
            frozen.append(t)
    return frozen


# ---------------------------------------------------------------- the whole clip


def check(frames: np.ndarray, prompt: str | Scene, *, first_frame: int = 0) -> dict:
    """Judge uint8 frames (T, H, W, 3) against a shapes-world prompt, frame by frame.

    `first_frame` is the index of frames[0] in the prompt's endless clip: a clip that
    continues another (an extension) is judged on its own frames for colour, shape, size
    and identity, not for its motion. Returns a JSON-ready dict: "pass", "reasons" (empty
    when it passes; each names the frames and what was seen there), "background",
    "objects" (found, colour, shape, extent, size, motion verdicts with measured values
    and failing frames), "extra_objects" and "identity". Raises PromptError for a prompt
    outside the grammar.
    """
    scene = parse(prompt) if isinstance(prompt, str) else prompt
    frames = np.asarray(frames)
    t_total, h, w, _ = frames.shape
    reasons: list[str] = []

    per_frame_bg = np.stack([border_colour(f) for f in frames])
    bg = np.median(per_frame_bg, axis=0)
    bg_name = min(BACKGROUNDS, key=lambda k: float(np.linalg.norm(bg - np.array(BACKGROUNDS[k]))))
    deviation = float(np.abs(per_frame_bg - bg).max())
    background = {
        "ok": bg_name == scene.background,
        "expected": scene.background,
        "nearest": bg_name,
        "measured_rgb": [round(float(v), 1) for v in bg],
        "flicker": round(deviation, 2),
    }
    if bg_name != scene.background:
        reasons.append(
            f"background looks {bg_name} (rgb {background['measured_rgb']}), expected {scene.background}"
        )
    if deviation > BACKGROUND_DEVIATION:
        background["ok"] = False
        reasons.append(f"background flickers: the border colour moves by up to {deviation:.0f} levels")

    n = len(scene.objects)
    matched: list[list[Region | None]] = [[] for _ in range(n)]
    stand_ins: list[list[Region | None]] = [[] for _ in range(n)]
    extras: dict[tuple, dict] = {}
    for t, frame in enumerate(frames):
        regions = find_regions(frame, per_frame_bg[t], scene.palette)
        taken = [match_region(i, obj, n, regions) for i, obj in enumerate(scene.objects)]
        used = {id(r) for r in taken if r is not None}
        for i in range(n):
            stand_in = None if taken[i] is not None else _stand_in(i, scene, regions, used)
            if stand_in is not None:
                used.add(id(stand_in))
            matched[i].append(taken[i])
            stand_ins[i].append(stand_in)
        for r in regions:
            if id(r) in used:
                continue
            half = "left" if r.cx < 0.5 else "right"
            key = (r.colour or "unknown", half if n == 2 else "")
            e = extras.setdefault(
                key,
                {
                    "colour": key[0],
                    "frames": 0,
                    "frame_list": [],
                    "first_frame": t,
                    "max_area_px": 0.0,
                    "position": [round(r.cx, 2), round(r.cy, 2)],
                },
            )
            e["frames"] += 1
            e["frame_list"].append(t)
            e["max_area_px"] = round(max(e["max_area_px"], r.area), 1)

    objects = []
    for i, obj in enumerate(scene.objects):
        result, obj_reasons = _judge_object(i, obj, matched[i], stand_ins[i], frames, first_frame)
        objects.append(result)
        reasons.extend(obj_reasons)

    # anything else on the canvas, in any frame (specks were dropped by find_regions)
    extra_list = sorted(extras.values(), key=lambda e: -e["frames"])
    for e in extra_list:
        where = f" at ({e['position'][0]}, {e['position'][1]})"
        reasons.append(
            f"extra {e['colour']} object{where} in {frame_list(e['frame_list'])} of {t_total} "
            f"(up to {e['max_area_px']:.0f} px)"
        )
    identity = {
        "ok": all(
            o["found"]["ok"] and o["colour"]["ok"] and o["shape"]["ok"] and o["extent"]["ok"] for o in objects
        ),
        "frames_with_every_object": int(sum(all(m[t] is not None for m in matched) for t in range(t_total))),
    }
    return {
        "pass": not reasons,
        "reasons": reasons,
        "prompt": prompt if isinstance(prompt, str) else None,
        "frames": t_total,
        "size": [w, h],
        "background": background,
        "objects": objects,
        "extra_objects": extra_list,
        "identity": identity,
    }
