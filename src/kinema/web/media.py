"""Uploaded files as the routes handle them: read within a size limit, typed by their
content (never their name), held in a private scratch file while the library reads
them, and named back to the user only by a cleaned label."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from fastapi import HTTPException, UploadFile

from kinema.errors import InputError

__all__ = ["MAX_SIDE", "Scratch", "check_declared_size", "label", "media_suffix", "read_upload"]

MAX_SIDE = 4096  # of an uploaded image

# content sniffing: the first bytes say what a file is, whatever its name
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg", b"GIF8": ".gif"}


def media_suffix(head: bytes) -> str | None:
    """The suffix of the media type HEAD (a file's first 64 bytes) starts; None: not media."""
    for magic, suffix in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return suffix
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    if head[4:8] == b"ftyp":
        return ".mov" if head[8:10] == b"qt" else ".mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ".webm" if b"webm" in head[:64] else ".mkv"
    return None


def read_upload(file: UploadFile, limit: int) -> bytes:
    """FILE's bytes; refuses one over LIMIT bytes (413) or an empty one."""
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"the upload is larger than {limit} bytes")
    if not data:
        raise InputError("the upload is empty")
    return data


class Scratch:
    """A private temporary file holding DATA under HOME/web/tmp, removed afterwards."""

    def __init__(self, home: Path, data: bytes, suffix: str):
        self.folder = home / "web" / "tmp"
        self.data, self.suffix = data, suffix

    def __enter__(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(suffix=self.suffix, dir=self.folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.data)
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


def check_declared_size(data: bytes, suffix: str) -> None:
    """Refuse a PNG or GIF whose header declares more than MAX_SIDE pixels a side."""
    if suffix == ".png" and len(data) >= 24:
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    elif suffix == ".gif" and len(data) >= 10:
        w, h = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    else:
        return
    if max(w, h) > MAX_SIDE:
        raise InputError(f"the image is {w}x{h}; at most {MAX_SIDE} pixels a side")


def label(name: str) -> str:
    """A file name fit to echo back: its last part, printable, short."""
    base = re.split(r"[\\/]", name)[-1]
    return "".join(c for c in base if c.isprintable())[:100] or "upload"
