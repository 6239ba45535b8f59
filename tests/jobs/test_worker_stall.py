"""A worker hung alive inside a step no longer keeps its job: its heartbeat stops renewing
the lease once the job stops moving, and the queue takes the job back as a lost run."""

import threading
import time
from types import SimpleNamespace

import kinema.render
from kinema.jobs.queue import JobQueue
from kinema.jobs.worker import Steps, run_job

PARAMS = {"mode": "t2v", "prompt": "a red circle moving right", "seed": 1, "frames": 4, "steps": 1}


def test_a_job_that_stops_moving_loses_its_lease_and_is_retried(tmp_path, monkeypatch):
    queue = JobQueue(tmp_path, lease_seconds=1.0)
    job = queue.submit("alice", PARAMS)
    claimed = queue.claim("w1")
    hang, stalled = threading.Event(), []

    def stuck_render(pipe, checked, progress, preview=None):
        progress(1, 10)
        progress(2, 10)
        hang.wait(30)  # hung alive inside a step: this thread waits, the heartbeat's runs
        raise RuntimeError("woken")

    monkeypatch.setattr(kinema.render, "check", lambda request, facts: SimpleNamespace(request=request))
    monkeypatch.setattr(kinema.render, "render", stuck_render)
    runner = threading.Thread(
        target=run_job,
        args=(queue, claimed, None, None),
        kwargs={"stall_seconds": 0.5, "on_stall": lambda j, idle: stalled.append((j.id, idle))},
    )
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while not stalled and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stalled and stalled[0][0] == job.id and stalled[0][1] >= 0.5
        assert queue.get(job.id).progress == (2, 10)
        time.sleep(1.2)  # the lease, no longer renewed, runs out
        assert queue.recover() == 1
        back = queue.get(job.id)
        assert back.status == "queued" and back.lost_runs == 1 and back.attempts == 1
    finally:
        hang.set()
        runner.join(10)
    # the stuck run woke up without its lease: it cannot fail or finish the job now
    assert queue.get(job.id).status == "queued"
    again = queue.claim("w2")
    assert again.id == job.id and again.attempts == 2


def test_a_job_that_moves_keeps_its_lease_however_long_it_runs(tmp_path, monkeypatch):
    queue = JobQueue(tmp_path, lease_seconds=1.0)
    job = queue.submit("alice", PARAMS)
    claimed = queue.claim("w1")
    stalled = []

    def slow_render(pipe, checked, progress, preview=None):
        for i in range(12):  # 2.4 s in all, far past the lease, a step every 0.2 s
            time.sleep(0.2)
            progress(i + 1, 12)
            assert queue.recover() == 0
        raise RuntimeError("done stepping")

    monkeypatch.setattr(kinema.render, "check", lambda request, facts: SimpleNamespace(request=request))
    monkeypatch.setattr(kinema.render, "render", slow_render)
    assert not run_job(queue, claimed, None, None, stall_seconds=0.5, on_stall=lambda j, i: stalled.append(j))
    assert stalled == [] and queue.get(job.id).status == "failed"
    assert "done stepping" in queue.get(job.id).error


def test_steps_measure_idle_time():
    steps = Steps()
    time.sleep(0.05)
    assert steps.idle() >= 0.05
    steps.advance()
    assert steps.idle() < 0.05
