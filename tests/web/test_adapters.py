"""Adapters in the web studio: listed by name, chosen by name and scale, never by path."""

import pytest
from fastapi.testclient import TestClient

from kinema.pipelines.facts import builtin_folder
from kinema.web import create_app
from kinema.web.tokens import TokenStore
from tests.adapters import random_adapter

PROMPT = "a red circle moving right on a black background"


@pytest.fixture
def client(tmp_path):
    home = tmp_path / "home"  # the app makes it KINEMA_HOME
    random_adapter(builtin_folder(), home / "loras" / "sparkle.safetensors")
    app = create_app(home, workers=0)
    _, secret = TokenStore(home).create("alice")
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {secret}"}


def test_adapters_are_listed_and_chosen_by_name(client):
    client, auth = client
    listed = client.get("/api/adapters", headers=auth).json()
    assert [a["name"] for a in listed] == ["sparkle"] and listed[0]["rank"] == 2
    assert listed[0]["decoder_rank"] == 0  # a random adapter without a card: DiT pairs only
    job = client.post(
        "/api/jobs", headers=auth, json={"prompt": PROMPT, "adapters": [{"name": "sparkle", "scale": 0.5}]}
    )
    assert job.status_code == 201, job.text
    assert job.json()["params"]["adapters"] == [{"name": "sparkle", "scale": 0.5}]
    # scale 0 leaves an adapter out: the job is the base model's
    job = client.post(
        "/api/jobs", headers=auth, json={"prompt": PROMPT, "adapters": [{"name": "sparkle", "scale": 0}]}
    )
    assert job.status_code == 201 and "adapters" not in job.json()["params"]
    edit = client.post(
        "/api/jobs",
        headers=auth,
        json={
            "mode": "remix",
            "prompt": PROMPT,
            "source": job.json()["id"],
            "adapters": [{"name": "sparkle"}],
        },
    )
    assert (
        edit.status_code == 400 and "queued" in edit.json()["detail"]
    )  # refused for its source, not its adapter


@pytest.mark.parametrize(
    "adapters, status, words",
    [
        ([{"name": "nope"}], 400, "no adapter 'nope' on this server"),
        ([{"name": "../loras/sparkle"}], 422, "pattern"),
        ([{"name": "/etc/passwd"}], 422, "pattern"),
        ([{"name": "sparkle", "scale": 3}], 422, "less than or equal to 2"),
        ([{"name": "sparkle", "path": "/x"}], 422, "Extra inputs"),
    ],
)
def test_bad_adapters_are_refused(client, adapters, status, words):
    client, auth = client
    response = client.post("/api/jobs", headers=auth, json={"prompt": PROMPT, "adapters": adapters})
    assert response.status_code == status and words in response.text
