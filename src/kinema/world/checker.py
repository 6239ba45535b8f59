"""The shapes-world checker: does a decoded clip satisfy its prompt? (WORLD.md)

Per frame, the background is the median of the border pixels; everything far enough from
it is foreground, split into connected regions. Each region is measured with sub-pixel
accuracy from its coverage α (how far each pixel lies from the background towards the
region's palette colour), which anti-aliasing, blur and codecs leave nearly unchanged:
area = Σα, width = Σ over columns of the column's largest α (the silhouette), height
likewise over rows, so the
fill ratio area / (width × height) tells circle (π/4), square (1) and triangle (1/2)
apart. Objects are matched to regions by colour (and half, for two objects); what is
left over is an extra object. Motion is read from a straight-line fit of each object's
centroid and size against the path position over frames 0..15.

`check(video_frames, prompt)` returns a JSON-ready dict with "pass" and "reasons".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from kinema.world.grammar import parse
from kinema.world.render import coverage
from kinema.world.scene import (
    BACKGROUNDS,
    COLOURS,
    PATH_FRAMES,
    SIZES,
    Scene,
    WorldObject,
    ping_pong,
)

FOREGROUND_DISTANCE = 40.0  # RGB distance from the background that starts a region
COLOUR_RESIDUAL = 70.0  # farther than this from every bg→colour line: not a palette colour
MIN_REGION_PX = 4.0  # smaller regions are codec noise
MIN_PEAK_ALPHA = 0.5  # a region never more than half-way to its colour is a codec ghost
MEASURABLE_PX = 8.0  # shapes narrower than this are judged for presence and colour only
FOUND_FRACTION = 0.9  # "in most frames"
SHAPE_FRACTION = 0.8
SHAPE_BLUR_PX = 1.0
BACKGROUND_DEVIATION = 24.0  # per-channel change of the border colour that counts as flicker
FILL = {"triangle": 0.5, "circle": math.pi / 4, "square": 1.0}
_OBJECT_COLOURS = np.array(list(COLOURS.values()), np.float32)
_COLOUR_NAMES = list(COLOURS)


@dataclass
class Region:
    """One connected foreground region of a frame, measured in pixels and fractions."""

    colour: str | None  # nearest palette colour, None when no palette colour is near
    rgb: tuple[float, float, float]
    area: float  # pixels (Σα)
    cx: float  # centroid, fractions of width / height
    cy: float
    width: float  # pixels
    height: float
    shape_error: dict[str, float]  # Σ|α − ideal shape's coverage| / area, per shape

    @property
    def fill(self) -> float:
        return self.area / max(self.width * self.height, 1e-6)

    @property
    def measurable(self) -> bool:
        return max(self.width, self.height) >= MEASURABLE_PX

    @property
    def shape(self) -> str:
        return min(self.shape_error, key=self.shape_error.get)


# ---------------------------------------------------------------- per frame


def border_colour(frame: np.ndarray) -> np.ndarray:
    """Median colour of a frame's outermost pixel ring."""
    ring = np.concatenate([frame[0], frame[-1], frame[1:-1, 0], frame[1:-1, -1]])
    return np.median(ring.reshape(-1, 3), axis=0).astype(np.float32)


def nearest_colour(rgb: np.ndarray, background: np.ndarray) -> tuple[str | None, float]:
    """The palette colour c whose mix line background→c passes nearest to `rgb`."""
    axis = _OBJECT_COLOURS - background  # (7, 3)
    offset = rgb - background
    alpha = np.clip((axis @ offset) / np.maximum((axis * axis).sum(1), 1e-6), 0.0, 1.0)
    residual = np.linalg.norm(offset[None] - alpha[:, None] * axis, axis=1)
    k = int(residual.argmin())
    if residual[k] > COLOUR_RESIDUAL:
        return None, float(residual[k])
    return _COLOUR_NAMES[k], float(residual[k])


def find_regions(frame: np.ndarray, background: np.ndarray) -> list[Region]:
    """Connected foreground regions of one frame (uint8 H×W×3), largest first."""
    img = frame.astype(np.float32)
    offset = img - background
    dist = np.linalg.norm(offset, axis=-1)
    mask = (dist > FOREGROUND_DISTANCE).astype(np.uint8)
    # pieces up to two pixels apart are one region: codec ringing can drop an edge
    # column just under the threshold and leave the next one above it
    bridged = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bridged, connectivity=8)
    labels = np.where(mask > 0, labels, 0)
    h, w = mask.shape
    regions = []
    for k in range(1, count):
        x, y, bw, bh, _ = stats[k]
        # the margin holds the faint anti-aliased rim and room for the ideal shapes
        m = 2 + max(bw, bh) // 3
        r0, r1, c0, c1 = max(0, y - m), min(h, y + bh + m), max(0, x - m), min(w, x + bw + m)
        own = labels[r0:r1, c0:c1] == k
        near = cv2.dilate(own.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        near &= (labels[r0:r1, c0:c1] == 0) | own
        d = dist[r0:r1, c0:c1]
        # the region's own solid colour: codecs and models shift colours a little, and
        # coverage is measured against what the object is, not against the palette
        solid = own & (d >= 0.8 * d[own].max())
        rgb = img[r0:r1, c0:c1][solid].mean(axis=0)
        colour, _ = nearest_colour(rgb, background)
        target = rgb - background
        alpha = (offset[r0:r1, c0:c1] @ target) / max(float(target @ target), 1e-6)
        alpha = np.where(near, np.clip(alpha, 0.0, 1.0), 0.0)
        area = float(alpha.sum())
        # codec ringing makes faint specks; a drawn object is solid somewhere
        if area < MIN_REGION_PX or alpha.max() < MIN_PEAK_ALPHA:
            continue
        ys, xs = np.mgrid[r0:r1, c0:c1]
        cx = float((alpha * (xs + 0.5)).sum() / area)
        cy = float((alpha * (ys + 0.5)).sum() / area)
        regions.append(
            Region(
                colour=colour,
                rgb=tuple(round(float(v), 1) for v in rgb),
                area=area,
                cx=cx / w,
                cy=cy / h,
                width=float(alpha.max(axis=0).sum()),
                height=float(alpha.max(axis=1).sum()),
                shape_error=_shape_errors(alpha, r0, c0, cx, cy, area, (h, w)),
            )
        )
    regions.sort(key=lambda r: -r.area)
    return regions


def _shape_errors(
    alpha: np.ndarray, r0: int, c0: int, cx: float, cy: float, area: float, canvas: tuple[int, int]
) -> dict[str, float]:
    """How far the region's coverage is from each ideal shape of the same area and centroid.

    Comparing with the ideal shapes themselves (drawn as the renderer draws them) tells a
    small or blurred triangle from a circle where the bounding-box fill ratio cannot.
    """
    errors = {}
    for shape, fill in FILL.items():
        d = math.sqrt(area / fill)
        # a triangle's centroid sits d/6 below the centre of its bounding box
        centre_y = cy - d / 6 if shape == "triangle" else cy
        rows, cols, cov = coverage(shape, cx, centre_y, d, *canvas)
        ideal = np.zeros_like(alpha)
        rr = slice(max(rows.start, r0), min(rows.stop, r0 + alpha.shape[0]))
        cc = slice(max(cols.start, c0), min(cols.stop, c0 + alpha.shape[1]))
        if rr.stop > rr.start and cc.stop > cc.start:
            ideal[rr.start - r0 : rr.stop - r0, cc.start - c0 : cc.stop - c0] = cov[
                rr.start - rows.start : rr.stop - rows.start,
                cc.start - cols.start : cc.stop - cols.start,
            ]
        # both blurred by about a pixel: 4:2:0 chroma smears edges on a gray background,
        # while the differences between shapes (corners, apex) are larger than that
        diff = cv2.GaussianBlur(alpha - ideal, (0, 0), SHAPE_BLUR_PX)
        errors[shape] = round(float(np.abs(diff).sum() / area), 3)
    return errors


def _match(obj_index: int, obj: WorldObject, n_objects: int, regions: list[Region]) -> Region | None:
    for r in regions:
        if r.colour != obj.colour:
            continue
        if n_objects == 2 and (r.cx < 0.5) != (obj_index == 0):
            continue
        return r
    return None


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


def _judge_object(
    index: int, obj: WorldObject, per_frame: list[Region | None], frames: np.ndarray, side: int
) -> tuple[dict, list[str]]:
    name = f"object {index + 1} ({' '.join(w for w in (obj.size, obj.colour, obj.shape) if w)})"
    t_total = len(per_frame)
    found = [t for t, r in enumerate(per_frame) if r is not None]
    reasons: list[str] = []
    result: dict = {"expected": asdict(obj), "found_frames": len(found), "frames": t_total}
    if len(found) < max(1, math.ceil(FOUND_FRACTION * t_total)):
        missing = [t for t, r in enumerate(per_frame) if r is None]
        reasons.append(f"{name}: not found in {len(missing)} of {t_total} frames (first: frame {missing[0]})")
        if not found:
            result.update(colour={"ok": False}, shape={"ok": False}, motion={"ok": False})
            return result, reasons
    regions = [per_frame[t] for t in found]
    rgb = np.median(np.array([r.rgb for r in regions]), axis=0)
    result["colour"] = {
        "ok": True,
        "measured_rgb": [round(float(v), 1) for v in rgb],
        "nearest": obj.colour,
    }

    # shape, in every frame where the object is wide enough to tell
    measurable = [r for r in regions if r.measurable]
    shapes = [r.shape for r in measurable]
    if measurable:
        agree = shapes.count(obj.shape) / len(shapes)
        fill = float(np.median([r.fill for r in measurable]))
        others = [x for x in shapes if x != obj.shape]
        seen = max(set(others), key=others.count) if others else obj.shape
        ok = agree >= SHAPE_FRACTION
        errors = {k: round(float(np.median([r.shape_error[k] for r in measurable])), 3) for k in FILL}
        result["shape"] = {
            "ok": ok,
            "fill_ratio": round(fill, 3),
            "nearest": obj.shape if ok else seen,
            "template_error": errors,
            "agreeing_frames": shapes.count(obj.shape),
            "measured_frames": len(shapes),
        }
        if not ok:
            reasons.append(
                f"{name}: shape looks like a {seen} (fill ratio {fill:.2f}, template error "
                f"{errors[seen]:.2f} vs {errors[obj.shape]:.2f} for a {obj.shape}) in "
                f"{len(others)} of {len(shapes)} frames, expected {obj.shape}"
            )
    else:
        result["shape"] = {"ok": True, "judged": False, "why": "smaller than 8 px"}

    # size word, from the area the expected shape would have, undoing growth
    extents = [
        math.sqrt(r.area / FILL[obj.shape]) / side / _expected_scale(obj, t)
        for t, r in zip(found, regions, strict=True)
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

    # motion over frames 0..15 (or the whole of a shorter clip)
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


def check(frames: np.ndarray, prompt: str | Scene) -> dict:
    """Judge uint8 frames (T, H, W, 3) against a shapes-world prompt.

    Returns a JSON-ready dict: "pass", "reasons" (empty when it passes), "background",
    "objects" (colour, shape, size, motion verdicts with measured values),
    "extra_objects" and "identity". Raises PromptError for a prompt outside the grammar.
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
    extras: dict[tuple, dict] = {}
    for t, frame in enumerate(frames):
        regions = find_regions(frame, per_frame_bg[t])
        used = set()
        for i, obj in enumerate(scene.objects):
            r = _match(i, obj, n, regions)
            matched[i].append(r)
            if r is not None:
                used.add(id(r))
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
                    "first_frame": t,
                    "max_area_px": 0.0,
                    "position": [round(r.cx, 2), round(r.cy, 2)],
                },
            )
            e["frames"] += 1
            e["max_area_px"] = round(max(e["max_area_px"], r.area), 1)

    objects = []
    for i, obj in enumerate(scene.objects):
        result, obj_reasons = _judge_object(i, obj, matched[i], frames, w)
        objects.append(result)
        reasons.extend(obj_reasons)

    extra_list = sorted(extras.values(), key=lambda e: -e["frames"])
    for e in extra_list:
        if e["frames"] >= max(1, math.ceil(0.1 * t_total)):
            where = f" at ({e['position'][0]}, {e['position'][1]})"
            reasons.append(f"extra {e['colour']} object{where} in {e['frames']} of {t_total} frames")
    identity = {
        "ok": all(
            o.get("found_frames", 0) >= FOUND_FRACTION * t_total and o.get("shape", {}).get("ok", False)
            for o in objects
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
