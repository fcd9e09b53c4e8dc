"""/metrics as Prometheus scrapes it: the live gauges (calls in the menu, waiting per product,
the longest wait, advisers per state) and the call counters, read from Redis at scrape time,
match what the calls and advisers are doing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from api.cli.phone import Phone
from routing.board import AdviserState
from routing.clock import FixedClock
from tests.conftest import AUTH_TOKEN, PUBLIC_URL
from tests.support.conference_calls import ANN, BOB, in_conversation, queued
from tests.support.staff import add_staff, signed_in
from tests.support.twilio_stub import TwilioStub

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, ANN, BOB)


@pytest.mark.usefixtures("staff")
async def test_metrics_show_the_calls_and_advisers_of_the_moment(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
) -> None:
    before = await scrape(http)
    assert value(before, "kcc_calls_in_menu") == 0
    for state in AdviserState:  # every state has its series, zeros included
        assert value(before, "kcc_advisers", state=state.value) == 0
    assert value(before, "kcc_calls_waiting", product="vog_np") == 0
    assert value(before, "kcc_calls_offered_total", product="vog_rp") == 0

    # Ann talks to a caller; Bob is on a break.
    await in_conversation(http, phone, twilio_stub)
    bob = await signed_in(http, BOB)
    for status in ("available", "break"):
        response = await http.post("/api/advisers/me/status", json={"status": status}, headers=bob)
        assert response.json()["status"] == status
    # A caller hangs up in the line: abandoned.
    gone = await queued(phone, twilio_stub)
    await gone.hang_up()
    # Two callers wait, the first for 90 s, the second for 60 s; one more is in the menu.
    await queued(phone, twilio_stub)
    clock.set(clock.now() + timedelta(seconds=30))
    await queued(phone, twilio_stub)
    clock.set(clock.now() + timedelta(seconds=60))
    await phone().dial()

    now = await scrape(http)
    assert value(now, "kcc_calls_in_menu") == 1
    assert value(now, "kcc_calls_waiting", product="vog_rp") == 2
    assert value(now, "kcc_oldest_wait_seconds", product="vog_rp") == 90
    assert value(now, "kcc_calls_waiting", product="vog_np") == 0
    assert value(now, "kcc_oldest_wait_seconds", product="vog_np") == 0
    assert value(now, "kcc_advisers", state="on_call") == 1
    assert value(now, "kcc_advisers", state="break") == 1
    assert value(now, "kcc_advisers", state="available") == 0
    assert value(now, "kcc_calls_offered_total", product="vog_rp") == 4
    assert value(now, "kcc_calls_answered_total", product="vog_rp") == 1
    assert value(now, "kcc_calls_abandoned_total", product="vog_rp") == 1
    assert value(now, "kcc_calls_abandoned_total", product="vog_np") == 0


async def test_every_instance_reports_the_same_figures(
    make_app: Callable[..., FastAPI], twilio_stub: TwilioStub
) -> None:
    """Prometheus scrapes whichever instance: the figures are Redis', not a process's."""
    first, second = make_app(), make_app()
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url=PUBLIC_URL) as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url=PUBLIC_URL) as two,
    ):
        caller = Phone(one, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
        await caller.dial()
        await caller.press("2")
        await caller.press("#")  # in vog_rp's line, through the first instance
        await Phone(one, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN).dial()
        for client in (one, two):
            samples = await scrape(client)
            assert value(samples, "kcc_calls_in_menu") == 1
            assert value(samples, "kcc_calls_waiting", product="vog_rp") == 1
            assert value(samples, "kcc_calls_offered_total", product="vog_rp") == 1
