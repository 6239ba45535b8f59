"""Migration of what older kinema left in KINEMA_HOME (issue 25): review.db of schema
version 0 and web tokens without roles, built with the old code's own SQL and format."""

from __future__ import annotations

import json
import os
import sqlite3

import numpy as np
import pytest

from kinema.governance import audit, review
from kinema.governance.review import StateError
from kinema.io import Video
from kinema.provenance.c2pa import Generation, ManifestSpec
from kinema.provenance.keys import ensure_keys
from kinema.state import kinema_home
from kinema.web.tokens import TokenStore

# review.db as kinema wrote it before review states (git show 542e410:src/kinema/provenance/review.py)
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    settings TEXT NOT NULL,
    spec TEXT NOT NULL,
    ingredients TEXT NOT NULL,
    reviewer TEXT,
    note TEXT,
    decided TEXT,
    exports TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_status ON items (status);
"""
OLD_COLUMNS = "id kind path created status sha256 settings spec ingredients reviewer note decided exports"
SETTINGS = {"prompt": "a red circle", "seed": 1}


def old_item(db, tmp_path, item_id, status, created, name=None, reviewer=None):
    path = tmp_path / (name or f"{item_id}.gif")
    if not path.exists():
        rng = np.random.default_rng(len(item_id) + int(created[-3:-1]))
        Video(rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), fps=8).save(path)
    spec = review.spec_to_dict(ManifestSpec(title=path.name, generation=Generation(model="m", seed=1)))
    values = (
        item_id, "clip", str(path.resolve()), created, status, review.content_hash(path), json.dumps(SETTINGS),
        json.dumps(spec), "[]", reviewer, None, created if reviewer else None, "[]",
    )  # fmt: skip
    db.execute(f"INSERT INTO items ({OLD_COLUMNS.replace(' ', ', ')}) VALUES ({', '.join('?' * 13)})", values)
    # the old code's log entries, in its own format
    audit.append("review.register", id=item_id, kind="clip", path=str(path.resolve()), sha256=values[5])


@pytest.fixture
def old_home(tmp_path):
    """A KINEMA_HOME as the old code left it: routed-around rejections included."""
    ensure_keys(kinema_home())
    database = kinema_home() / "review.db"
    with sqlite3.connect(database) as db:
        db.executescript(OLD_SCHEMA)
        old_item(db, tmp_path, "aaaa0001", "approved", "2026-01-01T10:00:01Z", reviewer="alice")
        db.commit()
        # reject, then approve: what the old code let through
        audit.append("review.approve", id="aaaa0001", previous="pending", reviewer="alice", note=None)
        old_item(db, tmp_path, "bbbb0002", "approved", "2026-01-01T10:00:02Z", reviewer="bob")
        db.commit()
        audit.append("review.reject", id="bbbb0002", previous="pending", reviewer="bob", note="no")
        audit.append("review.approve", id="bbbb0002", previous="rejected", reviewer="bob", note=None)
        # a rerun re-registered under the same id after a rejection, then approved
        old_item(db, tmp_path, "cccc0003", "approved", "2026-01-01T10:00:03Z", reviewer="carol")
        db.commit()
        audit.append("review.reject", id="cccc0003", previous="pending", reviewer="carol", note=None)
        audit.append("review.register", id="cccc0003", kind="clip", path="x", sha256="y")
        audit.append("review.approve", id="cccc0003", previous="pending", reviewer="carol", note=None)
        # two runs of different settings to one output: two open items on one file
        old_item(db, tmp_path, "dddd0004", "pending", "2026-01-01T10:00:04Z", name="same.gif")
        old_item(db, tmp_path, "eeee0005", "pending", "2026-01-01T10:00:05Z", name="same.gif")
        db.commit()
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    return database


def test_old_review_db_is_migrated_on_first_open(old_home, tmp_path):
    items = {i.id: i for i in review.list_items()}
    with sqlite3.connect(old_home) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert {i.creator for i in items.values()} == {f"local:{os.getuid()}"}
    assert items["aaaa0001"].status == "approved"  # approved without a rejection: stands
    assert items["bbbb0002"].status == "rejected"  # approved after its rejection: undone
    assert items["cccc0003"].status == "rejected"  # a rerun routed around the rejection
    assert items["dddd0004"].status == "superseded" and items["eeee0005"].status == "pending"
    migrated = [r for r in audit.read_log() if r["event"] == "review.migrate"]
    assert len(migrated) == 1
    assert migrated[0]["fields"]["rejected"] == ["bbbb0002", "cccc0003"]
    assert migrated[0]["fields"]["superseded"] == ["dddd0004"]
    with sqlite3.connect(old_home) as db:
        stored = json.loads(db.execute("SELECT value FROM settings WHERE key = 'migration.1'").fetchone()[0])
    assert stored["rejected"] == ["bbbb0002", "cccc0003"] and stored["creator"] == f"local:{os.getuid()}"
    # the migrated queue works under the new rules
    with pytest.raises(StateError, match="is rejected"):
        review.export("bbbb0002", tmp_path / "out.gif")
    assert review.export("aaaa0001", tmp_path / "ok.gif").exists()
    assert review.approve("eeee0005").status == "approved"
    review.list_items()  # opening again migrates nothing more
    assert len([r for r in audit.read_log() if r["event"] == "review.migrate"]) == 1
    assert audit.verify_log()[0]


def test_a_fresh_review_db_starts_at_the_current_version(tmp_path):
    assert review.list_items() == []
    with sqlite3.connect(kinema_home() / "review.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = {row[1] for row in db.execute("PRAGMA table_info(items)")}
    assert {"creator", "self_review"} <= columns


def test_old_tokens_get_both_roles(tmp_path):
    home = tmp_path / "home"
    folder = home / "web"
    folder.mkdir(parents=True)
    secret = "kt_" + "x" * 43
    import hashlib

    old = {  # tokens.json as the old code wrote it: no version, no roles
        "tokens": [
            {
                "id": "0a1b2c3d",
                "name": "laptop",
                "created": "2026-01-01T00:00:00Z",
                "revoked": None,
                "sha256": hashlib.sha256(secret.encode()).hexdigest(),
            }
        ]
    }
    (folder / "tokens.json").write_text(json.dumps(old))
    store = TokenStore(home)
    token = store.check(secret)
    assert token is not None and token.roles == ("creator", "reviewer") and token.identity == "token:0a1b2c3d"
    stored = json.loads((folder / "tokens.json").read_text())
    assert stored["version"] == 2 and stored["tokens"][0]["roles"] == ["creator", "reviewer"]
    assert stored["tokens"][0]["sha256"] == old["tokens"][0]["sha256"]
    reviewer, _ = store.create("ada", ("reviewer",))
    assert [t.roles for t in store.list()] == [("creator", "reviewer"), ("reviewer",)]
    assert not reviewer.can("creator") and reviewer.can("reviewer")
