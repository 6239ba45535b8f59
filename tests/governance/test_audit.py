"""The hash-chained audit log: appends, concurrent writers, and every kind of tampering."""

from __future__ import annotations

import json
import multiprocessing
import threading

import pytest

from kinema.governance import audit
from kinema.governance.audit import GENESIS, AuditError, append, head_path, log_path, verify_log


def fill(n: int = 5) -> list[dict]:
    return [append("test.event", index=i, note=f"line {i}") for i in range(n)]


def lines() -> list[bytes]:
    return log_path().read_bytes().splitlines(keepends=True)


def write_lines(data: list[bytes]) -> None:
    log_path().write_bytes(b"".join(data))


def test_empty_log_is_valid():
    assert verify_log() == (True, None, 0)


def test_append_chains_lines_and_updates_head():
    records = fill(3)
    assert records[0]["prev"] == GENESIS
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert records[1]["prev"] == records[0]["hash"] and records[2]["prev"] == records[1]["hash"]
    assert records[0]["time"].endswith("Z") and records[0]["fields"] == {"index": 0, "note": "line 0"}
    assert records[0]["hash"] == audit.record_hash(records[0])
    head = json.loads(head_path().read_text())
    st = log_path().stat()
    assert head == {
        "hash": records[-1]["hash"],
        "count": 3,
        "size": st.st_size,
        "stat": [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino],  # the verified state
        "open": [],
    }
    assert verify_log() == (True, None, 3)
    assert audit.read_log() == records


def test_fields_that_are_not_json_are_written_as_text(tmp_path):
    record = append("test.path", path=tmp_path, items=(1, 2))
    assert record["fields"] == {"path": str(tmp_path), "items": [1, 2]}
    assert verify_log()[0]


def test_event_needs_a_name():
    with pytest.raises(AuditError):
        append("  ")


def test_edited_field_is_detected():
    fill()
    data = lines()
    data[2] = data[2].replace(b"line 2", b"line X")
    write_lines(data)
    ok, problem, count = verify_log()
    assert not ok and count == 5
    assert "line 3 was edited" in problem


def test_edited_line_with_recomputed_hash_breaks_the_chain():
    fill()
    data = lines()
    record = json.loads(data[1])
    record["fields"]["note"] = "rewritten"
    record["hash"] = audit.record_hash(record)
    data[1] = (audit.canonical(record) + "\n").encode()
    write_lines(data)
    ok, problem, _ = verify_log()
    assert not ok and "line 3 does not follow line 2" in problem


def test_whitespace_edit_is_detected():
    fill(2)
    data = lines()
    data[0] = data[0].replace(b'"event":', b'"event": ')
    write_lines(data)
    ok, problem, _ = verify_log()
    assert not ok and "line 1 was edited" in problem


def test_deleted_middle_line_is_detected():
    fill()
    data = lines()
    del data[2]
    write_lines(data)
    ok, problem, count = verify_log()
    assert not ok and count == 4 and "does not follow" in problem


def test_deleted_first_line_is_detected():
    fill()
    write_lines(lines()[1:])
    ok, problem, _ = verify_log()
    assert not ok and "line 1 does not follow" in problem


def test_deleted_last_line_is_detected_by_the_head():
    fill()
    write_lines(lines()[:-1])
    ok, problem, count = verify_log()
    assert not ok and count == 4
    assert "ends early" in problem and "1 cut from the end" in problem


def test_truncated_last_line_is_detected():
    fill()
    data = log_path().read_bytes()
    log_path().write_bytes(data[:-20])
    ok, problem, _ = verify_log()
    assert not ok and "line 5" in problem


def test_emptied_log_is_detected():
    fill()
    log_path().write_bytes(b"")
    ok, problem, count = verify_log()
    assert not ok and count == 0 and "ends early" in problem


def test_deleted_log_is_detected():
    fill()
    log_path().unlink()
    ok, problem, _ = verify_log()
    assert not ok and "missing" in problem


def test_deleted_head_is_detected():
    fill()
    head_path().unlink()
    ok, problem, _ = verify_log()
    assert not ok and "audit.head is missing" in problem


def test_reordered_lines_are_detected():
    fill()
    data = lines()
    data[1], data[2] = data[2], data[1]
    write_lines(data)
    ok, problem, _ = verify_log()
    assert not ok and "line 2 does not follow" in problem


def test_inserted_line_is_detected():
    fill()
    data = lines()
    data.insert(2, data[1])
    write_lines(data)
    assert not verify_log()[0]


def test_appended_forged_line_is_detected():
    records = fill(2)
    forged = {"time": "x", "event": "forged", "fields": {}, "seq": 2, "prev": records[-1]["hash"]}
    forged["hash"] = audit.record_hash(forged)
    with open(log_path(), "a") as handle:
        handle.write(audit.canonical(forged) + "\n")
    ok, problem, count = verify_log()
    assert not ok and count == 3 and "records 2 lines" in problem


def test_garbage_line_is_detected():
    fill(2)
    with open(log_path(), "ab") as handle:
        handle.write(b"not json\n")
    ok, problem, _ = verify_log()
    assert not ok and "line 3 is not JSON" in problem


def test_append_refuses_to_write_after_damage():
    fill(3)
    write_lines(lines()[:-1])
    with pytest.raises(AuditError, match="ends early.*kinema audit verify"):
        append("test.after")
    fill_again = lines()
    assert len(fill_again) == 2  # nothing was written after the damage


def test_append_refuses_when_last_line_was_edited():
    fill(3)
    data = lines()
    data[-1] = data[-1].replace(b"line 2", b"line 9")
    write_lines(data)
    with pytest.raises(AuditError, match="does not match"):
        append("test.after")


def test_append_refuses_when_head_is_gone():
    fill(2)
    head_path().unlink()
    with pytest.raises(AuditError, match="missing"):
        append("test.after")


def test_append_rolls_the_head_forward_after_a_crash():
    fill(2)
    saved_head = head_path().read_bytes()
    append("test.crashed")  # its head update "never happened":
    head_path().write_bytes(saved_head)
    record = append("test.next")
    assert record["seq"] == 3
    assert verify_log() == (True, None, 4)


def test_log_under_other_path(tmp_path):
    other = tmp_path / "elsewhere" / "audit.jsonl"
    other.parent.mkdir()
    fill(2)
    other.write_bytes(log_path().read_bytes())
    head_path(other).write_bytes(head_path().read_bytes())
    assert verify_log(other) == (True, None, 2)


def _writer(index: int, count: int) -> None:
    for i in range(count):
        append("test.concurrent", writer=index, i=i, pad="x" * 500)


def test_concurrent_processes_never_interleave():
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_writer, args=(w, 25)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert verify_log() == (True, None, 100)
    seen = {(r["fields"]["writer"], r["fields"]["i"]) for r in audit.read_log()}
    assert len(seen) == 100


def test_concurrent_threads_never_interleave():
    threads = [threading.Thread(target=_writer, args=(w, 20)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert verify_log() == (True, None, 80)
