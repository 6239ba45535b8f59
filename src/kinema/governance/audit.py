"""The append-only audit log: every policy, consent and review decision, one JSON line each.

The log lives at KINEMA_HOME/audit.jsonl. Each line is the canonical JSON (sorted keys,
no spaces, UTF-8) of one record:

    {"event": "policy.screen", "fields": {...}, "hash": "<sha256 hex>",
     "prev": "<hash of the line before>", "seq": 0, "time": "2025-01-02T03:04:05.123456Z"}

`hash` is the SHA-256 of the canonical JSON of the record without `hash`; `prev` is the
previous line's hash (the first line's is GENESIS), and `seq` counts lines from 0. So an
edited line no longer matches its hash, and a deleted, inserted or reordered line breaks
the chain of `prev` values.

Deleting the last line (or truncating the file) leaves a valid chain behind, so a small
head file beside the log, KINEMA_HOME/audit.head, records the last hash, the line count and
the log's size in bytes; it is replaced atomically (temp file + rename) after each append.
Appends hold an exclusive `fcntl` lock on KINEMA_HOME/audit.lock, so concurrent writers
(processes or threads) never interleave or fork the chain.

Appending fails closed: when the log does not match its head (someone edited or cut the
end of it), `append` raises AuditError instead of writing after the damage; move
audit.jsonl and audit.head aside to start a new log after looking. The one repair it
makes by itself is rolling the head forward over complete, correctly chained lines that a
crash left written without a head update.

The chain is plain SHA-256, not keyed: it shows accidental or careless change, and any
change by someone who does not rewrite every later line and the head. Someone able to
rewrite the whole file can forge it; keep copies elsewhere if that matters.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kinema.errors import InputError
from kinema.state import kinema_home

__all__ = [
    "AUDIT_FILE",
    "GENESIS",
    "AuditError",
    "append",
    "head_path",
    "log_path",
    "read_log",
    "verify_log",
]

AUDIT_FILE = "audit.jsonl"
HEAD_SUFFIX = ".head"
LOCK_SUFFIX = ".lock"
GENESIS = "0" * 64
RECORD_KEYS = frozenset({"time", "event", "fields", "seq", "prev", "hash"})

_THREAD_LOCK = threading.Lock()  # flock is per open file; this serialises threads too


class AuditError(InputError):
    """The audit log cannot be written or read as a log; the message is one line."""


def log_path(home: Path | None = None) -> Path:
    """The audit log's path: HOME/audit.jsonl (HOME defaults to kinema_home())."""
    return Path(home if home is not None else kinema_home()) / AUDIT_FILE


def head_path(path: Path | None = None) -> Path:
    """The head file that goes with the log at PATH (audit.jsonl → audit.head)."""
    path = Path(path) if path is not None else log_path()
    return path.with_suffix(HEAD_SUFFIX)


def canonical(record: dict[str, Any]) -> str:
    """The one JSON spelling of a record: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of RECORD without its `hash` key."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def append(event: str, **fields: Any) -> dict[str, Any]:
    """Append one event to the log under KINEMA_HOME and return the record written.

    EVENT is a short dotted name ("policy.screen", "review.approve"); FIELDS are any
    JSON-able values (others, such as paths and dates, are written as their str()).
    Raises AuditError when the event name is empty, or when the log does not match its
    head (it was edited or cut; appending after damage would hide it).
    """
    if not isinstance(event, str) or not event.strip():
        raise AuditError("an audit event needs a name")
    path = log_path()
    # Round-trip through JSON so the record we hash is exactly the record we store.
    clean = json.loads(json.dumps(fields, default=str))
    with _locked(path):
        head = _checked_head(path)
        record: dict[str, Any] = {
            "time": _now(),
            "event": event.strip(),
            "fields": clean,
            "seq": head["count"],
            "prev": head["hash"],
        }
        record["hash"] = record_hash(record)
        line = (canonical(record) + "\n").encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        _write_head(path, record["hash"], head["count"] + 1, head["size"] + len(line))
    return record


def read_log(path: Path | None = None) -> list[dict[str, Any]]:
    """Every record of the log, oldest first (no checking; see verify_log)."""
    path = Path(path) if path is not None else log_path()
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise AuditError(f"{path.name} line {number} is not JSON: {exc}") from exc
    return records


def verify_log(path: Path | None = None) -> tuple[bool, str | None, int]:
    """Check the whole log at PATH (default: KINEMA_HOME/audit.jsonl) and its head.

    Returns (ok, problem, lines): ok is True when every line is canonical JSON whose hash
    matches, each line's prev is the hash of the line before (GENESIS for the first), seq
    counts up from 0, and the head file agrees with the last line, the line count and the
    file size. problem names the first line found wrong (1-based) and why; lines is how
    many lines the log holds. A missing log with no head is an empty, valid log.
    """
    path = Path(path) if path is not None else log_path()
    head_file = head_path(path)
    if not path.exists():
        if head_file.exists():
            head = _read_head(head_file)
            count = head.get("count") if isinstance(head, dict) else "?"
            return False, f"{path.name} is missing but {head_file.name} records {count} lines", 0
        return True, None, 0
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    ok, problem = _check_lines(lines, GENESIS, 0)
    if not ok:
        return False, problem, len(lines)
    return _check_head(head_file, lines, len(data))


# ----------------------------------------------------------------------------- internals


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the log's exclusive lock (threads of this process, then other processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = path.with_suffix(LOCK_SUFFIX)
    with _THREAD_LOCK:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _check_lines(lines: list[bytes], prev: str, first_seq: int) -> tuple[bool, str | None]:
    """Whether LINES chain on from PREV with seq from FIRST_SEQ; else the first problem."""
    for offset, raw in enumerate(lines):
        number = first_seq + offset + 1
        if not raw.endswith(b"\n"):
            return False, f"line {number} is cut short (no newline at its end)"
        try:
            record = json.loads(raw)
        except ValueError:
            return False, f"line {number} is not JSON"
        if not isinstance(record, dict) or set(record) != RECORD_KEYS:
            return False, f"line {number} is not an audit record"
        if raw.decode("utf-8", "replace") != canonical(record) + "\n":
            return False, f"line {number} was edited (not in canonical form)"
        if record["hash"] != record_hash(record):
            return False, f"line {number} was edited (its hash does not match its content)"
        if record["prev"] != prev:
            return False, (
                f"line {number} does not follow line {number - 1} "
                "(a line was deleted, inserted or moved before it)"
            )
        if record["seq"] != number - 1:
            return False, f"line {number} has sequence number {record['seq']}"
        prev = record["hash"]
    return True, None


def _check_head(head_file: Path, lines: list[bytes], size: int) -> tuple[bool, str | None, int]:
    """Whether the head file agrees with the (already chain-checked) log lines."""
    count = len(lines)
    if not head_file.exists():
        if count == 0:
            return True, None, 0
        return False, f"{head_file.name} is missing, so lines cut from the end would not show", count
    head = _read_head(head_file)
    if head is None:
        return False, f"{head_file.name} is damaged", count
    last = json.loads(lines[-1])["hash"] if lines else GENESIS
    if head["count"] != count or head["hash"] != last:
        if head["count"] > count:
            missing = head["count"] - count
            return (
                False,
                (
                    f"the log ends early: {head_file.name} records {head['count']} lines, "
                    f"found {count} ({missing} cut from the end)"
                ),
                count,
            )
        return (
            False,
            (
                f"{head_file.name} records {head['count']} lines ending in {head['hash'][:12]}, "
                f"the log has {count} ending in {last[:12]}"
            ),
            count,
        )
    if head["size"] != size:
        return False, f"the log is {size} bytes, {head_file.name} records {head['size']}", count
    return True, None, count


def _read_head(head_file: Path) -> dict[str, Any] | None:
    try:
        head = json.loads(head_file.read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(head, dict)
        or not isinstance(head.get("hash"), str)
        or not isinstance(head.get("count"), int)
        or not isinstance(head.get("size"), int)
    ):
        return None
    return head


def _checked_head(path: Path) -> dict[str, Any]:
    """The head to append after, checked against the end of the log (cheaply: size and the
    last line). Rolls forward over whole, chained lines a crash left without a head."""
    head_file = head_path(path)
    size = path.stat().st_size if path.exists() else 0
    if not head_file.exists():
        if size == 0:
            return {"hash": GENESIS, "count": 0, "size": 0}
        raise AuditError(
            f"{head_file.name} is missing beside a non-empty {path.name}; run the audit check, "
            "then move both aside to start a new log"
        )
    head = _read_head(head_file)
    if head is None:
        raise AuditError(f"{head_file.name} is damaged; run the audit check")
    if size < head["size"]:
        raise AuditError(
            f"{path.name} is shorter than {head_file.name} records (lines were cut from its "
            "end); run the audit check, then move both aside to start a new log"
        )
    if head["size"] and _line_ending_at(path, head["size"]) != head["hash"]:
        raise AuditError(
            f"the last line of {path.name} does not match {head_file.name} (the log was "
            "edited); run the audit check, then move both aside to start a new log"
        )
    if size > head["size"]:
        with open(path, "rb") as handle:
            handle.seek(head["size"])
            extra = handle.read().splitlines(keepends=True)
        ok, problem = _check_lines(extra, head["hash"], head["count"])
        if not ok:
            raise AuditError(f"{path.name} has unrecorded lines after its head: {problem}")
        last = json.loads(extra[-1])["hash"]
        head = {"hash": last, "count": head["count"] + len(extra), "size": size}
        _write_head(path, head["hash"], head["count"], head["size"])
    return head


def _line_ending_at(path: Path, end: int) -> str | None:
    """The hash of the line that ends at byte END of PATH; None when that line is not
    intact (unreadable, or its content no longer matches its hash)."""
    start, chunk = end, b""
    with open(path, "rb") as handle:
        while start > 0 and b"\n" not in chunk[:-1]:
            step = min(4096, start)
            start -= step
            handle.seek(start)
            chunk = handle.read(step) + chunk
    if not chunk.endswith(b"\n"):
        return None
    line = chunk[:-1].rsplit(b"\n", 1)[-1]
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("hash") != record_hash(record):
        return None
    return record["hash"] if line.decode("utf-8", "replace") == canonical(record) else None


def _write_head(path: Path, last_hash: str, count: int, size: int) -> None:
    """Replace the head file atomically."""
    head_file = head_path(path)
    data = json.dumps({"hash": last_hash, "count": count, "size": size}, sort_keys=True)
    fd, temp = tempfile.mkstemp(prefix=f".{head_file.name}.", dir=head_file.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(data + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, head_file)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
