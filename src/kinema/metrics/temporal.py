"""Temporal QA: how a clip fails over time, as pure functions of a Video.

Each measure mirrors one of VBench's temporal dimensions (named in its docstring and in
its result under "vbench"), is computed without any learned model (OpenCV's DIS optical
flow, histograms, image moments), and returns a JSON-ready dict:

    {"value": float, "threshold": float, "flag": bool, "vbench": str,
     "per_frame": [...], ...details}

`flag` is True when the clip shows the defect the measure looks for. The thresholds are
set on rendered shapes-world clips against the same clips with injected flicker, frame
shuffles, colour drift, shape morphs, cuts and freezes (tests/metrics/test_temporal.py
measures the separation), and every measure works on any clip of any size: frames are
analysed at most ANALYSIS_SIDE pixels on their longer side.

The measures live by family: analysis.py (the shared analysis and cut detection),
appearance.py (flicker, warping error), identity.py (identity drift) and motion.py
(smoothness, dynamic degree, frame order); their names are importable from here.
`qa(video)` runs them all. It knows nothing of prompts: whoever knows what the clip
should show (kinema.qa.clip_qa adds the shapes-world checker's verdict) says
whether a static clip is expected.
"""

from __future__ import annotations

import numpy as np

from kinema.io import Video
from kinema.metrics.analysis import (
    ANALYSIS_SIDE,
    CUT_CONTEXT,
    CUT_MIN,
    CUT_RATIO,
    THUMB_SIDE,
    Analysis,
    cut_detection,
)
from kinema.metrics.appearance import (
    BORDER_JUMP,
    FLICKER_LEVEL,
    WARP_ERROR,
    background_flicker,
    warping_error,
)
from kinema.metrics.identity import (
    COLOUR_DRIFT,
    FILL_DRIFT,
    FOREGROUND_DISTANCE,
    HU_DRIFT,
    MEASURABLE_PX,
    MIN_OBJECT_PX,
    identity_drift,
)
from kinema.metrics.motion import (
    DYNAMIC_FLOW,
    DYNAMIC_MIN,
    JERK,
    MOTION_FLOOR,
    MOVING_FLOW,
    ORDER_GAIN,
    ORDER_WINDOW,
    REVERSAL_COS,
    STATIC_FLOW,
    dynamic_degree,
    frame_order,
    motion_smoothness,
)

__all__ = [
    "ANALYSIS_SIDE",
    "BORDER_JUMP",
    "COLOUR_DRIFT",
    "CUT_CONTEXT",
    "CUT_MIN",
    "CUT_RATIO",
    "DYNAMIC_FLOW",
    "DYNAMIC_MIN",
    "FILL_DRIFT",
    "FLICKER_LEVEL",
    "FOREGROUND_DISTANCE",
    "HU_DRIFT",
    "JERK",
    "MEASURABLE_PX",
    "MEASURES",
    "MIN_OBJECT_PX",
    "MOTION_FLOOR",
    "MOVING_FLOW",
    "ORDER_GAIN",
    "ORDER_WINDOW",
    "REVERSAL_COS",
    "SEAM_FLOOR",
    "SEAM_RATIO",
    "STATIC_FLOW",
    "THUMB_SIDE",
    "WARP_ERROR",
    "Analysis",
    "background_flicker",
    "cut_detection",
    "dynamic_degree",
    "frame_differences",
    "frame_order",
    "identity_drift",
    "motion_smoothness",
    "qa",
    "seam_ratio",
    "warping_error",
]

SEAM_RATIO = 1.5  # the extension seam rule: a seam step ≤ 1.5 × the median inner step
SEAM_FLOOR = 1.0  # levels: inner steps count as at least this (a mean step no one sees), so a still clip's seam is not judged on noise


def frame_differences(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference (levels) of each step t → t+1 of uint8 frames: (T-1,)."""
    return np.array(
        [
            np.abs(frames[t + 1].astype(np.int16) - frames[t].astype(np.int16)).mean()
            for t in range(len(frames) - 1)
        ]
    )


def seam_ratio(across: float, inner: np.ndarray | list[float]) -> tuple[float, float]:
    """The extension seam rule's measure, shared by generation QA, storyboards and
    `kinema eval --modes`: the step `across` a seam over the median of the clip's `inner`
    steps (at least SEAM_FLOOR). Returns (ratio, the median used); the seam is invisible
    when ratio ≤ SEAM_RATIO."""
    median = max(float(np.median(inner)) if len(inner) else 0.0, SEAM_FLOOR)
    return float(across) / median, median


MEASURES = {
    "background_flicker": background_flicker,
    "warping_error": warping_error,
    "identity_drift": identity_drift,
    "motion_smoothness": motion_smoothness,
    "dynamic_degree": dynamic_degree,
    "cut_detection": cut_detection,
    "frame_order": frame_order,
}


def qa(video: Video, *, expect_static: bool | None = None) -> dict:
    """Run every temporal measure on `video`; JSON-ready.

    Returns {"frames", "size": [w, h], "fps", "metrics": {name: result}, "flags": [names
    that flagged], "vbench": {name: dimension}}. A static clip is flagged by
    dynamic_degree unless `expect_static` says one is expected: True (the prompt's
    objects all stay still) flags a clip that moves instead, False flags a static one;
    either way dynamic_degree records it as "expected_static". None leaves the measure's
    own verdict.
    """
    a = Analysis(video)
    metrics = {name: fn(a) for name, fn in MEASURES.items()}
    if expect_static is not None:
        dyn = metrics["dynamic_degree"]
        dyn["expected_static"] = bool(expect_static)
        dyn["flag"] = dyn["static"] != bool(expect_static)
    return {
        "frames": video.num_frames,
        "size": [video.width, video.height],
        "fps": video.fps,
        "metrics": metrics,
        "flags": [name for name, m in metrics.items() if m["flag"]],
        "vbench": {name: m["vbench"] for name, m in metrics.items()},
    }
