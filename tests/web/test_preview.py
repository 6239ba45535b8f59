"""GET /api/jobs/{id}/preview: a running job's live preview sheet, for its own token
only; 404 with a message before the first sheet and after the job ends. The worker
writes it while sampling and leaves none behind."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kinema.jobs.queue import JobQueue
from kinema.jobs.worker import clear_previews, preview_path, work
from kinema.render import preview as preview_module
from kinema.web import create_app
from kinema.web.tokens import TokenStore

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def studio(tmp_path):
    home = tmp_path / "home"
    app = create_app(home, workers=0)
    store = TokenStore(home)
    (_, alice), (_, bob) = store.create("alice"), store.create("bob")
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}, home


def test_preview_only_while_running_and_only_for_its_token(studio):
    client, alice, bob, home = studio
    job = client.post("/api/jobs", json={"prompt": "a red circle", "seed": 1}, headers=alice).json()
    url = f"/api/jobs/{job['id']}/preview"
    queued = client.get(url, headers=alice)
    assert queued.status_code == 404 and "no preview yet" in queued.json()["detail"]
    queue = JobQueue(home / "jobs")
    running = queue.claim("test-worker")
    assert running.id == job["id"]
    assert client.get(url, headers=alice).status_code == 404  # running, no sheet yet
    path = preview_path(queue, job["id"])
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(PNG + b"sheet")
    shown = client.get(url, headers=alice)
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    assert shown.content == PNG + b"sheet" and shown.headers["cache-control"] == "no-store"
    assert client.get(url, headers=bob).status_code == 404  # another token's job
    assert client.get(url).status_code == 401
    assert client.get("/api/jobs/nothex/preview", headers=alice).status_code == 400
    queue.fail(running, "stopped")
    ended = client.get(url, headers=alice)  # a stale sheet is not served once the job ended
    assert ended.status_code == 404 and "is failed" in ended.json()["detail"]
    clear_previews(queue)
    assert not path.exists()
    spec = client.get("/openapi.json", headers=alice).json()["paths"]["/api/jobs/{job_id}/preview"]["get"]
    assert "image/png" in spec["responses"]["200"]["content"]


def test_worker_writes_the_sheet_while_sampling_and_removes_it(tmp_path, tiny_model, monkeypatch):
    queue = JobQueue(tmp_path)
    job = queue.submit("owner", {"prompt": "a red circle", "seed": 2, "steps": 5, "frames": 9})
    seen = []
    write = preview_module.PreviewFile.write

    def spy(self, step, total, frames):
        write(self, step, total, frames)
        seen.append((self.path, step, total, self.path.read_bytes()[:8], frames.shape))

    monkeypatch.setattr(preview_module.PreviewFile, "write", spy)
    assert work(tmp_path, str(tiny_model), once=True) == 1
    assert [(s, n) for _, s, n, _, _ in seen] == [(4, 5), (5, 5)]
    assert all(
        p == preview_path(queue, job.id) and m == PNG and f == (9, 64, 64, 3) for p, _, _, m, f in seen
    )
    assert queue.get(job.id).status == "done" and not preview_path(queue, job.id).exists()
    assert np.array_equal(
        sorted(p.name for p in queue.outputs.iterdir()), sorted([f"{job.id}.mp4", f"{job.id}.mp4.json"])
    )
