"""Verification and self-service over the webhooks, and the privacy sweep of logs and Redis."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlmodel import Session, select

from api.cli.phone import Phone
from api.logs import JsonFormatter, MaskingFilter
from ivr.records import CallRecord
from routing import keys
from routing.clock import FixedClock
from tests.conftest import AUTH_TOKEN, PUBLIC_URL, SECRET_KEY
from tests.support.applications import app_with_demo_applications
from tests.support.clock import AMSTERDAM
from tests.support.staff import SANNE, signed_in

NUMBER, BORN = "1234567", "03111985"


@pytest.fixture
async def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return app_with_demo_applications(make_app, SECRET_KEY)


async def waiting(app: FastAPI) -> list[dict[str, object]]:
    """The waiting calls with the context the adviser they are offered to receives."""
    return [entry.model_dump(mode="json") for entry in await app.state.services.queue.waiting()]


async def seen_by_supervisors(http: httpx.AsyncClient) -> list[dict[str, object]]:
    response = await http.get("/api/queue", headers=await signed_in(http, SANNE))
    assert response.status_code == 200
    result: list[dict[str, object]] = response.json()
    return result


async def to_status(caller: Phone) -> None:
    await caller.dial()
    await caller.press("1")
    await caller.press("1")


async def test_verified_caller_hears_status_then_reaches_an_adviser_with_context(
    phone: Callable[..., Phone], http: httpx.AsyncClient, app: FastAPI
) -> None:
    caller = phone()
    await to_status(caller)
    await caller.press(f"{NUMBER}#")
    turn = await caller.press(BORN)
    assert "Uw aanvraag voor een VOG is op 3 november in behandeling genomen." in turn.text
    turn = await caller.press("1")
    assert turn.queue == "kcc-vog_np"
    [entry] = await waiting(app)
    assert entry["verification"] == "verified"
    assert entry["application_number"] == NUMBER
    assert entry["application_status"] == "in_progress"
    assert entry["application_status_date"] == "2026-11-03"
    assert entry["application_product"] == "vog_np"
    assert "1985" not in str(entry)
    # Supervisors see that the caller was verified, never the application.
    [seen] = await seen_by_supervisors(http)
    assert seen["verification"] == "verified" and "application_number" not in seen
    assert NUMBER not in str(seen)


async def test_wrong_date_three_times_queues_unverified_without_the_number(
    phone: Callable[..., Phone], app: FastAPI
) -> None:
    caller = phone()
    await to_status(caller)
    for _ in range(3):
        await caller.press(f"{NUMBER}#")
        turn = await caller.press("04111985")
    assert "Wij kunnen deze gegevens niet bevestigen." in turn.text
    assert turn.queue == "kcc-vog_np"
    [entry] = await waiting(app)
    assert entry["verification"] == "failed"
    assert entry["application_number"] is None
    assert entry["application_status"] is None


async def test_unknown_number_and_wrong_date_answer_the_same_twiml(
    phone: Callable[..., Phone],
) -> None:
    answers = []
    for number, born in ((NUMBER, "04111985"), ("7777777", BORN)):
        caller = phone()
        await to_status(caller)
        await caller.press(f"{number}#")
        answers.append((await caller.press(born)).twiml)
    assert answers[0] == answers[1]


async def test_lockout_holds_across_calls_and_caller_numbers(phone: Callable[..., Phone]) -> None:
    for caller_number in ("+31611111111", "+31622222222"):
        caller = phone(caller=caller_number)
        await to_status(caller)
        for _ in range(3):
            await caller.press(f"{NUMBER}#")
            await caller.press("04111985")  # 6 failures in all: locked after the 5th
    honest = phone(caller="+31633333333")
    await to_status(honest)
    await honest.press(f"{NUMBER}#")
    turn = await honest.press(BORN)  # the right date, but locked
    assert turn.text.startswith("Wij kunnen deze gegevens niet bevestigen.")


async def test_closed_caller_gets_self_service_and_it_is_recorded(
    phone: Callable[..., Phone], clock: FixedClock, app: FastAPI
) -> None:
    clock.set(datetime(2026, 12, 1, 19, 30, tzinfo=AMSTERDAM))
    caller = phone()
    turn = await caller.dial()
    assert "Wilt u nu de status van uw aanvraag horen? Toets dan 1." in turn.text
    await caller.press("1")
    await caller.press("2345678#")
    turn = await caller.press("14021990")
    assert "Uw aanvraag voor een VOG is op 20 november ontvangen." in turn.text
    assert "adviseur" not in turn.text
    await caller.hang_up()
    await app.state.services.records.flush()  # records are written in the background
    with Session(app.state.services.db_engine) as db:
        record = db.exec(select(CallRecord)).one()
    assert record.self_service is True
    assert record.verification == "verified"


async def test_english_self_service(phone: Callable[..., Phone]) -> None:
    caller = phone()
    await caller.dial()
    await caller.press("9")
    await caller.press("1")
    await caller.press("1")
    await caller.press("4567890#")
    turn = await caller.press("01012001")
    assert "Your application for a certificate of conduct was granted on 15 September." in turn.text


# -- privacy: nothing personal in logs or Redis -----------------------------------------------

CALLERS = [f"+3161234{n:04d}" for n in range(12)]
APPLICATIONS = [
    ("1234567", date(1985, 11, 3)),
    ("2345678", date(1990, 2, 14)),
    ("3456789", date(1978, 7, 30)),
]


def date_forms(born: date) -> list[str]:
    d, m, y = f"{born.day:02d}", f"{born.month:02d}", f"{born.year}"
    return [
        d + m + y, y + m + d, f"{y}-{m}-{d}", f"{d}-{m}-{y}", f"{d}/{m}/{y}", f"{d}.{m}.{y}",
        f"{born.day}-{born.month}-{y}", f"{born.day}/{born.month}/{y}", born.isoformat(),
        f"{d}{m}{y[2:]}",
    ]  # fmt: skip


@pytest.fixture
def captured_logs() -> AsyncIterator[list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lines  # type: ignore[misc]
    root.removeHandler(handler)
    root.setLevel(old_level)


async def test_no_date_of_birth_application_or_caller_number_in_logs_or_redis(
    phone: Callable[..., Phone],
    redis_client: aioredis.Redis,
    captured_logs: list[str],
    make_app: Callable[..., FastAPI],
) -> None:
    for index, caller_number in enumerate(CALLERS):
        number, born = APPLICATIONS[index % len(APPLICATIONS)]
        typed = born.strftime("%d%m%Y")
        caller = phone(caller=caller_number)
        await to_status(caller)
        if index % 3 == 0:  # verified, then to an adviser
            await caller.press(f"{number}#")
            await caller.press(typed)
            await caller.press("1")
        elif index % 3 == 1:  # wrong dates until locked out
            for _ in range(3):
                await caller.press(f"{number}#")
                await caller.press("01011970")
        else:  # an impossible date, then the right one, then hang up in the status menu
            await caller.press(f"{number}#")
            await caller.press("31029999")
            await caller.press(typed)
        if index % 4 == 0:
            await caller.hang_up()
    # and one call while Redis is down, with the number in the failing request
    broken = make_app(redis_url="redis://127.0.0.1:1/0", verify_min_seconds=0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=broken), base_url=PUBLIC_URL
    ) as client:
        down = Phone(client, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, caller=CALLERS[0])
        await down.post(f"{PUBLIC_URL}/twilio/step?seq=3&lang=nl", {"Digits": "03111985"})

    names = await redis_client.keys("*")
    # Not an empty haystack: the calls' sessions and the failed checks are among the keys.
    assert any(name.startswith(keys.session("")) for name in names), names
    assert any(name.startswith(keys.verify_failures_by_number("")) for name in names), names
    stored: list[str] = []
    for name in names:
        stored.append(name)
        kind = await redis_client.type(name)
        if kind == "string":
            stored.append(str(await redis_client.get(name)))
        elif kind == "hash":
            stored.extend(str(v) for v in (await redis_client.hgetall(name)).values())
        elif kind == "zset":
            stored.extend(str(m) for m in await redis_client.zrange(name, 0, -1))
        elif kind == "set":
            stored.extend(str(m) for m in await redis_client.smembers(name))
    assert captured_logs, "the calls must have logged something (lock-outs, the failing request)"
    haystacks = {"logs": "\n".join(captured_logs), "redis": "\n".join(stored)}
    forbidden = [number for number, _ in APPLICATIONS]
    forbidden += [form for _, born in APPLICATIONS for form in date_forms(born)]
    forbidden += [
        "03111985",
        *CALLERS,
        *(c.removeprefix("+") for c in CALLERS),
        *(c[3:] for c in CALLERS),
    ]
    for where, text in haystacks.items():
        leaks = [value for value in forbidden if value in text]
        assert not leaks, f"{where} contains {leaks}"
    # and the masked forms are what the logs do show
    # and the lock-out was logged with the number masked (2345678 was guessed at)
    locked = [line for line in captured_logs if "locked" in line]
    assert locked and all(re.search(r'"application_number": "\*{5}78"', line) for line in locked)


async def test_the_stored_reply_that_tells_the_status_is_sealed_and_still_answers_a_retry(
    phone: Callable[..., Phone], redis_client: aioredis.Redis
) -> None:
    caller = phone()
    await to_status(caller)
    await caller.press(f"{NUMBER}#")
    assert caller.last is not None and caller.last.gather_url is not None
    step_url = caller.last.gather_url
    status = "Uw aanvraag voor een VOG is op 3 november in behandeling genomen."
    turn = await caller.press(BORN)
    assert status in turn.text
    replies = [name for name in await redis_client.keys("*") if ":reply:" in name]
    assert replies, "the replies of the call's steps are kept for Twilio's retries"
    stored = [str(await redis_client.get(name)) for name in replies]
    # Each text holds a character base64 has not ('<', ' ') or is long enough never to come up
    # in a sealed value by chance ("Say" alone did, now and then).
    assert all(value.startswith("2.") for value in stored)
    for text in ("behandeling", "november", "een VOG", "<Say", NUMBER):
        assert not any(text in value for value in stored), f"{text!r} in a stored reply"
    # Twilio retries the step: the caller hears the same status, opened from the sealed reply.
    retried = await caller.post(step_url, {"Digits": BORN})
    assert retried.status_code == 200 and "in behandeling genomen" in retried.text
