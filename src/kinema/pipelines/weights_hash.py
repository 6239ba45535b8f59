"""The SHA-256 that names a model by its weights (in every manifest, sidecar and watermark
payload), cached so that a start does not read again the tens of megabytes (gigabytes
for a large model) it hashed last time.

The cache is one JSON file in KINEMA_HOME, keyed by the weight files' resolved paths and
valid while each file's stat is the one it had when it was hashed: size, mtime, ctime,
inode and device, in nanoseconds. Any write moves mtime and ctime, and setting mtime back
(utime, `cp -p`, an archive's extraction) still moves ctime, which no call sets, so a
changed file is always hashed again. Two writes within one tick of the filesystem's
clock can leave the same stat, so a file changed less than RACY_SECONDS before it was
hashed is not cached (git's "racy clean" rule): its next use hashes it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kinema.state import kinema_home

CACHE_FILE = Path("cache") / "weights-sha256.json"  # under KINEMA_HOME
RACY_SECONDS = 2.0
MAX_ENTRIES = 64  # model folders remembered; the least recently hashed go first


def file_stat(path: Path) -> list[int]:
    """What the cache compares: size, mtime, ctime (ns), inode, device."""
    s = path.stat()
    return [s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_dev]


def sha256_files(files: Sequence[Path]) -> str:
    """SHA-256 over the bytes of FILES, one after the other, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cached_hash(files: Sequence[Path], compute: Callable[[], str], home: Path | None = None) -> str:
    """compute(), a hash of FILES' contents, from the cache in HOME (default KINEMA_HOME)
    when no file in FILES has changed since it was computed; computed (and cached) when
    one has, or when the cache cannot be read. A cache that cannot be written only costs
    the next start a new hash."""
    files = [Path(os.fspath(p)).resolve() for p in files]
    key = json.dumps([str(p) for p in files])
    stats = [file_stat(p) for p in files]
    try:
        path = (home if home is not None else kinema_home()) / CACHE_FILE
    except OSError:  # no state folder can be made: hash every time
        return compute()
    entries = _read(path)
    entry = entries.get(key)
    if isinstance(entry, dict) and entry.get("stats") == stats and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = compute()
    settled = time.time_ns() - RACY_SECONDS * 1e9
    if [file_stat(p) for p in files] == stats and all(max(s[1], s[2]) < settled for s in stats):
        entries.pop(key, None)
        entries[key] = {"stats": stats, "sha256": digest}
        _write(path, dict(list(entries.items())[-MAX_ENTRIES:]))
    return digest


def _read(path: Path) -> dict:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _write(path: Path, entries: dict) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
