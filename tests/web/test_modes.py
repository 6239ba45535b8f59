"""Every generation mode through the API: what each request is refused for (no model
needed: a take is published from a synthetic clip), every mode run end to end by a worker
with the tiny model, and publishing an approved take through the review gate."""

import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from kinema.io import read_video
from kinema.provenance.verify import verify_file
from kinema.web import Limits, create_app
from kinema.web.tokens import TokenStore

from .takes import publish_take as _take


def _png(pixels: np.ndarray) -> bytes:
    return cv2.imencode(".png", pixels[..., ::-1])[1].tobytes()


def _mask(width=64, height=64, grey=False) -> np.ndarray:
    mask = np.zeros((height, width, 3), np.uint8)
    mask[:, width // 2 :] = 128 if grey else 255
    return mask


def _upload(client, auth, data: bytes, name="a.png") -> str:
    response = client.post("/api/uploads", files={"file": (name, data, "image/png")}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def api(tmp_path):
    home = tmp_path / "home"
    app = create_app(home, workers=0, limits=Limits(write_burst=1000))
    store = TokenStore(home)
    (alice_token, alice), (_, bob) = store.create("alice"), store.create("bob")
    with TestClient(app) as client:
        yield (
            client,
            {"Authorization": f"Bearer {alice}"},
            {"Authorization": f"Bearer {bob}"},
            app.state.queue,
            alice_token.id,
        )


def test_each_mode_refuses_what_it_cannot_do(api):
    client, alice, bob, queue, owner = api
    take = _take(queue, owner)
    pending = queue.submit(owner, {"mode": "t2v", "prompt": "x", "seed": 2}).id
    mask = _upload(client, alice, _png(_mask()))
    small = _upload(client, alice, _png(_mask(32, 32)))
    grey = _upload(client, alice, _png(_mask(grey=True)))
    black = _upload(client, alice, _png(np.zeros((64, 64, 3), np.uint8)))
    jpeg = client.post(
        "/api/uploads",
        files={"file": ("m.jpg", cv2.imencode(".jpg", _mask())[1].tobytes(), "image/jpeg")},
        headers=alice,
    ).json()["id"]
    theirs = _upload(client, bob, _png(_mask()))
    cases = [
        ({"mode": "extend", "frames": 4}, "needs one source"),
        ({"mode": "extend", "source": take}, "needs 'frames'"),
        ({"mode": "extend", "source": "0123456789abcdef", "frames": 4}, "no take"),
        ({"mode": "extend", "source": "../../etc/passwd", "frames": 4}, "no take"),
        ({"mode": "extend", "source": pending, "frames": 4}, "queued"),
        ({"mode": "extend", "source": take, "frames": 250}, "limit of 256"),
        ({"mode": "extend", "source": take, "frames": 4, "size": "64"}, "'size' is for mode"),
        ({"mode": "remix", "source": take, "backward": True}, "'backward' is for mode extend"),
        ({"mode": "t2v", "strength": 0.5}, "'strength' is for mode remix"),
        ({"mode": "t2v", "source": take}, "'source' is for mode"),
        ({"mode": "inpaint", "source": take}, "needs 'mask'"),
        ({"mode": "inpaint", "source": take, "mask": small}, "the mask is 32x32; the clip is 64x64"),
        ({"mode": "inpaint", "source": take, "mask": grey}, "pure black"),
        ({"mode": "inpaint", "source": take, "mask": black}, "all black"),
        ({"mode": "inpaint", "source": take, "mask": jpeg}, "must be a PNG"),
        ({"mode": "inpaint", "source": take, "mask": theirs}, "no upload"),
        ({"mode": "outpaint", "source": take, "outpaint": [0, 0, 0, 0]}, "not all zero"),
        ({"mode": "outpaint", "source": take, "outpaint": [4, 0, 0, 0]}, "nearest valid: 64"),
        ({"mode": "outpaint", "source": take, "outpaint": [0, 0, 1000, 0]}, "16..512"),
        ({"mode": "keyframes"}, "needs 'last_image'"),
        ({"mode": "keyframes", "last_image": mask, "frames": 40}, "window of 17"),
        ({"mode": "keyframes", "last_image": theirs}, "no upload"),
        ({"mode": "t2v", "loop": True, "frames": 40}, "nearest: 30"),
        ({"mode": "remix", "source": take, "loop": True}, "'loop' is for mode"),
        ({"mode": "t2v", "size": "60"}, "nearest valid: 64"),
        ({"mode": "t2v", "size": "６４"}, "S or WxH"),
    ]
    for body, words in cases:
        response = client.post("/api/jobs", json={"prompt": "a blue square", **body}, headers=alice)
        assert response.status_code == 400, (body, response.text)
        assert words in response.json()["detail"], (body, response.json()["detail"])
    for body in [
        {"mode": "remix", "source": take, "strength": 1.5},
        {"mode": "outpaint", "source": take, "outpaint": [1, 2, 3]},
        {"mode": "outpaint", "source": take, "outpaint": [-8, 0, 0, 0]},
        {"mode": "zoom", "source": take},
    ]:
        response = client.post("/api/jobs", json={"prompt": "x", **body}, headers=alice)
        assert response.status_code in (400, 422) and response.json()["detail"], body
    # bob cannot edit alice's take: it does not exist for him
    stranger = client.post("/api/jobs", json={"prompt": "x", "mode": "remix", "source": take}, headers=bob)
    assert stranger.status_code == 400 and "no take" in stranger.json()["detail"]

    accepted = {
        "extend": {"source": take, "frames": 4, "backward": True},
        "remix": {"source": take, "strength": 0.3},
        "inpaint": {"source": take, "mask": mask},
        "outpaint": {"source": take, "outpaint": [8, 0, 8, 0]},
        "keyframes": {"image": mask, "last_image": mask, "frames": 9},
        "t2v": {"loop": True},
    }
    for mode, fields in accepted.items():
        response = client.post(
            "/api/jobs", json={"prompt": "a blue square", "mode": mode, **fields}, headers=alice
        )
        assert response.status_code == 201, (mode, response.text)
        params = response.json()["params"]
        assert params["mode"] == mode and all(params[k] == v for k, v in fields.items() if k != "outpaint")
    outpainted = client.get("/api/jobs?limit=200", headers=alice).json()["items"]
    assert next(j for j in outpainted if j["params"]["mode"] == "outpaint")["params"]["size"] == [80, 64]

    # more like this of an edit needs its source still there
    edit = next(j for j in outpainted if j["params"]["mode"] == "remix")
    assert client.post(f"/api/jobs/{edit['id']}/again", headers=alice).status_code == 201
    queue.delete(take)
    gone = client.post(f"/api/jobs/{edit['id']}/again", headers=alice)
    assert gone.status_code == 400 and "no take" in gone.json()["detail"]
    me = client.get("/api/me", headers=alice).json()["model"]
    assert set(me["modes"]) == {"t2v", "i2v", "keyframes", "extend", "remix", "inpaint", "outpaint"}


def test_publish_only_approved_takes(api):
    client, alice, bob, queue, owner = api
    take = _take(queue, owner)
    item = client.get(f"/api/jobs/{take}", headers=alice).json()["review_id"]
    refused = client.post(f"/api/jobs/{take}/publish", headers=alice)
    assert refused.status_code == 409 and "pending" in refused.json()["detail"]
    assert client.get(f"/api/jobs/{take}/published", headers=alice).status_code == 409
    assert client.post(f"/api/review/{item}/approve", json={"note": "ok"}, headers=alice).status_code == 200
    assert client.get(f"/api/jobs/{take}/published", headers=alice).status_code == 409  # not yet made
    assert client.post(f"/api/jobs/{take}/publish", headers=bob).status_code == 404
    done = client.post(f"/api/jobs/{take}/publish", headers=alice)
    assert done.status_code == 201 and done.json()["review_id"] == item
    assert client.get("/api/review?status=approved", headers=alice).json()["items"][0]["published"]
    copy = client.get(done.json()["url"], headers=alice)
    assert copy.status_code == 200 and "attachment" in copy.headers["content-disposition"]
    path = queue.published_path(take)
    assert path.read_bytes() == copy.content
    claims = verify_file(path)["c2pa"]["claims"]
    assert claims["review"]["decision"] == "approved" and claims["review"]["note"] == "ok"
    assert "c2pa.published" in [a["action"] for a in claims["actions"]]
    # an approved take can no longer be rejected (issue 25): it is withdrawn, which removes
    # the published copy and refuses publishing from then on
    refused = client.post(f"/api/review/{item}/reject", headers=alice)
    assert refused.status_code == 409 and f"item {item} is approved" in refused.json()["detail"]
    assert client.post(f"/api/review/{item}/withdraw", headers=alice).status_code == 200
    assert not path.exists()
    assert client.get(f"/api/jobs/{take}/published", headers=alice).status_code == 409
    again = client.post(f"/api/jobs/{take}/publish", headers=alice)
    assert again.status_code == 409 and "withdrawn" in again.json()["detail"] and not path.exists()
    assert client.delete(f"/api/jobs/{take}", headers=alice).status_code == 204
    assert not list(queue.outputs.glob(f"{take}.*"))


def test_cleanup_keeps_what_queued_edits_need(api):
    client, alice, _, queue, owner = api
    take = _take(queue, owner)
    mask = _upload(client, alice, _png(_mask()))
    job = client.post(
        "/api/jobs", json={"prompt": "x", "mode": "inpaint", "source": take, "mask": mask}, headers=alice
    )
    assert job.status_code == 201
    with queue._db() as db:  # make everything look old
        db.execute("UPDATE jobs SET updated = 0")
        db.execute("UPDATE inputs SET created = 0")
    assert queue.cleanup(max_bytes=0, max_age=1) == []  # the queued inpaint still reads both
    assert queue.output_path(queue.get(take)) and queue.input_path(mask)
    queue.cancel(job.json()["id"])
    with queue._db() as db:
        db.execute("UPDATE jobs SET updated = 0")
    assert sorted(queue.cleanup(max_bytes=0, max_age=1)) == sorted([take, job.json()["id"]])
    with pytest.raises(Exception, match="no upload"):
        queue.input_path(mask)


def _wait(client, auth, ids, seconds=600):
    deadline = time.time() + seconds
    while time.time() < deadline:
        jobs = {i: client.get(f"/api/jobs/{i}", headers=auth).json() for i in ids}
        if all(j["status"] in ("done", "failed", "cancelled") for j in jobs.values()):
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"jobs did not finish: {[j['status'] for j in jobs.values()]}")


def test_every_mode_runs_and_is_published_with_its_source(tiny_model, tmp_path):
    home = tmp_path / "home"
    app = create_app(home, model=tiny_model, workers=1)
    _, secret = TokenStore(home).create("modes")
    auth = {"Authorization": f"Bearer {secret}"}
    fast = {"steps": 2, "seed": 4}
    with TestClient(app) as client:
        queue = app.state.queue
        base = client.post(
            "/api/jobs", json={"prompt": "a red circle moving right", "frames": 9, **fast}, headers=auth
        ).json()
        first = np.full((64, 64, 3), (200, 30, 30), np.uint8)
        image = _upload(client, auth, _png(first))
        last = _upload(client, auth, _png(first[:, ::-1].copy()))
        mask = _upload(client, auth, _png(_mask()))
        assert _wait(client, auth, [base["id"]])[base["id"]]["status"] == "done"
        requests = {
            "keyframes": {"mode": "keyframes", "image": image, "last_image": last, "frames": 9},
            "forward": {"mode": "extend", "source": base["id"], "frames": 4},
            "backward": {"mode": "extend", "source": base["id"], "frames": 4, "backward": True},
            "remix": {"mode": "remix", "source": base["id"], "strength": 0.5},
            "inpaint": {"mode": "inpaint", "source": base["id"], "mask": mask},
            "outpaint": {"mode": "outpaint", "source": base["id"], "outpaint": [8, 0, 8, 0]},
            "loop": {"mode": "t2v", "loop": True},
        }
        ids = {}
        for name, body in requests.items():
            response = client.post(
                "/api/jobs", json={"prompt": "a blue square", **body, **fast}, headers=auth
            )
            assert response.status_code == 201, (name, response.text)
            ids[name] = response.json()["id"]
        jobs = _wait(client, auth, list(ids.values()))
        assert all(j["status"] == "done" for j in jobs.values()), {
            n: jobs[i]["error"] for n, i in ids.items()
        }
        shapes = {}
        for name, job_id in ids.items():
            path = queue.output_path(queue.get(job_id))
            clip = read_video(path)
            shapes[name] = (clip.num_frames, clip.width, clip.height)
            report = verify_file(path)
            c2pa = report["c2pa"]
            assert c2pa["state"] == "Trusted", (name, c2pa["reason"])
            actions = [a["action"] for a in c2pa["claims"]["actions"]]
            titles = [i.get("title") for i in c2pa["ingredients"]]
            if name in ("forward", "backward", "remix", "inpaint", "outpaint"):
                assert "c2pa.edited" in actions and titles == [f"{base['id']}.mp4"], (name, actions, titles)
            elif name == "keyframes":
                assert len(titles) == 2, titles  # both uploads are ingredients
        assert shapes == {
            "keyframes": (9, 64, 64),
            "forward": (13, 64, 64),
            "backward": (13, 64, 64),
            "remix": (9, 64, 64),
            "inpaint": (9, 64, 64),
            "outpaint": (9, 80, 64),
            "loop": (30, 64, 64),
        }
        review = client.get("/api/review?status=pending", headers=auth).json()["items"]
        assert {i["job"] for i in review} == {base["id"], *ids.values()}  # every output awaits review


def test_the_request_knows_every_mode_the_worker_runs():
    from typing import get_args

    from kinema.jobs.worker import MODES
    from kinema.web.modes import NEEDS, TAKES, JobRequest

    assert get_args(JobRequest.model_fields["mode"].annotation) == MODES
    assert all(set(modes) <= set(MODES) for modes in TAKES.values()) and set(NEEDS) <= set(MODES)
    assert set(TAKES) <= set(JobRequest.model_fields)


def _clip_bytes(tmp_path, frames=9, size=64, suffix=".mp4") -> bytes:
    from kinema.io import Video, write_video
    from kinema.world import parse, render_frames

    pixels = render_frames(parse("a red circle moving right on a black background"), frames=frames, size=size)
    return write_video(Video(pixels, 8.0), tmp_path / f"clip{frames}x{size}{suffix}").read_bytes()


def test_uploaded_clips_are_checked_and_edit_like_takes(api, tmp_path):
    client, alice, bob, queue, owner = api
    take = _take(queue, owner)
    response = client.post(
        "/api/uploads", files={"file": ("mine.mp4", _clip_bytes(tmp_path), "video/mp4")}, headers=alice
    )
    assert response.status_code == 201, response.text
    clip = response.json()
    assert (clip["kind"], clip["width"], clip["height"], clip["frames"]) == ("clip", 64, 64, 9)
    webm = _upload(client, alice, _clip_bytes(tmp_path, suffix=".webm"), "mine.webm")
    odd = _upload(client, alice, _clip_bytes(tmp_path, size=60), "odd.mp4")
    theirs = _upload(client, bob, _clip_bytes(tmp_path), "theirs.mp4")
    mask = _upload(client, alice, _png(_mask()))
    long = client.post(
        "/api/uploads",
        files={"file": ("long.mp4", _clip_bytes(tmp_path, frames=257, size=16), "video/mp4")},
        headers=alice,
    )
    assert long.status_code == 400 and "more than 256 frames" in long.json()["detail"]
    junk = client.post(
        "/api/uploads",
        files={"file": ("x.mp4", b"\x00\x00\x00\x18ftypmp42" + b"0" * 64, "video/mp4")},
        headers=alice,
    )
    assert junk.status_code == 400 and junk.json()["detail"]
    cases = [
        ({"mode": "extend", "source": take, "source_clip": clip["id"], "frames": 4}, "needs one source"),
        ({"mode": "extend", "source_clip": mask, "frames": 4}, "not a clip"),
        ({"mode": "extend", "source_clip": theirs, "frames": 4}, "no upload"),
        ({"mode": "remix", "source_clip": odd}, "nearest valid: 64"),
        ({"mode": "extend", "source_clip": clip["id"], "frames": 250}, "the clip has 9 frames"),
        ({"mode": "t2v", "source_clip": clip["id"]}, "'source_clip' is for mode"),
        (
            {
                "mode": "inpaint",
                "source_clip": clip["id"],
                "mask": _upload(client, alice, _png(_mask(32, 32))),
            },
            "32x32",
        ),
    ]
    for body, words in cases:
        response = client.post("/api/jobs", json={"prompt": "a blue square", **body}, headers=alice)
        assert response.status_code == 400, (body, response.text)
        assert words in response.json()["detail"], (body, response.json()["detail"])
    for body in (
        {"mode": "extend", "source_clip": clip["id"], "frames": 4},
        {"mode": "remix", "source_clip": webm},
        {"mode": "inpaint", "source_clip": clip["id"], "mask": mask},
        {"mode": "outpaint", "source_clip": clip["id"], "outpaint": [16, 0, 0, 0]},
    ):
        response = client.post("/api/jobs", json={"prompt": "a blue square", **body}, headers=alice)
        assert response.status_code == 201, (body, response.text)
        assert response.json()["params"]["source_clip"] == body["source_clip"]


def test_an_uploaded_clip_is_extended_and_named_as_the_ingredient(tiny_model, tmp_path):
    home = tmp_path / "home"
    app = create_app(home, model=tiny_model, workers=1)
    _, secret = TokenStore(home).create("clips")
    auth = {"Authorization": f"Bearer {secret}"}
    with TestClient(app) as client:
        clip = _upload(client, auth, _clip_bytes(tmp_path), "mine.mp4")
        job = client.post(
            "/api/jobs",
            json={"prompt": "a red circle", "mode": "extend", "source_clip": clip, "frames": 4, "steps": 2},
            headers=auth,
        ).json()
        assert _wait(client, auth, [job["id"]])[job["id"]]["status"] == "done"
        path = app.state.queue.output_path(app.state.queue.get(job["id"]))
        assert read_video(path).num_frames == 9 + 4
        c2pa = verify_file(path)["c2pa"]
        assert [i.get("title") for i in c2pa["ingredients"]] == [f"{clip}.mp4"]
