"""The review gate on the web (issue 25): token roles decide what a token sees and may
decide, refusals name the state (409) or the rule (403), four-eyes review, the review
state on every take, and Publish only for approved takes."""

import json

import pytest
from fastapi.testclient import TestClient

from kinema.cli import main
from kinema.governance import review
from kinema.web import Limits, create_app
from kinema.web.tokens import TokenStore

from .takes import publish_take


@pytest.fixture
def studio(tmp_path):
    home = tmp_path / "home"
    app = create_app(home, workers=0, limits=Limits(write_burst=1000))
    store = TokenStore(home)
    tokens = {
        "alice": store.create("alice"),  # both roles: a one-person studio
        "bob": store.create("bob", ("creator",)),
        "rita": store.create("rita", ("reviewer",)),
    }
    with TestClient(app) as client:
        auth = {n: {"Authorization": f"Bearer {secret}"} for n, (_, secret) in tokens.items()}
        ids = {n: token.id for n, (token, _) in tokens.items()}
        yield client, auth, ids, app.state.queue


def items(client, auth, status=None):
    answer = client.get("/api/review" + (f"?status={status}" if status else ""), headers=auth).json()
    return {i["job"]: i for i in answer["items"]}


def test_roles_decide_what_a_token_sees_and_decides(studio):
    client, auth, ids, queue = studio
    alices, bobs = publish_take(queue, ids["alice"]), publish_take(queue, ids["bob"])
    assert set(items(client, auth["bob"])) == {bobs}  # a creator sees its own takes
    assert set(items(client, auth["rita"])) == {alices, bobs}  # a reviewer sees every take
    assert set(items(client, auth["alice"])) == {alices, bobs}
    mine = items(client, auth["bob"])[bobs]
    assert mine["creator"] == f"token:{ids['bob']}" and mine["mine"] and mine["can"] == ["reject"]
    assert items(client, auth["rita"])[alices]["can"] == ["approve", "reject"]
    listing = client.get("/api/review", headers=auth["rita"]).json()
    assert listing["caller"] == {"id": ids["rita"], "identity": f"token:{ids['rita']}", "roles": ["reviewer"]}

    bob_item = mine["id"]
    refused = client.post(f"/api/review/{bob_item}/approve", headers=auth["bob"])
    assert refused.status_code == 403 and "reviewer role" in refused.json()["detail"]
    alice_item = items(client, auth["alice"])[alices]["id"]
    assert client.post(f"/api/review/{alice_item}/reject", headers=auth["bob"]).status_code == 404
    approved = client.post(f"/api/review/{bob_item}/approve", json={"note": "fine"}, headers=auth["rita"])
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved" and approved.json()["reviewer"] == f"token:{ids['rita']}"
    assert approved.json()["self_review"] is False
    assert (
        client.post(f"/api/jobs/{bobs}/publish", headers=auth["rita"]).status_code == 404
    )  # not rita's take
    published = client.post(f"/api/jobs/{bobs}/publish", headers=auth["bob"])
    assert published.status_code == 201
    export = review.get(bob_item).exports[0]
    assert export["by"] == f"token:{ids['bob']}"


def test_reject_then_approve_then_publish_is_refused(studio):
    # issue 25, Why 1: the web allowed reject → approve → publish (201)
    client, auth, ids, queue = studio
    take = publish_take(queue, ids["alice"])
    item = items(client, auth["alice"])[take]["id"]
    assert client.post(f"/api/review/{item}/reject", headers=auth["alice"]).status_code == 200
    again = client.post(f"/api/review/{item}/approve", headers=auth["alice"])
    assert again.status_code == 409
    assert again.json()["detail"] == f"item {item} is rejected (final); only a pending item can be approved"
    publish = client.post(f"/api/jobs/{take}/publish", headers=auth["alice"])
    assert publish.status_code == 409 and "rejected" in publish.json()["detail"]
    assert not queue.published_path(take).exists()
    assert items(client, auth["alice"], "rejected")[take]["can"] == []


def test_self_review_is_recorded_and_four_eyes_forbids_it(studio):
    client, auth, ids, queue = studio
    first, second = publish_take(queue, ids["alice"]), publish_take(queue, ids["alice"])
    first_item = items(client, auth["alice"])[first]["id"]
    own = client.post(f"/api/review/{first_item}/approve", headers=auth["alice"])
    assert own.status_code == 200 and own.json()["self_review"] is True
    assert review.set_four_eyes(True)
    listed = items(client, auth["alice"])[second]
    assert (
        "approve" not in listed["can"]
        and client.get("/api/review", headers=auth["alice"]).json()["four_eyes"]
    )
    refused = client.post(f"/api/review/{listed['id']}/approve", headers=auth["alice"])
    assert refused.status_code == 403 and "four-eyes" in refused.json()["detail"]
    assert review.get(listed["id"]).status == "pending"
    assert client.post(f"/api/review/{listed['id']}/approve", headers=auth["rita"]).status_code == 200


def test_every_take_shows_its_review_state(studio):
    client, auth, ids, queue = studio
    take = publish_take(queue, ids["alice"])
    queued = client.post("/api/jobs", json={"prompt": "a red circle"}, headers=auth["alice"]).json()
    page = {j["id"]: j for j in client.get("/api/jobs", headers=auth["alice"]).json()["items"]}
    assert page[take]["review_status"] == "pending" and page[queued["id"]]["review_status"] is None
    item = page[take]["review_id"]
    client.post(f"/api/review/{item}/approve", headers=auth["rita"])
    assert client.get(f"/api/jobs/{take}", headers=auth["alice"]).json()["review_status"] == "approved"
    client.post(f"/api/review/{item}/withdraw", headers=auth["alice"])  # a creator may withdraw its own
    assert client.get(f"/api/jobs/{take}", headers=auth["alice"]).json()["review_status"] == "withdrawn"


def test_the_schema_documents_withdraw_and_403(studio):
    client, auth, _, _ = studio
    spec = client.get("/openapi.json", headers=auth["alice"]).json()
    decide = spec["paths"]["/api/review/{item_id}/{decision}"]["post"]
    decision = next(p for p in decide["parameters"] if p["name"] == "decision")
    assert decision["schema"]["enum"] == ["approve", "reject", "withdraw"]
    assert "403" in decide["responses"] and "409" in decide["responses"]


def test_serve_token_create_takes_a_role(tmp_path, capsys):
    def run(*args):
        with pytest.raises(SystemExit) as info:
            main(list(args))
        out, err = capsys.readouterr()
        return info.value.code, out, err

    code, out, err = run("serve", "token", "create", "--name", "ada", "--role", "reviewer")
    assert code == 0 and out.startswith("kt_") and "reviewer" in err
    code, _, err = run("serve", "token", "create", "--role", "admin")
    assert code == 2 and err.count("\n") == 1 and "creator, reviewer or both" in err
    code, out, _ = run("serve", "token", "list", "--json")
    assert [t["roles"] for t in json.loads(out)] == [["reviewer"]]
    run("serve", "token", "create", "--name", "laptop")
    code, out, _ = run("serve", "token", "list")
    assert "reviewer" in out.splitlines()[0] and "both" in out.splitlines()[1]
