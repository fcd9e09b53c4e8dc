"""An instance whose Redis or database is away: /healthz still says it lives, /readyz names what
is missing (without hanging), staff routes answer 503 with a code, and the number's fallback
URL still answers the caller from memory."""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import create_engine

from api.cli.phone import Phone, parse_twiml
from routing.clock import FixedClock
from tests.conftest import AUTH_TOKEN, PUBLIC_URL
from tests.support.clock import AMSTERDAM
from tests.support.servers import free_port
from tests.support.staff import SANNE, add_staff, signed_in

SUNDAY_NIGHT = datetime(2026, 12, 6, 23, 0, tzinfo=AMSTERDAM)  # the centre is closed
APOLOGY_NL = "Excuses, er ging iets mis. U wordt doorverbonden met een adviseur."
APOLOGY_EN = "We are sorry, something went wrong. We are putting you through to an adviser."


@pytest.fixture
async def http_of() -> AsyncIterator[Callable[[FastAPI], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def client(app: FastAPI) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        clients.append(httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL))
        return clients[-1]

    yield client
    for made in clients:
        await made.aclose()


def without_redis(make_app: Callable[..., FastAPI]) -> FastAPI:
    """An instance pointed at a Redis port nobody listens on."""
    return make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")


def without_database(app: FastAPI) -> FastAPI:
    """The instance's database is gone: its engine now points at a port nobody listens on."""
    app.state.services.db_engine = create_engine(
        f"postgresql+psycopg://kcc@127.0.0.1:{free_port()}/kcc?connect_timeout=1"
    )
    return app


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A Redis URL whose server accepts the connection and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


async def supervisor_headers(app: FastAPI, http: httpx.AsyncClient) -> dict[str, str]:
    add_staff(app.state.services.db_engine, SANNE)
    return await signed_in(http, SANNE)  # signing in needs the database only


async def test_a_healthy_instance_is_live_and_ready(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).status_code == 200
    response = await http.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["missing"], body["flow_number"]) == ("ready", [], "1")


async def test_without_redis_the_instance_lives_is_not_ready_and_staff_routes_answer_503(
    make_app: Callable[..., FastAPI], http_of: Callable[[FastAPI], httpx.AsyncClient]
) -> None:
    app = without_redis(make_app)
    http = http_of(app)
    assert (await http.get("/healthz")).json()["status"] == "ok"
    ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["missing"] == ["redis"]

    headers = await supervisor_headers(app, http)
    queue = await http.get("/api/queue", headers=headers)
    assert queue.status_code == 503, queue.text
    assert queue.json()["code"] == "redis_unavailable"
    assert queue.headers["retry-after"] == "5"


async def test_without_the_database_readiness_and_staff_routes_say_so(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    headers = await supervisor_headers(app, http)
    without_database(app)
    ready = await http.get("/readyz")
    assert (ready.status_code, ready.json()["missing"]) == (503, ["database"])
    queue = await http.get("/api/queue", headers=headers)
    assert queue.status_code == 503, queue.text
    assert queue.json()["code"] == "database_unavailable"


async def test_a_redis_that_never_answers_does_not_hang_the_readiness_check(
    make_app: Callable[..., FastAPI],
    http_of: Callable[[FastAPI], httpx.AsyncClient],
    silent_redis: str,
) -> None:
    http = http_of(make_app(redis_url=silent_redis))
    started = time.monotonic()
    ready = await http.get("/readyz")
    assert (ready.status_code, ready.json()["missing"]) == (503, ["redis"])
    assert time.monotonic() - started < 1.9  # the 1 s limit, not redis-py's 2 s socket timeout


async def test_the_numbers_fallback_url_answers_without_redis_or_the_database(
    make_app: Callable[..., FastAPI], http_of: Callable[[FastAPI], httpx.AsyncClient]
) -> None:
    app = without_database(without_redis(make_app))
    http = http_of(app)
    caller = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
    extra = {"ErrorCode": "11200", "ErrorUrl": f"{PUBLIC_URL}/twilio/voice"}
    response = await caller.post(f"{PUBLIC_URL}/twilio/fallback", extra)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml"
    turn = parse_twiml(response.text)
    assert [(h.text, h.language) for h in turn.heard] == [
        (APOLOGY_NL, "nl-NL"),
        (APOLOGY_EN, "en-GB"),
    ]
    assert turn.queue == "kcc-general"
    assert turn.wait_url is not None and turn.wait_url.startswith(f"{PUBLIC_URL}/twilio/wait")

    unsigned = await http.post("/twilio/fallback", data={"CallSid": caller.call_sid})
    assert unsigned.status_code == 403


async def test_the_fallback_asks_to_call_back_when_the_centre_is_closed(
    make_app: Callable[..., FastAPI],
    http_of: Callable[[FastAPI], httpx.AsyncClient],
    clock: FixedClock,
) -> None:
    clock.set(SUNDAY_NIGHT)
    http = http_of(without_redis(make_app))
    caller = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
    response = await caller.post(f"{PUBLIC_URL}/twilio/fallback")
    assert response.status_code == 200
    turn = parse_twiml(response.text)
    assert turn.text.startswith("Excuses, er ging iets mis. Belt u later opnieuw")
    assert "Please call again later" in turn.text
    assert turn.hung_up and turn.queue is None
    assert [child.tag for child in ET.fromstring(response.text)] == ["Say", "Say", "Hangup"]
