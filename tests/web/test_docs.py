"""/docs: the API reference drawn from the app's own OpenAPI spec, needing nothing from
the network (FastAPI's Swagger and ReDoc pages load their scripts from a CDN)."""

import re

from fastapi.testclient import TestClient

from kinema.web import create_app
from kinema.web.pages import api_reference, describe_schema
from kinema.web.tokens import TokenStore


def test_docs_lists_every_endpoint_offline(tmp_path):
    home = tmp_path / "home"
    app = create_app(home, workers=0)
    _, secret = TokenStore(home).create("docs")
    auth = {"Authorization": f"Bearer {secret}"}
    with TestClient(app) as client:
        assert client.get("/docs", follow_redirects=False).headers["location"] == "/login"
        assert client.get("/openapi.json").status_code == 401
        spec = client.get("/openapi.json", headers=auth).json()
        page = client.get("/docs", headers=auth)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]  # no exception for /docs
        assert client.get("/redoc", headers=auth).status_code == 404
    html = page.text
    # everything the page loads is its own: no scheme-qualified or protocol-relative URL
    loaded = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert loaded and all(u.startswith(("/", "#")) and not u.startswith("//") for u in loaded), loaded
    assert "cdn" not in html.lower()
    for path, operations in spec["paths"].items():
        for method in operations:
            assert f"<code>{path}</code>" in html and method.upper() in html, (method, path)
    # the job request's fields are spelled out with their limits
    jobs = next(e for e in api_reference(spec) if e["method"] == "POST" and e["path"] == "/api/jobs")
    fields = {f["name"]: f for f in jobs["body"]["fields"]}
    assert {"mode", "source", "mask", "outpaint", "strength", "backward", "last_image"} <= set(fields)
    assert "'extend'" in fields["mode"]["type"] and fields["prompt"]["required"]
    assert "[0.0, 1.0]" in fields["strength"]["type"] and "at least 4 items" in fields["outpaint"]["type"]
    assert fields["source"]["description"].startswith("edits")


def test_schema_words():
    components = {"A": {"$ref": "#/components/schemas/B"}, "B": {"type": "integer", "minimum": 1}}
    assert describe_schema({"$ref": "#/components/schemas/A"}, components) == "integer, [1, ]"
    assert describe_schema({"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]}, {}) == (
        "number, (0, ] or null"
    )
    loop = {"L": {"$ref": "#/components/schemas/L"}}
    assert describe_schema({"$ref": "#/components/schemas/L"}, loop) == "any"  # a cycle ends
    assert describe_schema({"type": "string", "format": "binary"}, {}) == "file"


def test_operations_keep_their_paths_and_ids(tmp_path):
    """Clients generated from the spec name operations by their ids: moving a route to
    another router module must keep its path, method, id and refusals."""
    spec = create_app(tmp_path / "home", workers=0).openapi()
    operations = {
        (method.upper(), path): op["operationId"]
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    }
    assert operations == {
        ("GET", "/api/me"): "me_api_me_get",
        ("GET", "/api/health"): "health_api_health_get",
        ("POST", "/api/uploads"): "upload_api_uploads_post",
        ("POST", "/api/jobs"): "submit_api_jobs_post",
        ("GET", "/api/jobs"): "list_jobs_api_jobs_get",
        ("GET", "/api/jobs/{job_id}"): "get_job_api_jobs__job_id__get",
        ("DELETE", "/api/jobs/{job_id}"): "delete_job_api_jobs__job_id__delete",
        ("POST", "/api/jobs/{job_id}/cancel"): "cancel_job_api_jobs__job_id__cancel_post",
        ("POST", "/api/jobs/{job_id}/again"): "again_api_jobs__job_id__again_post",
        ("GET", "/api/jobs/{job_id}/file"): "download_api_jobs__job_id__file_get",
        ("GET", "/api/jobs/{job_id}/preview"): "preview_api_jobs__job_id__preview_get",
        ("POST", "/api/jobs/{job_id}/publish"): "publish_take_api_jobs__job_id__publish_post",
        ("GET", "/api/jobs/{job_id}/published"): "download_published_api_jobs__job_id__published_get",
        ("GET", "/api/adapters"): "adapters_api_adapters_get",
        ("POST", "/api/verify"): "verify_api_verify_post",
        ("GET", "/api/review"): "review_list_api_review_get",
        ("POST", "/api/review/{item_id}/{decision}"): "review_decide_api_review__item_id___decision__post",
    }
    for method, path in operations:
        responses = spec["paths"][path][method.lower()]["responses"]
        assert {"400", "401", "404", "409", "413", "429"} <= set(responses), (method, path)
    # the dependencies that hand routes their state and token add no parameter to the spec
    assert not spec["paths"]["/api/me"]["get"].get("parameters")
