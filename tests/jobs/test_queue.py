import multiprocessing as mp
import os
import signal
import threading
import time

import pytest

from kinema.jobs.queue import JobError, JobQueue
from kinema.jobs.worker import work
from kinema.provenance.verify import verify_file

PARAMS = {"mode": "t2v", "prompt": "a red circle moving right", "seed": 1, "frames": 4, "steps": 1}


def test_claims_are_atomic_and_fenced(tmp_path):
    queue = JobQueue(tmp_path)
    ids = {queue.submit("alice", {**PARAMS, "seed": i}).id for i in range(40)}
    claimed, lock = [], threading.Lock()

    def grab(name):
        other = JobQueue(tmp_path)  # each thread its own instance, as each process has
        while (job := other.claim(name)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every job claimed, none twice

    job = queue.get(claimed[0])
    running = next(j for j in queue.list(status="running", limit=200)[0] if j.id == job.id)
    assert queue.progress(running, 2, 5) and queue.get(job.id).progress == (2, 5)
    (queue.outputs / f"{job.id}.mp4").write_bytes(b"x")
    assert queue.complete(running, f"{job.id}.mp4", {"id": "r1"})
    assert not queue.complete(running, f"{job.id}.mp4", {"id": "r1"})  # completes once
    assert not queue.progress(running, 3, 5) and queue.get(job.id).status == "done"


def test_expired_lease_is_requeued_and_the_old_worker_is_locked_out(tmp_path):
    queue = JobQueue(tmp_path, lease_seconds=0.05)
    job = queue.submit("alice", PARAMS)
    first = queue.claim("w1")
    assert queue.recover() == 0 or queue.get(job.id).status == "queued"
    time.sleep(0.1)
    assert queue.recover() == 1 and queue.get(job.id).status == "queued"
    second = queue.claim("w2")
    assert second.attempts == 2 and second.lease != first.lease
    assert not queue.heartbeat(first) and not queue.fail(first, "late")
    assert queue.fail(second, "boom") and queue.get(job.id).error == "boom"


def test_owners_paging_cancel_delete(tmp_path):
    queue = JobQueue(tmp_path)
    mine = [queue.submit("alice", {**PARAMS, "seed": i}) for i in range(5)]
    theirs = queue.submit("bob", PARAMS)
    page, total = queue.list("alice", limit=2, offset=2)
    assert total == 5 and [j.id for j in page] == [mine[2].id, mine[1].id]  # newest first
    with pytest.raises(JobError):
        queue.get(theirs.id, owner="alice")
    with pytest.raises(JobError, match="16 hex"):
        queue.get("../../etc/passwd")
    assert queue.cancel(mine[0].id, "alice").status == "cancelled"
    running = queue.claim("w")  # the oldest queued: mine[1]
    assert queue.cancel(running.id).cancel_requested and not queue.progress(running, 1, 2)
    assert queue.fail(running, "cancelled", cancelled=True)
    queue.delete(mine[4].id, "alice")
    with pytest.raises(JobError):
        queue.get(mine[4].id)
    with pytest.raises(JobError):
        queue.list(status="nonsense")


def test_cleanup_by_age_and_size(tmp_path):
    queue = JobQueue(tmp_path)
    done = []
    for i in range(3):
        job = queue.submit("alice", {**PARAMS, "seed": i})
        running = queue.claim("w")
        assert running.id == job.id
        (queue.outputs / f"{job.id}.mp4").write_bytes(b"x" * 1000)
        queue.complete(running, f"{job.id}.mp4", {})
        done.append(job.id)
        time.sleep(0.01)
    waiting = queue.submit("alice", PARAMS)
    assert queue.cleanup(max_bytes=2500) == [done[0]]
    assert not (queue.outputs / f"{done[0]}.mp4").exists()
    assert sorted(queue.cleanup(max_age=0)) == sorted(done[1:])
    assert [j.id for j in queue.list()[0]] == [waiting.id]  # queued work is never cleaned


def _wait(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_worker_killed_mid_job_is_requeued_and_completes_once(tiny_model, tmp_path):
    queue = JobQueue(tmp_path)
    job = queue.submit("alice", {**PARAMS, "frames": 16, "steps": 200})
    quick = queue.submit("alice", {**PARAMS, "seed": 2})
    context = mp.get_context("spawn")
    worker = context.Process(target=work, kwargs={"root": str(tmp_path), "model": str(tiny_model)})
    worker.start()
    try:
        assert _wait(lambda: queue.get(job.id).progress[0] >= 2), "the worker never made progress"
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
    finally:
        if worker.is_alive():
            worker.kill()
    killed = queue.get(job.id)
    assert killed.status == "running" and killed.progress[0] < killed.progress[1]
    assert list(queue.outputs.iterdir()) == []  # no partial output

    assert queue.recover(all_running=True) == 1  # the server's restart
    assert work(tmp_path, str(tiny_model), once=True) == 2
    finished = queue.get(job.id)
    assert finished.status == "done" and finished.attempts == 2
    assert queue.get(quick.id).status == "done" and queue.get(quick.id).attempts == 1
    files = sorted(p.name for p in queue.outputs.iterdir())
    assert files == sorted([f"{job.id}.mp4", f"{job.id}.mp4.json", f"{quick.id}.mp4", f"{quick.id}.mp4.json"])
    assert verify_file(queue.outputs / f"{job.id}.mp4")["c2pa"]["state"] == "Trusted"
    assert finished.record["seed"] == 1 and finished.record["frames"] == 16
    assert work(tmp_path, str(tiny_model), once=True) == 0  # nothing runs twice


def test_uploads_keep_their_facts_and_an_older_queue_gains_the_column(tmp_path):
    import sqlite3

    # a queue database from before uploads kept facts
    (tmp_path / "q").mkdir()
    with sqlite3.connect(tmp_path / "q" / "jobs.db") as db:
        db.execute(
            "CREATE TABLE inputs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL)"
        )
        db.execute("INSERT INTO inputs VALUES ('00aa00aa00aa00aa', 'alice', 'old.png', 0)")
    (tmp_path / "q" / "inputs").mkdir()
    (tmp_path / "q" / "inputs" / "old.png").write_bytes(b"x")
    queue = JobQueue(tmp_path / "q")
    assert queue.input_facts("00aa00aa00aa00aa", "alice") == {}
    clip = queue.save_input("alice", b"clip", ".webm", facts={"width": 64, "height": 48, "frames": 17})
    assert queue.input_facts(clip, "alice") == {"width": 64, "height": 48, "frames": 17}
    assert queue.input_facts(queue.save_input("alice", b"png"), "alice") == {}
    with pytest.raises(JobError):
        queue.input_facts(clip, "bob")  # another owner's upload is not there for them


def test_a_lost_run_is_retried_once_then_the_job_fails_with_the_reason(tmp_path):
    queue = JobQueue(tmp_path, lease_seconds=0.05)
    job = queue.submit("alice", PARAMS)
    assert queue.depth()["queued"] == 1 and queue.depth()["oldest_queued_age"] >= 0
    first = queue.claim("host:1")
    assert queue.depth() == {"queued": 0, "running": 1, "oldest_queued_age": None}
    assert queue.abandon("host:2") == 0  # another worker's death takes nothing of this one's
    assert queue.abandon("host:1") == 1  # its worker is known dead: back at once, lease or not
    assert queue.get(job.id).status == "queued" and queue.get(job.id).lost_runs == 1
    assert not queue.heartbeat(first)  # the dead run is fenced out

    second = queue.claim("host:3")
    time.sleep(0.1)  # this worker stalls past its lease
    assert queue.recover() == 1
    failed = queue.get(job.id)
    assert failed.status == "failed" and failed.attempts == 2 and failed.lost_runs == 2
    assert "lost 2 times" in failed.error and "retried 1 time" in failed.error
    assert failed.to_dict()["lost_runs"] == 2
    assert queue.claim("host:4") is None and not queue.complete(second, "x.mp4", {})  # never a third run


def test_runs_handed_back_cleanly_are_not_lost_runs(tmp_path):
    queue = JobQueue(tmp_path)
    job = queue.submit("alice", PARAMS)
    for attempt in (1, 2, 3):
        running = queue.claim("host:1")
        assert running.attempts == attempt
        if attempt == 1:
            assert queue.release(running)  # the server went away: the worker hands it back
        elif attempt == 2:
            assert queue.abandon("host:1", counted=False) == 1  # the server stopped the worker
    assert queue.get(job.id).lost_runs == 0
    assert queue.recover(all_running=True) == 1  # a server start after a crash: one lost run
    assert queue.get(job.id).status == "queued" and queue.get(job.id).lost_runs == 1


def test_a_queue_from_before_lost_runs_gains_the_column(tmp_path):
    import sqlite3

    queue = JobQueue(tmp_path)
    job = queue.submit("alice", PARAMS)
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        db.execute("ALTER TABLE jobs DROP COLUMN lost")
    reopened = JobQueue(tmp_path)
    assert reopened.get(job.id).lost_runs == 0 and reopened.claim("w").id == job.id
