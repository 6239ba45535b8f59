"""POST /api/verify answers with the same authenticity report as `kinema verify` (triage,
review and verdict included), keeping who reviewed a working file to the command line."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from kinema.authenticity import report
from kinema.governance import review
from kinema.io import Video, write_video
from kinema.provenance.triage import CAVEAT
from kinema.publish import Origin, publish
from kinema.web import create_app
from kinema.web.tokens import TokenStore
from kinema.world import parse, render_frames

PROMPT = "a red circle moving right on a black background"
MODEL = Origin("kinema-test-model", model_hash="ab" * 32)


@pytest.fixture
def client_auth(tmp_path):
    home = tmp_path / "home"
    app = create_app(home, workers=0)  # KINEMA_HOME is now HOME, for publish below too
    _, secret = TokenStore(home).create("verifier")
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {secret}"}


def _clip() -> Video:
    return Video(render_frames(parse(PROMPT), seed=2), 8)


def _verify(client, auth, path, name="upload.mp4") -> dict:
    answer = client.post("/api/verify", files={"file": (name, path.read_bytes(), "video/mp4")}, headers=auth)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_endpoint_carries_the_report_keys_and_verdict(client_auth, tmp_path):
    client, auth = client_auth
    path = tmp_path / "take.mp4"
    record = publish(_clip(), path, {"prompt": PROMPT, "seed": 2}, MODEL)
    review.approve(record["id"], note="the circle is right", reviewer="token:ana")
    web, local = _verify(client, auth, path), report(path)
    assert set(web) == set(local) and {"triage", "review", "verdict", "c2pa", "watermark"} <= set(web)
    assert web["file"] == "upload.mp4"
    assert web["verdict"] == local["verdict"]
    assert web["verdict"]["basis"] == "trusted manifest" and web["verdict"]["origin"] == "model"
    assert "watermark agrees" in web["verdict"]["line"]
    assert f"review approved (item {record['id']})" in web["verdict"]["line"]
    assert web["triage"]["caveat"] == CAVEAT and web["triage"]["score"] == local["triage"]["score"]
    # anyone holding the file may ask; who decided and their note stay with the command line
    assert web["review"]["database"] == {
        "id": record["id"],
        "status": "approved",
        "match": "content",
        "changed": False,
        "decided": local["review"]["database"]["decided"],
    }
    assert local["review"]["database"]["reviewer"] == "token:ana"


def test_endpoint_on_plain_pixels_says_no_evidence(client_auth, tmp_path):
    client, auth = client_auth
    path = write_video(_clip(), tmp_path / "plain.mp4")
    web = _verify(client, auth, path, "plain.mp4")
    assert web["c2pa"]["state"] == "Absent" and web["verdict"]["basis"] == "none"
    assert web["verdict"]["line"].endswith("but the detector alone is not evidence")
    assert web["review"]["found"] is False


def test_verify_page_has_the_verdict_line(client_auth):
    client, auth = client_auth
    page = client.get("/verify", headers=auth)
    assert page.status_code == 200 and 'id="verify-verdict"' in page.text
