"""Reading the audit log's chain (kinema.governance.audit writes it): one line's record,
the segments a repair starts, the intents no done entry closed, and whether the head file
and review.db's copy of the head (the anchor) agree with the lines."""

from __future__ import annotations

import hashlib
import json
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinema.state import connect

__all__ = [
    "GENESIS",
    "HEAD_SUFFIX",
    "RECORD_KEYS",
    "REPAIR_EVENT",
    "REVIEW_DB",
    "Scan",
    "anchor_problem",
    "canonical",
    "head_path",
    "head_problem",
    "line_ending_at",
    "load_head",
    "missing_problem",
    "parse_line",
    "record_ending_at",
    "record_hash",
    "review_anchor",
    "scan_log",
]

HEAD_SUFFIX = ".head"
GENESIS = "0" * 64
RECORD_KEYS = frozenset({"time", "event", "fields", "seq", "prev", "hash"})
REPAIR_EVENT = "audit.repair"
REVIEW_DB = "review.db"  # holds the copy of the head (the anchor)


def head_path(path: Path) -> Path:
    """The head file that goes with the log at PATH (audit.jsonl → audit.head)."""
    return Path(path).with_suffix(HEAD_SUFFIX)


def canonical(record: dict[str, Any]) -> str:
    """The one JSON spelling of a record: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of RECORD without its `hash` key."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


@dataclass
class Scan:
    """What scan_log found: line count, the last hash of the segment in force, its first
    problem (and line), the breaks repairs acknowledged, the open intents (hash → record
    and the byte offset after it), and each line's hash and end offset."""

    lines: int = 0
    last_hash: str = GENESIS
    problem: str | None = None
    bad_line: int | None = None
    breaks: list[str] = field(default_factory=list)
    open: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    hashes: list[str | None] = field(default_factory=list)  # each line's hash (None: unreadable)
    ends: list[int] = field(default_factory=list)  # the byte offset after each line


def scan_log(data: bytes) -> Scan:
    """Walk every line: the chain within each segment, the repairs that start new ones
    (each acknowledges the first problem of the segment before it), and the intents that
    no done entry closed."""
    scan = Scan()
    prev, offset = GENESIS, 0
    running = hashlib.sha256()
    for index, raw in enumerate(data.splitlines(keepends=True)):
        number = index + 1
        record, why = parse_line(raw)
        if record is not None and is_repair(record, index, offset, running):
            fields = record["fields"]
            found = scan.problem or fields.get("problem") or "no problem recorded"
            scan.breaks.append(f"{found} (acknowledged at line {number} by {fields.get('by')})")
            scan.problem, scan.bad_line, prev = None, None, record["hash"]
        elif scan.problem is not None and record is not None and record["event"] == REPAIR_EVENT:
            # a repair that no longer matches the bytes before it: they changed after it
            scan.problem += f"; the repair at line {number} no longer matches the lines before it"
        elif scan.problem is None:
            if why is None and record["prev"] != prev:
                why = f"does not follow line {number - 1} (a line was deleted, inserted or moved before it)"
            if why is None and record["seq"] != index:
                why = f"has sequence number {record['seq']}"
            if why is not None:
                scan.problem, scan.bad_line = f"line {number} {why}", number
            else:
                prev = record["hash"]
                _track(scan, record, offset + len(raw))
        running.update(raw)
        offset += len(raw)
        scan.hashes.append(record["hash"] if record is not None else None)
        scan.ends.append(offset)
        scan.lines = number
    scan.last_hash = prev
    return scan


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The record on one line when it is intact by itself, else None and why not."""
    if not raw.endswith(b"\n"):
        return None, "is cut short (no newline at its end)"
    try:
        record = json.loads(raw)
    except ValueError:
        return None, "is not JSON"
    if not isinstance(record, dict) or set(record) != RECORD_KEYS:
        return None, "is not an audit record"
    if raw.decode("utf-8", "replace") != canonical(record) + "\n":
        return None, "was edited (not in canonical form)"
    if record["hash"] != record_hash(record):
        return None, "was edited (its hash does not match its content)"
    return record, None


def is_repair(record: dict[str, Any], index: int, offset: int, running) -> bool:
    """Whether RECORD (intact, at line INDEX, starting at byte OFFSET) is a repair that
    matches every byte before it (RUNNING: the SHA-256 of those bytes so far)."""
    fields = record.get("fields")
    return (
        record["event"] == REPAIR_EVENT
        and record["prev"] == GENESIS
        and record["seq"] == index
        and isinstance(fields, dict)
        and fields.get("before_size") == offset
        and fields.get("before_sha256") == running.copy().hexdigest()
    )


def _track(scan: Scan, record: dict[str, Any], end: int) -> None:
    fields = record.get("fields")
    if not isinstance(fields, dict):
        return
    if fields.get("phase") == "intent":
        scan.open[record["hash"]] = (record, end)
    elif fields.get("phase") == "done":
        scan.open.pop(fields.get("intent"), None)


def missing_problem(path: Path, head: dict | None, anchor: dict | None, has_items: bool) -> str | None:
    if head is not None and head["count"] > 0:
        return f"{path.name} is missing but {head_path(path).name} records {head['count']} lines"
    if anchor is not None or has_items:
        return f"{path.name} is missing while {REVIEW_DB} holds review items"
    return None


def head_problem(
    path: Path, head: dict | None, head_state: str, scan: Scan, size: int, strict: bool
) -> str | None:
    """Whether the head agrees with the (chain-checked) log. Not STRICT (an append), whole
    chained lines after the head's last one are a crash's, rolled forward."""
    name = head_path(path).name
    count = scan.lines
    if head_state == "missing":
        return None if count == 0 else f"{name} is missing, so lines cut from the end would not show"
    if head is None:
        return f"{name} is damaged"
    if head["count"] > count:
        return (
            f"the log ends early: {name} records {head['count']} lines, found {count} "
            f"({head['count'] - count} cut from the end)"
        )
    if head["count"] < count and not strict:
        known = head["count"] - 1
        last, end = (scan.hashes[known], scan.ends[known]) if head["count"] else (GENESIS, 0)
        if last == head["hash"] and end == head["size"]:
            return None
    if head["count"] != count or head["hash"] != scan.last_hash:
        return (
            f"{name} records {head['count']} lines ending in {head['hash'][:12]}, "
            f"the log has {count} ending in {scan.last_hash[:12]}"
        )
    if head["size"] != size:
        return f"the log is {size} bytes, {name} records {head['size']}"
    return None


def anchor_problem(anchor: dict | None, has_items: bool, scan: Scan) -> str | None:
    if anchor is None:
        if has_items and scan.lines == 0:
            return f"the log is empty while {REVIEW_DB} holds review items"
        return None
    count = anchor["count"]
    if count > scan.lines:
        return (
            f"{REVIEW_DB} last saw the log at {count} lines, it has {scan.lines} "
            "(lines were cut, or the log was replaced)"
        )
    if count and (scan.hashes[count - 1] != anchor["hash"] or scan.ends[count - 1] != anchor["size"]):
        return f"line {count} is not the line {REVIEW_DB} last saw there (the log was replaced or rewritten)"
    return None


def load_head(head_file: Path) -> tuple[dict[str, Any] | None, str]:
    """The head and its state: "ok", "missing" or "damaged" (then None)."""
    try:
        head = json.loads(head_file.read_text())
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError):
        return None, "damaged"
    if (
        not isinstance(head, dict)
        or not isinstance(head.get("hash"), str)
        or not isinstance(head.get("count"), int)
        or not isinstance(head.get("size"), int)
    ):
        return None, "damaged"
    head.setdefault("open", [])
    return head, "ok"


def review_anchor(home: Path) -> tuple[dict[str, Any] | None, bool]:
    """review.db's copy of the head (None when it has none) and whether it holds items."""
    database = home / REVIEW_DB
    if not database.exists():
        return None, False
    with closing(connect(database)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        has_items = "items" in tables and bool(
            db.execute("SELECT EXISTS (SELECT 1 FROM items)").fetchone()[0]
        )
        row = None
        if "audit_anchor" in tables:
            row = db.execute("SELECT count, hash, size FROM audit_anchor WHERE slot = 0").fetchone()
    anchor = {"count": row[0], "hash": row[1], "size": row[2]} if row else None
    return anchor, has_items


def line_ending_at(path: Path, end: int) -> str | None:
    """The hash of the intact line that ends at byte END of PATH, else None."""
    record = record_ending_at(path, end)
    return record["hash"] if record is not None else None


def record_ending_at(path: Path, end: int) -> dict[str, Any] | None:
    """The intact record on the line that ends at byte END of PATH, else None."""
    start, chunk = end, b""
    try:
        if end <= 0 or end > path.stat().st_size:
            return None
        with open(path, "rb") as handle:
            while start > 0 and b"\n" not in chunk[:-1]:
                step = min(4096, start)
                start -= step
                handle.seek(start)
                chunk = handle.read(step) + chunk
    except OSError:
        return None
    chunk = chunk[: end - start]
    if not chunk.endswith(b"\n"):
        return None
    record, why = parse_line(chunk[:-1].rsplit(b"\n", 1)[-1] + b"\n")
    return record if why is None else None
