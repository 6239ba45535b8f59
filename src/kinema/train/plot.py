"""A training curve as a PNG: loss (log scale) and the validation score over steps."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from kinema.io import write_png

WIDTH, HEIGHT, MARGIN = 720, 400, 48


def _polyline(canvas, xs, ys, x_range, y_range, colour):
    if len(xs) < 2:
        return
    (x0, x1), (y0, y1) = x_range, y_range
    px = MARGIN + (np.asarray(xs, float) - x0) / max(x1 - x0, 1e-9) * (WIDTH - 2 * MARGIN)
    py = HEIGHT - MARGIN - (np.asarray(ys, float) - y0) / max(y1 - y0, 1e-9) * (HEIGHT - 2 * MARGIN)
    pts = np.stack([px, py], axis=1).round().astype(np.int32)
    cv2.polylines(canvas, [pts], False, colour, 2, cv2.LINE_AA)


def plot_curves(
    path: str | os.PathLike,
    loss: list[tuple[int, float]],
    score: list[tuple[int, float]],
    score_name: str,
    title: str,
) -> None:
    """Draw loss (blue, log scale, left) and `score_name` (orange, right) against step."""
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    cv2.rectangle(canvas, (MARGIN, MARGIN), (WIDTH - MARGIN, HEIGHT - MARGIN), (200, 200, 200), 1)
    steps = [s for s, _ in loss] + [s for s, _ in score]
    if steps:
        x_range = (min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1)
        if loss:
            logs = [math.log10(max(v, 1e-12)) for _, v in loss]
            lo, hi = min(logs), max(logs)
            _polyline(
                canvas, [s for s, _ in loss], logs, x_range, (lo, hi if hi > lo else lo + 1), (30, 60, 220)
            )
            cv2.putText(
                canvas,
                f"loss {loss[-1][1]:.4g}",
                (MARGIN + 4, MARGIN + 16),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                (30, 60, 220),
                1,
                cv2.LINE_AA,
            )
        if score:
            vals = [v for _, v in score]
            lo, hi = min(vals), max(vals)
            _polyline(
                canvas, [s for s, _ in score], vals, x_range, (lo, hi if hi > lo else lo + 1), (245, 130, 20)
            )
            cv2.putText(
                canvas,
                f"{score_name} {score[-1][1]:.4g}",
                (MARGIN + 4, MARGIN + 34),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                (245, 130, 20),
                1,
                cv2.LINE_AA,
            )
        cv2.putText(
            canvas,
            f"step {x_range[0]}..{x_range[1]}",
            (MARGIN, HEIGHT - 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (80, 80, 80),
            1,
            cv2.LINE_AA,
        )
    cv2.putText(canvas, title, (MARGIN, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    write_png(canvas, path)
