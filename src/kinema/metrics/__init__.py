"""Temporal QA measures as pure functions of a Video, and their PNG report."""

from kinema.metrics.report import draw_report
from kinema.metrics.temporal import (
    MEASURES,
    background_flicker,
    cut_detection,
    dynamic_degree,
    frame_order,
    identity_drift,
    motion_smoothness,
    qa,
    warping_error,
)

__all__ = [
    "MEASURES",
    "background_flicker",
    "cut_detection",
    "draw_report",
    "dynamic_degree",
    "frame_order",
    "identity_drift",
    "motion_smoothness",
    "qa",
    "warping_error",
]
