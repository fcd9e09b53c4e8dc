"""Every refusal a route of the staff API can answer, declared in its OpenAPI operation.

A route's refusals follow from what it is, so they are worked out here once rather than written
on each route: signed in (401, and 503 when Redis or the database is away: the token's
revocation and the account are read there), a role (403), parameters or a body (422 when they
are wrong; a body also 400 when it cannot be read and 413 when it is too large). What the domain
can refuse a router declares with `refusals(kind, ...)` (e.g. 409 when an adviser's state does
not allow the command): the statuses of those error kinds (api/web/errors.py STATUS). Every
refusal has the one body, `ErrorOut`. tests/test_openapi_conformance.py holds the app to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.accounts import Role
from api.web.deps import ROLE_GATES, token_claims
from api.web.errors import STATUS, ErrorOut
from flows.errors import ErrorKind

Responses = dict[int | str, dict[str, Any]]

_WHY = {
    400: "The body cannot be read (not UTF-8, not JSON): `body_unreadable`.",
    401: "Not signed in, or the token is invalid, expired or signed out: `not_signed_in`, "
    "`bad_token` (with `WWW-Authenticate: Bearer`).",
    403: "Signed in without the role this needs: `role_required`.",
    404: "No such thing (the code says which).",
    409: "Not now, in this state (the code says why).",
    413: "The body is larger than the app takes: `too_large`.",
    422: "A parameter or the body is wrong: `request_invalid` (FastAPI's checks, `detail` lists "
    "them) or the domain's own code.",
    429: "Too many attempts: wait `Retry-After` seconds.",
    502: "Twilio refused or did not answer: `twilio_error`.",
    503: "Redis or the database is away (`redis_unavailable`, `database_unavailable`, with "
    "`Retry-After`), or what this needs is not configured (the code says what).",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    429: {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}},
    503: {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}},
}


def refusal(status: int, why: str | None = None) -> dict[str, Any]:
    """The OpenAPI response of one refusal status: the `ErrorOut` body, and why."""
    answer: dict[str, Any] = {"model": ErrorOut, "description": why or _WHY[status]}
    if status in _HEADERS:
        answer["headers"] = _HEADERS[status]
    return answer


def refusals(*kinds: ErrorKind) -> Responses:
    """`responses=` for a router or a route: the statuses of the error kinds it can raise."""
    return {STATUS[kind]: refusal(STATUS[kind]) for kind in kinds}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def roles_of(route: APIRoute) -> tuple[Role, ...]:
    """The roles a route lets in, the first its main one; () when it needs no role."""
    for call in _calls(route.dependant):
        if call in ROLE_GATES:
            return ROLE_GATES[call]
    return ()


def signed_in(route: APIRoute) -> bool:
    return token_claims in set(_calls(route.dependant))


def _has_parameters(dependant: Dependant) -> bool:
    return bool(
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or any(_has_parameters(d) for d in dependant.dependencies)
    )


def derived_refusals(route: APIRoute) -> Responses:
    """The refusals a route answers because of what it is (see the module's docstring)."""
    answers: Responses = {}
    if signed_in(route):
        answers[401] = refusal(401)
        answers[503] = refusal(503)
    roles = roles_of(route)
    if roles:
        names = " or ".join(role.value for role in roles)
        answers[403] = refusal(403, f"Signed in, but not as {names}: `role_required`.")
    if _has_parameters(route.dependant):
        answers[422] = refusal(422)
    if route.body_field is not None:
        answers[400] = refusal(400)
        answers[413] = refusal(413)
    return answers


def declare_refusals(router: APIRouter) -> None:
    """Adds to each route of `router` the refusals it answers; what the router or the route
    declared itself stays (its description is the more precise). Idempotent: the routers are
    the modules' own, and every app built includes them."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            route.responses = {**derived_refusals(route), **route.responses}


# A stream whose client takes no data for this long (a browser that stopped reading) is closed:
# its page connects again and reads its state (desk.js); the connection is not held meanwhile.
SEND_TIMEOUT_SECONDS = 30.0

# The answer of a server-sent events route (with response_class=EventSourceResponse).
EVENT_STREAM: Responses = {
    200: {
        "description": "Server-sent events (`event:` and `data:` lines, JSON data) until the "
        "client leaves.",
        "content": {
            "text/event-stream": {
                "schema": {  # one event
                    "type": "object",
                    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
                }
            }
        },
    }
}
