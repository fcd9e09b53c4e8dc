"""Redis restarted empty mid-day: find the waiting callers and the advisers' states again.

Redis holds the lines, the offers and the advisers' states; it may lose them all (a restart
without persistence, a failover to an empty replica, a flush). What is still known elsewhere:

- Twilio holds every waiting caller in its queues (`<Enqueue>`), in order: Queue Members over
  REST give each caller's CallSid, date_enqueued and position.
- Each caller's context (product, theme, priority, language, flow version, the verified
  application) travels sealed in their waitUrl (ivr/calls.py): their next waitUrl fetch brings
  it back, and the caller takes the place kept for them here.
- The database has every adviser state change (adviser_state_changes) and the advisers' skills
  and devices (the roster, given by the app).
- The database keeps the callbacks asked and not yet made (routing/callbacks.py: the callers
  hung up, so Twilio has them no more) and the identity lock-outs (ivr/identity/lockouts.py):
  the callbacks go back in line at their place among Twilio's callers (by the time each joined
  the line), the locks back into Redis with the time they have left.

A marker key says that this Redis holds the state. Every instance's tick refreshes it (one
EXPIRE, which answers 0 when the key is gone); when it is missing, one instance (under a lock)
rebuilds what it can and writes the marker again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from routing import keys
from routing.board import AdviserState
from routing.callbacks import Pending
from routing.events import EventBus
from routing.queue import CallQueue, Restored
from routing.scripts import LuaScript, ScriptRunner, ScriptStep, as_bool
from routing.telephony import QueueMember, Telephony

log = logging.getLogger(__name__)

_RESTORE_ADVISER = LuaScript.named("adviser_restore")
QUEUE_PREFIX = "kcc-"  # the friendly names of our queues in Twilio (ivr/twiml.py queue_name)
_NEVER = datetime.max.replace(tzinfo=UTC)

# The state an adviser gets back, from the last one the database has. One who had a call at the
# loss (ringing, talking, on hold, consulting, wrapping up) gets a break: Redis forgot the call
# but Twilio may still be running it, so no call may ring for them until they say they are
# free (available on the desk). The others get their state back as it was.
SAFE_STATES: dict[str, AdviserState] = {
    AdviserState.AVAILABLE.value: AdviserState.AVAILABLE,
    AdviserState.BREAK.value: AdviserState.BREAK,
    AdviserState.OFFLINE.value: AdviserState.OFFLINE,
    AdviserState.AWAY.value: AdviserState.AWAY,
    AdviserState.MISSED.value: AdviserState.MISSED,
    AdviserState.OFFERED.value: AdviserState.BREAK,
    AdviserState.ON_CALL.value: AdviserState.BREAK,
    AdviserState.WRAP_UP.value: AdviserState.BREAK,
    "on_hold": AdviserState.BREAK,  # the history's marks within a call (adviser_history.py)
    "consulting": AdviserState.BREAK,
}


def safe_state(last: str | None) -> AdviserState:
    """The state to restore after a loss; offline when the database knows nothing."""
    return SAFE_STATES.get(last or "", AdviserState.OFFLINE)


@dataclass(frozen=True)
class AdviserSeed:
    """An adviser as the database knows them: skills, device, last state change."""

    name: str
    skills: list[str]
    device: str
    last_state: str | None  # None: never changed state
    last_at_ms: int | None


Roster = Callable[[], Awaitable[list[AdviserSeed]]]
PendingCallbacks = Callable[[], Awaitable[list[Pending]]]  # oldest first
Lockouts = Callable[[], Awaitable[list[tuple[str, int]]]]  # (keyed hash of the number, end ms)
StateChange = Callable[[str, AdviserState, int, str | None], Awaitable[None]]


@dataclass(frozen=True)
class Recovered:
    callers: int  # found in Twilio's queues
    lines: Restored
    advisers: int  # restored from the database
    made_safe: list[str]  # had a call at the loss: on a break now
    callbacks: int = 0  # callbacks put back in line from the database
    locks: int = 0  # identity lock-outs put back into Redis from the database


def twilio_order(members: list[QueueMember]) -> list[str]:
    """The callers oldest first (date_enqueued, then position within a second), once each."""
    ordered = sorted(members, key=lambda m: (m.date_enqueued or _NEVER, m.position))
    return list(dict.fromkeys(m.call_sid for m in ordered))


def line_order(members: list[QueueMember], callbacks: list[Pending]) -> list[str]:
    """Twilio's callers and the kept callbacks together, by the time each joined the line (a
    caller before a callback of the same second: Twilio's times have no fraction)."""
    timed = [(m.date_enqueued or _NEVER, 0, m.position, m.call_sid) for m in members]
    timed += [
        (c.queued_at.replace(microsecond=0), 1, n, c.call_sid) for n, c in enumerate(callbacks)
    ]
    return list(dict.fromkeys(sid for *_, sid in sorted(timed)))


class RedisRecovery:
    def __init__(
        self,
        redis: Redis,
        *,
        queue: CallQueue,
        telephony: Telephony,
        roster: Roster,
        now_ms: Callable[[], int],
        events: EventBus | None = None,
        on_state_change: StateChange | None = None,
        callbacks: PendingCallbacks | None = None,
        lockouts: Lockouts | None = None,
    ) -> None:
        self._redis = redis
        self._scripts = ScriptRunner(redis)
        self._queue = queue
        self._telephony = telephony
        self._roster = roster
        self._now_ms = now_ms
        self._events = events
        self._on_state_change = on_state_change
        self._callbacks = callbacks
        self._lockouts = lockouts

    async def check(self) -> Recovered | None:
        """On every tick: one EXISTS; recovers when the marker is gone (None otherwise)."""
        if await self._redis.exists(keys.redis_marker()):
            return None
        return await self.recover()

    async def adopt(self) -> bool:
        """At start-up: a Redis that holds routing state but no marker (written by no release
        before this one) is taken as it is, not recovered: a recovery would put its waiting
        callbacks behind Twilio's callers. True when the marker was set here."""
        if await self._redis.exists(keys.redis_marker()):
            return False
        if not await self._redis.exists(keys.queue_arrivals(), keys.offer_sequence()):
            return False  # nothing routed here yet, or lost: the ticks' check recovers
        return bool(await self._redis.set(keys.redis_marker(), str(self._now_ms()), nx=True))

    async def recover(self) -> Recovered | None:
        """Rebuild the lines' order and the advisers' states; None when another instance is
        doing it. A failure (Twilio or the database away) leaves the marker unset: the lock
        expires and the next tick of some instance tries again."""
        token = secrets.token_hex(8)
        lock = keys.recovery_lock()
        if not await self._redis.set(lock, token, nx=True, px=keys.RECOVERY_LOCK_MS):
            return None
        # A first start finds Redis empty too: only what was found below is worth a warning.
        log.info("Redis holds no routing state: finding the callers and advisers again")
        members = await self._telephony.queue_members(QUEUE_PREFIX)
        callers = twilio_order(members)
        kept = await self._callbacks() if self._callbacks is not None else []
        lines = await self._queue.restore(line_order(members, kept))
        callbacks = await self._queue.restore_callbacks(kept, self._now_ms())
        locks = await self._restore_locks()
        advisers, made_safe = await self._restore_advisers()
        # A count of working advisers made while they were unknown (0) is not kept until it
        # expires: the next expected wait counts the restored states.
        await self._redis.delete(keys.advisers_working())
        # No time to live: a maxmemory policy of volatile-* must never evict it (its absence
        # would set off a recovery on a Redis that lost nothing).
        await self._redis.set(keys.redis_marker(), str(self._now_ms()))
        # The lock is left to expire: the marker now stops every other instance.
        lost = bool(callers or callbacks or locks or made_safe)  # calls or locks Redis had lost
        log.log(
            logging.WARNING if lost else logging.INFO,
            "routing state recovered" if lost else "routing state set up (nothing was lost)",
            extra={
                "callers": len(callers),
                "moved": lines.moved,
                "reserved": lines.reserved,
                "behind": lines.behind,
                "advisers": advisers,
                "made_safe": len(made_safe),
                "callbacks": callbacks,
                "locks": locks,
            },
        )
        return Recovered(len(callers), lines, advisers, made_safe, callbacks, locks)

    async def _restore_locks(self) -> int:
        """Each lock-out the database has, for the time it has left (one Redis knows is kept)."""
        if self._lockouts is None:
            return 0
        now = self._now_ms()
        locks = [(key, until - now) for key, until in await self._lockouts() if until > now]
        if not locks:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, left_ms in locks:
                pipe.set(keys.verify_lock_by_number(key), "1", px=left_ms, nx=True)
            done = await pipe.execute()
        return sum(1 for set_now in done if set_now)

    async def _restore_advisers(self) -> tuple[int, list[str]]:
        now = self._now_ms()
        restored, made_safe = 0, []
        for seed in await self._roster():
            state = safe_state(seed.last_state)
            kept = state.value == seed.last_state and seed.last_at_ms is not None
            since = seed.last_at_ms if kept and seed.last_at_ms is not None else now
            step = ScriptStep(
                _RESTORE_ADVISER,
                keys=[keys.adviser(seed.name), keys.advisers()],
                args=[
                    keys.template(keys.available),
                    seed.name,
                    state.value,
                    since,
                    ",".join(seed.skills),
                    seed.device,
                    keys.ADVISER_TTL,
                ],
                decode=as_bool,
            )
            if not await self._scripts.run_one(step):
                continue  # Redis knows them again already (they acted since the loss)
            restored += 1
            if self._events is not None:
                await self._events.publish(seed.name, "state", {"status": state.value})
            if seed.last_state is not None and not kept:
                made_safe.append(seed.name)
                if self._on_state_change is not None:  # the history says why they stopped
                    await self._on_state_change(seed.name, state, now, None)
        return restored, made_safe
