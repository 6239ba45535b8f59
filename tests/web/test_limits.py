"""The OpenAPI schema states the limits the server enforces: every bound of JobRequest in
/openapi.json is refused one step past it, and the bounds that are the app's Limits equal
them, for the default limits and for tightened ones; looser ones are refused outright."""

import pytest
from fastapi.testclient import TestClient

from kinema.web import Limits, create_app
from kinema.web.modes import MAX_FRAMES, MAX_SIDE, MAX_STEPS, PROMPT_CHARS
from kinema.web.tokens import TokenStore

BASE = {"prompt": "a red circle", "seed": 1}
# a body each field's bound can be probed in (the mode that takes the field)
MODE_OF = {
    "image": "i2v",
    "last_image": "keyframes",
    "strength": "remix",
    "mask": "inpaint",
    "outpaint": "outpaint",
}
PLACEHOLDER = {"source": "0123456789abcdef"}


def _client(tmp_path, limits: Limits) -> TestClient:
    home = tmp_path / "home"
    app = create_app(home, workers=0, limits=limits)
    _, secret = TokenStore(home).create("limits")
    return TestClient(app, headers={"Authorization": f"Bearer {secret}"})


def _bounds(spec) -> dict[str, dict[str, float]]:
    """Each JobRequest field's bounds: {field: {keyword: value}} (optional fields state
    them inside anyOf)."""
    keywords = ("maxLength", "minLength", "maximum", "minimum", "exclusiveMinimum", "maxItems", "minItems")
    found = {}
    for name, schema in spec["components"]["schemas"]["JobRequest"]["properties"].items():
        for option in [schema, *schema.get("anyOf", [])]:
            for keyword in keywords:
                if keyword in option:
                    found.setdefault(name, {})[keyword] = (option[keyword], option.get("type"))
    return found


def _past(keyword: str, bound, kind: str):
    """A value one step past BOUND of KEYWORD for a field of type KIND."""
    step = 1 if kind in ("integer", "string", "array") else 0.001
    value = {"maxLength": bound + 1, "maxItems": bound + 1, "maximum": bound + step}.get(keyword)
    if value is None:
        value = {
            "minLength": bound - 1,
            "minItems": bound - 1,
            "minimum": bound - step,
            "exclusiveMinimum": bound,
        }[keyword]
    if kind == "string":
        return "a" * value
    if kind == "array":
        return [0] * value
    return value


def _body(field: str, value) -> dict:
    mode = MODE_OF.get(field, "t2v")
    body = {**BASE, "mode": mode, field: value}
    if mode != "t2v" and field != "source":
        body.update(PLACEHOLDER)
    if field == "source":
        body["mode"] = "remix"
    return body


def _assert_enforced(client, spec, limits: Limits) -> None:
    bounds = _bounds(spec)
    # the bounds that are Limits are this app's Limits
    assert bounds["prompt"]["maxLength"][0] == bounds["negative"]["maxLength"][0] == limits.prompt_chars
    assert bounds["frames"]["maximum"][0] == limits.frames and bounds["steps"]["maximum"][0] == limits.steps
    size = spec["components"]["schemas"]["JobRequest"]["properties"]["size"]
    assert f"16..{limits.side}" in str(size)
    # every bound the schema states is refused one step past it, naming the field
    assert {
        "prompt",
        "negative",
        "seed",
        "frames",
        "steps",
        "guidance",
        "fps",
        "strength",
        "outpaint",
    } <= set(bounds)
    for field, stated in bounds.items():
        for keyword, (bound, kind) in stated.items():
            response = client.post("/api/jobs", json=_body(field, _past(keyword, bound, kind)))
            assert response.status_code in (400, 422), (field, keyword, bound, response.text)
            assert field in response.text, (field, keyword, response.text)
    # and the Limits' bounds themselves are allowed
    at_bounds = [
        {"prompt": "a" * limits.prompt_chars},
        {"negative": "b" * limits.prompt_chars},
        {"steps": limits.steps},
        {"frames": limits.frames},
        {"size": f"{min(limits.side, 512)}"},
    ]
    for extra in at_bounds:
        response = client.post("/api/jobs", json={**BASE, **extra})
        assert response.status_code == 201, (extra, response.text)


def test_the_schema_states_the_default_limits_and_the_server_enforces_them(tmp_path):
    limits = Limits(write_burst=1000)
    assert (limits.prompt_chars, limits.frames, limits.steps, limits.side) == (
        PROMPT_CHARS,
        MAX_FRAMES,
        MAX_STEPS,
        MAX_SIDE,
    )
    with _client(tmp_path, limits) as client:
        spec = client.get("/openapi.json").json()
        _assert_enforced(client, spec, limits)
        assert client.get("/api/me").json()["limits"]["prompt_chars"] == PROMPT_CHARS


def test_tightened_limits_are_what_the_schema_states(tmp_path):
    limits = Limits(prompt_chars=100, frames=24, steps=20, side=128, write_burst=1000)
    with _client(tmp_path, limits) as client:
        spec = client.get("/openapi.json").json()
        _assert_enforced(client, spec, limits)
        assert (
            client.get("/docs").text.count("at most 100 chars") == 2
        )  # the reference page draws the same spec


@pytest.mark.parametrize(
    "looser",
    [{"prompt_chars": 2000}, {"frames": MAX_FRAMES + 1}, {"steps": MAX_STEPS + 1}, {"steps": 0}, {"side": 8}],
)
def test_limits_looser_than_the_schema_are_refused(tmp_path, looser):
    name = next(iter(looser))
    with pytest.raises(ValueError, match=f"Limits.{name}"):
        create_app(tmp_path / "home", workers=0, limits=Limits(**looser))
