"""Watermark v2 (org.kinema.watermark.v2), kept so that `verify` still reads files marked
before v3 (DESIGN.md: "`verify` still reads watermark v2"); kinema no longer embeds it.
watermark.detect falls back to this detector when no v3 mark is found.

v2 is a fixed luma speckle of 2–4 px cells at a PSNR of 38 dB: visible in flat regions
(high-pass residual std 1.4–1.9 grey levels), which is why v3 replaced it.

Design (classical spread spectrum, no learned model):

- The mark lives on a 32×32 grid of cells (a tile). Frames up to ~190 px a side carry
  one tile in *normalised* coordinates, so it scales with the frame and a resize needs no
  search; larger frames repeat square tiles of ~128 px from the top-left corner (more
  cells average out the host picture; 4-px cells survive codecs), and the detector folds
  the frame modulo the tile period.
- Each cell is a ±1 chip. A keyed share of the cells is a known pilot (sync + detection);
  the rest carry the message: the 64-bit payload and its CRC-16 (so a decode that went
  wrong says so instead of returning wrong bits), whitened by a keyed pad, coded by a
  tail-biting rate-1/3, K=9 convolutional code punctured to a third of the data cells
  (soft Viterbi), each coded bit on exactly three cells through a keyed interleaver, with
  keyed scrambling signs. All key-dependent choices come from HMAC-SHA256(key, label)
  seeds. The channel code itself (CRC, convolutional code, Viterbi) is watermark_code.py.
- The chip grid is rendered as smooth bumps (nearest-upsampled, then Gaussian-blurred)
  and added to the luma (the same value to R, G and B), the same in every frame: frame
  averaging raises the SNR and dropped frames cost nothing. Smooth, cell-sized bumps
  survive 4:2:0 chroma subsampling, 0.5× resizing and H.264/VP9 quantisation.
- Headroom: the mark is simply clipped at 0 and 255. On a black background a zero-mean
  mark keeps only its positive half; the decoder removes the local mean (high-pass), so
  what is left still correlates with the pattern, at half amplitude. The amplitude is
  then set per frame so that the frame's PSNR equals a target (≥ 38 dB): flat black or
  white frames, where clipping halves the cost, get a larger pre-clip amplitude.
- Detection averages high-passed, robustly clipped luma over frames, then searches the
  geometry a crop can cause (visible fraction `a` of the frame, 0.86…1, and its offset)
  by FFT cross-correlation of the pilot on a canonical canvas. The score is the peak's
  z-score against the whole correlation surface (self-calibrating against the content);
  the threshold accounts for the number of hypotheses searched, for a false-positive rate
  of about 1e-6 per clip. The payload cells at the best geometry are then decoded,
  each weighted by how well the pilot survived around it (maximum-ratio combining), and
  the payload is reported only when its CRC-16 holds: a clip can carry a detected mark
  whose payload is unreadable (heavy attacks), never a wrong payload that looks right
  (a random decode passes the check with probability 2**-16).
- The check is evidence too: a weaker pilot (a threshold for a 1e-2 false-positive rate)
  whose payload passes its CRC-16 is also a detection, at a combined false-positive rate
  of 1e-2 × 2**-16 ≈ 1.5e-7 per clip. Heavily compressed small clips gain most.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from kinema.io import Video
from kinema.provenance.watermark_code import (
    CHECK_BITS,
    MESSAGE_BITS,
    PAYLOAD_BITS,
    PAYLOAD_BYTES,
    check,
    encode,
    message,
    viterbi,
)

__all__ = [
    "ALGORITHM",
    "CHECK_BITS",
    "DEFAULT_STRENGTH",
    "PAYLOAD_BITS",
    "PAYLOAD_BYTES",
    "WatermarkResult",
    "detect",
    "detect_raw",
    "embed",
    "pilot_scores",
    "psnr",
]

# The C2PA soft-binding name of this design; the version changes whenever the layout does.
ALGORITHM = "org.kinema.watermark.v2"
DEFAULT_STRENGTH = 1.0
# Each frame's PSNR after embedding at strength 1 (never below MIN_PSNR_DB at any strength).
TARGET_PSNR_DB = 38.3
MIN_PSNR_DB = 38.0

_GRID = 32  # cells per side, in normalised coordinates
_CANON = 4 * _GRID  # canonical tile side for the search: 4 samples per cell
_TILE_PX = 128  # frames larger than this repeat the tile, about this many pixels a side
_PILOT_FRACTION = 0.35
_BUMP_SIGMA = 0.4  # Gaussian blur of the rendered chips, in cells
_HP_SIGMA = 0.35  # high-pass (local mean removal) before correlation, in cells
_CLIP_MADS = 2.5  # robust clipping of the high-passed luma, in MADs
_PALETTE_COLOURS = 64  # clips with at most this many colours keep their edges unmarked
_MRC_SIGMA = 4.0  # neighbourhood, in cells, for estimating how well the mark survived
_SCALES = np.round(np.arange(1.0, 0.855, -0.01), 3)  # visible fraction of the frame
_MARGIN = 2  # search this many canonical samples outside the nominal offset range
# False-positive rate per clip: the detection threshold is the Gaussian z whose tail, times
# the hypotheses searched, is this (measured surfaces have thinner tails than Gaussian).
_FPR = 1e-6
# The pilot threshold for a detection whose payload also passes its CRC-16 (see above).
_FPR_CHECKED = 1e-2
_REPEAT = 3  # cells per coded bit
_VERSION = b"kinema-watermark-v2"


@dataclass(frozen=True)
class WatermarkResult:
    """What detection found.

    detected: a kinema watermark under this key is present: the pilot's score passed the
    threshold (a ~1e-6 false-positive rate), or it passed check_threshold and the payload
    passed its CRC-16 (~1.5e-7).
    payload_valid: the decoded payload passed its CRC-16 (False when not detected).
    payload: the decoded bytes when detected and valid, else None (detected with an
    invalid payload means "a kinema watermark is present, its payload is unreadable").
    score: z-score of the best pilot correlation over the geometry search.
    threshold: the score needed for detection (grows slowly with the hypotheses searched).
    check_threshold: the lower score that is enough with a payload that passes its check.
    hypotheses: geometries × offsets searched for this frame size.
    bit_errors: coded bits the error correction fixed (None when not detected).
    coded_bits: coded bits in the codeword, for scale.
    scale, tiles, offset: the geometry found (visible fraction of the original frame,
    tiles per short side, offset of the view in tile units (x, y)).
    """

    detected: bool
    payload_valid: bool
    payload: bytes | None
    score: float
    threshold: float
    check_threshold: float
    hypotheses: int
    bit_errors: int | None
    coded_bits: int
    scale: float
    tiles: int
    offset: tuple[float, float]

    @property
    def p_value(self) -> float:
        """Bound on the chance of a score this high in an unmarked clip (Bonferroni), from the
        pilot alone: a detection under check_threshold also rests on the CRC-16 (× 2**-16)."""
        return min(1.0, self.hypotheses * 0.5 * math.erfc(self.score / math.sqrt(2)))

    def to_dict(self) -> dict:
        """JSON-ready form; the payload as lower-case hex."""
        return {
            "detected": self.detected,
            "payload_valid": self.payload_valid,
            "payload": self.payload.hex() if self.payload is not None else None,
            "score": round(self.score, 3),
            "threshold": round(self.threshold, 3),
            "check_threshold": round(self.check_threshold, 3),
            "p_value": self.p_value,
            "bit_errors": self.bit_errors,
            "coded_bits": self.coded_bits,
            "scale": self.scale,
            "tiles": self.tiles,
            "offset": [round(self.offset[0], 4), round(self.offset[1], 4)],
        }


# ---------------------------------------------------------------- keyed layout


def _rng(key: bytes, label: bytes) -> np.random.Generator:
    digest = hmac.new(key, _VERSION + b"|" + label, hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


@dataclass(frozen=True)
class _Layout:
    pilot_cells: np.ndarray  # flat indices of pilot cells
    pilot_signs: np.ndarray  # ±1 per pilot cell
    data_cells: np.ndarray  # flat indices of data cells
    data_bit: np.ndarray  # which coded bit each data cell carries
    data_signs: np.ndarray  # keyed scrambling ±1 per data cell
    pad: np.ndarray  # keyed whitening of the payload bits


@lru_cache(maxsize=16)
def _layout(key: bytes) -> _Layout:
    n = _GRID * _GRID
    perm = _rng(key, b"cells").permutation(n)
    n_pilot = int(round(_PILOT_FRACTION * n))
    pilot_cells, data_cells = np.sort(perm[:n_pilot]), perm[n_pilot:]
    n_coded = _coded_bits()
    # Every coded bit gets exactly _REPEAT cells (±1): a keyed interleaver.
    data_bit = np.arange(len(data_cells)) % n_coded
    signs = _rng(key, b"signs")
    return _Layout(
        pilot_cells=pilot_cells,
        pilot_signs=signs.choice([-1.0, 1.0], size=n_pilot),
        data_cells=data_cells,
        data_bit=data_bit,
        data_signs=signs.choice([-1.0, 1.0], size=len(data_cells)),
        pad=_rng(key, b"pad").integers(0, 2, size=MESSAGE_BITS).astype(np.uint8),
    )


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) == 0:
        raise ValueError("watermark key must be non-empty bytes")
    return bytes(key)


# ---------------------------------------------------------------- coded bits on cells


def _data_cells() -> int:
    return _GRID * _GRID - int(round(_PILOT_FRACTION * _GRID * _GRID))


def _coded_bits() -> int:
    """Coded bits sent: one per _REPEAT data cells (222 of the 240 the code makes)."""
    return _data_cells() // _REPEAT


# ---------------------------------------------------------------- the mark


def _chip_grid(payload: bytes, key: bytes) -> np.ndarray:
    lay = _layout(key)
    coded = encode(message(payload) ^ lay.pad, _coded_bits())
    grid = np.zeros(_GRID * _GRID, np.float32)
    grid[lay.pilot_cells] = lay.pilot_signs
    grid[lay.data_cells] = (1.0 - 2.0 * coded[lay.data_bit]) * lay.data_signs
    return grid.reshape(_GRID, _GRID)


def _tiles(h: int, w: int) -> int:
    """Tiles per short side: 1 up to 1.5 tiles' worth of pixels, then about _TILE_PX each."""
    return max(1, int(min(h, w) / _TILE_PX + 0.5))


def _render(grid: np.ndarray, h: int, w: int, tiles: int) -> np.ndarray:
    """The chip grid as smooth bumps over an h×w frame, zero mean, unit RMS.

    One tile covers the whole frame (normalised coordinates) when the frame is small;
    larger frames repeat square tiles of about _TILE_PX pixels from the top-left corner.
    """
    py, px = (float(h), float(w)) if tiles == 1 else (min(h, w) / tiles,) * 2
    iy = np.floor((np.arange(h) + 0.5) * _GRID / py).astype(np.int64) % _GRID
    ix = np.floor((np.arange(w) + 0.5) * _GRID / px).astype(np.int64) % _GRID
    up = np.ascontiguousarray(grid.astype(np.float32)[iy[:, None], ix[None, :]])
    sx, sy = _BUMP_SIGMA * px / _GRID, _BUMP_SIGMA * py / _GRID
    img = cv2.GaussianBlur(up, (0, 0), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT)
    img -= img.mean()
    return img / max(float(img.std()), 1e-6)


def _luma(frames: np.ndarray) -> np.ndarray:
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


def _mse(frame: np.ndarray, mark: np.ndarray, amp: float) -> float:
    marked = np.clip(frame + amp * mark[..., None], 0, 255).round()
    return float(np.mean((marked - frame) ** 2))


def _frame_amplitude(frame: np.ndarray, mark: np.ndarray, target_mse: float) -> float:
    """The amplitude whose clipped, rounded mark costs `target_mse` (bisection).

    Capped at 1.6× the unclipped amplitude: enough to make up for clipping on black or
    white (which halves the cost), never a loud mark in the few pixels with headroom of a
    mostly saturated frame.
    """
    lo, hi = 0.0, math.sqrt(target_mse) * 1.6
    for _ in range(18):
        mid = 0.5 * (lo + hi)
        if _mse(frame, mark, mid) <= target_mse:
            lo = mid
        else:
            hi = mid
    return lo


def embed(video: Video, payload: bytes, key: bytes, strength: float = DEFAULT_STRENGTH) -> Video:
    """Return `video` with `payload` (exactly PAYLOAD_BYTES bytes) invisibly marked under `key`.

    Every frame gets the same mark in its luma; its amplitude is chosen per frame so the
    frame's PSNR is TARGET_PSNR_DB at strength 1 (a larger strength lowers the PSNR, but
    never below MIN_PSNR_DB). Frames, fps and audio are otherwise kept. Refuses a payload
    of another length, an empty key, a non-positive strength and frames under 8×8.
    """
    key = _check_key(key)
    payload = bytes(payload)
    if len(payload) != PAYLOAD_BYTES:
        raise ValueError(f"watermark payload must be {PAYLOAD_BYTES} bytes, got {len(payload)}")
    if not strength > 0:
        raise ValueError(f"watermark strength must be positive, got {strength}")
    if video.height < 8 or video.width < 8:
        raise ValueError(f"frames of {video.width}x{video.height} are too small to watermark")
    h, w = video.height, video.width
    mark = _render(_chip_grid(payload, key), h, w, _tiles(h, w))
    target_db = max(MIN_PSNR_DB, TARGET_PSNR_DB - 20 * math.log10(strength))
    target_mse = 255.0**2 / 10 ** (target_db / 10)
    out = np.empty_like(video.frames)
    palette_like = _colour_count(video.frames) <= _PALETTE_COLOURS
    cache: dict[bytes, float] = {}
    for i, frame in enumerate(video.frames):
        f = frame.astype(np.float32)
        m = mark * _flat(frame) if palette_like else mark
        # static content repeats: reuse the amplitude of an identical frame
        digest = hashlib.blake2b(frame.tobytes(), digest_size=16).digest()
        amp = cache.get(digest)
        if amp is None:
            amp = cache[digest] = _frame_amplitude(f, m, target_mse)
        out[i] = np.clip(f + amp * m[..., None], 0, 255).round().astype(np.uint8)
    return video.with_frames(out)


def _colour_count(frames: np.ndarray) -> int:
    p = frames.reshape(-1, 3).astype(np.uint32)
    return len(np.unique((p[:, 0] << 16) | (p[:, 1] << 8) | p[:, 2]))


def _flat(frame: np.ndarray) -> np.ndarray:
    """1 where the pixel's 3×3 neighbourhood has one colour, else 0 (H, W) float32.

    Clips of a few flat colours (the shapes world) are marked only inside flat areas:
    anti-aliased edges stay as they were, so the marked clip still fits a 256-colour GIF
    palette exactly instead of being requantised (which would erase the mark).
    """
    kernel = np.ones((3, 3), np.uint8)
    same = np.ones(frame.shape[:2], bool)
    for c in range(3):
        ch = np.ascontiguousarray(frame[..., c])
        same &= cv2.dilate(ch, kernel) == cv2.erode(ch, kernel)
    return same.astype(np.float32)


# ---------------------------------------------------------------- detection


@dataclass(frozen=True)
class _Geometry:
    tiles: int  # tiles per short side of the original frame
    scale: float  # visible fraction of the original frame (crop), 1 = uncropped


def _geometries(h: int, w: int) -> list[_Geometry]:
    """The hypotheses a received h×w frame allows: a crop of up to 14 % of an original."""
    out = []
    for a in _SCALES:
        n = _tiles(int(round(h / a)), int(round(w / a)))
        out.append(_Geometry(n, float(a)))
    return out


def _offsets(g: _Geometry) -> np.ndarray:
    """Canonical offsets searched per axis (as indices into the cyclic surface)."""
    if g.tiles > 1:
        return np.arange(_CANON)
    span = _CANON - int(round(g.scale * _CANON))
    return np.arange(-_MARGIN, span + _MARGIN + 1) % _CANON


def _hypotheses_for(h: int, w: int) -> int:
    return sum(len(_offsets(g)) ** 2 for g in _geometries(h, w))


def _threshold(hypotheses: int, fpr: float = _FPR) -> float:
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


def _prepared(frames: np.ndarray) -> np.ndarray:
    """Mean over frames of the high-passed, robustly clipped luma (H, W).

    The high-pass works at the scale of a cell as this frame's size suggests (a crop
    changes that by at most 14 %).
    """
    _, h, w, _ = frames.shape
    n = _tiles(h, w)
    py, px = (float(h), float(w)) if n == 1 else (min(h, w) / n,) * 2
    sx, sy = _HP_SIGMA * px / _GRID, _HP_SIGMA * py / _GRID
    acc = np.zeros((h, w), np.float32)
    for y in _luma(frames):
        hp = y - cv2.GaussianBlur(y, (0, 0), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT)
        mad = float(np.median(np.abs(hp))) * 1.4826 + 0.05
        acc += np.clip(hp, -_CLIP_MADS * mad, _CLIP_MADS * mad)
    return acc / len(frames)


def _folded(prepared: np.ndarray, g: _Geometry) -> np.ndarray:
    """The prepared frame resampled to the canonical tile and summed over tiles (S, S)."""
    h, w = prepared.shape
    if g.tiles == 1:
        size = (int(round(g.scale * _CANON)),) * 2
    else:
        f = _CANON * g.scale * g.tiles / min(h, w)  # canonical samples per received pixel
        size = (max(1, int(round(h * f))), max(1, int(round(w * f))))
    shrink = size[0] < h and size[1] < w
    img = cv2.resize(
        prepared, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    ty, tx = -(-size[0] // _CANON), -(-size[1] // _CANON)
    canvas = np.zeros((ty * _CANON, tx * _CANON), np.float32)
    canvas[: size[0], : size[1]] = img
    return canvas.reshape(ty, _CANON, tx, _CANON).sum(axis=(0, 2))


@lru_cache(maxsize=16)
def _pilot_spectrum(key: bytes) -> np.ndarray:
    lay = _layout(key)
    grid = np.zeros(_GRID * _GRID, np.float32)
    grid[lay.pilot_cells] = lay.pilot_signs
    return np.fft.rfft2(_render(grid.reshape(_GRID, _GRID), _CANON, _CANON, 1))


def _fold_spectra(prepared: np.ndarray) -> list[tuple[_Geometry, np.ndarray]]:
    """conj(FFT) of the folded frame for every geometry: all that the search needs of the
    clip, whatever the key (so many keys can be tried against one clip cheaply)."""
    return [(g, np.conj(np.fft.rfft2(_folded(prepared, g)))) for g in _geometries(*prepared.shape)]


def _search(spectra: list[tuple[_Geometry, np.ndarray]], key: bytes) -> tuple[float, _Geometry, int, int]:
    """Best (z, geometry, dy, dx) of the pilot over the geometries; corr[d] = Σ fold[x]·tpl[x+d]."""
    f_tpl = _pilot_spectrum(key)
    best: tuple[float, _Geometry, int, int] = (-np.inf, _Geometry(1, 1.0), 0, 0)
    for g, f_fold in spectra:
        corr = np.fft.irfft2(f_fold * f_tpl, s=(_CANON, _CANON))
        sd = float(corr.std())
        if sd <= 0:
            continue
        idx = _offsets(g)
        sub = corr[np.ix_(idx, idx)]
        iy, ix = divmod(int(np.argmax(sub)), len(idx))
        z = (float(sub[iy, ix]) - float(corr.mean())) / sd
        if z > best[0]:
            dy, dx = int(idx[iy]), int(idx[ix])
            if g.tiles == 1:  # back to signed offsets
                dy, dx = (dy + _MARGIN) % _CANON - _MARGIN, (dx + _MARGIN) % _CANON - _MARGIN
            best = (z, g, dy, dx)
    return best


def _soft_bits(prepared: np.ndarray, key: bytes, g: _Geometry, dy: int, dx: int) -> np.ndarray:
    fold = _folded(prepared, g)
    if g.tiles > 1:
        aligned = np.roll(fold, (dy, dx), axis=(0, 1))
    else:
        side = int(round(g.scale * _CANON))
        aligned = np.zeros((_CANON, _CANON), np.float32)
        y0, x0 = max(dy, 0), max(dx, 0)
        y1, x1 = min(dy + side, _CANON), min(dx + side, _CANON)
        aligned[y0:y1, x0:x1] = fold[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    s = _BUMP_SIGMA * _CANON / _GRID
    pad = int(4 * s) + 1
    wrapped = np.pad(aligned, pad, mode="wrap")
    matched = cv2.GaussianBlur(wrapped, (0, 0), sigmaX=s, sigmaY=s)[pad:-pad, pad:-pad]
    cells = cv2.resize(matched, (_GRID, _GRID), interpolation=cv2.INTER_AREA).reshape(-1)
    lay = _layout(key)
    weight = _channel_weights(cells, lay)
    return np.bincount(
        lay.data_bit,
        weights=cells[lay.data_cells] * lay.data_signs * weight[lay.data_cells],
        minlength=_coded_bits(),
    )


def _channel_weights(cells: np.ndarray, lay: _Layout) -> np.ndarray:
    """Per-cell weights gain / noise variance, estimated from the pilot cells around each cell.

    Codecs, crops and saturated regions erase the mark unevenly; weighting each data cell
    by how well the pilot survived near it (maximum-ratio combining) keeps erased regions
    from adding only noise to the soft bits.
    """
    known = np.zeros(_GRID * _GRID, np.float32)
    known[lay.pilot_cells] = 1.0
    gain = np.zeros(_GRID * _GRID, np.float32)
    gain[lay.pilot_cells] = cells[lay.pilot_cells] * lay.pilot_signs
    s = _MRC_SIGMA

    def smooth(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x.reshape(_GRID, _GRID), (0, 0), s, borderType=cv2.BORDER_REFLECT)

    norm = smooth(known) + 1e-6
    g = smooth(gain) / norm
    resid = np.zeros(_GRID * _GRID, np.float32)
    resid[lay.pilot_cells] = (gain[lay.pilot_cells] - g.reshape(-1)[lay.pilot_cells]) ** 2
    var = smooth(resid) / norm
    var = np.maximum(var, 0.05 * float(np.median(var)) + 1e-12)
    return (np.maximum(g, 0) / var).reshape(-1)


def detect(video: Video, key: bytes) -> WatermarkResult:
    """Look for a watermark made with `key` in `video` (any length, from one frame).

    Returns a WatermarkResult; `detected` is False for unmarked clips and other keys with
    probability about 1 - 1e-6. The payload is the soft-Viterbi decode at the geometry
    found, reported only when its CRC-16 holds (payload_valid); a detected mark whose
    decode fails the check has payload None. Refuses an empty key.
    """
    return _detect(video, key, decode_always=False)[0]


def detect_raw(video: Video, key: bytes) -> tuple[WatermarkResult, bytes]:
    """detect's result, and the 64 payload bits the decoder made at the best geometry
    whether or not the mark was detected and its check held: for measuring bit accuracy
    (watermark_bench), never to be reported as a payload. Refuses an empty key."""
    return _detect(video, key, decode_always=True)


def _detect(video: Video, key: bytes, decode_always: bool) -> tuple[WatermarkResult, bytes]:
    key = _check_key(key)
    prepared = _prepared(video.frames)
    z, g, dy, dx = _search(_fold_spectra(prepared), key)
    hypotheses = _hypotheses_for(*prepared.shape)
    threshold, check_threshold = _threshold(hypotheses), _threshold(hypotheses, _FPR_CHECKED)
    raw, valid, errors = bytes(PAYLOAD_BYTES), False, None
    # frames with nothing to correlate (constant, or too small) give z = -inf: no decode
    if (z >= check_threshold or decode_always) and math.isfinite(z):
        soft = _soft_bits(prepared, key, g, dy, dx)
        bits = viterbi(soft)
        decoded = bits ^ _layout(key).pad
        raw = np.packbits(decoded[:PAYLOAD_BITS]).tobytes()
        valid = z >= check_threshold and bool(np.array_equal(decoded[PAYLOAD_BITS:], check(raw)))
        errors = int(np.sum((soft < 0).astype(np.uint8) != encode(bits, _coded_bits())))
    detected = bool(z >= threshold) or valid
    errors = errors if detected else None
    result = WatermarkResult(
        detected=detected,
        payload_valid=valid,
        payload=raw if valid else None,
        score=z,
        threshold=threshold,
        check_threshold=check_threshold,
        hypotheses=hypotheses,
        bit_errors=errors,
        coded_bits=_coded_bits(),
        scale=g.scale,
        tiles=g.tiles,
        offset=(dx / _CANON, dy / _CANON),
    )
    return result, raw


def pilot_scores(video: Video, keys: Iterable[bytes]) -> tuple[np.ndarray, float, float]:
    """The pilot score of `video` under each of `keys`, with the two thresholds detect uses
    at this frame size (threshold, check_threshold): the false-positive measurement, with
    the frames prepared and folded once for all keys. Each score equals
    `detect(video, key).score`; a score under check_threshold is never a detection.
    """
    prepared = _prepared(video.frames)
    spectra = _fold_spectra(prepared)
    scores = np.array([_search(spectra, _check_key(k))[0] for k in keys], np.float64)
    hypotheses = _hypotheses_for(*prepared.shape)
    return scores, _threshold(hypotheses), _threshold(hypotheses, _FPR_CHECKED)
