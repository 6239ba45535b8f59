"""One frame of a shapes-world clip as connected regions, measured (WORLD.md's checker).

The background is the median of the border pixels; everything far enough from it is
foreground, split into connected regions. Each region is measured with sub-pixel accuracy
from its coverage α (how far each pixel lies from the background towards the region's own
solid colour), which anti-aliasing, blur and codecs leave nearly unchanged: area = Σα,
width = Σ over columns of the column's largest α (the silhouette), height likewise over
rows, so the fill ratio area / (width × height) tells circle (π/4), square (1) and
triangle (1/2) apart; each region is also compared with the ideal shapes of its area and
centroid (the template errors), which tells small or blurred shapes apart where the fill
ratio cannot. Specks that codecs leave (under MIN_REGION_PX pixels of coverage, or never
more than MIN_PEAK_ALPHA of the way to their colour) are not regions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from kinema.world.render import coverage
from kinema.world.scene import COLOURS

FOREGROUND_DISTANCE = 40.0  # RGB distance from the background that starts a region
COLOUR_RESIDUAL = 70.0  # farther than this from every bg→colour line: not a palette colour
MIN_REGION_PX = 4.0  # smaller regions are codec noise
MIN_PEAK_ALPHA = 0.5  # a region never more than half-way to its colour is a codec ghost
MEASURABLE_PX = 8.0  # shapes narrower than this are judged for presence and colour only
SHAPE_BLUR_PX = 1.0
FILL = {"triangle": 0.5, "circle": math.pi / 4, "square": 1.0}


@dataclass
class Region:
    """One connected foreground region of a frame, measured in pixels and fractions."""

    colour: str | None  # nearest palette colour, None when no palette colour is near
    rgb: tuple[float, float, float]
    area: float  # pixels (Σα)
    peak: float  # the largest coverage α in the region (1 for a solid object)
    cx: float  # centroid, fractions of width / height
    cy: float
    width: float  # pixels
    height: float
    shape_error: dict[str, float]  # Σ|α − ideal shape's coverage| / area, per shape

    @property
    def fill(self) -> float:
        return self.area / max(self.width * self.height, 1e-6)

    @property
    def measurable(self) -> bool:
        return max(self.width, self.height) >= MEASURABLE_PX

    @property
    def shape(self) -> str:
        return min(self.shape_error, key=self.shape_error.get)


def border_colour(frame: np.ndarray) -> np.ndarray:
    """Median colour of a frame's outermost pixel ring."""
    ring = np.concatenate([frame[0], frame[-1], frame[1:-1, 0], frame[1:-1, -1]])
    return np.median(ring.reshape(-1, 3), axis=0).astype(np.float32)


def nearest_colour(
    rgb: np.ndarray, background: np.ndarray, palette: dict[str, tuple[int, int, int]] | None = None
) -> tuple[str | None, float]:
    """The palette colour c whose mix line background→c passes nearest to `rgb` (PALETTE:
    name → RGB, WORLD.md v1's object colours when None)."""
    palette = COLOURS if palette is None else palette
    names = list(palette)
    axis = np.array(list(palette.values()), np.float32) - background  # (colours, 3)
    offset = rgb - background
    alpha = np.clip((axis @ offset) / np.maximum((axis * axis).sum(1), 1e-6), 0.0, 1.0)
    residual = np.linalg.norm(offset[None] - alpha[:, None] * axis, axis=1)
    k = int(residual.argmin())
    if residual[k] > COLOUR_RESIDUAL:
        return None, float(residual[k])
    return names[k], float(residual[k])


def find_regions(
    frame: np.ndarray, background: np.ndarray, palette: dict[str, tuple[int, int, int]] | None = None
) -> list[Region]:
    """Connected foreground regions of one frame (uint8 H×W×3), largest first, each named
    by its nearest colour of PALETTE (v1's object colours when None)."""
    img = frame.astype(np.float32)
    offset = img - background
    dist = np.linalg.norm(offset, axis=-1)
    mask = (dist > FOREGROUND_DISTANCE).astype(np.uint8)
    # pieces up to two pixels apart are one region: codec ringing can drop an edge
    # column just under the threshold and leave the next one above it
    bridged = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bridged, connectivity=8)
    labels = np.where(mask > 0, labels, 0)
    h, w = mask.shape
    regions = []
    for k in range(1, count):
        x, y, bw, bh, _ = stats[k]
        # the margin holds the faint anti-aliased rim and room for the ideal shapes
        m = 2 + max(bw, bh) // 3
        r0, r1, c0, c1 = max(0, y - m), min(h, y + bh + m), max(0, x - m), min(w, x + bw + m)
        own = labels[r0:r1, c0:c1] == k
        near = cv2.dilate(own.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        near &= (labels[r0:r1, c0:c1] == 0) | own
        d = dist[r0:r1, c0:c1]
        # the region's own solid colour: codecs and models shift colours a little, and
        # coverage is measured against what the object is, not against the palette
        solid = own & (d >= 0.8 * d[own].max())
        rgb = img[r0:r1, c0:c1][solid].mean(axis=0)
        colour, _ = nearest_colour(rgb, background, palette)
        target = rgb - background
        alpha = (offset[r0:r1, c0:c1] @ target) / max(float(target @ target), 1e-6)
        alpha = np.where(near, np.clip(alpha, 0.0, 1.0), 0.0)
        area = float(alpha.sum())
        # codec ringing makes faint specks; a drawn object is solid somewhere
        if area < MIN_REGION_PX or alpha.max() < MIN_PEAK_ALPHA:
            continue
        ys, xs = np.mgrid[r0:r1, c0:c1]
        cx = float((alpha * (xs + 0.5)).sum() / area)
        cy = float((alpha * (ys + 0.5)).sum() / area)
        regions.append(
            Region(
                colour=colour,
                rgb=tuple(round(float(v), 1) for v in rgb),
                area=area,
                peak=round(float(alpha.max()), 3),
                cx=cx / w,
                cy=cy / h,
                width=float(alpha.max(axis=0).sum()),
                height=float(alpha.max(axis=1).sum()),
                shape_error=_shape_errors(alpha, r0, c0, cx, cy, area, (h, w)),
            )
        )
    regions.sort(key=lambda r: -r.area)
    return regions


def _shape_errors(
    alpha: np.ndarray, r0: int, c0: int, cx: float, cy: float, area: float, canvas: tuple[int, int]
) -> dict[str, float]:
    """How far the region's coverage is from each ideal shape of the same area and centroid.

    Comparing with the ideal shapes themselves (drawn as the renderer draws them) tells a
    small or blurred triangle from a circle where the bounding-box fill ratio cannot.
    """
    errors = {}
    for shape, fill in FILL.items():
        d = math.sqrt(area / fill)
        # a triangle's centroid sits d/6 below the centre of its bounding box
        centre_y = cy - d / 6 if shape == "triangle" else cy
        rows, cols, cov = coverage(shape, cx, centre_y, d, *canvas)
        ideal = np.zeros_like(alpha)
        rr = slice(max(rows.start, r0), min(rows.stop, r0 + alpha.shape[0]))
        cc = slice(max(cols.start, c0), min(cols.stop, c0 + alpha.shape[1]))
        if rr.stop > rr.start and cc.stop > cc.start:
            ideal[rr.start - r0 : rr.stop - r0, cc.start - c0 : cc.stop - c0] = cov[
                rr.start - rows.start : rr.stop - rows.start,
                cc.start - cols.start : cc.stop - cols.start,
            ]
        # both blurred by about a pixel: 4:2:0 chroma smears edges on a gray background,
        # while the differences between shapes (corners, apex) are larger than that
        diff = cv2.GaussianBlur(alpha - ideal, (0, 0), SHAPE_BLUR_PX)
        errors[shape] = round(float(np.abs(diff).sum() / area), 3)
    return errors
