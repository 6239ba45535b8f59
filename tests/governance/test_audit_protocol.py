"""The audit protocol (issue 25): intent and done entries, the quick check by stat with a
full verification otherwise (a same-length edit is caught), review.db's copy of the head,
a break blocking every change before anything changes, and repair segments."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from kinema.cli import main
from kinema.governance import audit, chain, review
from kinema.governance.audit import AuditBroken, head_path, log_path
from kinema.io import Video
from kinema.provenance.keys import ensure_keys
from kinema.state import kinema_home

SETTINGS = {"prompt": "a red circle", "seed": 1}


@pytest.fixture
def keys():
    return ensure_keys(kinema_home())[0]


def clip(tmp_path, name="clip.gif", seed=0):
    path = tmp_path / name
    Video(np.random.default_rng(seed).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), fps=8).save(path)
    return path


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def clip_to_clap() -> int:
    """The issue's edit: "kind":"clip" → "kind":"clap" on one line, same length. Returns
    the line's number."""
    lines = log_path().read_bytes().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if b'"kind":"clip"' in line)
    lines[number] = lines[number].replace(b'"kind":"clip"', b'"kind":"clap"')
    size = log_path().stat().st_size
    log_path().write_bytes(b"".join(lines))
    assert log_path().stat().st_size == size
    return number + 1


def test_a_change_writes_intent_then_done(tmp_path):
    item = review.register(clip(tmp_path), SETTINGS, "clip")
    review.approve(item.id, note="ok")
    records = audit.read_log()
    assert [(r["event"], r["fields"]["phase"]) for r in records] == [
        ("review.register", "intent"),
        ("review.register", "done"),
        ("review.approve", "intent"),
        ("review.approve", "done"),
    ]
    assert (
        records[3]["fields"]["intent"] == records[2]["hash"] and records[3]["fields"]["outcome"] == "applied"
    )
    assert records[2]["fields"]["pid"] == os.getpid()
    head = json.loads(head_path().read_text())
    assert head["open"] == [] and head["count"] == 4
    # review.db's copy of the head is the decision's intent entry
    anchor, has_items = chain.review_anchor(kinema_home())
    assert has_items and anchor == {"count": 3, "hash": records[2]["hash"], "size": anchor["size"]}


def test_same_length_edit_is_caught_by_every_change(tmp_path, keys, capsys):
    pending = review.register(clip(tmp_path), SETTINGS, "clip")
    approved = review.register(clip(tmp_path, "b.gif", 1), SETTINGS, "clip")
    review.approve(approved.id)
    number = clip_to_clap()
    before = log_path().read_bytes()
    for change in (
        lambda: review.approve(pending.id),
        lambda: review.reject(pending.id),
        lambda: review.withdraw(approved.id),
        lambda: review.export(approved.id, tmp_path / "out.gif"),
        lambda: review.register(clip(tmp_path, "c.gif", 2), SETTINGS, "clip"),
        lambda: review.set_four_eyes(True),
        lambda: audit.append("policy.screen", decision="pass"),
    ):
        with pytest.raises(AuditBroken, match=f"line {number} was edited.*`kinema audit verify`"):
            change()
    # nothing changed: no state, no file, no line
    assert review.get(pending.id).status == "pending" and review.get(approved.id).status == "approved"
    assert not (tmp_path / "out.gif").exists() and not (tmp_path / "out.gif.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert log_path().read_bytes() == before
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 1 and out.startswith(f"audit log broken: line {number} was edited")
    code, out, err = cli(capsys, "review", "approve", pending.id)
    assert code == 2 and out == "" and err.count("\n") == 1 and "kinema audit verify" in err
    code, _, err = cli(capsys, "export", approved.id, str(tmp_path / "out.gif"))
    assert code == 2 and "kinema audit verify" in err and not (tmp_path / "out.gif").exists()
    assert review.get(pending.id).status == "pending"


def test_the_quick_check_trusts_only_an_unchanged_log(monkeypatch):
    audit.append("test.one")
    scans = []
    real = audit.scan_log
    monkeypatch.setattr(audit, "scan_log", lambda data: scans.append(1) or real(data))
    audit.append("test.two")
    audit.check()
    assert scans == []  # the log's stat is the verified one: no full read
    data = log_path().read_bytes()
    log_path().write_bytes(data)  # the same bytes written again: a new mtime and ctime
    audit.check()
    assert scans == [1]  # verified in full once, then trusted again
    audit.check()
    assert scans == [1]


def test_a_missing_log_is_a_break_while_review_db_holds_items(tmp_path):
    review.register(clip(tmp_path), SETTINGS, "clip")
    log_path().unlink()
    head_path().unlink()  # both moved aside: only review.db remembers
    with pytest.raises(AuditBroken, match="audit.jsonl is missing while review.db holds review items"):
        audit.append("policy.screen")
    ok, problem, _ = audit.verify_log()
    assert not ok and "missing" in problem
    assert not log_path().exists()


def test_a_log_replaced_or_cut_with_its_head_is_caught_by_review_db(tmp_path):
    item = review.register(clip(tmp_path), SETTINGS, "clip")
    review.approve(item.id)
    saved = tmp_path / "saved"
    saved.mkdir()
    # cut the decision from the end and write a head that agrees with the cut log
    lines = log_path().read_bytes().splitlines(keepends=True)[:2]
    log_path().write_bytes(b"".join(lines))
    last = json.loads(lines[-1])
    head_path().write_text(json.dumps({"hash": last["hash"], "count": 2, "size": log_path().stat().st_size}))
    ok, problem, _ = audit.verify_log()
    assert not ok and "review.db last saw the log at 3 lines, it has 2" in problem
    with pytest.raises(AuditBroken, match="review.db last saw"):
        review.reject(review.register(clip(tmp_path, "b.gif", 1), SETTINGS, "clip").id)
    shutil.rmtree(saved)


def test_repair_starts_a_new_segment_and_the_break_stays_visible(tmp_path, capsys):
    item = review.register(clip(tmp_path), SETTINGS, "clip")
    number = clip_to_clap()
    code, _, err = cli(capsys, "audit", "repair")
    assert code == 2 and "--accept" in err
    code, out, _ = cli(capsys, "audit", "repair", "--accept")
    assert code == 0 and f"line {number} was edited" in out
    repair = audit.read_log()[-1]
    assert repair["event"] == "audit.repair" and repair["prev"] == audit.GENESIS
    assert repair["fields"]["by"] == review.local_identity()
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0 and "audit log intact" in out
    assert f"acknowledged break: line {number} was edited" in out  # still shown
    review.approve(item.id)  # changes go on
    assert audit.verify().ok and len(audit.verify().breaks) == 1
    # a later edit of the acknowledged part is a new break
    data = log_path().read_bytes()
    log_path().write_bytes(data.replace(b'"phase":"done"', b'"phase":"dona"', 1))  # line 2
    report = audit.verify()
    assert not report.ok and "no longer matches the lines before it" in report.problem
    code, out, _ = cli(capsys, "audit", "repair", "--accept")
    assert code == 0 and audit.verify().ok


def test_repair_of_a_missing_log_and_of_a_torn_line(tmp_path, capsys):
    review.register(clip(tmp_path), SETTINGS, "clip")
    log_path().unlink()
    head_path().unlink()
    assert cli(capsys, "audit", "verify")[0] == 1
    code, out, _ = cli(capsys, "audit", "repair", "--accept")
    assert code == 0 and "missing" in out
    assert audit.verify().ok and audit.read_log()[0]["event"] == "audit.repair"
    audit.append("test.after")
    with open(log_path(), "ab") as handle:
        handle.write(b'{"torn": ')  # a line cut short by a crash
    assert not audit.verify().ok
    assert cli(capsys, "audit", "repair", "--accept")[0] == 0
    report = audit.verify()
    assert report.ok and report.breaks[-1].startswith(
        "line 3 is not JSON"
    )  # the torn line, ended by the repair
    assert cli(capsys, "audit", "repair", "--accept")[1] == "audit log intact; nothing to repair\n"


def test_an_export_that_cannot_log_leaves_no_file(tmp_path, keys, monkeypatch):
    item = review.register(clip(tmp_path), SETTINGS, "clip")
    review.approve(item.id)
    calls = []
    real = audit.intent

    def refusing(event, **fields):
        calls.append(event)
        raise AuditBroken("the audit log is broken: simulated")

    monkeypatch.setattr(audit, "intent", refusing)
    with pytest.raises(AuditBroken):
        review.export(item.id, tmp_path / "out.gif")
    assert calls == ["review.export"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.gif"]  # no file, no sidecar, no temp
    assert review.get(item.id).exports == []
    monkeypatch.setattr(audit, "intent", real)
    review.export(item.id, tmp_path / "out.gif")
    assert (tmp_path / "out.gif").exists() and len(review.get(item.id).exports) == 1
