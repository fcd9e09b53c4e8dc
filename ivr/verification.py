"""The identity check with its guessing guard: try limits and lock-outs shared by all instances.

- 5 failures for one application number within 24 hours (across calls and caller numbers) lock
  that number for 24 hours; a locked number fails even with the right date of birth.
- A caller number with more than 10 failures in an hour is limited the same way.
- Unknown number, wrong date and a lock give the same result to the engine (it says the same
  words) and take the same time: the directory is always asked, and every check is padded to
  `min_seconds`.
Key names use keyed hashes of the numbers; the date of birth never leaves this request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter
from redis.asyncio import Redis

from ivr.applications import ApplicationDirectory, ApplicationInfo
from ivr.identity import CheckOutcome, CheckResult, IdentityCheck
from ivr.privacy import mask_number
from ivr.sealing import Pseudonymizer
from routing import keys

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

# Adds a failure to a sliding window; returns the number of failures in it.
_RECORD = """
-- KEYS: failures   ARGV: now (ms), window (ms), member, ttl (s)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCARD', KEYS[1])
"""


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
    ) -> None:
        self._redis = redis
        self._directory = directory
        self._pseudonymize = pseudonymize
        self._run_sync = run_sync
        self.policy = policy or GuardPolicy()
        self._sleep = sleep
        self._monotonic = monotonic
        self._record = redis.register_script(_RECORD)

    async def check(
        self, request: IdentityCheck, *, caller: str, call_sid: str, seq: int, now_ms: int
    ) -> CheckOutcome:
        started = self._monotonic()
        number_key = self._pseudonymize(request.application_number)
        caller_key = self._pseudonymize(caller or "anonymous")
        blocked = await self._blocked(number_key, caller_key, now_ms)
        directory = self._directory
        found = await self._run_sync(
            lambda: directory.check(request.application_number, request.born)
        )
        if blocked:
            outcome = CheckOutcome(CheckResult.LOCKED)
        elif found is not None:
            outcome = CheckOutcome(
                CheckResult.VERIFIED,
                product=found.product,
                status=str(found.status),
                status_date=found.status_date,
            )
        else:
            outcome = CheckOutcome(CheckResult.MISMATCH)
        if outcome.result is not CheckResult.VERIFIED:
            await self._count_failure(
                request, number_key, caller_key, caller, call_sid, seq, now_ms
            )
        CHECKS.labels(result=outcome.result.value).inc()
        remaining = self.policy.min_seconds - (self._monotonic() - started)
        if remaining > 0:
            await self._sleep(remaining)
        return outcome

    async def _blocked(self, number_key: str, caller_key: str, now_ms: int) -> bool:
        policy = self.policy
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.verify_lock_by_number(number_key))
            pipe.zcount(
                keys.verify_failures_by_caller(caller_key),
                now_ms - policy.caller_window_seconds * 1000,
                "+inf",
            )
            locked, caller_failures = await pipe.execute()
        return bool(locked) or int(caller_failures) > policy.caller_failures

    async def _count_failure(
        self,
        request: IdentityCheck,
        number_key: str,
        caller_key: str,
        caller: str,
        call_sid: str,
        seq: int,
        now_ms: int,
    ) -> None:
        # Twilio may deliver the same step twice: count its failure once.
        first = await self._redis.set(
            keys.verify_attempt(call_sid, seq), "1", nx=True, ex=keys.VERIFY_ATTEMPT_TTL
        )
        if not first:
            return
        policy = self.policy
        member = f"{call_sid}:{seq}"
        by_number = int(
            await self._record(
                keys=[keys.verify_failures_by_number(number_key)],
                args=[
                    now_ms,
                    policy.number_window_seconds * 1000,
                    member,
                    policy.number_window_seconds,
                ],
            )
        )
        by_caller = int(
            await self._record(
                keys=[keys.verify_failures_by_caller(caller_key)],
                args=[
                    now_ms,
                    policy.caller_window_seconds * 1000,
                    member,
                    policy.caller_window_seconds,
                ],
            )
        )
        locked_now = by_number >= policy.number_failures and await self._redis.set(
            keys.verify_lock_by_number(number_key), "1", nx=True, ex=policy.number_lock_seconds
        )
        if locked_now:
            LOCKOUTS.labels(kind="application_number").inc()
            log.warning(
                "application number locked after repeated failed identity checks",
                extra={
                    "application_number": mask_number(request.application_number),
                    "failures": by_number,
                    "lock_seconds": policy.number_lock_seconds,
                },
            )
        if by_caller == policy.caller_failures + 1:
            LOCKOUTS.labels(kind="caller").inc()
            log.warning(
                "caller limited after repeated failed identity checks",
                extra={"caller": mask_number(caller), "failures": by_caller},
            )
