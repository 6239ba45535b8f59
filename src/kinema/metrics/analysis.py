"""What the temporal measures share: the clip analysed once (small float frames, thumbnails,
optical flow, motion fields, border colours, shot boundaries), and the form of a result.

A measure takes a Video or an Analysis: `qa` builds one Analysis and hands it to every
measure, so the flow is computed once. Cut detection lives here because the others need
it: a cut is judged by cut_detection, never as flicker or a jerk (`kept_steps`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from kinema.io import Video

__all__ = [
    "ANALYSIS_SIDE",
    "CUT_CONTEXT",
    "CUT_MIN",
    "CUT_RATIO",
    "THUMB_SIDE",
    "Analysis",
    "as_analysis",
    "cut_detection",
    "kept_steps",
    "measure_result",
    "rounded",
    "thumb_distance",
]

ANALYSIS_SIDE = 256  # longer side (pixels) frames are analysed at
THUMB_SIDE = 64  # longer side of the blurred thumbnails used for appearance distances
CUT_RATIO = 4.0  # cut detection: jump / median step
CUT_MIN = 1.5  # cut detection: smallest jump (mean level change of blurred thumbnails)
CUT_CONTEXT = 4  # cut detection: frames either side that must all differ across the jump


@dataclass
class Analysis:
    """What several measures share, computed once: small float frames, their flow.

    `frames` float32 (T, h, w, 3) at most ANALYSIS_SIDE on the longer side; `scale` the
    factor from the original size.
    """

    video: Video

    @cached_property
    def scale(self) -> float:
        return min(1.0, ANALYSIS_SIDE / max(self.video.height, self.video.width))

    @cached_property
    def frames(self) -> np.ndarray:
        return np.stack([_resize(f, self.scale) for f in self.video.frames]).astype(np.float32)

    @cached_property
    def thumbs(self) -> np.ndarray:
        """Blurred thumbnails (T, h, w, 3), float32: appearance without pixel detail."""
        s = min(1.0, THUMB_SIDE / max(self.video.height, self.video.width))
        small = np.stack([_resize(f, s) for f in self.video.frames]).astype(np.float32)
        sigma = max(small.shape[1:3]) / 40
        return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in small])

    @cached_property
    def gray(self) -> np.ndarray:
        """uint8 (T, h, w) that keeps colour edges: half luma, half distance from the
        clip's usual colour (a green shape on gray has almost no luma edge)."""
        f = self.frames
        luma = f @ np.array([0.299, 0.587, 0.114], np.float32)
        median = np.median(f.reshape(-1, 3)[:: max(1, f[..., 0].size // 20000)], axis=0)
        dist = np.linalg.norm(f - median, axis=-1) / math.sqrt(3)
        return np.clip(0.5 * luma + 0.5 * dist, 0, 255).astype(np.uint8)

    @cached_property
    def flows(self) -> tuple[np.ndarray, np.ndarray]:
        """Forward (t → t+1) and backward (t+1 → t) flow, each (T-1, h, w, 2) pixels."""
        g = self.gray
        t, h, w = g.shape
        if t < 2:
            empty = np.zeros((0, h, w, 2), np.float32)
            return empty, empty
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        if min(h, w) < 48:  # DIS's default patches are too coarse for tiny frames
            dis.setPatchSize(6)
            dis.setPatchStride(3)
        fwd = np.stack([dis.calc(g[i], g[i + 1], None) for i in range(t - 1)])
        bwd = np.stack([dis.calc(g[i + 1], g[i], None) for i in range(t - 1)])
        return fwd, bwd

    @cached_property
    def compensated(self) -> tuple[np.ndarray, np.ndarray]:
        """Per step t: frame t+1 warped back onto frame t (T-1, h, w, 3) and a mask of the
        pixels where that is trustworthy (inside, forward-backward consistent)."""
        fwd, bwd = self.flows
        f = self.frames
        n = len(fwd)
        h, w = f.shape[1:3]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        warped = np.empty((n, h, w, 3), np.float32)
        masks = np.empty((n, h, w), bool)
        for i in range(n):
            mx, my = xs + fwd[i, ..., 0], ys + fwd[i, ..., 1]
            warped[i] = cv2.remap(f[i + 1], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            back = np.stack(
                [
                    cv2.remap(bwd[i, ..., k], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                    for k in (0, 1)
                ],
                -1,
            )
            round_trip = np.linalg.norm(fwd[i] + back, axis=-1)
            inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
            masks[i] = inside & (round_trip < 0.5 + 0.05 * np.linalg.norm(fwd[i], axis=-1))
        return warped, masks

    @cached_property
    def motion(self) -> tuple[np.ndarray, float, np.ndarray]:
        """Each step's flow blurred to object scale (so a moving thing's field overlaps
        its next step's), its RMS size, and the clip's median RMS size."""
        fwd, _ = self.flows
        if len(fwd) == 0:
            return fwd, 0.0, np.zeros(0)
        sigma = max(fwd.shape[1:3]) / 10
        fields = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in fwd])
        sizes = np.sqrt((fields**2).sum(-1).mean(axis=(1, 2)))
        kept = kept_steps(self)
        median = float(np.median(sizes[kept])) if kept else 0.0
        return fields, median, sizes

    @cached_property
    def borders(self) -> np.ndarray:
        """Median colour of each frame's one-pixel border, (T, 3)."""
        return np.stack([_border_pixels(f) for f in self.frames])

    @cached_property
    def cut_steps(self) -> set[int]:
        return set(cut_detection(self)["cuts"])


def _resize(frame: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return frame
    h, w = frame.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _border_pixels(frame: np.ndarray) -> np.ndarray:
    edge = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
    return np.median(edge, axis=0)


def as_analysis(video: Video | Analysis) -> Analysis:
    return video if isinstance(video, Analysis) else Analysis(video)


def rounded(x: float, digits: int = 3) -> float:
    return round(float(x), digits)


def measure_result(value, threshold, flag, vbench, per_frame, **details) -> dict:
    return {
        "value": rounded(value),
        "threshold": threshold,
        "flag": bool(flag),
        "vbench": vbench,
        "per_frame": [rounded(v) for v in per_frame],
        **details,
    }


def kept_steps(a: Analysis) -> list[int]:
    """Steps t → t+1 inside one shot (cuts are judged by cut_detection, not as flicker)."""
    return [i for i in range(a.video.num_frames - 1) if i not in a.cut_steps]


def thumb_distance(thumbs: np.ndarray, i: int, j: int) -> float:
    return float(np.abs(thumbs[i] - thumbs[j]).mean())


def cut_detection(video: Video | Analysis) -> dict:
    """Cut detection — VBench's temporal dimensions assume one shot; this finds where a
    clip jumps to another (PySceneDetect-style content detector).

    The appearance distance of blurred thumbnails between consecutive frames is compared
    with the clip's median step: a jump CUT_RATIO times the median (and at least CUT_MIN
    levels) is a cut if it persists, i.e. every frame up to CUT_CONTEXT before it still
    differs from every frame up to CUT_CONTEXT after it by half the jump (a flash or a
    flickering frame returns to what was there and is not a cut) and the steps either
    side are calm (both shots hold at least two frames). Also reported: the
    colour-histogram distance of each step. value = number of cuts; "cuts" lists the
    index of the first frame of each new shot minus one (step t → t+1 is cut t).
    flag when there is any cut.
    """
    a = as_analysis(video)
    th = a.thumbs
    t_total = len(th)
    steps = np.array([thumb_distance(th, i, i + 1) for i in range(t_total - 1)])
    hists = _histograms(a.frames)
    hist_steps = [float(0.5 * np.abs(hists[i + 1] - hists[i]).sum()) for i in range(t_total - 1)]
    cuts = []
    if len(steps):
        median = max(float(np.median(steps)), 0.25)
        for i in np.flatnonzero((steps > CUT_RATIO * median) & (steps > CUT_MIN)):
            before = range(max(0, i - CUT_CONTEXT + 1), i + 1)
            after = range(i + 1, min(t_total, i + 1 + CUT_CONTEXT))
            if i < 1 or i > t_total - 3:  # a one-frame shot at either end is a flash
                continue
            closest = min(thumb_distance(th, p, q) for p in before for q in after)
            settled = max(steps[i - 1], steps[i + 1]) < 0.5 * steps[i]
            if closest > 0.5 * steps[i] and settled:
                cuts.append(int(i))
        per_step = steps / median
    else:
        per_step = steps
    return measure_result(
        len(cuts),
        1,
        bool(cuts),
        "none: shot boundaries (VBench assumes one shot)",
        per_step,
        cuts=cuts,
        cut_frames=[c + 1 for c in cuts],
        histogram_distance=[rounded(v) for v in hist_steps],
    )


def _histograms(frames: np.ndarray) -> np.ndarray:
    bins = 8
    out = []
    for f in frames:
        q = np.clip(f, 0, 255).astype(np.int32) * bins // 256
        idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
        hist = np.bincount(idx.ravel(), minlength=bins**3).astype(np.float64)
        out.append(hist / hist.sum())
    return np.stack(out)
