"""The append-only audit log: every policy, consent and review decision, one JSON line each.

The log lives at KINEMA_HOME/audit.jsonl. Each line is the canonical JSON (sorted keys,
no spaces, UTF-8) of one record:

    {"event": "policy.screen", "fields": {...}, "hash": "<sha256 hex>",
     "prev": "<hash of the line before>", "seq": 0, "time": "2025-01-02T03:04:05.123456Z"}

`hash` is the SHA-256 of the canonical JSON of the record without `hash`; `prev` is the
previous line's hash (the first line's is GENESIS), and `seq` is the line's index. So an
edited line no longer matches its hash, and a deleted, inserted or reordered line breaks
the chain of `prev` values.

The protocol (DESIGN.md, "Audit protocol"):

- The head, KINEMA_HOME/audit.head, records the last hash, the line count, the size and
  the log's (size, mtime, ctime, inode) when it was last verified, plus the intents that
  have no done entry yet. It is replaced atomically after each append, so cutting lines
  from the end shows. review.db keeps a copy of the head as of its last change (table
  audit_anchor, written in the same transaction as each review decision), so moving the
  log and its head aside shows too: a missing log while review.db holds items is a break.
- Every append first checks the log. The quick check compares the log's stat with the
  verified state in the head (and the last line and review.db's copy, which are cheap to
  read); anything else verifies the whole chain. A same-length edit of any line changes
  the ctime, so it is verified in full and caught.
- A break blocks every append (AuditBroken), and so every state change, until
  `kinema audit repair --accept` appends an acknowledgement that starts a new segment:
  its prev is GENESIS and it records the SHA-256 of every byte before it, so the damaged
  part stays visible to `kinema audit verify` and any later change to it is a new break.
- A state change writes an intent entry (`intent`), renames its file if any, commits its
  database, then writes the done entry (`done`). An intent whose process died before its
  done entry is reconciled by the next state change (see kinema.governance.review).

Appends hold an exclusive `fcntl` lock on KINEMA_HOME/audit.lock, so concurrent writers
(processes or threads) never interleave or fork the chain. The one repair an append makes
by itself is rolling the head forward over complete, correctly chained lines that a crash
left written without a head update.

The chain is plain SHA-256, not keyed: it shows accidental or careless change, and any
change by someone who does not rewrite every later line, the head and review.db's copy.
Someone able to rewrite all of them can forge it; keep copies elsewhere if that matters.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinema.errors import InputError
from kinema.governance.chain import (
    GENESIS,
    REPAIR_EVENT,
    REVIEW_DB,
    anchor_problem,
    canonical,
    head_problem,
    line_ending_at,
    load_head,
    missing_problem,
    record_ending_at,
    record_hash,
    review_anchor,
    scan_log,
)
from kinema.governance.chain import head_path as chain_head_path
from kinema.state import connect, kinema_home, transaction

__all__ = [
    "AUDIT_FILE",
    "GENESIS",
    "REPAIR_EVENT",
    "AuditBroken",
    "AuditError",
    "Intent",
    "Report",
    "abandoned_intents",
    "append",
    "check",
    "done",
    "head_path",
    "intent",
    "log_path",
    "read_log",
    "repair",
    "verify",
    "verify_log",
    "write_anchor",
]

AUDIT_FILE = "audit.jsonl"
LOCK_SUFFIX = ".lock"
HINT = "run `kinema audit verify` to see it, then `kinema audit repair --accept` to go on"
ANCHOR_SCHEMA = """CREATE TABLE IF NOT EXISTS audit_anchor (
    slot INTEGER PRIMARY KEY CHECK (slot = 0),
    count INTEGER NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL
)"""

_THREAD_LOCK = threading.Lock()  # flock is per open file; this serialises threads too


class AuditError(InputError):
    """The audit log cannot be written or read as a log; the message is one line."""


class AuditBroken(AuditError):
    """The log is broken (edited, cut, missing): every state change is refused until
    `kinema audit repair --accept`."""


@dataclass(frozen=True)
class Report:
    """What `verify` found. ok: no unacknowledged break; problem: the first one, naming
    its line where there is one (line: its 1-based number); lines: how many lines the log
    holds; breaks: breaks a repair acknowledged (still shown); open_intents: intent
    entries with no done entry."""

    ok: bool
    problem: str | None
    lines: int
    line: int | None = None
    breaks: tuple[str, ...] = ()
    open_intents: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Intent:
    """An intent entry as written: the record, and where the log ended after it (the
    position review.db copies as its anchor)."""

    record: dict[str, Any]
    end: int

    @property
    def anchor(self) -> dict[str, Any]:
        """The head as of this entry: line count, hash and byte size."""
        return {"count": self.record["seq"] + 1, "hash": self.record["hash"], "size": self.end}


def log_path(home: Path | None = None) -> Path:
    """The audit log's path: HOME/audit.jsonl (HOME defaults to kinema_home())."""
    return Path(home if home is not None else kinema_home()) / AUDIT_FILE


def head_path(path: Path | None = None) -> Path:
    """The head file that goes with the log at PATH (audit.jsonl → audit.head)."""
    return chain_head_path(Path(path) if path is not None else log_path())


# ----------------------------------------------------------------------------- writing


def append(event: str, **fields: Any) -> dict[str, Any]:
    """Append one event to the log under KINEMA_HOME and return the record written.

    EVENT is a short dotted name ("policy.screen", "review.approve"); FIELDS are any
    JSON-able values (others, such as paths and dates, are written as their str()).
    Raises AuditError when the event name is empty, and AuditBroken when the log is broken
    (appending after damage would hide it).
    """
    written = _append(event, fields)
    assert written is not None  # only a must_be_open append writes nothing
    return written[0]


def intent(event: str, **fields: Any) -> Intent:
    """Write the intent entry of a state change (before anything changes); the change's
    `done` entry closes it. Refuses (AuditBroken) on a broken log, so nothing changes."""
    fields = {**fields, "phase": "intent", "pid": os.getpid(), "host": socket.gethostname()}
    written = _append(event, fields, opening=True)
    assert written is not None
    return Intent(*written)


def done(
    opened: Intent | dict[str, Any], outcome: str, *, reconciled: bool = False, **fields: Any
) -> dict[str, Any] | None:
    """Write the done entry of the intent OPENED (an Intent or its record): OUTCOME says
    what happened ("applied", "not applied: ...", "rolled back: ..."). RECONCILED (another
    process closing a crashed one's change) writes nothing, and returns None, when some
    other process closed it first."""
    record = opened.record if isinstance(opened, Intent) else opened
    body = {**fields, "phase": "done", "intent": record["hash"], "outcome": outcome}
    if reconciled:
        body["reconciled"] = True
    written = _append(record["event"], body, closing_hash=record["hash"], must_be_open=reconciled)
    return written[0] if written else None


def check() -> None:
    """Refuse (AuditBroken, naming the break and the commands) when the log is broken:
    the quick check, else a full verification. Every state change calls it first."""
    path = log_path()
    with _locked(path):
        _checked(path)


def abandoned_intents() -> list[dict[str, Any]]:
    """Intent entries without a done entry whose process (on this host) is gone: the
    changes a crash interrupted, for the next state change to reconcile."""
    path = log_path()
    with _locked(path):
        head = _checked(path)
    host = socket.gethostname()
    found = []
    for entry in head.get("open", []):
        if entry.get("host") != host or _alive(entry.get("pid")):
            continue
        record = record_ending_at(path, entry["end"])
        if record is not None and record["hash"] == entry["hash"]:
            found.append(record)
    return found


def write_anchor(connection: sqlite3.Connection, anchor: dict[str, Any]) -> None:
    """Copy the head ANCHOR (an Intent's .anchor) into review.db, inside the caller's
    transaction (it commits with the change it anchors)."""
    connection.execute(ANCHOR_SCHEMA)
    connection.execute(
        "INSERT OR REPLACE INTO audit_anchor (slot, count, hash, size) VALUES (0, ?, ?, ?)",
        (anchor["count"], anchor["hash"], anchor["size"]),
    )


def repair(by: str) -> dict[str, Any] | None:
    """Acknowledge a break: append an `audit.repair` entry that starts a new segment and
    records the break, who accepted it (BY) and the SHA-256 of every byte before it; the
    head and review.db's copy move to it. Returns the entry, or None when the log is
    intact (nothing to acknowledge). The break stays visible to `verify`."""
    path = log_path()
    with _locked(path):
        report = verify(path)
        if report.ok:
            return None
        data = path.read_bytes() if path.exists() else b""
        before = data + (b"\n" if data and not data.endswith(b"\n") else b"")
        count = len(before.splitlines())
        record: dict[str, Any] = {
            "time": _now(),
            "event": REPAIR_EVENT,
            "fields": {
                "problem": report.problem,
                "by": by,
                "lines_before": count,
                "before_size": len(before),
                "before_sha256": hashlib.sha256(before).hexdigest(),
            },
            "seq": count,
            "prev": GENESIS,
        }
        record["hash"] = record_hash(record)
        line = (canonical(record) + "\n").encode("utf-8")
        _write_bytes(path, before[len(data) :] + line)
        end = len(before) + len(line)
        opened = [_open_entry(r, e) for r, e in scan_log(before + line).open.values()]
        _write_head(path, record["hash"], count + 1, end, opened)
        database = path.parent / REVIEW_DB
        if database.exists():
            with closing(connect(database, autocommit=True)) as db, transaction(db):
                write_anchor(db, {"count": count + 1, "hash": record["hash"], "size": end})
    return record


# ----------------------------------------------------------------------------- reading


def read_log(path: Path | None = None) -> list[dict[str, Any]]:
    """Every record of the log, oldest first (no checking; see verify)."""
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


def verify(path: Path | None = None) -> Report:
    """Check the whole log at PATH (default: KINEMA_HOME/audit.jsonl), its head and
    review.db's copy of the head; see Report. Breaks acknowledged by a repair are listed,
    not counted against ok. A missing log with no head and no review items is empty and
    valid."""
    path = Path(path) if path is not None else log_path()
    head, head_state = load_head(head_path(path))
    anchor, has_items = review_anchor(path.parent)
    if not path.exists():
        problem = missing_problem(path, head, anchor, has_items)
        return Report(problem is None, problem, 0)
    data = path.read_bytes()
    scan = scan_log(data)
    opened = tuple(record for record, _ in scan.open.values())
    if scan.problem is not None:
        return Report(False, scan.problem, scan.lines, scan.bad_line, tuple(scan.breaks), opened)
    problem = head_problem(path, head, head_state, scan, len(data), strict=True) or anchor_problem(
        anchor, has_items, scan
    )
    return Report(problem is None, problem, scan.lines, None, tuple(scan.breaks), opened)


def verify_log(path: Path | None = None) -> tuple[bool, str | None, int]:
    """(ok, problem, lines) of `verify`: ok when the log has no unacknowledged break."""
    report = verify(path)
    return report.ok, report.problem, report.lines


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


def _append(
    event: str,
    fields: dict[str, Any],
    opening: bool = False,
    closing_hash: str | None = None,
    must_be_open: bool = False,
) -> tuple[dict[str, Any], int] | None:
    if not isinstance(event, str) or not event.strip():
        raise AuditError("an audit event needs a name")
    path = log_path()
    # Round-trip through JSON so the record we hash is exactly the record we store.
    clean = json.loads(json.dumps(fields, default=str))
    with _locked(path):
        head = _checked(path)
        if must_be_open and not any(e.get("hash") == closing_hash for e in head.get("open", [])):
            return None
        record: dict[str, Any] = {
            "time": _now(),
            "event": event.strip(),
            "fields": clean,
            "seq": head["count"],
            "prev": head["hash"],
        }
        record["hash"] = record_hash(record)
        line = (canonical(record) + "\n").encode("utf-8")
        _write_bytes(path, line)
        end = head["size"] + len(line)
        opened = [e for e in head.get("open", []) if e.get("hash") != closing_hash]
        if opening:
            opened.append(_open_entry(record, end))
        _write_head(path, record["hash"], head["count"] + 1, end, opened)
    return record, end


def _write_bytes(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_entry(record: dict[str, Any], end: int) -> dict[str, Any]:
    fields = record.get("fields") or {}
    return {
        "hash": record["hash"],
        "seq": record["seq"],
        "end": end,
        "event": record["event"],
        "pid": fields.get("pid"),
        "host": fields.get("host"),
    }


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _stat(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _checked(path: Path) -> dict[str, Any]:
    """The head to append after, with the lock held. The quick check: the log's stat
    equals the verified state, its last line is the head's, review.db's copy lies on the
    chain. Otherwise the whole log is verified (rolling the head forward over whole,
    chained lines a crash left without a head update). Raises AuditBroken."""
    head, head_state = load_head(head_path(path))
    anchor, has_items = review_anchor(path.parent)
    if not path.exists():
        problem = missing_problem(path, head, anchor, has_items)
        if problem:
            raise AuditBroken(f"the audit log is broken: {problem}; {HINT}")
        return {"hash": GENESIS, "count": 0, "size": 0, "open": []}
    if (
        head is not None
        and head.get("stat") == _stat(path)
        and head["size"] == head["stat"][0]
        and (head["size"] == 0 or line_ending_at(path, head["size"]) == head["hash"])
        and _anchor_on_chain(path, anchor, head, has_items)
    ):
        return head
    data = path.read_bytes()
    scan = scan_log(data)
    problem = (
        scan.problem
        or head_problem(path, head, head_state, scan, len(data), strict=False)
        or anchor_problem(anchor, has_items, scan)
    )
    if problem:
        raise AuditBroken(f"the audit log is broken: {problem}; {HINT}")
    opened = [_open_entry(r, e) for r, e in scan.open.values()]
    _write_head(path, scan.last_hash, scan.lines, len(data), opened)
    return {"hash": scan.last_hash, "count": scan.lines, "size": len(data), "open": opened}


def _anchor_on_chain(path: Path, anchor: dict | None, head: dict, has_items: bool) -> bool:
    if anchor is None:
        return not has_items or head["count"] > 0
    if anchor["count"] > head["count"] or anchor["size"] > head["size"]:
        return False
    return line_ending_at(path, anchor["size"]) == anchor["hash"]


def _write_head(path: Path, last_hash: str, count: int, size: int, opened: list[dict[str, Any]]) -> None:
    """Replace the head file atomically, with the log's stat as the verified state."""
    head_file = head_path(path)
    state = {"hash": last_hash, "count": count, "size": size, "stat": _stat(path), "open": opened}
    fd, temp = tempfile.mkstemp(prefix=f".{head_file.name}.", dir=head_file.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(state, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, head_file)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
