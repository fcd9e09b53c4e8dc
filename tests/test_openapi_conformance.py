"""The OpenAPI document tells the truth: schemathesis drives every operation of the staff API of
the real app (in-process, the real Redis, the database and the Twilio stub), signed in with the
role the route is for, with valid and invalid requests, and runs all of its checks on every
answer: no 5xx, no status, header or content type the document does not declare, every body as
its schema says, invalid data refused, valid data taken (docs/operations.md#the-api-schema).

Deterministic (hypothesis derandomized, no example database) and bounded: a few examples per
operation and mode keep it within seconds; the failures are gathered over all operations and
reported together."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import hypothesis
import pytest
import redis.asyncio as aioredis
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis.errors import Unsatisfiable
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.schemas import APIOperation

from api.accounts import Role
from api.web.app import API_ROUTERS, create_app
from api.web.refusals import roles_of
from routing.clock import FixedClock
from tests.conftest import make_settings
from tests.support.staff import AHMED, SANNE, Account, add_staff, signed_in
from tests.support.twilio_stub import TwilioStub

EXAMPLES = 12  # per operation and mode: about 20 s for the whole API
ACCOUNTS = {Role.SUPERVISOR: SANNE, Role.ADVISER: AHMED}
# What schemathesis takes as "invalid data refused": its defaults, and 413 (a body over the
# app's byte limit is refused before it is read, e.g. a draft of 512 k characters sent as JSON
# \\u escapes).
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
# Where valid data by the schema may still be refused 422 with the domain's own code, because the
# rule is about several fields together or about the live flow, which a JSON schema cannot say
# (docs/operations.md#the-api-schema): schemathesis' "valid data accepted" takes 422 there too.
DOMAIN_CHECKED = {
    ("GET", "/api/monitor-sessions"): "range_invalid: `to` after `from`",
    ("POST", "/api/flows/publish"): "flow_invalid: the YAML must be a valid flow",
    ("POST", "/api/flows/closures"): "range_incomplete: closed_from and closed_until together",
    ("PUT", "/api/flows/outage"): "language_unknown: a language of the live flow",
    ("GET", "/api/forecast"): "invalid_*: weeks, target and handling time (ivr/forecast.py)",
    ("POST", "/api/users"): "user_invalid: the name and device rules (api/accounts.py)",
    ("GET", "/api/reports"): "report_*: the period, grouping and sl_seconds (ivr/reports.py)",
}
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
CONFIG = {
    "max-stream-events": 1,  # an event stream is read to its first event, then left
    "request-timeout": 10,
    "checks": {"negative_data_rejection": {"expected-statuses": [*REFUSED, "5xx"]}},
    "operations": [
        {
            "include-method": method,
            "include-path": path,
            "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}},
        }
        for method, path in DOMAIN_CHECKED
    ],
}
# The browser phone configured (placeholders of the right form): its token can be made.
VOICE = {
    "twilio_api_key_sid": "SK" + "1" * 32,
    "twilio_api_key_secret": "s" * 32,
    "twilio_twiml_app_sid": "AP" + "2" * 32,
}


@pytest.fixture
def served(
    redis_client: aioredis.Redis, tmp_path: Path, clock: FixedClock, twilio_stub: TwilioStub
) -> Iterator[FastAPI]:
    """The app, served by schemathesis' in-process ASGI client (its own event loop, with the
    app's lifespan), stopped afterwards."""
    twilio_stub.reset()
    settings = make_settings(tmp_path, twilio_api_base=twilio_stub.base_url, **VOICE)
    app = create_app(settings, clock=clock)
    add_staff(app.state.services.db_engine, SANNE, AHMED)
    try:
        yield app
    finally:
        asgi.shutdown_lifespans()  # the app's background tasks end, its services close


def _sign_in(app: FastAPI, account: Account) -> dict[str, str]:
    with asgi.get_client(app) as client:
        answer = client.post(
            "/api/token", data={"username": account.name, "password": account.password}
        )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _routes(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    """Each operation's route by method and path, from the routers the app includes."""
    found: dict[tuple[str, str], APIRoute] = {}
    for router in API_ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                for method in route.methods:
                    found[(method, route.path)] = route
    return found


def _failures(operation: APIOperation, headers: dict[str, str]) -> list[str]:
    """What schemathesis found on one operation, with valid and with invalid requests."""
    found: dict[str, str] = {}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        with contextlib.suppress(Unsatisfiable):  # nothing to make invalid: no parameters
            _explore(operation, mode, headers, found)
    return list(found.values())


def _explore(
    operation: APIOperation, mode: GenerationMode, headers: dict[str, str], found: dict[str, str]
) -> None:
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same requests on every run
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        try:
            case.call_and_validate(headers=headers)
        except BaseExceptionGroup as exc:  # schemathesis' FailureGroup: what one answer broke
            found.setdefault(_kinds(str(exc)), f"{mode.value}: {exc}")
        except Exception as exc:  # the app raised: a 500, re-raised by the ASGI client
            found.setdefault(repr(exc), f"{mode.value}: {case.as_curl_command()}: {exc!r}")

    run()


def _kinds(report: str) -> str:
    return " ".join(line for line in report.splitlines() if line.startswith("- "))


def test_every_answer_of_the_api_is_in_its_openapi_document(served: FastAPI) -> None:
    tokens = {role: _sign_in(served, account) for role, account in ACCOUNTS.items()}
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", served, config=SchemathesisConfig.from_dict(CONFIG)
    )
    routes = _routes(served)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        route = routes[(operation.method.upper(), operation.path)]
        roles = [role for role in roles_of(route) if role in tokens]
        headers = tokens[roles[0]] if roles else {}
        failures += [f"{operation.label}: {f}" for f in _failures(operation, headers)]
    assert len(operations) == 53
    assert not failures, "\n\n".join(failures)


# -- what schemathesis found, each pinned down ------------------------------------------------


@pytest.fixture
async def supervisor(app: FastAPI, http: httpx.AsyncClient) -> dict[str, str]:
    add_staff(app.state.services.db_engine, SANNE)
    return await signed_in(http, SANNE)


@pytest.mark.parametrize(
    "path",
    [
        "/api/flows/versions/15161496525183672517774016512",  # was a 500 (SQLite's integer)
        "/api/flows/diff?a=4410073369018514800640",
        "/api/flows/tree?version=0",
        "/api/hours?at=0",  # was 1970-01-01 (seconds since 1970)
        "/api/hours?at=-2.1e-99",
        "/api/flows/calendar?start=0.0",
        "/api/monitor-sessions?from=1700000000",
    ],
)
async def test_numbers_out_of_range_and_numbers_as_times_are_refused(
    http: httpx.AsyncClient, supervisor: dict[str, str], path: str
) -> None:
    answer = await http.get(path, headers=supervisor)
    assert (answer.status_code, answer.json()["code"]) == (422, "request_invalid")


async def test_a_closure_from_a_time_with_an_offset_is_refused(
    http: httpx.AsyncClient, supervisor: dict[str, str]
) -> None:
    """Was a 500: an aware time compared with the flow's local ones."""
    body = {"date": "2026-12-02", "closed_from": "12:00:00Z", "closed_until": "13:00"}
    answer = await http.post("/api/flows/closures", json=body, headers=supervisor)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "closed_from"]


async def test_account_times_carry_their_utc_offset(
    http: httpx.AsyncClient, supervisor: dict[str, str]
) -> None:
    (account,) = (await http.get("/api/users", headers=supervisor)).json()
    assert account["created_at"].endswith("Z") or account["created_at"].endswith("+00:00")


async def test_a_body_too_large_and_an_unreadable_body_are_refused_with_a_code(
    http: httpx.AsyncClient, supervisor: dict[str, str]
) -> None:
    headers = {**supervisor, "Content-Type": "application/json"}
    big = await http.post(
        "/api/flows/validate",
        content=b'{"text": "' + b"x" * (3 * 1024 * 1024) + b'"}',
        headers=headers,
    )
    assert (big.status_code, big.json()["code"]) == (413, "too_large")
    assert big.headers["content-type"] == "application/json"
    unreadable = await http.post("/api/flows/validate", content=b"\xff\xfe{", headers=headers)
    assert (unreadable.status_code, unreadable.json()["code"]) == (400, "body_unreadable")


def test_each_route_declares_what_it_is_refused_for(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    assert sorted(paths["/api/hours"]["get"]["responses"]) == ["200", "422"]
    assert sorted(paths["/api/queue"]["get"]["responses"]) == ["200", "401", "403", "503"]
    assert sorted(paths["/api/token"]["post"]["responses"]) == [
        "200",
        "400",
        "401",
        "413",
        "422",
        "429",
        "503",
    ]
    refused = paths["/api/advisers/me/status"]["post"]["responses"]
    assert sorted(refused) == ["200", "400", "401", "403", "404", "409", "413", "422", "502", "503"]
    assert refused["403"]["description"] == "Signed in, but not as adviser: `role_required`."
    for status in ("400", "401", "403", "409", "422", "503"):
        schema = refused[status]["content"]["application/json"]["schema"]
        assert schema["$ref"] == "#/components/schemas/ErrorOut"
    assert not [path for path in paths if path.startswith(("/twilio", "/demo"))]
