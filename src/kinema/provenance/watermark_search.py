"""The watermark's detector: prepare the frames, search the geometry a crop allows, read
the cells (see watermark.py for the design). Marks of v4 and v3 share everything here but
the profile (pilot share and keyed layout), so one preparation serves both."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from kinema.provenance.watermark_grid import (
    BUMP_SIGMA,
    SAMPLES,
    Layout,
    Profile,
    contrast,
    in_version,
    layout,
    luma,
    profile,
    render,
    tiles,
)

HP_SIGMA = 0.35  # high-pass (local mean removal) before correlation, in cells
CLIP_MADS = 2.5  # robust clipping of the high-passed luma, in MADs
DETECT_CONTRAST = 4.0  # local contrast at which the detector halves a pixel's weight
SCALES = np.round(np.arange(1.0, 0.855, -0.01), 3)  # visible fraction of the frame
MARGIN = 2  # search this many canonical samples outside the nominal offset range
FPR = 1e-6  # false-positive rate per clip of the pilot alone
FPR_CHECKED = 1e-2  # the pilot threshold for a detection whose payload passes its CRC-16


@dataclass(frozen=True)
class Geometry:
    tiles: int  # tiles per short side of the original frame
    scale: float  # visible fraction of the original frame (crop), 1 = uncropped
    prof: Profile  # the grid and payload the original frame's size implies


def geometries(h: int, w: int) -> list[Geometry]:
    """The hypotheses a received h×w frame allows: a crop of up to 14 % of an original."""
    out = []
    for a in SCALES:
        oh, ow = int(round(h / a)), int(round(w / a))
        out.append(Geometry(tiles(oh, ow), float(a), profile(oh, ow)))
    return out


def offsets(g: Geometry) -> np.ndarray:
    """Canonical offsets searched per axis (as indices into the cyclic surface)."""
    canon = g.prof.canon
    if g.tiles > 1:
        return np.arange(canon)
    span = canon - int(round(g.scale * canon))
    return np.arange(-MARGIN, span + MARGIN + 1) % canon


def hypotheses_for(h: int, w: int) -> int:
    return sum(len(offsets(g)) ** 2 for g in geometries(h, w))


def threshold_for(hypotheses: int, fpr: float = FPR) -> float:
    """Gaussian z whose one-sided tail, times the hypotheses searched, is `fpr`."""
    p = fpr / hypotheses
    lo, hi = 0.0, 20.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(mid / math.sqrt(2)) > p:
            lo = mid
        else:
            hi = mid
    return hi


def prepare(frames: np.ndarray) -> np.ndarray:
    """Mean over frames of the high-passed, robustly clipped luma (H, W).

    The high-pass works at the scale of a cell as this frame's size suggests (a crop
    changes that by at most 14 %).
    """
    _, h, w, _ = frames.shape
    n, grid = tiles(h, w), profile(h, w).grid
    py, px = (float(h), float(w)) if n == 1 else (min(h, w) / n,) * 2
    sx, sy = HP_SIGMA * px / grid, HP_SIGMA * py / grid
    acc = np.zeros((h, w), np.float32)
    for y in luma(frames):
        hp = y - cv2.GaussianBlur(y, (0, 0), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT)
        mad = float(np.median(np.abs(hp))) * 1.4826 + 0.05
        # pixels at the host's own edges and texture are mostly host: weighted down, so a
        # moving object's pixel is read from the frames where it is background
        weight = 1.0 / (1.0 + (contrast(y) / DETECT_CONTRAST) ** 2)
        acc += weight * np.clip(hp, -CLIP_MADS * mad, CLIP_MADS * mad)
    return acc / len(frames)


def folded(prepared: np.ndarray, g: Geometry) -> np.ndarray:
    """The prepared frame resampled to the canonical tile and summed over tiles (S, S)."""
    h, w = prepared.shape
    canon = g.prof.canon
    if g.tiles == 1:
        size = (int(round(g.scale * canon)),) * 2
    else:
        f = canon * g.scale * g.tiles / min(h, w)  # canonical samples per received pixel
        size = (max(1, int(round(h * f))), max(1, int(round(w * f))))
    shrink = size[0] < h and size[1] < w
    img = cv2.resize(
        prepared, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    ty, tx = -(-size[0] // canon), -(-size[1] // canon)
    canvas = np.zeros((ty * canon, tx * canon), np.float32)
    canvas[: size[0], : size[1]] = img
    return canvas.reshape(ty, canon, tx, canon).sum(axis=(0, 2))


@lru_cache(maxsize=32)
def pilot_spectrum(key: bytes, prof: Profile) -> np.ndarray:
    lay = layout(key, prof)
    grid = np.zeros(prof.cells, np.float32)
    grid[lay.pilot_cells] = lay.pilot_signs
    return np.fft.rfft2(render(grid.reshape(prof.grid, prof.grid), prof.canon, prof.canon, 1))


def fold_spectra(prepared: np.ndarray) -> list[tuple[Geometry, np.ndarray]]:
    """conj(FFT) of the folded frame for every geometry: all that the search needs of the
    clip, whatever the key (so many keys can be tried against one clip cheaply)."""
    return [(g, np.conj(np.fft.rfft2(folded(prepared, g)))) for g in geometries(*prepared.shape)]


def search(
    spectra: list[tuple[Geometry, np.ndarray]], key: bytes, version: int
) -> tuple[float, Geometry, int, int]:
    """Best (z, geometry, dy, dx) of a VERSION mark's pilot over the geometries (whose
    profile becomes that version's); corr[d] = Σ fold[x]·tpl[x+d]."""
    spectra = [(dataclasses.replace(g, prof=in_version(g.prof, version)), f) for g, f in spectra]
    best: tuple[float, Geometry, int, int] = (-np.inf, spectra[0][0], 0, 0)
    for g, f_fold in spectra:
        canon = g.prof.canon
        corr = np.fft.irfft2(f_fold * pilot_spectrum(key, g.prof), s=(canon, canon))
        sd = float(corr.std())
        if sd <= 0:
            continue
        idx = offsets(g)
        sub = corr[np.ix_(idx, idx)]
        iy, ix = divmod(int(np.argmax(sub)), len(idx))
        z = (float(sub[iy, ix]) - float(corr.mean())) / sd
        if z > best[0]:
            dy, dx = int(idx[iy]), int(idx[ix])
            if g.tiles == 1:  # back to signed offsets
                dy, dx = (dy + MARGIN) % canon - MARGIN, (dx + MARGIN) % canon - MARGIN
            best = (z, g, dy, dx)
    return best


def cells_of(aligned: np.ndarray, prof: Profile) -> np.ndarray:
    """Each cell's matched-filter value of an aligned canonical tile (grid², flat)."""
    s = BUMP_SIGMA * SAMPLES
    pad = int(4 * s) + 1
    wrapped = np.pad(aligned, pad, mode="wrap")
    matched = cv2.GaussianBlur(wrapped, (0, 0), sigmaX=s, sigmaY=s)[pad:-pad, pad:-pad]
    return cv2.resize(matched, (prof.grid, prof.grid), interpolation=cv2.INTER_AREA).reshape(-1)


def soft_bits(
    prepared: np.ndarray, key: bytes, g: Geometry, dy: int, dx: int, mrc: float | None
) -> np.ndarray:
    """Soft coded bits at geometry G and offset (dy, dx), each data cell weighted by
    maximum-ratio combining over a neighbourhood of MRC tiles (None: unweighted)."""
    prof, canon = g.prof, g.prof.canon
    fold = folded(prepared, g)
    if g.tiles > 1:
        aligned = np.roll(fold, (dy, dx), axis=(0, 1))
    else:
        side = int(round(g.scale * canon))
        aligned = np.zeros((canon, canon), np.float32)
        y0, x0 = max(dy, 0), max(dx, 0)
        y1, x1 = min(dy + side, canon), min(dx + side, canon)
        aligned[y0:y1, x0:x1] = fold[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    cells = cells_of(aligned, prof)
    lay = layout(key, prof)
    weight = np.ones(prof.cells, np.float32) if mrc is None else channel_weights(cells, lay, prof, mrc)
    return np.bincount(
        lay.data_bit,
        weights=cells[lay.data_cells] * lay.data_signs * weight[lay.data_cells],
        minlength=prof.coded_bits,
    )


def channel_weights(cells: np.ndarray, lay: Layout, prof: Profile, mrc: float) -> np.ndarray:
    """Per-cell weights gain / noise variance, estimated from the pilot cells around each cell.

    Codecs, crops and saturated regions erase the mark unevenly; weighting each data cell
    by how well the pilot survived near it (maximum-ratio combining) keeps erased regions
    from adding only noise to the soft bits.
    """
    n = prof.cells
    known = np.zeros(n, np.float32)
    known[lay.pilot_cells] = 1.0
    gain = np.zeros(n, np.float32)
    gain[lay.pilot_cells] = cells[lay.pilot_cells] * lay.pilot_signs
    s = mrc * prof.grid

    def smooth(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x.reshape(prof.grid, prof.grid), (0, 0), s, borderType=cv2.BORDER_REFLECT)

    norm = smooth(known) + 1e-6
    g = smooth(gain) / norm
    resid = np.zeros(n, np.float32)
    resid[lay.pilot_cells] = (gain[lay.pilot_cells] - g.reshape(-1)[lay.pilot_cells]) ** 2
    var = smooth(resid) / norm
    var = np.maximum(var, 0.05 * float(np.median(var)) + 1e-12)
    return (np.maximum(g, 0) / var).reshape(-1)
