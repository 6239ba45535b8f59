"""The server supervises its workers: a worker killed mid-job is replaced within seconds
and its job retried once (a second loss fails it, with the reason); a worker that cannot
start backs off; /api/health says so throughout."""

import os
import shutil
import signal
import time

import pytest
from fastapi.testclient import TestClient

from kinema.jobs.supervisor import MAX_BACKOFF_SECONDS, restart_delay
from kinema.web import Limits, create_app
from kinema.web.tokens import TokenStore

LEASE = 2.0  # seconds: a dead worker's job is never left waiting for the default minute


@pytest.fixture
def studio(tiny_model, tmp_path):
    """A running app with one supervised worker on the tiny model, and a token."""
    home = tmp_path / "home"
    app = create_app(home, model=tiny_model, workers=1, limits=Limits(lease_seconds=LEASE))
    _, secret = TokenStore(home).create("ops")
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as client:
        yield client, home / "jobs" / "outputs"


def _until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def _health(client) -> dict:
    response = client.get("/api/health")
    assert response.status_code == 200, response.text
    return response.json()


def _worker(client, state=("starting", "ready")) -> int | None:
    """The pid of the one worker when its state is one of STATE."""
    slot = _health(client)["workers"]["slots"][0]
    return slot["pid"] if slot["state"] in state else None


def _job(client, job_id) -> dict:
    return client.get(f"/api/jobs/{job_id}").json()


def _kill_mid_job(client, job_id, attempt) -> int:
    """SIGKILL the worker running JOB_ID's ATTEMPT once it has made progress; its pid."""
    _until(
        lambda: (job := _job(client, job_id))["attempts"] == attempt and job["progress"]["i"] >= 2,
        120,
        f"attempt {attempt} under way",
    )
    pid = _worker(client)
    os.kill(pid, signal.SIGKILL)
    # health stops reporting the killed process within a moment: down, or already replaced
    slot = _until(
        lambda: (s := _health(client)["workers"]["slots"][0])["pid"] != pid and s, 5, "the death seen"
    )
    assert slot["state"] in ("down", "backing off", "starting"), slot
    return pid


def test_a_killed_worker_is_replaced_and_its_job_runs_again_once(studio):
    client, outputs = studio
    assert (
        client.get("/api/health", headers={"Authorization": ""}).status_code == 401
    )  # a token, as every API
    first = _until(lambda: _worker(client, ("ready",)), 120, "the first worker ready")
    health = _health(client)
    assert health["status"] == "ok" and health["workers"]["expected"] == health["workers"]["alive"] == 1
    job = client.post(
        "/api/jobs", json={"prompt": "a red circle", "seed": 1, "frames": 4, "steps": 60}
    ).json()
    waiting = client.post(
        "/api/jobs", json={"prompt": "a blue square", "seed": 2, "frames": 4, "steps": 2}
    ).json()
    depth = _health(client)["queue"]
    assert depth["queued"] + depth["running"] == 2 and depth["oldest_queued_age"] >= 0

    assert _kill_mid_job(client, job["id"], attempt=1) == first
    second = _until(lambda: (pid := _worker(client)) not in (None, first) and pid, 10, "a new worker")
    done = _until(
        lambda: (j := _job(client, job["id"]))["status"] in ("done", "failed") and j, 120, "the retry"
    )
    assert done["status"] == "done" and done["attempts"] == 2 and done["lost_runs"] == 1, done
    assert _until(lambda: _job(client, waiting["id"])["status"] == "done", 60, "the queued job")
    names = sorted(p.name for p in outputs.iterdir())
    assert names == sorted(f"{j['id']}.mp4{extra}" for j in (job, waiting) for extra in ("", ".json"))

    health = _health(client)
    slot = health["workers"]["slots"][0]
    assert health["status"] == "ok" and health["workers"]["alive"] == 1 and health["workers"]["restarts"] == 1
    assert slot["pid"] == second and slot["state"] == "ready" and "SIGKILL" in slot["last_exit"]
    assert health["queue"] == {"queued": 0, "running": 0, "oldest_queued_age": None, "lease_seconds": LEASE}


def test_a_job_whose_worker_is_lost_twice_fails_and_new_jobs_still_run(studio):
    client, outputs = studio
    job = client.post(
        "/api/jobs", json={"prompt": "a red circle", "seed": 1, "frames": 4, "steps": 80}
    ).json()
    _kill_mid_job(client, job["id"], attempt=1)
    _kill_mid_job(client, job["id"], attempt=2)
    failed = _until(
        lambda: (j := _job(client, job["id"]))["status"] != "running" and j, 10, "the job given up"
    )
    assert failed["status"] == "failed" and failed["attempts"] == 2 and failed["lost_runs"] == 2, failed
    assert "lost 2 times" in failed["error"] and "retried 1 time" in failed["error"]
    assert not any(outputs.iterdir())  # nothing half-made
    # the third worker starts after a pause (two quick deaths: restart_delay) and takes new work
    after = client.post(
        "/api/jobs", json={"prompt": "a blue square", "seed": 2, "frames": 4, "steps": 2}
    ).json()
    assert _until(lambda: _job(client, after["id"])["status"] == "done", 120, "a new job after the failures")
    assert _job(client, job["id"])["status"] == "failed"  # never run a third time
    assert _health(client)["workers"]["restarts"] == 2


def test_a_worker_that_cannot_start_backs_off_and_health_says_why(tiny_model, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    (broken / "dit" / "model.safetensors").unlink()  # its facts read, its weights do not load
    home = tmp_path / "home"
    app = create_app(home, model=broken, workers=1, limits=Limits(lease_seconds=LEASE))
    _, secret = TokenStore(home).create("ops")
    queue = app.state.queue
    # a job held by a worker of another process that died: its lease runs out, and the
    # server takes it back though none of its own workers is alive to do it
    stranded = queue.submit("someone", {"mode": "t2v", "prompt": "x", "seed": 1})
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as client:
        assert queue.claim("elsewhere:1").id == stranded.id
        health = _until(
            lambda: (
                (h := _health(client))["workers"]["slots"][0]["starts"] >= 2
                and h["workers"]["slots"][0]["state"] == "backing off"
                and h
            ),
            90,
            "a second failed start, backing off",
        )
        slot = health["workers"]["slots"][0]
        assert health["status"] == "degraded" and health["workers"]["alive"] == 0
        assert slot["pid"] is None
        assert "before its model loaded" in slot["last_exit"] and "exited with code 1" in slot["last_exit"]
        assert "model.safetensors" in slot["last_error"] or "No such file" in slot["last_error"], slot
        # bounded: the second death waits restart_delay(2) = 2 s, the third 4 s, ... not a tight loop
        assert 0 < slot["next_start_in"] <= restart_delay(slot["starts"], ready=False)
        assert health["queue"]["queued"] == 1 and health["queue"]["running"] == 0
        assert health["queue"]["oldest_queued_age"] > 0
        assert queue.get(stranded.id).lost_runs == 1


def test_restarts_back_off():
    assert restart_delay(1, ready=True) == 0  # a worker killed mid-job: replaced at once
    assert [restart_delay(n, ready=False) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]  # never loaded
    assert restart_delay(2, ready=True) == 2  # killed again soon after: a pause
    assert restart_delay(30, ready=False) == MAX_BACKOFF_SECONDS  # a broken model: one start a minute


def test_a_frozen_worker_is_killed_and_replaced_and_its_job_runs_again(tiny_model, tmp_path, monkeypatch):
    # a stopped process: even its heartbeat and ping threads are frozen, so neither the
    # lease nor the supervisor hears from it; the supervisor kills it after the stall limit
    import kinema.jobs.supervisor as supervisor

    monkeypatch.setattr(supervisor, "STALL_SECONDS", 15.0)  # far above a tiny step, even on a busy machine
    home = tmp_path / "home"
    app = create_app(home, model=tiny_model, workers=1, limits=Limits(lease_seconds=LEASE))
    _, secret = TokenStore(home).create("ops")
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as client:
        first = _until(lambda: _worker(client, ("ready",)), 120, "the first worker ready")
        job = client.post(
            "/api/jobs", json={"prompt": "a red circle", "seed": 1, "frames": 4, "steps": 60}
        ).json()
        _until(lambda: _job(client, job["id"])["progress"]["i"] >= 2, 120, "the job under way")
        os.kill(first, signal.SIGSTOP)
        try:
            second = _until(lambda: (pid := _worker(client)) not in (None, first) and pid, 60, "a new worker")
        finally:
            try:
                os.kill(first, signal.SIGCONT)  # killed and reaped already when all went well
            except ProcessLookupError:
                pass
        done = _until(
            lambda: (j := _job(client, job["id"]))["status"] in ("done", "failed") and j, 120, "the retry"
        )
        assert done["status"] == "done" and done["attempts"] == 2 and done["lost_runs"] == 1, done
        slot = _health(client)["workers"]["slots"][0]
        assert slot["pid"] == second and "without a word (frozen)" in slot["last_exit"], slot
