"""The preview file: a contact sheet of the clip being made, rewritten in place every few
steps (`kinema generate … --preview FILE.png`, and the web worker's per-job preview).

A preview is a progress display, not an output (DESIGN.md, 2026-12): it carries the
invisible watermark, is never signed or entered for review, and is removed when the run
ends, whatever the outcome. Each rewrite goes to a temporary file renamed onto the path,
so a viewer never reads half a sheet.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from kinema.errors import InputError
from kinema.io import Video, check_output_path
from kinema.io.atomic import replacing
from kinema.io.video import encode_png
from kinema.pipelines.preview import DEFAULT_EVERY, Preview
from kinema.provenance.keys import watermark_key
from kinema.provenance.watermark import PAYLOAD_BYTES, embed
from kinema.render.request import ClipRequest
from kinema.state import kinema_home

MAX_TILES = 32  # a sheet shows every other frame, or this many spread over a long clip
COLUMNS = 8  # at most; short clips are laid out in two rows
MIN_SIDE = 256  # the watermark needs about this much picture to be found again
TILE = 128  # a tile's longer side in pixels: small clips are enlarged, large ones reduced
LABEL = 18  # the height of the step line above the tiles


def check_preview_path(path: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Refuse a preview path before any work (InputError, one line): empty, not .png, a
    directory, in a folder that is missing or not writable, or the output itself."""
    text = os.fspath(path)
    if not text.strip():
        raise InputError("--preview needs a file name ending in .png")
    p = Path(text)
    if p.is_dir():
        raise InputError(f"--preview '{p}' is a directory; give a file name ending in .png")
    if p.suffix.lower() != ".png":
        raise InputError(f"--preview writes a PNG contact sheet; '{p}' does not end in .png")
    check_output_path(p)
    if output is not None and p.resolve() == Path(os.fspath(output)).resolve():
        raise InputError(f"--preview '{p}' is the output file; give the preview its own name")
    return p


def tile_indices(frames: int) -> list[int]:
    """The frames a sheet shows: every other one, or MAX_TILES spread evenly (first and
    last included) over a clip longer than 2·MAX_TILES."""
    if frames <= 2 * MAX_TILES:
        return list(range(0, frames, 2))
    return np.linspace(0, frames - 1, MAX_TILES).round().astype(int).tolist()


def contact_sheet(frames: np.ndarray, step: int, total: int) -> np.ndarray:
    """uint8 frames (T, H, W, 3) → one uint8 image (rows, cols, 3): the frames of
    `tile_indices` in up to COLUMNS columns (two rows or more), each numbered, under a
    line "step STEP/TOTAL", on a dark ground at least MIN_SIDE on each side."""
    t, h, w = frames.shape[:3]
    scale = TILE / max(h, w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    index = tile_indices(t)
    columns = min(COLUMNS, -(-len(index) // 2))
    rows = -(-len(index) // columns)
    height, width = max(MIN_SIDE, LABEL + rows * (th + 2)), max(MIN_SIDE, columns * (tw + 2))
    sheet = np.full((height, width, 3), 24, np.uint8)
    interpolation = cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA
    for k, i in enumerate(index):
        y, x = LABEL + (k // columns) * (th + 2) + 1, (k % columns) * (tw + 2) + 1
        sheet[y : y + th, x : x + tw] = cv2.resize(frames[i], (tw, th), interpolation=interpolation)
        _text(sheet, str(i), x + 3, y + 12, 0.35)
    _text(sheet, f"step {step}/{total}  frames {t}", 4, LABEL - 5, 0.4)
    return sheet


def _text(image: np.ndarray, text: str, x: int, y: int, scale: float) -> None:
    """Light text with a dark outline: readable on any tile."""
    for colour, thickness in (((0, 0, 0), 3), ((235, 235, 235), 1)):
        cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def preview_payload(key: bytes, request: ClipRequest) -> bytes:
    """The watermark payload of a preview: a keyed hash naming it a preview of REQUEST's
    prompt and seed (a published clip's payload covers its whole settings record)."""
    fields = {
        "preview": True,
        "model": request.model,
        "seed": request.seed,
        "prompt_sha256": hashlib.sha256(request.prompt.encode()).hexdigest(),
    }
    digest = hmac.new(key, json.dumps(fields, sort_keys=True).encode(), "sha256").digest()
    return digest[:PAYLOAD_BYTES]


class PreviewFile:
    """Writes the contact sheet of a run's previews to PATH, watermarked, atomically.

    `preview` is the Preview hook to hand to render; `removed()` is a context manager
    that deletes PATH when the run ends, whatever the outcome."""

    def __init__(self, path: str | os.PathLike, request: ClipRequest, every: int = DEFAULT_EVERY):
        self.path = Path(os.fspath(path))
        self._request = request
        self._mark: tuple[bytes, bytes] | None = None
        self.preview = Preview(self.write, every)
        self.written = 0

    def write(self, step: int, total: int, frames: np.ndarray) -> None:
        """Replace the file with the sheet of FRAMES after STEP of TOTAL."""
        if self._mark is None:
            key = watermark_key(kinema_home())
            self._mark = key, preview_payload(key, self._request)
        key, payload = self._mark
        sheet = embed(Video(contact_sheet(frames, step, total)[None], 1.0), payload, key).frames[0]
        data = encode_png(sheet)
        with replacing(self.path) as tmp:
            tmp.write_bytes(data)
        self.written += 1

    @contextmanager
    def removed(self) -> Iterator[PreviewFile]:
        """Yield self; remove the preview file when the block ends, however it ends."""
        try:
            yield self
        finally:
            self.path.unlink(missing_ok=True)
