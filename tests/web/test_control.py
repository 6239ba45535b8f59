"""Motion paths and control clips through the web: uploaded, checked before queueing,
rendered by a worker, refused with a 4xx and a message when wrong."""

import json

import pytest
from fastapi.testclient import TestClient

from kinema.io import Video, write_video
from kinema.web import create_app
from kinema.web.tokens import TokenStore
from kinema.world import parse, render_frames

PROMPT = "a red circle on a black background"
PATH = {"points": [[0, 0.2, 0.3], [8, 0.8, 0.6]]}


@pytest.fixture
def client(tmp_path, controlled_model):
    home = tmp_path / "home"
    app = create_app(home, model=controlled_model, workers=0)
    _, secret = TokenStore(home).create("alice")
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {secret}"}


def upload(client, auth, data: bytes, name: str):
    return client.post("/api/uploads", headers=auth, files={"file": (name, data)})


def test_a_drawn_path_is_uploaded_and_steers_a_job(client, tmp_path):
    client, auth = client
    sent = upload(client, auth, json.dumps(PATH).encode(), "brush.json")
    assert sent.status_code == 201, sent.text
    assert sent.json()["kind"] == "path" and sent.json()["last_frame"] == 8
    job = client.post(
        "/api/jobs", headers=auth, json={"prompt": PROMPT, "frames": 9, "path": sent.json()["id"]}
    )
    assert job.status_code == 201, job.text
    assert job.json()["params"]["path"] == sent.json()["id"] and job.json()["params"]["control_scale"] == 1.0
    dropped = client.post(
        "/api/jobs", headers=auth, json={"prompt": PROMPT, "path": sent.json()["id"], "control_scale": 0}
    )
    assert dropped.status_code == 201 and "path" not in dropped.json()["params"]
    write_video(
        Video(render_frames(parse("a blue square moving up on a white background"), 3, frames=9), 8.0),
        tmp_path / "c.mp4",
    )
    clip = upload(client, auth, (tmp_path / "c.mp4").read_bytes(), "c.mp4")
    job = client.post(
        "/api/jobs", headers=auth, json={"prompt": PROMPT, "frames": 9, "control_clip": clip.json()["id"]}
    )
    assert job.status_code == 201, job.text


@pytest.mark.parametrize(
    "body, words",
    [
        ({"points": []}, "has no points"),
        ({"points": [[0, 0.5, 0.5], [0, 0.2, 0.2]]}, "frames must ascend strictly"),
        ({"points": [[0, 1.5, 0.5]]}, "outside the canvas"),
    ],
)
def test_bad_paths_are_refused_at_upload(client, body, words):
    client, auth = client
    response = upload(client, auth, json.dumps(body).encode(), "p.json")
    assert response.status_code == 400 and words in response.json()["detail"]


def test_bad_steering_in_a_job_is_a_4xx_with_a_message(client):
    client, auth = client
    path = upload(
        client, auth, json.dumps({"points": [[0, 0.2, 0.2], [20, 0.8, 0.8]]}).encode(), "p.json"
    ).json()["id"]
    cases = [
        ({"prompt": PROMPT, "path": path}, 400, "has a point at frame 20"),
        (
            {"prompt": "a red circle moving up on a black background", "path": path, "frames": 24},
            400,
            "the path decides the motion",
        ),
        (
            {"prompt": PROMPT, "path": path, "frames": 24, "control_scale": 2.5},
            422,
            "less than or equal to 2",
        ),
        ({"prompt": PROMPT, "control_clip": path}, 400, "must be the id of an uploaded clip"),
        (
            {"mode": "remix", "prompt": PROMPT, "source": "0123456789abcdef", "path": path},
            400,
            "'path' is for mode t2v or i2v",
        ),
    ]
    for body, status, words in cases:
        response = client.post("/api/jobs", headers=auth, json=body)
        assert response.status_code == status and words in response.text, (body, response.text)


def test_a_reference_image_is_uploaded_and_named_by_a_job(client, tmp_path):
    import numpy as np

    from kinema.io import write_png
    from kinema.world.render import render_track

    client, auth = client
    write_png(
        render_track("triangle", (245, 130, 20), (0, 0, 0), np.array([[0.5, 0.5, 0.3]]), 64)[0],
        tmp_path / "r.png",
    )
    image = upload(client, auth, (tmp_path / "r.png").read_bytes(), "r.png").json()["id"]
    body = {"prompt": "an object moving left on a gray background", "frames": 9, "reference": image}
    job = client.post("/api/jobs", headers=auth, json=body)
    assert job.status_code == 201, job.text
    assert job.json()["params"]["reference"] == image
    write_png(np.full((64, 64, 3), 200, np.uint8), tmp_path / "blank.png")
    blank = upload(client, auth, (tmp_path / "blank.png").read_bytes(), "blank.png").json()["id"]
    refused = client.post("/api/jobs", headers=auth, json={**body, "reference": blank})
    assert refused.status_code == 400 and "shows no object" in refused.json()["detail"]
    me = client.get("/api/me", headers=auth).json()
    assert set(me["model"]["controls"]) == {"control", "path", "reference"}
