"""What ``POST /deployments`` and ``PATCH /services/{name}`` answer, as Restate 1.7.12 does
(/work/research/compat/NOTES.md, section B): the Location header and the body of a registration,
re-registration and ``force``, the 409 of a breaking change (and what ``dry_run``, ``force`` and
``breaking`` do with it), and 400 / 415 / 422 for bodies that are not JSON, not JSON at all, or
JSON of the wrong shape."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import QUILL_TEST_ENV
from tests.support import Quill, SdkService

WRONG_SHAPE = "Failed to deserialize the JSON body into the target type: "
BREAKING = (
    "[META0006] detected a new service revision for 'Thing' changing the service type from previous revision."
    " Service type cannot be changed across revisions."
)


@pytest.fixture(scope="module")
def things() -> Iterator[tuple[SdkService, SdkService]]:
    """``Thing`` as a plain service, and as a virtual object at another URI."""
    plain = SdkService("tests.services.thing:as_service")
    keyed = SdkService("tests.services.thing:as_object")
    yield plain, keyed
    plain.stop()
    keyed.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quill]:
    quill = Quill(tmp_path_factory.mktemp("quill") / "data", env=QUILL_TEST_ENV)
    yield quill
    quill.stop()


async def test_registration_answers_and_breaking_changes(
    server: Quill, things: tuple[SdkService, SdkService], client: httpx.AsyncClient
) -> None:
    plain, keyed = things
    deployments = f"{server.admin}/deployments"
    created = await client.post(deployments, json={"uri": plain.url, "use_http_11": True})
    assert created.status_code == 201
    body = created.json()
    # Relative, without a leading slash, as Restate's.
    assert created.headers["location"] == f"deployments/{body['id']}"
    assert list(body) == ["id", "services", "min_protocol_version", "max_protocol_version", "sdk_version"]
    (thing,) = body["services"]
    assert (thing["name"], thing["ty"], thing["revision"], thing["deployment_id"]) == (
        "Thing",
        "Service",
        1,
        body["id"],
    )
    assert thing["handlers"] == [
        {
            "name": "hello",
            "public": True,
            "input_description": "JSON string",
            "output_description": "JSON string",
            "input_json_schema": {"type": "string"},
            "output_json_schema": {"type": "string"},
            "retry_policy": {"max_attempts": None},
        }
    ]
    described = (await client.get(f"{deployments}/{body['id']}")).json()
    assert described["uri"] == plain.url + "/"  # kept with a trailing slash, as Restate keeps it

    # The same URI again: the stored deployment, 200 (with its Location); force: replaced in place,
    # same id, a new revision.
    again = await client.post(deployments, json={"uri": plain.url + "/", "use_http_11": True})
    assert (again.status_code, again.headers["location"], again.json()["id"]) == (
        200,
        created.headers["location"],
        body["id"],
    )
    assert again.json()["services"][0]["revision"] == 1
    forced = await client.post(deployments, json={"uri": plain.url, "use_http_11": True, "force": True})
    assert (forced.status_code, forced.json()["id"], forced.json()["services"][0]["revision"]) == (200, body["id"], 2)

    # Thing becomes a virtual object at another URI: a breaking change, with Restate's code, also
    # as a dry run; force or breaking let it through (a dry run stores nothing, with a fresh id).
    for dry_run in (False, True):
        refused = await client.post(deployments, json={"uri": keyed.url, "use_http_11": True, "dry_run": dry_run})
        assert refused.status_code == 409
        assert refused.json() == {"message": BREAKING, "restate_code": "META0006"}
    previews = []
    for flag in ("force", "breaking"):
        preview = await client.post(
            deployments, json={"uri": keyed.url, "use_http_11": True, flag: True, "dry_run": True}
        )
        assert preview.status_code == 201, preview.text
        assert (preview.json()["services"][0]["ty"], preview.json()["services"][0]["revision"]) == ("VirtualObject", 3)
        previews.append(preview.json()["id"])
    assert len(set(previews + [body["id"]])) == 3
    assert (await client.get(f"{server.admin}/services/Thing")).json()["ty"] == "Service"
    applied = await client.post(deployments, json={"uri": keyed.url, "use_http_11": True, "breaking": True})
    assert (applied.status_code, applied.json()["services"][0]["ty"]) == (201, "VirtualObject")
    assert (await client.post(f"{server.ingress}/restate/call/Thing/k/hello", json="x")).json() == "hello x from k"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{", 400, "Failed to parse the request body as JSON: "),
        (b"", 400, "Failed to parse the request body as JSON: "),
        (b'{"uri": 5}', 422, WRONG_SHAPE + "data did not match any variant of untagged enum RegisterDeploymentRequest"),
        (b'{"foo": 1}', 422, WRONG_SHAPE + "data did not match any variant"),
        (b"[]", 422, WRONG_SHAPE + "data did not match any variant"),
        (b"null", 422, WRONG_SHAPE + "data did not match any variant"),
        (b'{"uri": "not a uri"}', 422, WRONG_SHAPE + "uri: 'not a uri' is not a URI"),
        (b'{"uri": "http://127.0.0.1:1", "force": "yes"}', 422, WRONG_SHAPE + "data did not match any variant"),
        (b'{"uri": "ftp://x"}', 400, "expected an http:// or https:// URL"),
    ],
)
async def test_malformed_registrations(
    server: Quill, client: httpx.AsyncClient, body: bytes, status: int, message: str
) -> None:
    answer = await client.post(
        f"{server.admin}/deployments", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == status
    assert answer.json()["message"].startswith(message) or message in answer.json()["message"]
    assert answer.json()["restate_code"] is None


async def test_a_body_without_a_json_content_type_is_415(server: Quill, client: httpx.AsyncClient) -> None:
    for headers in ({}, {"content-type": "text/plain"}):
        answer = await client.post(f"{server.admin}/deployments", content=b'{"uri": "http://x"}', headers=headers)
        assert answer.status_code == 415
        assert answer.json()["message"] == "Expected request with `Content-Type: application/json`"


async def test_modify_service_bodies(registered: Quill, client: httpx.AsyncClient) -> None:
    url = f"{registered.admin}/services/Timers"
    for body, problem in [
        ({"idempotency_retention": "abc"}, "idempotency_retention: "),
        ({"idempotency_retention": "-1s"}, "idempotency_retention: negative signed durations"),
        ({"idempotency_retention": ""}, "idempotency_retention: "),
        ({"journal_retention": "1y"}, "journal_retention: please use units of days or smaller"),
        ({"idempotency_retention": 5}, "idempotency_retention"),
        ({"public": "no"}, "public"),
    ]:
        answer = await client.patch(url, json=body)
        assert answer.status_code == 422, body
        assert answer.json()["message"].startswith(WRONG_SHAPE) and problem in answer.json()["message"], body
    # Unknown fields are ignored and an empty array is an empty patch, as serde reads them.
    for body in ({"foo": 1}, [], {"inactivity_timeout": "PT1S"}):
        answer = await client.patch(url, json=body)
        assert answer.status_code == 200, body
    assert answer.json()["inactivity_timeout"] == "1s"
    refused = await client.patch(url, json={"workflow_completion_retention": "1h"})
    assert refused.json() == {
        "message": "modifying retention time for service type Service is unsupported",
        "restate_code": None,
    }
    unknown = await client.patch(f"{registered.admin}/services/Nope", json={"public": True})
    assert (unknown.status_code, unknown.json()["message"]) == (
        404,
        "not found in the schema registry: service with name 'Nope'",
    )
