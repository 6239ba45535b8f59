"""The durable job queue: SQLite in WAL mode, usable without the web app.

    submit ─► queued ─claim─► running ─complete─► done
                 ▲              │ └──fail──► failed      cancel ─► cancelled
                 └─lease lost───┤ (worker died: recover() or abandon() puts it back once)
                                └─lost again──► failed ("... retried once; not run again")

Exactly once. A claim is one atomic `UPDATE … WHERE status = 'queued'` that also writes a
fresh random lease token; every later write by the worker (heartbeat, progress, complete,
fail) is conditional on `status = 'running' AND lease = <its token>`. A worker that lost its
lease (it stalled past the deadline, the job was re-queued and claimed again, or the job
was deleted) gets False back and can change nothing, so a job reaches "done" once. The
output is written by `kinema.publish` to a temporary name and renamed into place, so a
worker killed mid-job leaves no partial file; the seed is fixed at submit time, so a
re-run writes the same bytes to the same name.

Recovery: `recover(all_running=True)` re-queues every running job (the server calls it
on start, before its workers run: any worker of the previous run is dead or exits when
it sees its parent gone); `recover()` alone re-queues jobs whose lease expired (workers
call it between jobs and the server's supervisor every second, so a dead worker's job
comes back even when no other worker is alive); `abandon(worker)` re-queues the jobs of
a worker process known to be dead at once, without waiting for the lease.

Retries. `attempts` counts the runs a job started; `lost` counts the runs that ended
with their worker gone (killed, crashed, stalled past the lease). A lost run is retried
LOST_RUN_RETRIES times (once); the next lost run fails the job with the reason, so a job
that kills its worker cannot take the workers down in a loop. A run handed back cleanly
(`release`: the server went away; `abandon(..., counted=False)`: the server stopped the
worker) is not a lost run. However often a job is retried, the lease fence above lets it
complete once.

Files live under ROOT (default KINEMA_HOME/jobs): jobs.db, outputs/<id>.mp4 (+ its
.json sidecar; a still's is outputs/<id>.png: `output_name`), outputs/<id>.published.mp4
(or .png: an approved take exported through the review gate) and inputs/<upload id>.png.
`cleanup` enforces an age and a size limit; it keeps the uploads and source takes that
queued or running jobs still need.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinema.errors import InputError
from kinema.state import connect, kinema_home, transaction

__all__ = [
    "ID_PATTERN",
    "Job",
    "JobQueue",
    "JobError",
    "LEASE_SECONDS",
    "LOST_RUN_RETRIES",
    "STATUSES",
    "FINISHED",
    "output_name",
    "output_suffix",
]

ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
LEASE_SECONDS = 60.0
LOST_RUN_RETRIES = 1  # a job whose worker is lost is run once more, never a third time
LOST_REASON = (
    f"its worker was lost {LOST_RUN_RETRIES + 1} times (killed, crashed or stalled past the lease); "
    f"retried {LOST_RUN_RETRIES} time(s) already, not run again"
)
OUTPUT_SUFFIX = ".mp4"
STILL_SUFFIX = ".png"


class JobError(InputError):
    """A queue request kinema refuses (unknown id, bad state, bad value)."""


class Cancelled(Exception):
    """Raised inside a running job when it was cancelled or its lease was lost."""


@dataclass(frozen=True)
class Job:
    """One job. params: what to make (mode, prompt, seed, ...); progress: (i, n) steps;
    record: the publish record once done; output: the file's name under outputs/;
    attempts: runs started; lost_runs: runs whose worker was lost (module doc: Retries)."""

    id: str
    owner: str
    status: str
    params: dict[str, Any]
    created: float
    updated: float
    attempts: int = 0
    lost_runs: int = 0
    progress: tuple[int, int] = (0, 0)
    output: str | None = None
    record: dict[str, Any] | None = None
    error: str | None = None
    size: int = 0
    cancel_requested: bool = False
    lease: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the lease token)."""
        return {
            "id": self.id,
            "status": self.status,
            "params": self.params,
            "created": self.created,
            "updated": self.updated,
            "attempts": self.attempts,
            "lost_runs": self.lost_runs,
            "progress": {"i": self.progress[0], "n": self.progress[1]},
            "error": self.error,
            "size": self.size,
            "review_id": (self.record or {}).get("id"),
            "seed": self.params.get("seed"),
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    progress_i INTEGER NOT NULL DEFAULT 0,
    progress_n INTEGER NOT NULL DEFAULT 0,
    output TEXT,
    record TEXT,
    error TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease TEXT,
    lease_until REAL,
    worker TEXT,
    lost INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, created);
CREATE TABLE IF NOT EXISTS inputs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    facts TEXT
);
"""
_FIELDS = (
    "id owner status params created updated attempts progress_i progress_n output record "
    "error size cancel_requested lease lost"
).split()
_COLUMNS = ", ".join(_FIELDS)


class JobQueue:
    """The queue at ROOT (default KINEMA_HOME/jobs). Cheap to create: every call opens
    its own connection, so one instance may be shared by threads, and each process
    makes its own."""

    def __init__(self, root: str | os.PathLike | None = None, lease_seconds: float = LEASE_SECONDS):
        self.root = Path(os.fspath(root)) if root is not None else kinema_home() / "jobs"
        self.outputs = self.root / "outputs"
        self.inputs = self.root / "inputs"
        for folder in (self.root, self.outputs, self.inputs):
            folder.mkdir(parents=True, exist_ok=True)
        self.lease_seconds = lease_seconds
        with closing(connect(self.root / "jobs.db", wal=True)) as db:
            db.executescript(_SCHEMA)
            # a queue made before uploads kept their facts gains the column (empty for old rows)
            if "facts" not in {row[1] for row in db.execute("PRAGMA table_info(inputs)")}:
                db.execute("ALTER TABLE inputs ADD COLUMN facts TEXT")
                db.commit()
            # … and one made before lost runs were counted gains that column (none lost yet)
            if "lost" not in {row[1] for row in db.execute("PRAGMA table_info(jobs)")}:
                db.execute("ALTER TABLE jobs ADD COLUMN lost INTEGER NOT NULL DEFAULT 0")
                db.commit()

    # ------------------------------------------------------------------ clients

    def submit(self, owner: str, params: dict[str, Any]) -> Job:
        """Queue a job for OWNER (a token id); returns it. PARAMS must be JSON-ready."""
        now = time.time()
        job_id = secrets.token_hex(8)
        with self._db() as db:
            db.execute(
                "INSERT INTO jobs (id, owner, status, params, created, updated) VALUES (?, ?, 'queued', ?, ?, ?)",
                (job_id, owner, json.dumps(params), now, now),
            )
        return self.get(job_id)

    def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job with this id (of OWNER when given: another owner's job is unknown)."""
        check_id(job_id)
        query, args = f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", [job_id]
        if owner is not None:
            query, args = query + " AND owner = ?", [*args, owner]
        with self._db(write=False) as db:
            row = db.execute(query, args).fetchone()
        if row is None:
            raise JobError(f"no job with id '{job_id}'")
        return _job(row)

    def list(
        self, owner: str | None = None, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> tuple[list[Job], int]:
        """A page of jobs, newest first, and the total count that matched."""
        if status is not None and status not in STATUSES:
            raise JobError(f"status must be one of {', '.join(STATUSES)}, got '{status}'")
        if not 1 <= limit <= 200 or offset < 0:
            raise JobError("limit must be 1..200 and offset at least 0")
        where, args = [], []
        if owner is not None:
            where, args = [*where, "owner = ?"], [*args, owner]
        if status is not None:
            where, args = [*where, "status = ?"], [*args, status]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._db(write=False) as db:
            total = db.execute(f"SELECT count(*) FROM jobs{clause}", args).fetchone()[0]
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM jobs{clause} ORDER BY created DESC, id LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return [_job(r) for r in rows], total

    def cancel(self, job_id: str, owner: str | None = None) -> Job:
        """Cancel a queued job at once, or ask a running one to stop (its worker sees the
        request at its next progress step). A finished job is left as it is."""
        job = self.get(job_id, owner)
        with self._db() as db:
            db.execute(
                "UPDATE jobs SET status = 'cancelled', updated = ?, lease = NULL WHERE id = ? AND status = 'queued'",
                (time.time(), job.id),
            )
            db.execute(
                "UPDATE jobs SET cancel_requested = 1, updated = ? WHERE id = ? AND status = 'running'",
                (time.time(), job.id),
            )
        return self.get(job.id)

    def delete(self, job_id: str, owner: str | None = None) -> None:
        """Remove a job and its files. A running job's worker loses its lease with the row
        and discards what it makes."""
        job = self.get(job_id, owner)
        with self._db() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
        self._remove_output(job.id)

    def output_path(self, job: Job) -> Path | None:
        """Where a done job's file is (None when it has none)."""
        if job.status != "done" or not job.output:
            return None
        path = self.outputs / job.output
        return path if path.is_file() else None

    def published_path(self, job: Job | str) -> Path:
        """Where the published (approved and exported) copy of JOB's take goes (JOB or its
        id), in the take's own format; it is removed with the job."""
        if isinstance(job, str):
            job = self.get(job)
        return self.outputs / f"{job.id}.published{output_suffix(job.params)}"

    def save_input(
        self, owner: str, data: bytes, suffix: str = ".png", facts: dict[str, Any] | None = None
    ) -> str:
        """Store an uploaded file (already checked by the caller) for OWNER; returns its id.
        `facts` (JSON-ready) are what the check learned about it, kept for later requests."""
        if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
            raise JobError(f"bad suffix '{suffix}'")
        input_id = secrets.token_hex(8)
        name = input_id + suffix
        tmp = self.inputs / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.inputs / name)
        with self._db() as db:
            db.execute(
                "INSERT INTO inputs (id, owner, name, created, facts) VALUES (?, ?, ?, ?, ?)",
                (input_id, owner, name, time.time(), None if facts is None else json.dumps(facts)),
            )
        return input_id

    def input_path(self, input_id: str, owner: str | None = None) -> Path:
        """The stored file of an upload (of OWNER when given)."""
        return self.input_record(input_id, owner)[0]

    def input_facts(self, input_id: str, owner: str | None = None) -> dict[str, Any]:
        """The facts saved with an upload (of OWNER when given); {} when none were."""
        return self.input_record(input_id, owner)[1]

    def input_record(self, input_id: str, owner: str | None = None) -> tuple[Path, dict[str, Any]]:
        """An upload's stored file and the facts saved with it ({} when none were), from one
        read of its row (of OWNER's uploads when given)."""
        check_id(input_id, "upload")
        query, args = "SELECT name, facts FROM inputs WHERE id = ?", [input_id]
        if owner is not None:
            query, args = query + " AND owner = ?", [*args, owner]
        with self._db(write=False) as db:
            row = db.execute(query, args).fetchone()
        if row is None or not (self.inputs / row[0]).is_file():
            raise JobError(f"no upload with id '{input_id}'")
        return self.inputs / row[0], json.loads(row[1]) if row[1] else {}

    # ------------------------------------------------------------------ workers

    def claim(self, worker: str) -> Job | None:
        """Take the oldest queued job for WORKER; None when there is none. Atomic: two
        workers never get the same job."""
        lease = secrets.token_hex(16)
        now = time.time()
        with self._db() as db:
            row = db.execute(
                f"""UPDATE jobs SET status = 'running', lease = ?, lease_until = ?, worker = ?,
                        attempts = attempts + 1, updated = ?, progress_i = 0, progress_n = 0
                    WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY created, id LIMIT 1)
                      AND status = 'queued'
                    RETURNING {_COLUMNS}""",
                (lease, now + self.lease_seconds, worker, now),
            ).fetchone()
        return _job(row) if row else None

    def heartbeat(self, job: Job) -> bool:
        """Extend JOB's lease; False when the lease is lost or a cancel was asked for."""
        return self._running_update(job, "")

    def progress(self, job: Job, i: int, n: int) -> bool:
        """Record step I of N (also a heartbeat); False as for heartbeat."""
        return self._running_update(job, ", progress_i = ?, progress_n = ?", (int(i), int(n)))

    def complete(self, job: Job, output: str, record: dict[str, Any]) -> bool:
        """Mark JOB done with its output file name; False (and nothing changed) when the
        worker no longer holds the lease: the job completes once."""
        size = _size(self.outputs / output)
        with self._db() as db:
            done = db.execute(
                """UPDATE jobs SET status = 'done', output = ?, record = ?, size = ?, updated = ?,
                       lease = NULL, lease_until = NULL, progress_i = progress_n
                   WHERE id = ? AND status = 'running' AND lease = ?""",
                (output, json.dumps(record, default=str), size, time.time(), job.id, job.lease),
            ).rowcount
        return done == 1

    def fail(self, job: Job, error: str, cancelled: bool = False) -> bool:
        """Mark JOB failed (or cancelled) with a one-line reason; False without the lease."""
        status = "cancelled" if cancelled else "failed"
        with self._db() as db:
            done = db.execute(
                """UPDATE jobs SET status = ?, error = ?, updated = ?, lease = NULL, lease_until = NULL
                   WHERE id = ? AND status = 'running' AND lease = ?""",
                (status, error[:500], time.time(), job.id, job.lease),
            ).rowcount
        return done == 1

    def release(self, job: Job) -> bool:
        """Give a running JOB back to the queue (its worker is stopping: not a lost run);
        False without the lease."""
        with self._db() as db:
            done = db.execute(
                """UPDATE jobs SET status = 'queued', lease = NULL, lease_until = NULL, worker = NULL,
                       updated = ? WHERE id = ? AND status = 'running' AND lease = ?""",
                (time.time(), job.id, job.lease),
            ).rowcount
        return done == 1

    def recover(self, all_running: bool = False) -> int:
        """Take back running jobs whose lease expired (all running jobs with ALL_RUNNING,
        for a server start whose previous workers are gone): each is a lost run, re-queued
        once and failed after that (see the module's Retries). Returns how many."""
        return self._take_back("1" if all_running else "lease_until < :now")

    def abandon(self, worker: str, counted: bool = True) -> int:
        """Take back the running jobs of WORKER, a process known to be gone, without
        waiting for their leases: lost runs, as in recover. COUNTED False (the server
        stopped the worker itself) re-queues them without counting a lost run."""
        return self._take_back("worker = :worker", {"worker": worker}, counted)

    def depth(self) -> dict[str, Any]:
        """How many jobs are queued and running, and the age in seconds of the oldest
        queued one (None when none is queued)."""
        with self._db(write=False) as db:
            counts = dict(
                db.execute(
                    "SELECT status, count(*) FROM jobs WHERE status IN ('queued', 'running') GROUP BY status"
                ).fetchall()
            )
            oldest = db.execute("SELECT min(created) FROM jobs WHERE status = 'queued'").fetchone()[0]
        return {
            "queued": counts.get("queued", 0),
            "running": counts.get("running", 0),
            "oldest_queued_age": None if oldest is None else round(max(0.0, time.time() - oldest), 3),
        }

    # ------------------------------------------------------------------ limits

    def cleanup(self, max_bytes: int | None = None, max_age: float | None = None) -> list[str]:
        """Delete finished jobs older than MAX_AGE seconds, then the oldest done jobs until
        their outputs total at most MAX_BYTES; also stray temporary files and uploads no
        queued or running job needs that are older than an hour. Returns the ids deleted."""
        now = time.time()
        gone: list[str] = []
        finished = "('done', 'failed', 'cancelled')"
        with self._db() as db:
            active = [
                json.loads(r[0])
                for r in db.execute("SELECT params FROM jobs WHERE status IN ('queued', 'running')")
            ]
            needed = {p.get(name) for p in active for name in ("image", "last_image", "mask", "source_clip")}
            sources = {p.get("source") for p in active}  # takes that edits still read
            if max_age is not None:
                rows = db.execute(
                    f"SELECT id FROM jobs WHERE status IN {finished} AND updated < ?", (now - max_age,)
                ).fetchall()
                gone += [r[0] for r in rows if r[0] not in sources]
            if max_bytes is not None:
                total = 0
                for job_id, size in db.execute(
                    "SELECT id, size FROM jobs WHERE status = 'done' ORDER BY updated DESC"
                ).fetchall():
                    total += size
                    if total > max_bytes and job_id not in gone and job_id not in sources:
                        gone.append(job_id)
            for job_id in gone:
                db.execute(f"DELETE FROM jobs WHERE id = ? AND status IN {finished}", (job_id,))
            for input_id, name, created in db.execute("SELECT id, name, created FROM inputs").fetchall():
                if input_id not in needed and created < now - 3600:
                    db.execute("DELETE FROM inputs WHERE id = ?", (input_id,))
                    (self.inputs / name).unlink(missing_ok=True)
        for job_id in gone:
            self._remove_output(job_id)
        for stray in self.outputs.glob(".*"):
            if stray.is_file() and stray.stat().st_mtime < now - 3600:
                stray.unlink(missing_ok=True)
        return gone

    # ------------------------------------------------------------------ internals

    def _take_back(self, which: str, values: dict[str, Any] | None = None, counted: bool = True) -> int:
        """Re-queue the running jobs that the SQL condition WHICH (over VALUES and :now)
        selects; COUNTED, each is a lost run, and one past LOST_RUN_RETRIES fails instead,
        with the reason."""
        now = time.time()
        with self._db() as db:
            count = db.execute(
                f"""UPDATE jobs SET lost = lost + :step,
                        status = CASE WHEN lost + :step > :retries THEN 'failed' ELSE 'queued' END,
                        error = CASE WHEN lost + :step > :retries THEN :reason ELSE error END,
                        lease = NULL, lease_until = NULL, worker = NULL, updated = :now
                    WHERE status = 'running' AND ({which})""",
                {
                    "step": int(counted),
                    "retries": LOST_RUN_RETRIES,
                    "reason": LOST_REASON,
                    "now": now,
                    **(values or {}),
                },
            ).rowcount
            # a cancel asked of a job that then lost its worker is honoured now
            db.execute(
                "UPDATE jobs SET status = 'cancelled', updated = ? WHERE status = 'queued' AND cancel_requested = 1",
                (now,),
            )
        return count

    def _running_update(self, job: Job, assignments: str, values: tuple = ()) -> bool:
        with self._db() as db:
            row = db.execute(
                f"""UPDATE jobs SET lease_until = ?, updated = ?{assignments}
                    WHERE id = ? AND status = 'running' AND lease = ? RETURNING cancel_requested""",
                (time.time() + self.lease_seconds, time.time(), *values, job.id, job.lease),
            ).fetchone()
        return row is not None and not row[0]

    def _remove_output(self, job_id: str) -> None:
        for path in self.outputs.glob(f"{job_id}.*"):
            path.unlink(missing_ok=True)

    @contextmanager
    def _db(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One connection, one transaction (committed on success): IMMEDIATE for writes;
        reads take a WAL snapshot and wait for no lock, so status polls never queue
        behind each other or behind a worker's progress writes."""
        with closing(connect(self.root / "jobs.db", wal=True, autocommit=True)) as db, transaction(db, write):
            yield db


def output_suffix(params: dict[str, Any]) -> str:
    """The suffix of the working file a job with PARAMS makes: .png for a still, else .mp4
    (jobs queued before stills have no "still" and stay clips)."""
    return STILL_SUFFIX if params.get("still") else OUTPUT_SUFFIX


def output_name(job: Job) -> str:
    """The name under outputs/ of the working file JOB makes: its id and output_suffix."""
    return job.id + output_suffix(job.params)


def check_id(value: str, what: str = "job") -> str:
    """Refuse anything but 16 lowercase hex digits (ids never reach a path otherwise)."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise JobError(f"bad {what} id '{str(value)[:40]}': ids are 16 hex digits")
    return value


def _job(row: tuple) -> Job:
    v = dict(zip(_FIELDS, row, strict=True))
    return Job(
        id=v["id"],
        owner=v["owner"],
        status=v["status"],
        params=json.loads(v["params"]),
        created=v["created"],
        updated=v["updated"],
        attempts=v["attempts"],
        lost_runs=v["lost"],
        progress=(v["progress_i"], v["progress_n"]),
        output=v["output"],
        record=json.loads(v["record"]) if v["record"] else None,
        error=v["error"],
        size=v["size"],
        cancel_requested=bool(v["cancel_requested"]),
        lease=v["lease"],
    )


def _size(path: Path) -> int:
    total = path.stat().st_size if path.is_file() else 0
    for extra in path.parent.glob(path.name + ".*"):
        total += extra.stat().st_size
    return total
