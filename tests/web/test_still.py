"""Stills through the API: `still: true` (modes t2v and i2v) makes one frame, written as
outputs/<job id>.png, signed and in review like a clip; what makes no sense for a still is
refused before it is queued; an approved still is published as a PNG."""

import cv2
import pytest
from fastapi.testclient import TestClient

from kinema.jobs.queue import JobQueue, output_name, output_suffix
from kinema.jobs.worker import work
from kinema.provenance.verify import verify_file
from kinema.web import Limits, create_app
from kinema.web.tokens import TokenStore

from .takes import publish_take


@pytest.fixture
def api(tmp_path):
    home = tmp_path / "home"
    app = create_app(home, workers=0, limits=Limits(write_burst=1000))
    token, secret = TokenStore(home).create("alice")
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {secret}"}, app.state.queue, token.id


def test_a_job_names_its_file_by_what_it_makes(tmp_path):
    queue = JobQueue(tmp_path)
    clip = queue.submit("alice", {"mode": "t2v", "prompt": "x", "seed": 1})
    still = queue.submit("alice", {"mode": "t2v", "prompt": "x", "seed": 1, "still": True})
    assert output_suffix(clip.params) == ".mp4" and output_name(clip) == f"{clip.id}.mp4"
    assert output_suffix(still.params) == ".png" and output_name(still) == f"{still.id}.png"
    assert queue.published_path(still).name == f"{still.id}.published.png"
    assert queue.published_path(clip.id).name == f"{clip.id}.published.mp4"  # an id works too


def test_what_a_still_cannot_be_is_refused(api):
    client, alice, queue, owner = api
    take = publish_take(queue, owner)
    image = publish_take(queue, owner, still=True)
    cases = [
        ({"still": True, "frames": 4}, "a still is one frame; frames 4"),
        ({"still": True, "loop": True}, "a still cannot loop"),
        ({"still": True, "mode": "extend", "source": take, "frames": 4}, "'still' is for mode t2v or i2v"),
        ({"still": True, "mode": "keyframes", "last_image": "0123456789abcdef"}, "'still' is for mode"),
        ({"mode": "remix", "source": image}, f"take {image} is an image; remix changes a clip"),
        ({"mode": "extend", "source": image, "frames": 4}, "is an image"),
    ]
    for body, words in cases:
        response = client.post("/api/jobs", json={"prompt": "a blue square", **body}, headers=alice)
        assert response.status_code == 400, (body, response.text)
        detail = response.json()["detail"]
        assert words in detail and "\n" not in detail, (body, detail)
    for body in ({"still": True}, {"still": True, "frames": 1, "size": "64"}):
        response = client.post("/api/jobs", json={"prompt": "a blue square", **body}, headers=alice)
        assert response.status_code == 201, (body, response.text)
        assert response.json()["params"]["still"] is True
    plain = client.post("/api/jobs", json={"prompt": "a blue square"}, headers=alice).json()
    assert plain["params"]["still"] is False
    field = client.get("/openapi.json", headers=alice).json()["components"]["schemas"]["JobRequest"][
        "properties"
    ]["still"]
    assert field["type"] == "boolean" and field["default"] is False and "PNG" in field["description"]


def test_a_still_is_made_reviewed_and_published_as_a_png(tiny_model, tmp_path):
    home = tmp_path / "home"
    app = create_app(home, model=tiny_model, workers=0)
    _, secret = TokenStore(home).create("stills")
    auth = {"Authorization": f"Bearer {secret}"}
    with TestClient(app) as client:
        queue = app.state.queue
        job = client.post(
            "/api/jobs", json={"prompt": "a red circle", "still": True, "steps": 2, "seed": 5}, headers=auth
        ).json()
        assert work(queue.root, str(tiny_model), once=True) == 1
        done = client.get(f"/api/jobs/{job['id']}", headers=auth).json()
        assert done["status"] == "done", done["error"]
        path = queue.output_path(queue.get(job["id"]))
        assert path == queue.outputs / f"{job['id']}.png"
        pixels = cv2.imread(str(path))
        assert pixels.shape == (64, 64, 3)
        report = verify_file(path)
        assert report["c2pa"]["state"] == "Trusted", report["c2pa"]["reason"]
        assert report["c2pa"]["claims"]["generation"]["settings"]["frames"] == 1

        shown = client.get(f"/api/jobs/{job['id']}/file", headers=auth)
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
        assert shown.content == path.read_bytes()
        saved = client.get(f"/api/jobs/{job['id']}/file?download=true", headers=auth)
        assert f'filename="kinema-{job["id"]}.png"' in saved.headers["content-disposition"]

        # review, as for a clip: pending, then approved, then published as a PNG
        item = client.get("/api/review?status=pending", headers=auth).json()["items"][0]
        assert (item["job"], item["kind"]) == (job["id"], "image")
        refused = client.post(f"/api/jobs/{job['id']}/publish", headers=auth)
        assert refused.status_code == 409 and "pending" in refused.json()["detail"]
        assert client.post(f"/api/review/{item['id']}/approve", headers=auth).status_code == 200
        published = client.post(f"/api/jobs/{job['id']}/publish", headers=auth)
        assert published.status_code == 201, published.text
        copy = client.get(published.json()["url"], headers=auth)
        assert copy.status_code == 200 and copy.headers["content-type"] == "image/png"
        assert f'filename="kinema-{job["id"]}-published.png"' in copy.headers["content-disposition"]
        out = queue.outputs / f"{job['id']}.published.png"
        assert out.read_bytes() == copy.content
        claims = verify_file(out)["c2pa"]["claims"]
        assert claims["review"]["decision"] == "approved"
        assert client.get("/api/review?status=approved", headers=auth).json()["items"][0]["published"]

        # more like this makes another still; withdrawing the approval removes the published
        # copy (an approved take can no longer be rejected: issue 25)
        again = client.post(f"/api/jobs/{job['id']}/again", headers=auth).json()
        assert again["params"]["still"] is True and again["seed"] != job["seed"]
        assert client.post(f"/api/review/{item['id']}/reject", headers=auth).status_code == 409
        assert client.post(f"/api/review/{item['id']}/withdraw", headers=auth).status_code == 200
        assert not out.exists()
        assert client.delete(f"/api/jobs/{job['id']}", headers=auth).status_code == 204
        assert not list(queue.outputs.glob(f"{job['id']}.*"))
