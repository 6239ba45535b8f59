"""Where kinema keeps its state (keys, consent registry, audit log, databases), and how
its SQLite databases are opened.

KINEMA_HOME names the folder; without it, the platform's user data folder for
"kinema" is used (for example ~/.local/share/kinema). Tests point KINEMA_HOME at a
temporary folder. Every SQLite database kinema keeps (jobs.db, review.db, consent.db)
is opened by `connect`, the one place its connection settings and schema version live.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from platformdirs import user_data_dir

HOME_ENV = "KINEMA_HOME"


def kinema_home(create: bool = True) -> Path:
    """The state folder: $KINEMA_HOME if set, else the user data folder; created if asked."""
    configured = os.environ.get(HOME_ENV, "").strip()
    home = Path(configured).expanduser() if configured else Path(user_data_dir("kinema"))
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home


# Every kinema database waits this long for another writer's lock before giving up: the
# web workers, the CLI and a batch may all write one database at the same moment.
BUSY_TIMEOUT_S = 30.0


def connect(path: str | os.PathLike, *, wal: bool = False, autocommit: bool = False) -> sqlite3.Connection:
    """Open the SQLite database at PATH the one way kinema opens its databases.

    The parent folder is created; a lock held by another connection is waited for up to
    BUSY_TIMEOUT_S (sqlite3's timeout and PRAGMA busy_timeout alike); foreign keys are
    enforced; rows are plain tuples. WAL (for a database polled while workers write, like
    the job queue) switches the file to write-ahead logging with synchronous=NORMAL
    (a commit survives a crash of the process, not always a power cut); without it the
    database keeps SQLite's rollback journal with synchronous=FULL, the durable default
    the review and consent databases rely on. AUTOCOMMIT leaves transactions to the
    caller (explicit BEGIN IMMEDIATE / COMMIT); otherwise sqlite3 opens one before the
    first write and `with connection:` commits it. The caller closes the connection.
    """
    path = Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None if autocommit else "")
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        connection.execute("PRAGMA foreign_keys = ON")
        if wal:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        connection.close()
        raise
    return connection


def schema_version(connection: sqlite3.Connection) -> int:
    """The database's schema version (PRAGMA user_version; 0 for one that never set it)."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def set_schema_version(connection: sqlite3.Connection, version: int) -> None:
    """Record the schema version, inside the caller's transaction (it rolls back with it)."""
    connection.execute(f"PRAGMA user_version = {int(version)}")


@contextmanager
def transaction(connection: sqlite3.Connection, write: bool = True) -> Iterator[sqlite3.Connection]:
    """One explicit transaction on an autocommit connection, committed on success and
    rolled back on any exception: BEGIN IMMEDIATE for writes (the write lock is taken up
    front, so two writers never deadlock upgrading), a plain BEGIN for reads (one
    consistent snapshot; under WAL it waits for no writer)."""
    connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
