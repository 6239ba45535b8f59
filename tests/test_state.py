"""state.connect: the one way kinema opens its SQLite databases."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from kinema.state import BUSY_TIMEOUT_S, connect, schema_version, set_schema_version, transaction


def _pragma(db: sqlite3.Connection, name: str):
    return db.execute(f"PRAGMA {name}").fetchone()[0]


def test_connect_creates_the_folder_and_sets_the_shared_settings(tmp_path):
    path = tmp_path / "deep" / "er" / "x.db"
    with closing(connect(path)) as db:
        assert path.parent.is_dir()
        assert _pragma(db, "busy_timeout") == BUSY_TIMEOUT_S * 1000
        assert _pragma(db, "foreign_keys") == 1
        assert _pragma(db, "journal_mode") == "delete" and _pragma(db, "synchronous") == 2  # FULL
        assert db.execute("SELECT 1").fetchone() == (1,)  # plain tuples


def test_wal_databases_are_write_ahead_logged(tmp_path):
    with closing(connect(tmp_path / "q.db", wal=True)) as db:
        assert _pragma(db, "journal_mode") == "wal" and _pragma(db, "synchronous") == 1  # NORMAL


def test_schema_version_and_explicit_transactions(tmp_path):
    path = tmp_path / "v.db"
    with closing(connect(path, autocommit=True)) as db:
        assert schema_version(db) == 0
        db.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(RuntimeError), transaction(db):
            db.execute("INSERT INTO t VALUES (1)")
            set_schema_version(db, 3)
            raise RuntimeError("rolled back")
        assert db.execute("SELECT count(*) FROM t").fetchone() == (0,) and schema_version(db) == 0
        with transaction(db):
            db.execute("INSERT INTO t VALUES (2)")
            set_schema_version(db, 3)
    with closing(connect(path)) as db:
        assert db.execute("SELECT x FROM t").fetchall() == [(2,)] and schema_version(db) == 3
