"""The QA report as one PNG: a contact sheet of frames and a small curve per measure."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from kinema.io import Video, write_png
from kinema.metrics import temporal

SHEET_FRAMES = 16  # frames shown on the contact sheet, evenly spaced
CELL_WIDTH = 160
PANEL = (360, 76)  # width, height of one metric's curve
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK, GRID, RED, GREEN, BLUE = (235, 235, 235), (70, 70, 70), (235, 70, 70), (90, 200, 110), (110, 160, 255)
BACKDROP = (24, 24, 28)
# the per_frame curve of each measure is in these units; the line marks its threshold
CURVE_THRESHOLD = {
    "background_flicker": temporal.FLICKER_LEVEL,
    "warping_error": temporal.WARP_ERROR,
    "identity_drift": 1.0,
    "motion_smoothness": temporal.JERK,
    "dynamic_degree": 1.0,
    "cut_detection": temporal.CUT_RATIO,
    "frame_order": temporal.ORDER_GAIN,
}


def draw_report(video: Video, qa_result: dict, path: str | os.PathLike) -> Path:
    """Draw the QA report of `video` (the dict `qa` returned) as a PNG at `path`.

    Left: up to SHEET_FRAMES frames in a grid, numbered, a red bar under frames that
    start a new shot. Right: one curve per measure over the clip's frames with its
    threshold dashed, its value and whether it flagged (red). Written atomically.
    """
    sheet = _contact_sheet(video, set(qa_result["metrics"].get("cut_detection", {}).get("cut_frames", [])))
    panels = [_panel(name, m, video.num_frames) for name, m in qa_result["metrics"].items()]
    curves = np.concatenate(panels, axis=0) if panels else np.zeros((0, PANEL[0], 3), np.uint8)
    header = _header(qa_result, sheet.shape[1] + curves.shape[1] + 12)
    height = max(sheet.shape[0], curves.shape[0])
    body = np.full((height, header.shape[1], 3), BACKDROP, np.uint8)
    body[: sheet.shape[0], : sheet.shape[1]] = sheet
    body[: curves.shape[0], sheet.shape[1] + 12 :] = curves
    return write_png(np.concatenate([header, body], axis=0), path)


def _contact_sheet(video: Video, cut_frames: set[int]) -> np.ndarray:
    t = video.num_frames
    picks = sorted(set(np.linspace(0, t - 1, min(t, SHEET_FRAMES)).round().astype(int).tolist()))
    cols = min(len(picks), 4)
    rows = math.ceil(len(picks) / cols)
    cell_w = CELL_WIDTH
    cell_h = max(8, round(CELL_WIDTH * video.height / video.width))
    label = 16
    sheet = np.full((rows * (cell_h + label + 6), cols * (cell_w + 6), 3), BACKDROP, np.uint8)
    for k, i in enumerate(picks):
        r, c = divmod(k, cols)
        y, x = r * (cell_h + label + 6), c * (cell_w + 6)
        interp = cv2.INTER_AREA if video.width > cell_w else cv2.INTER_NEAREST
        sheet[y : y + cell_h, x : x + cell_w] = cv2.resize(
            video.frames[i], (cell_w, cell_h), interpolation=interp
        )
        cv2.putText(sheet, f"frame {i}", (x + 2, y + cell_h + 12), FONT, 0.4, INK, 1, cv2.LINE_AA)
        if i in cut_frames:
            cv2.rectangle(sheet, (x, y + cell_h + 14), (x + cell_w - 1, y + cell_h + 15), RED, -1)
    return sheet


def _panel(name: str, metric: dict, t: int) -> np.ndarray:
    w, h = PANEL
    img = np.full((h, w, 3), BACKDROP, np.uint8)
    flagged = metric.get("flag", False)
    title = f"{name}  {metric.get('value')}  ({metric.get('vbench', '')})"
    cv2.putText(img, title[:58], (4, 12), FONT, 0.36, RED if flagged else INK, 1, cv2.LINE_AA)
    values = np.asarray(metric.get("per_frame", []), np.float64)
    x0, x1, y0, y1 = 6, w - 6, 18, h - 6
    cv2.rectangle(img, (x0, y0), (x1, y1), GRID, 1)
    threshold = CURVE_THRESHOLD.get(name)
    top = max(float(values.max(initial=0.0)), (threshold or 0) * 1.5, 1e-6)

    def to_px(i: int, v: float) -> tuple[int, int]:
        # steps t → t+1 sit between their frames; per-frame values on them
        offset = 0.5 if len(values) == t - 1 else 0.0
        x = x0 + (x1 - x0) * (i + offset) / max(t - 1, 1)
        return round(x), round(y1 - (y1 - y0) * min(v, top) / top)

    if threshold is not None:
        y = to_px(0, threshold)[1]
        for x in range(x0, x1, 8):
            cv2.line(img, (x, y), (min(x + 4, x1), y), RED, 1)
    points = [to_px(i, v) for i, v in enumerate(values)]
    colour = RED if flagged else (GREEN if name != "dynamic_degree" else BLUE)
    for p, q in zip(points, points[1:], strict=False):
        cv2.line(img, p, q, colour, 1, cv2.LINE_AA)
    for p in points:
        cv2.circle(img, p, 1, colour, -1)
    return img


def _header(qa_result: dict, width: int) -> np.ndarray:
    img = np.full((40, width, 3), BACKDROP, np.uint8)
    w, h = qa_result.get("size", ["?", "?"])
    flags = ", ".join(qa_result.get("flags", [])) or "none"
    line = f"kinema qa  {qa_result.get('frames')} frames  {w}x{h}  {qa_result.get('fps')} fps  flags: {flags}"
    cv2.putText(img, line[:120], (6, 15), FONT, 0.42, RED if qa_result.get("flags") else INK, 1, cv2.LINE_AA)
    world = qa_result.get("world")
    if world is not None:
        verdict = "pass" if world["pass"] else "fail: " + "; ".join(world["reasons"])
        text = f"world check ({qa_result.get('prompt', '')}): {verdict}"
        cv2.putText(img, text[:140], (6, 32), FONT, 0.38, GREEN if world["pass"] else RED, 1, cv2.LINE_AA)
    return img
