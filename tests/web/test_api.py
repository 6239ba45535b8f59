import stat
import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from kinema.web import Limits, create_app
from kinema.web.tokens import TokenStore


def _png(width=32, height=32) -> bytes:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (200, 30, 30)
    return cv2.imencode(".png", pixels)[1].tobytes()


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def app_tokens(home):
    """An app without workers (jobs stay queued) and two tokens."""
    app = create_app(home, workers=0)
    store = TokenStore(home)
    (_, alice), (_, bob) = store.create("alice"), store.create("bob")
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}, alice


def test_token_required_and_stored_private(app_tokens, home):
    client, alice, _, secret = app_tokens
    for method, path in [
        ("get", "/api/jobs"),
        ("post", "/api/jobs"),
        ("delete", "/api/jobs/0123456789abcdef"),
        ("post", "/api/verify"),
        ("get", "/api/review"),
        ("get", "/openapi.json"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 401 and "token" in response.json()["detail"], path
    bad = client.get("/api/jobs", headers={"Authorization": "Bearer kt_nope"})
    assert bad.status_code == 401
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    page = client.get("/login")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/login?token=kt_wrong").status_code == 401
    path = home / "web" / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and secret not in path.read_text()

    login = client.get(f"/login?token={secret}", follow_redirects=False)
    assert login.status_code == 303 and "httponly" in login.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200  # the cookie now signs pages and reads
    assert client.get("/api/jobs").status_code == 200
    # a write on the cookie alone (what another site's form could send) is refused
    assert client.post("/api/jobs", json={"prompt": "x"}).status_code == 403
    ok = client.post("/api/jobs", json={"prompt": "a square"}, headers={"X-Kinema": "1"})
    assert ok.status_code == 201
    client.cookies.clear()
    assert client.get("/openapi.json", headers=alice).json()["paths"]["/api/jobs"]
    store = TokenStore(home)
    store.revoke(next(t.id for t in store.list() if t.name == "alice"))
    assert client.get("/api/jobs", headers=alice).status_code == 401


def test_traversal_is_400_and_other_tokens_jobs_are_404(app_tokens):
    client, alice, bob, _ = app_tokens
    job = client.post("/api/jobs", json={"prompt": "a red circle", "seed": 5}, headers=alice).json()
    assert job["status"] == "queued" and job["seed"] == 5
    for path in [
        "/api/jobs/..%2F..%2Fetc%2Fpasswd",
        "/api/jobs/%2e%2e/file",
        "/api/jobs/a%5c..%5cb/file",
        "/static/..%2f..%2fapp.py",
        "/api/jobs/not-an-id",
        "/api/jobs/0123456789ABCDEF/file",
        "/api/review/..%2fx/approve",
    ]:
        response = (
            client.get(path, headers=alice) if "review" not in path else client.post(path, headers=alice)
        )
        assert response.status_code == 400, path
        assert response.json()["detail"]
    for method, path in [
        ("get", f"/api/jobs/{job['id']}"),
        ("get", f"/api/jobs/{job['id']}/file"),
        ("post", f"/api/jobs/{job['id']}/cancel"),
        ("delete", f"/api/jobs/{job['id']}"),
    ]:
        assert getattr(client, method)(path, headers=bob).status_code == 404, path
    assert client.get("/api/jobs", headers=bob).json()["total"] == 0
    assert client.get(f"/api/jobs/{job['id']}/file", headers=alice).status_code == 409  # not done yet
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=alice).json()["status"] == "cancelled"
    assert client.delete(f"/api/jobs/{job['id']}", headers=alice).status_code == 204
    assert client.get(f"/api/jobs/{job['id']}", headers=alice).status_code == 404


def test_bad_input_gets_4xx_with_a_message(app_tokens):
    client, alice, _, _ = app_tokens
    cases = [
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": "x" * 501},
        {"prompt": "x", "frames": 0},
        {"prompt": "x", "frames": 257},
        {"prompt": "x", "size": "9999"},
        {"prompt": "x", "size": "../../a"},
        {"prompt": "x", "steps": 101},
        {"prompt": "x", "guidance": -1},
        {"prompt": "x", "seed": -3},
        {"prompt": "x", "mode": "i2v"},
        {"prompt": "x", "mode": "i2v", "image": "../../etc/passwd"},
        {"prompt": "x", "mode": "i2v", "image": "0123456789abcdef"},
        {"prompt": "x", "whatever": 1},
    ]
    for body in cases:
        response = client.post("/api/jobs", json=body, headers=alice)
        assert 400 <= response.status_code < 500 and response.json()["detail"], body
    assert client.get("/api/jobs?limit=0", headers=alice).status_code == 422
    assert client.get("/api/jobs?status=weird", headers=alice).status_code == 422
    # uploads: the content decides, not the name
    fake = client.post(
        "/api/uploads", files={"file": ("cat.png", b"#!/bin/sh\nrm -rf /\n", "image/png")}, headers=alice
    )
    assert fake.status_code == 400 and "image" in fake.json()["detail"]
    truncated = client.post(
        "/api/uploads", files={"file": ("a.png", _png()[:40], "image/png")}, headers=alice
    )
    assert truncated.status_code == 400
    big = client.post(
        "/api/uploads",
        files={"file": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(9 << 20), "image/png")},
        headers=alice,
    )
    assert big.status_code == 413
    bomb = bytearray(_png())
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2  # a header that claims 100000x100000
    huge = client.post("/api/uploads", files={"file": ("a.png", bytes(bomb), "image/png")}, headers=alice)
    assert huge.status_code == 400 and "4096" in huge.json()["detail"]
    text = client.post(
        "/api/verify", files={"file": ("clip.mp4", b"hello world", "video/mp4")}, headers=alice
    )
    assert text.status_code == 400 and text.json()["detail"]
    upload = client.post("/api/uploads", files={"file": ("../../x.txt", _png(), "text/plain")}, headers=alice)
    assert upload.status_code == 201
    job = client.post(
        "/api/jobs", json={"prompt": "x", "mode": "i2v", "image": upload.json()["id"]}, headers=alice
    )
    assert job.status_code == 201 and job.json()["params"]["image"] == upload.json()["id"]


def test_writes_are_rate_limited_but_polling_is_not(home):
    app = create_app(home, workers=0, limits=Limits(write_burst=8, writes_per_second=0.01))
    store = TokenStore(home)
    alice, bob = ({"Authorization": f"Bearer {store.create(n)[1]}"} for n in ("alice", "bob"))
    client = TestClient(app)
    codes = [client.post("/api/jobs", json={"prompt": "a"}, headers=alice).status_code for _ in range(10)]
    assert codes[:8] == [201] * 8 and codes[-1] == 429
    assert all(client.get("/api/jobs", headers=alice).status_code == 200 for _ in range(100))
    assert client.post("/api/jobs", json={"prompt": "a"}, headers=bob).status_code == 201  # per token


def test_submit_progress_download_verify_review(tiny_model, home):
    app = create_app(home, model=tiny_model, workers=1)
    _, secret = TokenStore(home).create("e2e")
    auth = {"Authorization": f"Bearer {secret}"}
    with TestClient(app) as client:
        job = client.post(
            "/api/jobs", json={"prompt": "a blue square moving up", "seed": 3, "steps": 40}, headers=auth
        ).json()
        image = client.post(
            "/api/uploads", files={"file": ("f.png", _png(64, 64), "image/png")}, headers=auth
        ).json()
        second = client.post(
            "/api/jobs",
            json={"prompt": "a red circle", "mode": "i2v", "image": image["id"], "steps": 2},
            headers=auth,
        ).json()
        seen, deadline = set(), time.time() + 240
        while time.time() < deadline:
            state = client.get(f"/api/jobs/{job['id']}", headers=auth).json()
            if state["status"] == "running":
                seen.add(state["progress"]["i"])
            if state["status"] in ("done", "failed") and client.get(
                f"/api/jobs/{second['id']}", headers=auth
            ).json()["status"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert state["status"] == "done", state
        assert len(seen) >= 2 and state["progress"]["n"] == 40  # progress moved step by step
        assert client.get(f"/api/jobs/{second['id']}", headers=auth).json()["status"] == "done"
        clip = client.get(f"/api/jobs/{job['id']}/file?download=true", headers=auth)
        assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
        assert clip.content[4:8] == b"ftyp" and "attachment" in clip.headers["content-disposition"]
        report = client.post(
            "/api/verify",
            files={"file": ("take.bin", clip.content, "application/octet-stream")},
            headers=auth,
        )
        assert report.status_code == 200 and report.json()["c2pa"]["state"] == "Trusted"

        pending = client.get("/api/review?status=pending", headers=auth).json()["items"]
        assert {i["job"] for i in pending} == {job["id"], second["id"]}
        item = next(i for i in pending if i["job"] == job["id"])
        approved = client.post(
            f"/api/review/{item['id']}/approve", json={"note": "looks right"}, headers=auth
        )
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        _, other = TokenStore(home).create("other", ("creator",))  # a creator sees only its own takes
        stranger = client.post(
            f"/api/review/{item['id']}/reject", headers={"Authorization": f"Bearer {other}"}
        )
        assert stranger.status_code == 404

        again = client.post(f"/api/jobs/{job['id']}/again", headers=auth).json()
        assert again["params"]["prompt"] == job["params"]["prompt"] and again["id"] != job["id"]
        for page in ("/", "/compare", "/review", "/verify"):
            assert client.get(page, headers=auth).status_code == 200


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(home, model, port):
    import subprocess
    import sys

    code = (
        "import sys, uvicorn; from kinema.web import create_app; "
        "uvicorn.run(create_app(sys.argv[1], model=sys.argv[2], workers=2), host='127.0.0.1', "
        "port=int(sys.argv[3]), log_level='warning')"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(home), str(model), str(port)], start_new_session=True
    )


@pytest.mark.slow
def test_server_killed_with_sigkill_loses_nothing_and_repeats_nothing(tiny_model, home):
    import os
    import signal

    import httpx

    from kinema.jobs.queue import JobQueue

    _, secret = TokenStore(home).create("crash")
    port = _free_port()
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {secret}"})

    def up(timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                return api.get("/api/jobs?limit=50").json()
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("the server did not start")

    server = _serve(home, tiny_model, port)
    try:
        up()
        ids = [
            api.post("/api/jobs", json={"prompt": f"a red circle {i}", "seed": i, "steps": 12}).json()["id"]
            for i in range(10)
        ]
        deadline = time.time() + 180
        while time.time() < deadline:
            statuses = [j["status"] for j in up()["items"]]
            if statuses.count("done") >= 2 and "running" in statuses:
                break
            time.sleep(0.1)
        os.kill(server.pid, signal.SIGKILL)  # the server only: its workers are orphaned mid-job
        server.wait(10)
        server = _serve(home, tiny_model, port)
        deadline = time.time() + 300
        while time.time() < deadline:
            jobs = up()["items"]
            if all(j["status"] == "done" for j in jobs):
                break
            time.sleep(0.2)
        assert sorted(j["id"] for j in jobs) == sorted(ids) and all(j["status"] == "done" for j in jobs)
        assert any(j["attempts"] == 2 for j in jobs)  # some job was cut off and run again
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    outputs = JobQueue(home / "jobs").outputs
    names = sorted(p.name for p in outputs.iterdir())
    assert names == sorted([f"{i}.mp4" for i in ids] + [f"{i}.mp4.json" for i in ids])  # no partial files
