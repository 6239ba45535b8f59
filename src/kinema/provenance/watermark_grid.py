"""The watermark's grid (v4, and v3 for marks made before it): frame sizes, keyed layout,
the chip pattern and what the embedder and the detector both measure of a frame (see
watermark.py for the design)."""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from kinema.provenance.watermark_code import CHECK_BITS, PAYLOAD_BITS, check, encode

SMALL_FRAME_PX = 96  # frames whose short side is under this carry SMALL_PAYLOAD_BYTES
SMALL_PAYLOAD_BYTES = 4  # 32 bits
TILE_PX = 128  # frames larger than 1.5 of this repeat the tile, about this many pixels a side
BUMP_SIGMA = 0.45  # Gaussian blur of the rendered chips, in cells
SAMPLES = 4  # canonical samples per cell in the search
VERSION = 4  # what embed makes; detection also reads VERSION_V3 (and watermark_v2)
VERSION_V3 = 3
# The visibility measure (watermark_bench, and the embedder's own budget): luma minus its
# Gaussian blur of RESIDUAL_SIGMA px, over the pixels at least FLAT_DISTANCE px from any
# pixel more than FLAT_LEVELS grey levels from the frame's border median.
RESIDUAL_SIGMA = 1.5
FLAT_LEVELS = 30
FLAT_DISTANCE = 4


@dataclass(frozen=True)
class Profile:
    grid: int  # cells per tile side
    payload_bits: int
    pilot_fraction: float  # the keyed share of the cells that is a known pilot
    label: bytes  # seeds every keyed choice: marks of two versions share no layout

    @property
    def canon(self) -> int:
        return SAMPLES * self.grid

    @property
    def message_bits(self) -> int:
        return self.payload_bits + CHECK_BITS

    @property
    def cells(self) -> int:
        return self.grid * self.grid

    @property
    def pilots(self) -> int:
        return int(round(self.pilot_fraction * self.cells))

    @property
    def coded_bits(self) -> int:
        """Coded bits sent: the whole rate-1/3 word when the data cells hold it, else the
        word punctured to one bit a data cell."""
        return min(3 * self.message_bits, self.cells - self.pilots)


# v4 gives a quarter of the cells to the pilot, v3 gave 35 %: the ten points moved to
# the payload cut H.264 CRF 30 payload losses on 64 px model clips from about 3.5 % to
# about 1 % (450 clips), with every other attack of the bench still read in full.
PROFILES = {
    VERSION: (
        Profile(20, 8 * SMALL_PAYLOAD_BYTES, 0.25, b"kinema-watermark-v4"),
        Profile(36, PAYLOAD_BITS, 0.25, b"kinema-watermark-v4"),
    ),
    VERSION_V3: (
        Profile(20, 8 * SMALL_PAYLOAD_BYTES, 0.35, b"kinema-watermark-v3"),
        Profile(36, PAYLOAD_BITS, 0.35, b"kinema-watermark-v3"),
    ),
}


SMALL, LARGE = PROFILES[VERSION]


def profile(h: int, w: int, version: int = VERSION) -> Profile:
    """The grid and payload of a VERSION mark on frames of h×w: the small profile (20×20
    cells, 32 bits) under SMALL_FRAME_PX a side, else the large one (36×36, 64 bits)."""
    small, large = PROFILES[version]
    return small if min(h, w) < SMALL_FRAME_PX else large


def in_version(prof: Profile, version: int) -> Profile:
    """The VERSION profile for the frames that PROF is for (the same grid and payload)."""
    small, large = PROFILES[version]
    return small if (prof.grid, prof.payload_bits) == (small.grid, small.payload_bits) else large


def payload_bytes(height: int, width: int) -> int:
    """How many payload bytes a mark carries on frames of HEIGHT × WIDTH: 4 (32 bits)
    when the short side is under SMALL_FRAME_PX, else 8 (64 bits)."""
    return profile(height, width).payload_bits // 8


def keyed_rng(key: bytes, prof: Profile, label: bytes) -> np.random.Generator:
    digest = hmac.new(key, prof.label + b"|" + label, hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


@dataclass(frozen=True)
class Layout:
    pilot_cells: np.ndarray  # flat indices of pilot cells
    pilot_signs: np.ndarray  # ±1 per pilot cell
    data_cells: np.ndarray  # flat indices of data cells
    data_bit: np.ndarray  # which coded bit each data cell carries
    data_signs: np.ndarray  # keyed scrambling ±1 per data cell
    pad: np.ndarray  # keyed whitening of the message bits


@lru_cache(maxsize=32)
def layout(key: bytes, prof: Profile) -> Layout:
    label = b"%d/%d|" % (prof.grid, prof.payload_bits)
    perm = keyed_rng(key, prof, label + b"cells").permutation(prof.cells)
    pilot_cells, data_cells = np.sort(perm[: prof.pilots]), perm[prof.pilots :]
    # Coded bits go round the data cells in keyed order: every bit on as many cells as
    # the others, give or take one.
    data_bit = np.arange(len(data_cells)) % prof.coded_bits
    signs = keyed_rng(key, prof, label + b"signs")
    return Layout(
        pilot_cells=pilot_cells,
        pilot_signs=signs.choice([-1.0, 1.0], size=prof.pilots),
        data_cells=data_cells,
        data_bit=data_bit,
        data_signs=signs.choice([-1.0, 1.0], size=len(data_cells)),
        pad=keyed_rng(key, prof, label + b"pad").integers(0, 2, size=prof.message_bits).astype(np.uint8),
    )


def check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) == 0:
        raise ValueError("watermark key must be non-empty bytes")
    return bytes(key)


def message(payload: bytes) -> np.ndarray:
    return np.concatenate([np.unpackbits(np.frombuffer(payload, np.uint8)), check(payload)])


# ---------------------------------------------------------------- the mark


def chip_grid(payload: bytes, key: bytes, prof: Profile) -> np.ndarray:
    lay = layout(key, prof)
    coded = encode(message(payload) ^ lay.pad, prof.coded_bits)
    grid = np.zeros(prof.cells, np.float32)
    grid[lay.pilot_cells] = lay.pilot_signs
    grid[lay.data_cells] = (1.0 - 2.0 * coded[lay.data_bit]) * lay.data_signs
    return grid.reshape(prof.grid, prof.grid)


def tiles(h: int, w: int) -> int:
    """Tiles per short side: 1 up to 1.5 tiles' worth of pixels, then about TILE_PX each."""
    return max(1, int(min(h, w) / TILE_PX + 0.5))


def render(grid: np.ndarray, h: int, w: int, tiles: int) -> np.ndarray:
    """The chip grid as smooth bumps over an h×w frame, zero mean, unit RMS.

    One tile covers the whole frame (normalised coordinates) when the frame is small;
    larger frames repeat square tiles of about TILE_PX pixels from the top-left corner.
    """
    n = grid.shape[0]
    py, px = (float(h), float(w)) if tiles == 1 else (min(h, w) / tiles,) * 2
    iy = np.floor((np.arange(h) + 0.5) * n / py).astype(np.int64) % n
    ix = np.floor((np.arange(w) + 0.5) * n / px).astype(np.int64) % n
    up = np.ascontiguousarray(grid.astype(np.float32)[iy[:, None], ix[None, :]])
    sx, sy = BUMP_SIGMA * px / n, BUMP_SIGMA * py / n
    img = cv2.GaussianBlur(up, (0, 0), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT)
    img -= img.mean()
    return img / max(float(img.std()), 1e-6)


def luma(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.float32)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 arrays of the same shape (inf when identical).

    Refuses arrays of different shapes.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"psnr needs equal shapes, got {a.shape} and {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def contrast(y: np.ndarray) -> np.ndarray:
    """Local contrast of a luma plane: its std over a Gaussian window of 2 px (H, W)."""
    mean = cv2.GaussianBlur(y, (0, 0), 2.0)
    return np.sqrt(np.maximum(cv2.GaussianBlur(y * y, (0, 0), 2.0) - mean * mean, 0.0))


def flat_mask(frame: np.ndarray) -> np.ndarray:
    """The flat pixels of one RGB frame (H, W) bool: at least FLAT_DISTANCE px from any
    pixel whose luma is more than FLAT_LEVELS from the median of the frame's border."""
    y = luma(frame[None])[0]
    border = np.concatenate([y[0], y[-1], y[1:-1, 0], y[1:-1, -1]])
    content = np.abs(y - np.median(border)) > FLAT_LEVELS
    if not content.any():
        return np.ones(y.shape, bool)
    distance = cv2.distanceTransform((~content).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance >= FLAT_DISTANCE


def high_pass(y: np.ndarray) -> np.ndarray:
    """A luma plane minus its Gaussian blur of RESIDUAL_SIGMA px: what speckle shows in."""
    return y - cv2.GaussianBlur(y, (0, 0), RESIDUAL_SIGMA)
