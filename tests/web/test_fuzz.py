"""The API fuzzed from its own OpenAPI spec (schemathesis, in-process over ASGI): valid
and invalid requests to every operation, with a token, on ids that exist and on ids that
do not. No request may get a 5xx; every refusal is a 4xx whose JSON says what was wrong;
responses keep to the documented codes and content types; invalid data is refused."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    status_code_conformance,
)

from kinema.web import Limits, create_app
from kinema.web.tokens import TokenStore

from .takes import publish_take

EXAMPLES = 25  # per operation and round: the whole file runs in well under a minute
RICH = {"POST /api/jobs": 150}  # the operation with the most fields gets more
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The schema, the token header, and ids that exist: a done take (with its review
    item) and a queued job."""
    home = tmp_path_factory.mktemp("fuzz-home")
    # no workers (jobs stay queued) and room for every write the fuzzer makes
    app = create_app(home, workers=0, limits=Limits(write_burst=100_000, writes_per_second=1000.0))
    token, secret = TokenStore(home).create("fuzz")
    auth = {"Authorization": f"Bearer {secret}"}
    queue = app.state.queue
    take = publish_take(queue, token.id)
    queued = queue.submit(token.id, {"mode": "t2v", "prompt": "a square", "seed": 2}).id
    ids = {"take": take, "queued": queued, "item": queue.get(take).record["id"]}
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth), auth, ids


def _fuzz(operation, auth, mode, **fixed) -> None:
    @settings(
        max_examples=RICH.get(operation.label, EXAMPLES),
        deadline=None,
        derandomize=True,  # the same cases every run: a failure here is a regression
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def fuzz(case):
        response = case.call_and_validate(headers=auth, checks=CHECKS)
        if 400 <= response.status_code < 500:
            detail = response.json().get("detail")
            assert detail, f"{operation.label}: a {response.status_code} without a message"

    fuzz()


def _operations(schema):
    # schemathesis's own pytest plugin does not run under pytest 9 yet (it sets a private
    # node id), so each operation gets a plain Hypothesis test over its strategy
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_random_requests_never_fail_and_refusals_say_why(api, mode):
    schema, auth, _ = api
    for operation in _operations(schema):
        inputs = (operation.path_parameters, operation.query, operation.body)
        if mode is GenerationMode.NEGATIVE and not any(len(part) for part in inputs):
            continue  # nothing a request to it could get wrong
        _fuzz(operation, auth, mode)


def test_requests_on_existing_jobs_never_fail(api):
    schema, auth, ids = api
    for operation in _operations(schema):
        names = {p.name for p in operation.path_parameters}
        if operation.method.upper() == "DELETE" or not names:
            continue  # deleting them would leave the other operations nothing to find
        if "item_id" in names:
            _fuzz(operation, auth, GenerationMode.POSITIVE, path_parameters={"item_id": ids["item"]})
            continue
        for job in (ids["take"], ids["queued"]):
            _fuzz(operation, auth, GenerationMode.POSITIVE, path_parameters={"job_id": job})


def test_the_fuzzer_sees_every_operation(api):
    schema, _, _ = api
    operations = {(op.method.upper(), op.path) for op in _operations(schema)}
    assert ("POST", "/api/jobs") in operations and ("POST", "/api/jobs/{job_id}/publish") in operations
    assert len(operations) >= 14, sorted(operations)
