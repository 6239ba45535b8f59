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

`qa(video, prompt=None)` runs them all (and the shapes-world checker for a world prompt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from kinema.io import Video

ANALYSIS_SIDE = 256  # longer side (pixels) frames are analysed at
THUMB_SIDE = 64  # longer side of the blurred thumbnails used for appearance distances

# Thresholds (levels are 0..255 sRGB units; see each measure's docstring).
FLICKER_LEVEL = 5.0  # background flicker: median motion-compensated colour change per step
BORDER_JUMP = 12.0  # background flicker: border colour change between consecutive frames
WARP_ERROR = 5.0  # warping error: mean motion-compensated error of one step
COLOUR_DRIFT = 30.0  # identity drift: an object's core colour moves this far from its start
FILL_DRIFT = 0.10  # identity drift: an object's fill ratio changes by this much
HU_DRIFT = (0.02, 0.0012)  # identity drift: change of an object's first two Hu moments
JERK = 1.7  # motion smoothness: second-largest acceleration / median speed
REVERSAL_COS = -0.3  # frame order: consecutive motion fields this anti-aligned reverse
ORDER_GAIN = 1.8  # frame order: path shortened by one swap, in median steps
ORDER_WINDOW = 12  # frame order: farthest swap considered (frames)
CUT_RATIO = 4.0  # cut detection: jump / median step
CUT_MIN = 1.5  # cut detection: smallest jump (mean level change of blurred thumbnails)
CUT_CONTEXT = 4  # cut detection: frames either side that must all differ across the jump
DYNAMIC_FLOW = 6.0 / 256  # dynamic degree: VBench's 6 px at 256 px, as a fraction of the short side
DYNAMIC_MIN = 0.10  # dynamic degree: a clip with fewer moving steps is static
STATIC_FLOW = 0.05  # dynamic degree: a step whose 99.5th-percentile flow is below this (px) moves not at all
MOVING_FLOW = 0.25  # pixels (analysis scale) of flow that count as motion
FOREGROUND_DISTANCE = 40.0  # colour distance from the background that makes foreground
MIN_OBJECT_PX = 12.0  # smaller foreground regions are noise (analysis scale, Σα)
MEASURABLE_PX = 48.0  # smaller objects are followed but their colour and shape not judged
MOTION_FLOOR = 0.25  # px RMS of blurred flow: motion below this is too faint to judge for jerks
SEAM_RATIO = 1.5  # the extension seam rule: a seam step ≤ 1.5 × the median inner step
SEAM_FLOOR = 1.0  # levels: inner steps count as at least this (a mean step no one sees), so a still clip's seam is not judged on noise


# ---------------------------------------------------------------- shared analysis


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
        kept = _kept_steps(self)
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


def _analysis(video: Video | Analysis) -> Analysis:
    return video if isinstance(video, Analysis) else Analysis(video)


def _r(x: float, digits: int = 3) -> float:
    return round(float(x), digits)


def _result(value, threshold, flag, vbench, per_frame, **details) -> dict:
    return {
        "value": _r(value),
        "threshold": threshold,
        "flag": bool(flag),
        "vbench": vbench,
        "per_frame": [_r(v) for v in per_frame],
        **details,
    }


def _kept_steps(a: Analysis) -> list[int]:
    """Steps t → t+1 inside one shot (cuts are judged by cut_detection, not as flicker)."""
    return [i for i in range(a.video.num_frames - 1) if i not in a.cut_steps]


# ---------------------------------------------------------------- the measures


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
    a = _analysis(video)
    warped, masks = a.compensated
    per_step = np.zeros(len(warped))
    for i in _kept_steps(a):
        m = masks[i] if masks[i].mean() > 0.25 else np.ones_like(masks[i])
        diff = warped[i][m] - a.frames[i][m]
        per_step[i] = float(np.abs(np.median(diff, axis=0)).max())
    b = a.borders
    jumps = np.zeros(max(len(b) - 1, 0))
    for i in _kept_steps(a):
        jumps[i] = np.abs(b[i + 1] - b[i]).max()
    drift = float(np.abs(b - np.median(b, axis=0)).max()) if len(b) else 0.0
    value = float(per_step.max(initial=0.0))
    border_jump = float(jumps.max(initial=0.0))
    return _result(
        value,
        FLICKER_LEVEL,
        value > FLICKER_LEVEL or border_jump > BORDER_JUMP,
        "temporal_flickering",
        per_step,
        border_jump=_r(border_jump),
        border_jump_threshold=BORDER_JUMP,
        border_drift=_r(drift),
    )


def warping_error(video: Video | Analysis) -> dict:
    """Warping error — VBench "temporal flickering" / "motion smoothness" style.

    Frame t+1 is warped back onto frame t with DIS optical flow; the error is the mean
    absolute RGB difference over pixels whose flow is forward-backward consistent (so
    occlusions do not count). A clip that only moves warps almost exactly; flicker,
    popping and smearing do not. value = the worst step (levels); flag above WARP_ERROR.
    """
    a = _analysis(video)
    warped, masks = a.compensated
    per_step = np.zeros(len(warped))
    for i in _kept_steps(a):
        m = masks[i] if masks[i].mean() > 0.25 else np.ones_like(masks[i])
        per_step[i] = float(np.abs(warped[i][m] - a.frames[i][m]).mean())
    value = float(per_step.max(initial=0.0))
    return _result(
        value,
        WARP_ERROR,
        value > WARP_ERROR,
        "temporal_flickering (warping error)",
        per_step,
        mean=_r(per_step.mean() if len(per_step) else 0.0),
    )


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
    a = _analysis(video)
    t_total = a.video.num_frames
    borders = a.borders
    uniform = _border_uniformity(a.frames, borders)
    empty = dict(colour_drift=0.0, fill_drift=0.0, hu_drift=0.0, tracks=[], uniform_background=uniform)
    if not uniform:
        return _result(0.0, 1.0, False, "subject_consistency", [0.0] * t_total, **empty)
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
                "colour": [_r(v, 1) for v in ref_colour],
                "fill": None if ref_fill is None else _r(ref_fill),
                "area_ratio": _r(max(areas) / max(min(areas), 1e-6)),
                **{k: _r(v) for k, v in drift.items()},
            }
        )
    value = max(worst["colour_drift"] / COLOUR_DRIFT, worst["fill_drift"] / FILL_DRIFT, worst["hu_drift"])
    return _result(
        value,
        1.0,
        value > 1.0,
        "subject_consistency",
        per_frame,
        **{k: _r(v) for k, v in worst.items()},
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
    a = _analysis(video)
    fields, median, _ = a.motion
    per_step = np.zeros(len(fields))
    kept = set(_kept_steps(a))
    if median > MOVING_FLOW / 10:
        unit = max(median, MOTION_FLOOR)
        for i in range(1, len(fields)):
            if i in kept and i - 1 in kept:
                per_step[i] = np.sqrt(((fields[i] - fields[i - 1]) ** 2).sum(-1).mean()) / unit
    value = float(np.sort(per_step)[-2]) if len(per_step) >= 2 else 0.0
    return _result(
        value,
        JERK,
        value > JERK,
        "motion_smoothness",
        per_step,
        largest=_r(per_step.max(initial=0.0)),
        median_motion_px=_r(median / a.scale),
    )


def _reversals(a: Analysis) -> np.ndarray:
    """Per step t ≥ 1: True where the motion turns back or jerks against step t-1."""
    fields, median, sizes = a.motion
    out = np.zeros(len(fields), bool)
    if median <= MOVING_FLOW / 10:
        return out
    kept = set(_kept_steps(a))
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
    staying still" should be static): `qa` with a world prompt whose objects all stay
    still expects it, and then flags a clip that moves instead.
    """
    a = _analysis(video)
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
    return _result(
        value,
        DYNAMIC_MIN,
        len(per_step) > 0 and moving_fraction < DYNAMIC_MIN,
        "dynamic_degree",
        per_step / max(limit, 1e-6),
        flow_threshold_px=_r(limit / a.scale),
        moving_fraction=_r(moving_fraction),
        static=bool(len(per_step) > 0 and moving_fraction < DYNAMIC_MIN),
    )


def _thumb_distance(thumbs: np.ndarray, i: int, j: int) -> float:
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
    a = _analysis(video)
    th = a.thumbs
    t_total = len(th)
    steps = np.array([_thumb_distance(th, i, i + 1) for i in range(t_total - 1)])
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
            closest = min(_thumb_distance(th, p, q) for p in before for q in after)
            settled = max(steps[i - 1], steps[i + 1]) < 0.5 * steps[i]
            if closest > 0.5 * steps[i] and settled:
                cuts.append(int(i))
        per_step = steps / median
    else:
        per_step = steps
    return _result(
        len(cuts),
        1,
        bool(cuts),
        "none: shot boundaries (VBench assumes one shot)",
        per_step,
        cuts=cuts,
        cut_frames=[c + 1 for c in cuts],
        histogram_distance=[_r(v) for v in hist_steps],
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
    a = _analysis(video)
    th = a.thumbs
    n = len(th)
    if n < 3:
        return _result(0.0, ORDER_GAIN, False, "temporal_consistency (frame order)", [0.0] * n, suspect=None)
    band = ORDER_WINDOW + 2
    dist = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(i, min(n, i + band + 1)):
            dist[i, j] = dist[j, i] = _thumb_distance(th, i, j)
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
    return _result(
        best,
        ORDER_GAIN,
        best > ORDER_GAIN or most >= 2,
        "temporal_consistency (frame order)",
        per_frame,
        suspect=suspect,
        reversals=[int(i) for i in np.flatnonzero(turns)],
        most_reversals_in_window=most,
    )


# ---------------------------------------------------------------- all of them


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


def qa(video: Video, prompt: str | None = None) -> dict:
    """Run every temporal measure on `video`; JSON-ready.

    Returns {"frames", "size": [w, h], "fps", "metrics": {name: result}, "flags": [names
    that flagged], "vbench": {name: dimension}, "world": checker verdict or None}. With a
    shapes-world `prompt` the world checker's verdict is added, and a static clip is
    expected (not flagged) when every object of the prompt stays still. A prompt outside
    the world grammar is recorded with world None and a note; it is not an error.
    """
    from kinema.world import check, parse
    from kinema.world.grammar import PromptError

    a = Analysis(video)
    metrics = {name: fn(a) for name, fn in MEASURES.items()}
    result: dict = {
        "frames": video.num_frames,
        "size": [video.width, video.height],
        "fps": video.fps,
        "metrics": metrics,
        "world": None,
    }
    if prompt is not None:
        result["prompt"] = prompt
        try:
            scene = parse(prompt)
        except PromptError as e:
            result["world_note"] = f"not a shapes-world prompt, no world check: {e}"
        else:
            still = all(o.motion == "staying still" for o in scene.objects)
            dyn = metrics["dynamic_degree"]
            dyn["expected_static"] = still
            dyn["flag"] = dyn["static"] != still
            result["world"] = check(video.frames, scene)
    result["flags"] = [name for name, m in metrics.items() if m["flag"]]
    result["vbench"] = {name: m["vbench"] for name, m in metrics.items()}
    return result
