"""The one output path: every file a command hands to a user is finished here.

Today: the clip is written atomically and its JSON sidecar beside it (OUT.json, or
settings.json inside a frame folder) records how it was made.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import kinema
from kinema.io import output_kind


def sidecar_path(output: str | os.PathLike) -> Path:
    """OUT.json beside a file; settings.json inside a frame folder."""
    out = Path(os.fspath(output))
    if output_kind(output) == "frames":
        return out / "settings.json"
    return out.with_name(out.name + ".json")


def output_id(settings: dict) -> str:
    """A short id derived from the settings, so the same command gives the same id."""
    canonical = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()[:12]


def write_sidecar(output: str | os.PathLike, settings: dict) -> dict:
    """Write the sidecar for `output` atomically; returns the record written (with id)."""
    record = {**settings, "kinema_version": kinema.__version__}
    record = {"id": output_id(record), **record}
    path = sidecar_path(output)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=2, default=str)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return record
