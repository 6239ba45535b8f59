"""Appearance over time: does the picture flicker, and does each step follow from the last
by motion alone? (VBench "temporal flickering".)"""

from __future__ import annotations

import numpy as np

from kinema.io import Video
from kinema.metrics.analysis import Analysis, as_analysis, kept_steps, measure_result, rounded

__all__ = ["BORDER_JUMP", "FLICKER_LEVEL", "WARP_ERROR", "background_flicker", "warping_error"]

FLICKER_LEVEL = 5.0  # background flicker: median motion-compensated colour change per step
BORDER_JUMP = 12.0  # background flicker: border colour change between consecutive frames
WARP_ERROR = 5.0  # warping error: mean motion-compensated error of one step


def background_flicker(video: Video | Analysis) -> dict:
    """Background flicker — VBench "temporal flickering" (its static-background part).

    For each step t → t+1, frame t+1 is warped onto frame t by optical flow and the
    per-channel *median* of the difference is taken: moving things and occlusions are a
    minority of pixels, so the median is how the background itself changed (0 for a
    steady clip, the offset for a flickering one). Also the border colour (median of the
    outermost pixels) is tracked: its largest step-to-step jump and its drift from the
    clip's median. value = largest median change (levels); flag when it exceeds
    FLICKER_LEVEL or the border jumps by more than BORDER_JUMP in one step.
    """
    a = as_analysis(video)
    warped, masks = a.compensated
    per_step = np.zeros(len(warped))
    for i in kept_steps(a):
        m = masks[i] if masks[i].mean() > 0.25 else np.ones_like(masks[i])
        diff = warped[i][m] - a.frames[i][m]
        per_step[i] = float(np.abs(np.median(diff, axis=0)).max())
    b = a.borders
    jumps = np.zeros(max(len(b) - 1, 0))
    for i in kept_steps(a):
        jumps[i] = np.abs(b[i + 1] - b[i]).max()
    drift = float(np.abs(b - np.median(b, axis=0)).max()) if len(b) else 0.0
    value = float(per_step.max(initial=0.0))
    border_jump = float(jumps.max(initial=0.0))
    return measure_result(
        value,
        FLICKER_LEVEL,
        value > FLICKER_LEVEL or border_jump > BORDER_JUMP,
        "temporal_flickering",
        per_step,
        border_jump=rounded(border_jump),
        border_jump_threshold=BORDER_JUMP,
        border_drift=rounded(drift),
    )


def warping_error(video: Video | Analysis) -> dict:
    """Warping error — VBench "temporal flickering" / "motion smoothness" style.

    Frame t+1 is warped back onto frame t with DIS optical flow; the error is the mean
    absolute RGB difference over pixels whose flow is forward-backward consistent (so
    occlusions do not count). A clip that only moves warps almost exactly; flicker,
    popping and smearing do not. value = the worst step (levels); flag above WARP_ERROR.
    """
    a = as_analysis(video)
    warped, masks = a.compensated
    per_step = np.zeros(len(warped))
    for i in kept_steps(a):
        m = masks[i] if masks[i].mean() > 0.25 else np.ones_like(masks[i])
        per_step[i] = float(np.abs(warped[i][m] - a.frames[i][m]).mean())
    value = float(per_step.max(initial=0.0))
    return measure_result(
        value,
        WARP_ERROR,
        value > WARP_ERROR,
        "temporal_flickering (warping error)",
        per_step,
        mean=rounded(per_step.mean() if len(per_step) else 0.0),
    )
