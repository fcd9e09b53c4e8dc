"""The identity check against the applications table, with its guessing guard in the real Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from ivr.identity.applications import ApplicationInfo, DateOfBirthHasher, SqlApplicationDirectory
from ivr.identity.check import CheckResult, IdentityCheck
from ivr.identity.importer import import_applications
from ivr.identity.verifier import GuardPolicy, IdentityVerifier
from routing import keys
from routing.sealing import Pseudonymizer
from tests.conftest import SECRET_KEY
from tests.support.paths import ROOT

DEMO = ROOT / "api" / "cli" / "demo_applications.csv"
PRODUCTS = {"vog_np", "vog_rp", "gva", "name_change", "general"}
RIGHT = IdentityCheck(application_number="1234567", born=date(1985, 11, 3))
WRONG_DATE = IdentityCheck(application_number="1234567", born=date(1985, 11, 4))
UNKNOWN = IdentityCheck(application_number="9999999", born=date(1985, 11, 3))


async def run_now(work: Callable[[], Any]) -> Any:
    return work()


class CountingDirectory:
    def __init__(self, inner: SqlApplicationDirectory) -> None:
        self.inner = inner
        self.calls = 0

    def check(self, application_number: str, born: date) -> ApplicationInfo | None:
        self.calls += 1
        return self.inner.check(application_number, born)


class FakeTime:
    """monotonic() and sleep() that record how long each check was made to take."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture
def directory(sqlite_engine: Engine) -> CountingDirectory:
    hasher = DateOfBirthHasher(SECRET_KEY)
    report = import_applications(
        DEMO, engine=sqlite_engine, hasher=hasher, products=PRODUCTS, today=date(2026, 11, 28)
    )
    assert not report.rejected
    return CountingDirectory(SqlApplicationDirectory(sqlite_engine, hasher))


@pytest.fixture
def clock_ms() -> list[int]:
    return [1_795_000_000_000]


@pytest.fixture
def verifier(
    redis_client: aioredis.Redis, directory: CountingDirectory
) -> Callable[..., IdentityVerifier]:
    def make(policy: GuardPolicy | None = None, time: FakeTime | None = None) -> IdentityVerifier:
        time = time or FakeTime()
        return IdentityVerifier(
            redis=redis_client,
            directory=directory,
            pseudonymize=Pseudonymizer(SECRET_KEY),
            run_sync=run_now,
            policy=policy or GuardPolicy(min_seconds=0),
            sleep=time.sleep,
            monotonic=time.monotonic,
        )

    return make


_seq = iter(range(1, 10_000))


async def check(
    v: IdentityVerifier,
    request: IdentityCheck,
    *,
    caller: str = "+31611111111",
    call_sid: str = "CA1",
    now_ms: int = 1_795_000_000_000,
) -> CheckResult:
    outcome = await v.check(
        request, caller=caller, call_sid=call_sid, seq=next(_seq), now_ms=now_ms
    )
    return outcome.result


async def test_right_number_and_date_verify_with_the_application(
    verifier: Callable[..., IdentityVerifier],
) -> None:
    outcome = await verifier().check(RIGHT, caller="+31611111111", call_sid="CA1", seq=1, now_ms=0)
    assert outcome.result is CheckResult.VERIFIED
    assert (outcome.product, outcome.status, outcome.status_date) == (
        "vog_np",
        "in_progress",
        date(2026, 11, 3),
    )


async def test_unknown_number_and_wrong_date_give_the_same_result_after_the_same_work(
    verifier: Callable[..., IdentityVerifier], directory: CountingDirectory
) -> None:
    v = verifier()
    assert await check(v, UNKNOWN) is CheckResult.MISMATCH
    assert directory.calls == 1
    assert await check(v, WRONG_DATE) is CheckResult.MISMATCH
    assert directory.calls == 2


async def test_every_outcome_is_padded_to_the_same_duration(
    verifier: Callable[..., IdentityVerifier],
) -> None:
    time = FakeTime()
    v = verifier(GuardPolicy(min_seconds=0.4), time)
    for request in (RIGHT, UNKNOWN, WRONG_DATE):
        await check(v, request)
    assert time.slept == [0.4, 0.4, 0.4]


async def test_five_failures_lock_the_number_across_calls_and_callers(
    verifier: Callable[..., IdentityVerifier],
    redis_client: aioredis.Redis,
) -> None:
    v = verifier()
    callers = ["+31611111111", "+31622222222", "+31633333333", "+31644444444", "+31655555555"]
    for number, caller in enumerate(callers):
        assert (
            await check(v, WRONG_DATE, caller=caller, call_sid=f"CA{number}")
            is CheckResult.MISMATCH
        )
    assert await check(v, RIGHT, caller="+31666666666", call_sid="CA9") is CheckResult.LOCKED
    lock = [k for k in await redis_client.keys("*verify:lock*")]
    assert len(lock) == 1
    assert 0 < await redis_client.ttl(lock[0]) <= 24 * 3600


async def test_four_failures_do_not_lock(verifier: Callable[..., IdentityVerifier]) -> None:
    v = verifier()
    for number in range(4):
        await check(v, WRONG_DATE, caller=f"+3161111111{number}", call_sid=f"CA{number}")
    assert await check(v, RIGHT, caller="+31699999999") is CheckResult.VERIFIED


async def test_failures_older_than_the_window_do_not_count(
    verifier: Callable[..., IdentityVerifier],
) -> None:
    v = verifier()
    day_ms = 24 * 3600 * 1000
    for number in range(4):
        await check(v, WRONG_DATE, caller=f"+3161111111{number}", now_ms=1_000_000_000_000)
    await check(v, WRONG_DATE, caller="+31688888888", now_ms=1_000_000_000_000 + day_ms + 1)
    assert (
        await check(v, RIGHT, caller="+31699999999", now_ms=1_000_000_000_000 + day_ms + 2)
        is CheckResult.VERIFIED
    )


async def test_lockout_is_logged_masked_and_counted(
    verifier: Callable[..., IdentityVerifier], caplog: pytest.LogCaptureFixture
) -> None:
    before = (
        REGISTRY.get_sample_value("kcc_identity_lockouts_total", {"kind": "application_number"})
        or 0
    )
    v = verifier()
    with caplog.at_level(logging.WARNING, logger="ivr.identity.verifier"):
        for number in range(5):
            await check(v, WRONG_DATE, caller=f"+3161111111{number}")
    [record] = [r for r in caplog.records if "locked" in r.getMessage()]
    assert record.application_number == "*****67"  # type: ignore[attr-defined]
    after = REGISTRY.get_sample_value("kcc_identity_lockouts_total", {"kind": "application_number"})
    assert after == before + 1


async def test_caller_with_more_than_ten_failures_in_an_hour_is_limited(
    verifier: Callable[..., IdentityVerifier],
) -> None:
    v = verifier()
    for number in range(11):
        await check(
            v,
            IdentityCheck(application_number=f"55555{number:02d}", born=date(1980, 1, 1)),
            caller="+31612340000",
        )
    assert await check(v, RIGHT, caller="+31612340000") is CheckResult.LOCKED
    assert await check(v, RIGHT, caller="+31698765432") is CheckResult.VERIFIED  # others are not


async def test_ten_failures_from_a_caller_are_still_allowed(
    verifier: Callable[..., IdentityVerifier],
) -> None:
    v = verifier()
    for number in range(10):
        await check(
            v,
            IdentityCheck(application_number=f"55555{number:02d}", born=date(1980, 1, 1)),
            caller="+31612340000",
        )
    assert await check(v, RIGHT, caller="+31612340000") is CheckResult.VERIFIED


async def test_a_retried_step_counts_its_failure_once(
    verifier: Callable[..., IdentityVerifier],
) -> None:
    v = verifier()
    for _ in range(5):  # Twilio delivering the same step five times
        await v.check(
            WRONG_DATE, caller="+31611111111", call_sid="CA7", seq=4, now_ms=1_795_000_000_000
        )
    assert await check(v, RIGHT, caller="+31622222222") is CheckResult.VERIFIED


async def test_redis_keys_hold_no_numbers(
    verifier: Callable[..., IdentityVerifier], redis_client: aioredis.Redis
) -> None:
    v = verifier()
    for number in range(6):
        await check(v, WRONG_DATE, caller="+31612345678", call_sid=f"CA{number}")
    names = await redis_client.keys("*")
    # The keys of the guard itself (per number, per caller, the lock) are the ones looked at.
    for kind in (
        keys.verify_failures_by_number(""),
        keys.verify_failures_by_caller(""),
        keys.verify_lock_by_number(""),
    ):
        assert any(name.startswith(kind) for name in names), (kind, names)
    for name in names:
        assert "1234567" not in name and "612345678" not in name
        assert await redis_client.ttl(name) > 0


async def test_tries_at_the_same_moment_cannot_slip_past_the_limit(
    verifier: Callable[..., IdentityVerifier],
) -> None:
    v = verifier()
    results = await asyncio.gather(
        *(
            v.check(
                WRONG_DATE,
                caller=f"+316{n:08d}",
                call_sid=f"CA{n}",
                seq=1,
                now_ms=1_795_000_000_000,
            )
            for n in range(20)
        )
    )
    outcomes = [r.result for r in results]
    assert outcomes.count(CheckResult.MISMATCH) == 5  # only five tries were ever checked
    assert outcomes.count(CheckResult.LOCKED) == 15
    assert await check(v, RIGHT, caller="+31699999999") is CheckResult.LOCKED
