"""Writing a file so that it appears whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def publishable(path: str | os.PathLike, mode: int = 0o666) -> None:
    """Give a temporary file the mode a normal one would have (mkstemp makes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


@contextmanager
def replacing(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target` (same suffix); rename it onto `target` when
    the block succeeds, delete it when the block fails."""
    target = Path(os.fspath(target))
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        publishable(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write `data` as indented JSON, atomically."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
