"""Identity drift: do the objects of a clip keep their colour and shape? (VBench "subject
consistency", without a learned feature.)"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from kinema.io import Video
from kinema.metrics.analysis import Analysis, as_analysis, measure_result, rounded

__all__ = [
    "COLOUR_DRIFT",
    "FILL_DRIFT",
    "FOREGROUND_DISTANCE",
    "HU_DRIFT",
    "MEASURABLE_PX",
    "MIN_OBJECT_PX",
    "identity_drift",
]

COLOUR_DRIFT = 30.0  # identity drift: an object's core colour moves this far from its start
FILL_DRIFT = 0.10  # identity drift: an object's fill ratio changes by this much
HU_DRIFT = (0.02, 0.0012)  # identity drift: change of an object's first two Hu moments
FOREGROUND_DISTANCE = 40.0  # colour distance from the background that makes foreground
MIN_OBJECT_PX = 12.0  # smaller foreground regions are noise (analysis scale, Σα)
MEASURABLE_PX = 48.0  # smaller objects are followed but their colour and shape not judged


@dataclass
class _Blob:
    colour: np.ndarray  # median colour of its core pixels
    cx: float
    cy: float
    area: float  # Σα (analysis pixels)
    fill: float
    hu: np.ndarray  # the first two Hu moments
    whole: bool  # not touching the frame's edge: its shape is all there


def _blobs(frame: np.ndarray, background: np.ndarray) -> list[_Blob]:
    """Foreground regions of one frame against a uniform background colour."""
    dist = np.linalg.norm(frame - background, axis=-1)
    mask = (dist > FOREGROUND_DISTANCE).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    h, w = mask.shape
    out = []
    for k in range(1, n):
        x, y, bw, bh, count = stats[k]
        if count < 3:
            continue
        x0, y0, x1, y1 = max(0, x - 1), max(0, y - 1), min(w, x + bw + 1), min(h, y + bh + 1)
        inside = labels[y0:y1, x0:x1] == k
        patch = frame[y0:y1, x0:x1]
        core = patch[inside & (dist[y0:y1, x0:x1] >= np.percentile(dist[y0:y1, x0:x1][inside], 50))]
        colour = np.median(core, axis=0)
        # coverage α of each pixel: how far it lies from the background towards the colour
        span = max(float(np.linalg.norm(colour - background)), 1.0)
        alpha = np.clip(dist[y0:y1, x0:x1] / span, 0, 1) * (cv2.dilate(inside.astype(np.uint8), None) > 0)
        area = float(alpha.sum())
        if area < MIN_OBJECT_PX:
            continue
        m = cv2.moments(alpha.astype(np.float32))
        hu = cv2.HuMoments(m).ravel()
        width, height = float(alpha.max(axis=0).sum()), float(alpha.max(axis=1).sum())
        out.append(
            _Blob(
                colour=colour,
                cx=(x0 + m["m10"] / m["m00"]) / w,
                cy=(y0 + m["m01"] / m["m00"]) / h,
                area=area,
                fill=area / max(width * height, 1e-6),
                hu=hu[:2],  # the higher orders are noise at small sizes
                whole=x > 0 and y > 0 and x + bw < w and y + bh < h,
            )
        )
    return out


def identity_drift(video: Video | Analysis) -> dict:
    """Identity drift — VBench "subject consistency" (without a learned feature).

    Against a uniform background (the border colour; a clip whose border is not uniform
    has no measurable objects and is not flagged), every frame's foreground is split into
    regions; regions are followed from frame to frame by colour and position. For each
    track: its core colour (median of its inner pixels) and its shape descriptors —
    fill ratio (area / silhouette width × height: circle π/4, square 1, triangle ½) and
    the first two Hu moments (both scale-invariant, so growing and shrinking are not
    drift) — each smoothed by a 3-frame running median and compared with the track's
    first fifth. Flags when a colour moves more than COLOUR_DRIFT, a fill ratio by more
    than FILL_DRIFT or a Hu moment by more than its HU_DRIFT (reported as hu_drift, in
    units of those thresholds). Area is reported, not judged (it changes when things
    grow). value = the largest of the three drifts, each divided by its threshold.
    """
    a = as_analysis(video)
    t_total = a.video.num_frames
    borders = a.borders
    uniform = _border_uniformity(a.frames, borders)
    empty = dict(colour_drift=0.0, fill_drift=0.0, hu_drift=0.0, tracks=[], uniform_background=uniform)
    if not uniform:
        return measure_result(0.0, 1.0, False, "subject_consistency", [0.0] * t_total, **empty)
    tracks: list[dict] = []
    for t in range(t_total):
        blobs = _blobs(a.frames[t], borders[t])
        free = list(range(len(tracks)))
        for blob in sorted(blobs, key=lambda b: -b.area):
            best = min(free, key=lambda k: _blob_distance(tracks[k]["last"], blob), default=None)
            if best is not None and _blob_distance(tracks[best]["last"], blob) < 1.0:
                free.remove(best)
                tracks[best]["blobs"].append((t, blob))
                tracks[best]["last"] = blob
            else:
                tracks.append({"blobs": [(t, blob)], "last": blob})
    per_frame = np.zeros(t_total)
    summary, worst = [], {"colour_drift": 0.0, "fill_drift": 0.0, "hu_drift": 0.0}
    for tr in tracks:
        if len(tr["blobs"]) < max(3, 0.3 * t_total):  # passing noise, not an object
            continue
        times = [t for t, _ in tr["blobs"]]
        blobs = [b for _, b in tr["blobs"]]
        colour = _median3(np.array([b.colour for b in blobs]))
        # an object's shape is judged where all of it is in frame and it is big enough
        # that anti-aliasing and codec chroma do not dominate its statistics
        whole = np.array([b.whole and b.area >= MEASURABLE_PX for b in blobs])
        big = np.array([b.area >= MEASURABLE_PX for b in blobs])
        if not big.any():
            continue
        fill = _median3(np.array([b.fill for b in blobs]))
        hu = _median3(np.array([b.hu for b in blobs]))
        ref_n = max(2, len(blobs) // 5)
        ref_colour = np.median(colour[np.flatnonzero(big)[:ref_n]], axis=0)
        ref_whole = np.flatnonzero(whole)[:ref_n]
        drift = {"colour_drift": 0.0, "fill_drift": 0.0, "hu_drift": 0.0}
        ref_fill = float(np.median(fill[ref_whole])) if len(ref_whole) else None
        for k, t in enumerate(times):
            c = float(np.linalg.norm(colour[k] - ref_colour)) if big[k] else 0.0
            f = h = 0.0
            if whole[k] and ref_fill is not None:
                f = abs(fill[k] - ref_fill)
                h = float(np.max(np.abs(hu[k] - np.median(hu[ref_whole], axis=0)) / HU_DRIFT))
            drift["colour_drift"] = max(drift["colour_drift"], c)
            drift["fill_drift"] = max(drift["fill_drift"], f)
            drift["hu_drift"] = max(drift["hu_drift"], h)
            per_frame[t] = max(per_frame[t], c / COLOUR_DRIFT, f / FILL_DRIFT, h)
        for k in worst:
            worst[k] = max(worst[k], drift[k])
        areas = [b.area for _, b in tr["blobs"]]
        summary.append(
            {
                "frames": len(tr["blobs"]),
                "first_frame": times[0],
                "colour": [rounded(v, 1) for v in ref_colour],
                "fill": None if ref_fill is None else rounded(ref_fill),
                "area_ratio": rounded(max(areas) / max(min(areas), 1e-6)),
                **{k: rounded(v) for k, v in drift.items()},
            }
        )
    value = max(worst["colour_drift"] / COLOUR_DRIFT, worst["fill_drift"] / FILL_DRIFT, worst["hu_drift"])
    return measure_result(
        value,
        1.0,
        value > 1.0,
        "subject_consistency",
        per_frame,
        **{k: rounded(v) for k, v in worst.items()},
        thresholds={"colour_drift": COLOUR_DRIFT, "fill_drift": FILL_DRIFT, "hu_drift": 1.0},
        tracks=summary,
        uniform_background=True,
    )


def _median3(x: np.ndarray) -> np.ndarray:
    """Running median over 3 frames: one noisy frame is not drift; a trend still is."""
    return np.stack([np.median(x[max(0, i - 1) : i + 2], axis=0) for i in range(len(x))])


def _border_uniformity(frames: np.ndarray, borders: np.ndarray) -> bool:
    """Whether most border pixels sit near their median: a flat background to measure on."""
    near = []
    for f, b in zip(frames, borders, strict=True):
        edge = np.concatenate([f[0], f[-1], f[:, 0], f[:, -1]])
        near.append(float((np.linalg.norm(edge - b, axis=-1) < FOREGROUND_DISTANCE / 2).mean()))
    return float(np.median(near)) > 0.8


def _blob_distance(a: _Blob, b: _Blob) -> float:
    """< 1 when b can be the same object as a one frame later."""
    colour = float(np.linalg.norm(a.colour - b.colour)) / 60.0
    place = math.hypot(a.cx - b.cx, a.cy - b.cy) / 0.25
    return colour + place
