"""How crisp a shapes-world clip's objects are: corners and edges, frame by frame.

The world checker says pass or fail; this says how far from the renderer's geometry a
clip is, so codecs and decoders (the VAE's ceiling) can be compared by a number:

- fill ratio: area / bounding-box area of each object in each measurable frame (≥ 8 px),
  measured as the checker measures it (sub-pixel coverage). An ideal square is 1.0, a
  circle π/4 ≈ 0.785, a triangle 0.5; a square whose corners come and go has a fill that
  drops towards π/4 in some frames. Its spread over the clip (std and max − min) is the
  corner measure: at most 0.01 for the renderer's squares and circles (a few hundredths
  for its triangles), under 0.03 after H.264.
- edge jitter: how far the object's silhouette width and height stray from a steady
  path (constant, or a straight line for growing and shrinking objects; the checker's
  `steady_path`), as the RMS residual in pixels over its found frames: about a tenth of
  a pixel for the renderer's own clips (4× supersampling puts edges on quarter pixels)
  and after H.264; edges that wobble by a pixel give about half a pixel or more.

`clip_sharpness(frames, prompt)` measures one clip; `summarise(measures)` averages many per
shape (for `kinema eval`).
"""

from __future__ import annotations

import numpy as np

from kinema.world.checker import match_region, steady_path
from kinema.world.grammar import parse
from kinema.world.regions import border_colour, find_regions
from kinema.world.scene import SHAPES, Scene


def clip_sharpness(frames: np.ndarray, prompt: str | Scene) -> dict:
    """Corner and edge measures of each prompted object in uint8 frames (T, H, W, 3).

    Returns {"objects": [...]}, one entry per prompted object: "object" (its words),
    "shape", "found_frames", "measured_frames", "fill" (per frame, None where the object
    is missing or under 8 px), "fill_mean", "fill_std", "fill_spread" (max − min) and
    "edge_jitter_px"; the numbers are None when there is nothing to measure. Raises
    PromptError for a prompt outside the grammar.
    """
    scene = parse(prompt) if isinstance(prompt, str) else prompt
    frames = np.asarray(frames)
    n = len(scene.objects)
    tracks: list[list] = [[] for _ in range(n)]
    for frame in frames:
        regions = find_regions(frame, border_colour(frame))
        for i, obj in enumerate(scene.objects):
            tracks[i].append(match_region(i, obj, n, regions))
    return {"objects": [_measure(obj, track) for obj, track in zip(scene.objects, tracks, strict=True)]}


def _measure(obj, track: list) -> dict:
    found = [t for t, r in enumerate(track) if r is not None]
    fills = [round(r.fill, 3) if r is not None and r.measurable else None for r in track]
    measured = [f for f in fills if f is not None]
    out = {
        "object": " ".join(w for w in (obj.size, obj.colour, obj.shape) if w),
        "shape": obj.shape,
        "found_frames": len(found),
        "measured_frames": len(measured),
        "fill": fills,
        "fill_mean": round(float(np.mean(measured)), 3) if measured else None,
        "fill_std": round(float(np.std(measured)), 3) if measured else None,
        "fill_spread": round(max(measured) - min(measured), 3) if measured else None,
        "edge_jitter_px": None,
    }
    if len(found) >= 2:
        residuals = []
        for side in ("width", "height"):
            values = np.array([getattr(track[t], side) for t in found])
            residuals.append(values - steady_path(obj, found, values))
        out["edge_jitter_px"] = round(float(np.sqrt(np.mean(np.square(residuals)))), 3)
    return out


def summarise(measures: list[dict]) -> dict:
    """Means over many clips' `clip_sharpness` results, per shape: "objects" (how many had a
    measurable frame), "fill_mean", "fill_spread_mean", "fill_std_mean", "edge_jitter_px_mean"."""
    out = {}
    for shape in SHAPES:
        objs = [o for m in measures for o in m["objects"] if o["shape"] == shape and o["measured_frames"]]
        jitter = [o["edge_jitter_px"] for o in objs if o["edge_jitter_px"] is not None]
        out[shape] = {
            "objects": len(objs),
            "fill_mean": _mean([o["fill_mean"] for o in objs]),
            "fill_spread_mean": _mean([o["fill_spread"] for o in objs]),
            "fill_std_mean": _mean([o["fill_std"] for o in objs]),
            "edge_jitter_px_mean": _mean(jitter),
        }
    return out


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None
