"""A training curve as a PNG: loss (log scale) and the validation score over steps."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from kinema.io import write_png

WIDTH, HEIGHT, MARGIN = 720, 400, 48
LOSS_COLOUR, SCORE_COLOUR, TEXT_COLOUR = (30, 60, 220), (245, 130, 20), (80, 80, 80)


def draw_text(canvas: np.ndarray, text: str, at: tuple[int, int], colour, scale: float = 0.45) -> None:
    """TEXT on an RGB canvas at AT (its baseline's left end), antialiased."""
    cv2.putText(canvas, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _curve(canvas, steps, values, x_range, colour, label: str, label_row: int) -> None:
    """One series, scaled to fill the plot's height, with its last value written above it."""
    if len(steps) >= 2:
        (x0, x1), lo, hi = x_range, min(values), max(values)
        hi = hi if hi > lo else lo + 1
        px = MARGIN + (np.asarray(steps, float) - x0) / max(x1 - x0, 1e-9) * (WIDTH - 2 * MARGIN)
        py = HEIGHT - MARGIN - (np.asarray(values, float) - lo) / (hi - lo) * (HEIGHT - 2 * MARGIN)
        pts = np.stack([px, py], axis=1).round().astype(np.int32)
        cv2.polylines(canvas, [pts], False, colour, 2, cv2.LINE_AA)
    draw_text(canvas, label, (MARGIN + 4, MARGIN + label_row), colour)


def plot_curves(
    path: str | os.PathLike,
    loss: list[tuple[int, float]],
    score: list[tuple[int, float]],
    score_name: str,
    title: str,
) -> None:
    """Draw loss (blue, log scale) and `score_name` (orange) against step."""
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    cv2.rectangle(canvas, (MARGIN, MARGIN), (WIDTH - MARGIN, HEIGHT - MARGIN), (200, 200, 200), 1)
    steps = [s for s, _ in loss] + [s for s, _ in score]
    if steps:
        x_range = (min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1)
        if loss:
            logs = [math.log10(max(v, 1e-12)) for _, v in loss]
            _curve(canvas, [s for s, _ in loss], logs, x_range, LOSS_COLOUR, f"loss {loss[-1][1]:.4g}", 16)
        if score:
            label = f"{score_name} {score[-1][1]:.4g}"
            _curve(canvas, [s for s, _ in score], [v for _, v in score], x_range, SCORE_COLOUR, label, 34)
        draw_text(canvas, f"step {x_range[0]}..{x_range[1]}", (MARGIN, HEIGHT - 16), TEXT_COLOUR)
    draw_text(canvas, title, (MARGIN, 30), (0, 0, 0), 0.55)
    write_png(canvas, path)
