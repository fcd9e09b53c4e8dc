"""The identity check with its guessing guard: try limits and lock-outs shared by all instances.

- 5 failures for one application number within 24 hours (across calls and caller numbers) lock
  that number for 24 hours; a locked number fails even with the right date of birth.
- A caller number with more than 10 failures in an hour is limited the same way.
- Unknown number, wrong date and a lock give the same result to the engine (it says the same
  words) and take the same time: the directory is always asked, and every check is padded to
  `min_seconds`.
Key names use keyed hashes of the numbers; the date of birth never leaves this request.

A lock-out is kept in the database as well (ivr/identity/lockouts.py), so that a Redis
restarted empty does not hand a guesser fresh tries: the recovery puts the locks back, and
until it has run (Redis' marker is missing: the reserve script says so, in the same round trip)
the database is asked about the number being tried. Normally no check reads the database for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum

from prometheus_client import Counter
from redis.asyncio import Redis

from ivr.identity.applications import ApplicationDirectory, ApplicationInfo
from ivr.identity.check import CheckOutcome, CheckResult, IdentityCheck
from routing import keys
from routing.privacy import mask_number
from routing.scripts import LuaScript, ScriptRunner, ScriptStep, sorted_sets_remove
from routing.sealing import Pseudonymizer

log = logging.getLogger(__name__)

CHECKS = Counter("kcc_identity_checks_total", "Identity checks by result", ["result"])
LOCKOUTS = Counter("kcc_identity_lockouts_total", "Lock-outs started", ["kind"])


@dataclass(frozen=True)
class GuardPolicy:
    number_failures: int = 5
    number_window_seconds: int = 24 * 3600
    number_lock_seconds: int = 24 * 3600
    caller_failures: int = 10  # more than this many in the window limits the caller
    caller_window_seconds: int = 3600
    min_seconds: float = 0.4  # every check takes at least this long


RunSync = Callable[[Callable[[], ApplicationInfo | None]], Awaitable[ApplicationInfo | None]]
# A lock was set: keep it in the database (keyed hash of the number, end in ms).
KeepLock = Callable[[str, int], Awaitable[None]]
# Redis lost its state: the end (ms) of the database's lock of this number, if one runs.
FindLock = Callable[[str, int], Awaitable[int | None]]

_RESERVE = LuaScript.named("verify_reserve")


class Guard(IntEnum):
    """What the guessing guard says before a check (the reserve script's answer)."""

    GO = 1  # within the limits; the attempt is reserved as a failure until it verifies
    NUMBER_LOCKED = 0  # too many failures for this application number
    CALLER_LIMITED = -1  # too many failures from this caller number
    GO_UNSURE = 2  # as GO, but Redis lost its state and no recovery ran yet: ask the database


class IdentityVerifier:
    def __init__(
        self,
        *,
        redis: Redis,
        directory: ApplicationDirectory,
        pseudonymize: Pseudonymizer,
        run_sync: RunSync,
        policy: GuardPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        keep_lock: KeepLock | None = None,
        find_lock: FindLock | None = None,
    ) -> None:
        self._redis = redis
        self._directory = directory
        self._pseudonymize = pseudonymize
        self._run_sync = run_sync
        self.policy = policy or GuardPolicy()
        self._sleep = sleep
        self._monotonic = monotonic
        self._scripts = ScriptRunner(redis)
        self._keep_lock = keep_lock
        self._find_lock = find_lock

    async def check(
        self, request: IdentityCheck, *, caller: str, call_sid: str, seq: int, now_ms: int
    ) -> CheckOutcome:
        started = self._monotonic()
        number_key = self._pseudonymize(request.application_number)
        caller_key = self._pseudonymize(caller or "anonymous")
        member = f"{call_sid}:{seq}"
        policy = self.policy
        allowed = await self._scripts.run_one(
            ScriptStep(
                _RESERVE,
                keys=[
                    keys.verify_lock_by_number(number_key),
                    keys.verify_failures_by_number(number_key),
                    keys.verify_failures_by_caller(caller_key),
                    keys.verify_attempt(call_sid, seq),
                    keys.redis_marker(),
                ],
                args=[
                    now_ms,
                    member,
                    policy.number_window_seconds * 1000,
                    policy.number_failures,
                    policy.number_window_seconds,
                    policy.caller_window_seconds * 1000,
                    policy.caller_failures,
                    policy.caller_window_seconds,
                    keys.VERIFY_ATTEMPT_TTL,
                ],
                decode=lambda raw: Guard(int(raw)),
            )
        )
        if allowed is Guard.GO_UNSURE:
            allowed = await self._lock_kept_in_database(number_key, now_ms)
        # Always ask the directory: a locked number must cost the same as any other try.
        directory = self._directory
        found = await self._run_sync(
            lambda: directory.check(request.application_number, request.born)
        )
        if allowed is not Guard.GO:
            outcome = CheckOutcome(CheckResult.LOCKED)
            if allowed is Guard.NUMBER_LOCKED:
                await self._lock(request, number_key, now_ms)
        elif found is not None:
            outcome = CheckOutcome(
                CheckResult.VERIFIED,
                product=found.product,
                status=str(found.status),
                status_date=found.status_date,
            )
            await self._release(number_key, caller_key, member)
        else:
            outcome = CheckOutcome(CheckResult.MISMATCH)
            await self._after_failure(request, number_key, caller_key, caller, now_ms)
        CHECKS.labels(result=outcome.result.value).inc()
        remaining = policy.min_seconds - (self._monotonic() - started)
        if remaining > 0:
            await self._sleep(remaining)
        return outcome

    async def _lock_kept_in_database(self, number_key: str, now_ms: int) -> Guard:
        """Redis lost its state and the recovery has not run: a lock the database has counts,
        and goes back into Redis for the time it has left (the next try needs no read)."""
        if self._find_lock is None:
            return Guard.GO
        until = await self._find_lock(number_key, now_ms)
        if until is None or until <= now_ms:
            return Guard.GO
        await self._redis.set(
            keys.verify_lock_by_number(number_key), "1", px=until - now_ms, nx=True
        )
        return Guard.NUMBER_LOCKED

    async def _release(self, number_key: str, caller_key: str, member: str) -> None:
        """A try that verified is not a failure."""
        failures = [
            keys.verify_failures_by_number(number_key),
            keys.verify_failures_by_caller(caller_key),
        ]
        await self._scripts.run_one(sorted_sets_remove(failures, member))

    async def _after_failure(
        self, request: IdentityCheck, number_key: str, caller_key: str, caller: str, now_ms: int
    ) -> None:
        policy = self.policy
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.verify_failures_by_number(number_key))
            pipe.zcard(keys.verify_failures_by_caller(caller_key))
            by_number, by_caller = await pipe.execute()
        if int(by_number) >= policy.number_failures:
            await self._lock(request, number_key, now_ms)
        if int(by_caller) == policy.caller_failures + 1:
            LOCKOUTS.labels(kind="caller").inc()
            log.warning(
                "caller limited after repeated failed identity checks",
                extra={"caller": mask_number(caller), "failures": int(by_caller)},
            )

    async def _lock(self, request: IdentityCheck, number_key: str, now_ms: int) -> None:
        policy = self.policy
        locked_now = await self._redis.set(
            keys.verify_lock_by_number(number_key), "1", nx=True, ex=policy.number_lock_seconds
        )
        if locked_now:
            if self._keep_lock is not None:  # rare: a lock-out may cost a round trip more
                until_ms = now_ms + policy.number_lock_seconds * 1000
                await self._keep_lock(number_key, until_ms)
            LOCKOUTS.labels(kind="application_number").inc()
            log.warning(
                "application number locked after repeated failed identity checks",
                extra={
                    "application_number": mask_number(request.application_number),
                    "lock_seconds": policy.number_lock_seconds,
                },
            )
