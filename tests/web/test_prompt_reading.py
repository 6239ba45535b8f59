"""The studio shows how the built-in model read a job's prompt: the job's params carry
the understood prompt and the warnings, checked before queueing; literal keeps it as typed."""

from fastapi.testclient import TestClient

from kinema.jobs.requests import clip_request
from kinema.web import create_app
from kinema.web.tokens import TokenStore


def _client(tmp_path) -> TestClient:
    home = tmp_path / "home"
    app = create_app(home, workers=0)  # the built-in model: a shapes-world model
    _, secret = TokenStore(home).create("reader")
    return TestClient(app, headers={"Authorization": f"Bearer {secret}"})


def test_a_job_carries_its_understood_prompt_and_warnings(tmp_path):
    client = _client(tmp_path)
    job = client.post("/api/jobs", json={"prompt": "a scarlet ball rising on black", "seed": 1})
    assert job.status_code == 201, job.text
    params = job.json()["params"]
    assert params["prompt"] == "a scarlet ball rising on black"
    assert params["understood"] == "a red circle moving up on a black background"
    assert "warnings" not in params and "literal" not in params
    outside = client.post("/api/jobs", json={"prompt": "a", "seed": 1}).json()["params"]
    assert "understood" not in outside and outside["warnings"][0].startswith("the built-in model knows")


def test_literal_sends_the_prompt_as_typed(tmp_path):
    client = _client(tmp_path)
    params = client.post(
        "/api/jobs", json={"prompt": "a scarlet ball rising on black", "seed": 1, "literal": True}
    ).json()["params"]
    assert params["literal"] is True and "understood" not in params
    assert clip_request(params, "owner", None).literal is True


def test_the_studio_page_shows_the_understood_prompt(tmp_path):
    client = _client(tmp_path)
    page = client.get("/").text
    assert 'class="understood"' in page and 'name="literal"' in page
    script = client.get("/static/app.js").text
    assert "understood as: ${job.params.understood}" in script
