"""Motion over time: is it smooth, is there any, and are the frames in order? (VBench
"motion smoothness", "dynamic degree" and the frame-order side of "temporal consistency".)"""

from __future__ import annotations

import numpy as np

from kinema.io import Video
from kinema.metrics.analysis import (
    Analysis,
    as_analysis,
    kept_steps,
    measure_result,
    rounded,
    thumb_distance,
)

__all__ = [
    "DYNAMIC_FLOW",
    "DYNAMIC_MIN",
    "JERK",
    "MOTION_FLOOR",
    "MOVING_FLOW",
    "ORDER_GAIN",
    "ORDER_WINDOW",
    "REVERSAL_COS",
    "STATIC_FLOW",
    "dynamic_degree",
    "frame_order",
    "motion_smoothness",
]

JERK = 1.7  # motion smoothness: second-largest acceleration / median speed
REVERSAL_COS = -0.3  # frame order: consecutive motion fields this anti-aligned reverse
ORDER_GAIN = 1.8  # frame order: path shortened by one swap, in median steps
ORDER_WINDOW = 12  # frame order: farthest swap considered (frames)
DYNAMIC_FLOW = 6.0 / 256  # dynamic degree: VBench's 6 px at 256 px, as a fraction of the short side
DYNAMIC_MIN = 0.10  # dynamic degree: a clip with fewer moving steps is static
STATIC_FLOW = 0.05  # dynamic degree: a step whose 99.5th-percentile flow is below this (px) moves not at all
MOVING_FLOW = 0.25  # pixels (analysis scale) of flow that count as motion
MOTION_FLOOR = 0.25  # px RMS of blurred flow: motion below this is too faint to judge for jerks


def motion_smoothness(video: Video | Analysis) -> dict:
    """Motion smoothness — VBench "motion_smoothness" (VBench asks a frame interpolator
    whether each frame fits between its neighbours; here, directly: is the motion free
    of jerks?).

    Each step's optical flow, blurred to object scale, is a motion field; the
    acceleration of a step is the RMS change of that field from the previous step,
    in units of the clip's median motion (at least MOTION_FLOOR px, so the sub-pixel
    jitter of barely moving clips is not read as jerks). One bounce (the shapes world's ping-pong turn,
    a ball hitting a wall) is allowed, so value = the *second*-largest acceleration;
    out-of-order, dropped or repeated frames jerk at least twice. Flag above JERK.
    Static clips have nothing to judge (value 0).
    """
    a = as_analysis(video)
    fields, median, _ = a.motion
    per_step = np.zeros(len(fields))
    kept = set(kept_steps(a))
    if median > MOVING_FLOW / 10:
        unit = max(median, MOTION_FLOOR)
        for i in range(1, len(fields)):
            if i in kept and i - 1 in kept:
                per_step[i] = np.sqrt(((fields[i] - fields[i - 1]) ** 2).sum(-1).mean()) / unit
    value = float(np.sort(per_step)[-2]) if len(per_step) >= 2 else 0.0
    return measure_result(
        value,
        JERK,
        value > JERK,
        "motion_smoothness",
        per_step,
        largest=rounded(per_step.max(initial=0.0)),
        median_motion_px=rounded(median / a.scale),
    )


def _reversals(a: Analysis) -> np.ndarray:
    """Per step t ≥ 1: True where the motion turns back or jerks against step t-1."""
    fields, median, sizes = a.motion
    out = np.zeros(len(fields), bool)
    if median <= MOVING_FLOW / 10:
        return out
    kept = set(kept_steps(a))
    for i in range(1, len(fields)):
        if i not in kept or i - 1 not in kept:
            continue
        unit = max(median, MOTION_FLOOR)
        if min(sizes[i], sizes[i - 1]) < 0.3 * unit:
            continue
        f0, f1 = fields[i - 1], fields[i]
        cos = float((f0 * f1).sum() / (np.sqrt((f0**2).sum() * (f1**2).sum()) + 1e-9))
        jerk = np.sqrt(((f1 - f0) ** 2).sum(-1).mean()) / unit
        out[i] = cos < REVERSAL_COS or jerk > JERK
    return out


def dynamic_degree(video: Video | Analysis) -> dict:
    """Dynamic degree — VBench "dynamic_degree".

    value is VBench's figure: the fraction of steps whose largest 5 % flow magnitudes
    average more than 6 px at a 256-pixel short side (scaled to the clip) — how much of
    the clip shows large motion. The flag asks a plainer question: is the clip frozen?
    A step moves when its 99.5th-percentile flow exceeds STATIC_FLOW px; flag = fewer
    than DYNAMIC_MIN of the steps move. Static is not a defect in itself ("a square
    staying still" should be static): `qa(video, expect_static=True)` (what
    studio.qa.clip_qa asks for a world prompt whose objects all stay still) expects it,
    and then flags a clip that moves instead.
    """
    a = as_analysis(video)
    fwd, _ = a.flows
    h, w = a.frames.shape[1:3]
    limit = DYNAMIC_FLOW * min(h, w)
    per_step = np.zeros(len(fwd))
    moving = np.zeros(len(fwd), bool)
    for i in range(len(fwd)):
        mag = np.linalg.norm(fwd[i], axis=-1).ravel()
        k = max(1, int(0.05 * mag.size))
        per_step[i] = np.partition(mag, -k)[-k:].mean()
        moving[i] = np.percentile(mag, 99.5) > STATIC_FLOW
    value = float((per_step > limit).mean()) if len(per_step) else 0.0
    moving_fraction = float(moving.mean()) if len(moving) else 0.0
    return measure_result(
        value,
        DYNAMIC_MIN,
        len(per_step) > 0 and moving_fraction < DYNAMIC_MIN,
        "dynamic_degree",
        per_step / max(limit, 1e-6),
        flow_threshold_px=rounded(limit / a.scale),
        moving_fraction=rounded(moving_fraction),
        static=bool(len(per_step) > 0 and moving_fraction < DYNAMIC_MIN),
    )


def frame_order(video: Video | Analysis) -> dict:
    """Frame order — VBench "temporal consistency" of motion: are the frames in order?

    Two views of the same question. (1) A clip in order walks a short path through
    appearance space; swapped frames make it zigzag. With d the appearance distance of
    blurred thumbnails, the path length is Σ d(t, t+1); value = the most any single swap
    of two frames (at most ORDER_WINDOW apart) shortens it, in median steps ("suspect"
    names that swap). (2) Motion direction: a step whose blurred flow field turns back
    against the previous one (cosine below REVERSAL_COS) or jerks (see
    motion_smoothness) is a reversal. One reversal is a bounce (the ping-pong turn,
    where a swap can gain about one step); frames out of order make two or more close
    together. Flag when the gain exceeds ORDER_GAIN or ORDER_WINDOW frames hold two
    reversals.
    """
    a = as_analysis(video)
    th = a.thumbs
    n = len(th)
    if n < 3:
        return measure_result(
            0.0, ORDER_GAIN, False, "temporal_consistency (frame order)", [0.0] * n, suspect=None
        )
    band = ORDER_WINDOW + 2
    dist = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(i, min(n, i + band + 1)):
            dist[i, j] = dist[j, i] = thumb_distance(th, i, j)
    steps = np.array([dist[i, i + 1] for i in range(n - 1)])
    median = max(float(np.median(steps)), 0.25)
    order = np.arange(n)

    def path(seq) -> float:
        return float(sum(dist[seq[k], seq[k + 1]] for k in range(len(seq) - 1)))

    best, suspect = 0.0, None
    per_frame = np.zeros(n)
    for i in range(n):
        for j in range(i + 1, min(n, i + ORDER_WINDOW + 1)):
            lo, hi = max(0, i - 1), min(n, j + 2)
            seg = order[lo:hi].copy()
            before = path(seg)
            seg[i - lo], seg[j - lo] = seg[j - lo], seg[i - lo]
            gain = (before - path(seg)) / median
            per_frame[i] = max(per_frame[i], gain)
            per_frame[j] = max(per_frame[j], gain)
            if gain > best:
                best, suspect = gain, [i, j]
    turns = _reversals(a)
    most = max((int(turns[i : i + ORDER_WINDOW].sum()) for i in range(len(turns))), default=0)
    return measure_result(
        best,
        ORDER_GAIN,
        best > ORDER_GAIN or most >= 2,
        "temporal_consistency (frame order)",
        per_frame,
        suspect=suspect,
        reversals=[int(i) for i in np.flatnonzero(turns)],
        most_reversals_in_window=most,
    )
