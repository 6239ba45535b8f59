"""A diffusers backend behind the studio: the web worker loads a tiny LTX-Video folder,
makes a clip and edits it (remix, extension), each published, signed and queued for review
with its source as the ingredient, as for kinema's own model."""

import time

from fastapi.testclient import TestClient

from kinema.io import read_video
from kinema.provenance.verify import verify_file
from kinema.web import create_app
from kinema.web.tokens import TokenStore
from tests.pipelines.backends import tiny_models


def _wait(client, ids, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        jobs = {i: client.get(f"/api/jobs/{i}").json() for i in ids}
        if all(j["status"] in ("done", "failed", "cancelled") for j in jobs.values()):
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"jobs did not finish: {[j['status'] for j in jobs.values()]}")


def test_a_backend_edit_runs_through_the_web_worker(tmp_path):
    folder = tiny_models.build("ltx", tmp_path / "ltx")
    home = tmp_path / "home"
    app = create_app(home, model=folder, workers=1)
    _, secret = TokenStore(home).create("backend")
    fast = {"steps": 2, "seed": 4}
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as client:
        me = client.get("/api/me").json()["model"]
        assert me["name"] == "ltx" and {"remix", "extend"} <= set(me["modes"]) and me["loop"]
        base = client.post("/api/jobs", json={"prompt": "a red ball", "frames": 9, "size": "64", **fast})
        assert base.status_code == 201, base.text
        base_id = base.json()["id"]
        assert _wait(client, [base_id])[base_id]["status"] == "done"
        edits = {
            "remix": {"mode": "remix", "source": base_id, "strength": 0.5},
            "extend": {"mode": "extend", "source": base_id, "frames": 8},
        }
        ids = {}
        for name, body in edits.items():
            response = client.post("/api/jobs", json={"prompt": "a blue ball", **body, **fast})
            assert response.status_code == 201, (name, response.text)
            ids[name] = response.json()["id"]
        jobs = _wait(client, list(ids.values()))
        assert all(j["status"] == "done" for j in jobs.values()), {
            n: jobs[i]["error"] for n, i in ids.items()
        }
        queue = app.state.queue
        for name, frames in (("remix", 9), ("extend", 17)):
            path = queue.output_path(queue.get(ids[name]))
            clip = read_video(path)
            assert (clip.num_frames, clip.width, clip.height) == (frames, 64, 64), name
            c2pa = verify_file(path)["c2pa"]
            assert c2pa["state"] == "Trusted", (name, c2pa["reason"])
            assert [i.get("title") for i in c2pa["ingredients"]] == [f"{base_id}.mp4"], name
        review = client.get("/api/review?status=pending").json()["items"]
        assert {i["job"] for i in review} == {base_id, *ids.values()}
