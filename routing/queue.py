"""Waiting calls per product, in Redis so that every app instance sees the same line.

A queue is a sorted set of CallSids; the score orders by priority first (higher first), then by
arrival. Arrival is a Redis counter, not a clock reading: two calls in the same millisecond (or
under a pinned demo clock) still keep the order in which they came. The entry itself (the
context for the adviser) is a JSON string beside it. Enqueueing is one Lua script, so a retried
webhook or two instances racing can never queue a call twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from routing import keys
from routing.callbacks import CallbackBook, Pending
from routing.clock import centre_day
from routing.entry import QueueEntry
from routing.scripts import (
    Arg,
    LuaScript,
    Refused,
    ScriptRunner,
    ScriptStep,
    as_bool,
    list_keep_latest,
)
from routing.sealing import SealBroken, Sealer

log = logging.getLogger(__name__)

_SEALED = "2."  # the marker of a sealed value (routing/sealing.py)
HANDLE_TIMES_KEPT = 50  # the latest handling times per product, for wait estimates
PRIORITY_STEP = 10**13  # room for 10^13 arrivals per priority; scores stay exact in a double

_ENQUEUE = LuaScript.named("queue_enqueue")
_REMOVE = LuaScript.named("queue_remove")
_LEAVE = LuaScript.named("queue_leave")
_ASK_CALLBACK = LuaScript.named("queue_ask_callback")
_RESTORE = LuaScript.named("queue_restore")
_CALLBACK_RESTORE = LuaScript.named("queue_callback_restore")


@dataclass(frozen=True)
class Restored:
    """What putting Twilio's callers back in order did (routing/recovery.py)."""

    moved: int  # callers already back in a line, moved to their place
    reserved: int  # places waiting for the callers' next waitUrl fetch
    behind: int  # calls that joined a line since the loss, now behind them


@dataclass(frozen=True)
class LeftQueue:
    """What the status callback's leave step found."""

    # None also when the call left its line: the entry is gone then, and was no callback (a
    # callback keeps its place), so nothing reads it and it is not opened (an unseal saved).
    entry: QueueEntry | None
    left_line: bool  # the call was taken out of its line and its entry deleted


def priority_base(priority: int) -> int:
    return (9 - priority) * PRIORITY_STEP


class CallQueue:
    def __init__(self, redis: Redis, sealer: Sealer, callbacks: CallbackBook | None = None) -> None:
        self._redis = redis
        self._sealer = sealer
        self._scripts = ScriptRunner(redis)
        self._callbacks = callbacks  # None: callbacks live in Redis only

    async def enqueue(self, entry: QueueEntry, *, placed: bool = False) -> bool:
        """Add a waiting call; False when it was already queued (a retried webhook).

        `placed`: a caller found again after Redis was lost takes the place kept for them
        (`restore`), if there is one."""
        return await self._scripts.run_one(self.enqueue_step(entry, placed=placed))

    def enqueue_step(
        self, entry: QueueEntry, *, sealed: str | None = None, placed: bool = False
    ) -> ScriptStep[bool]:
        """`enqueue` as a step of a longer script (routing/scripts.py): True if added.
        `sealed`: the entry as `seal` made it already (the waitUrl carries the same value)."""
        place = [keys.queue_place(entry.call_sid)] if placed else []
        return ScriptStep(
            _ENQUEUE,
            keys=[
                keys.queue_entry(entry.call_sid),
                keys.queue(entry.product),
                keys.queue_index(),
                keys.queue_arrivals(),
                keys.ended(entry.call_sid),  # a status callback that came first: never queue
                keys.queue_line(entry.call_sid),
                keys.calls_in_menu(),
                keys.calls_offered(),
                keys.calls_today(centre_day(entry.queued_at)),  # queued_at is the app's clock
                *place,
            ],
            args=[
                sealed or self._sealer.seal(entry.model_dump_json()),
                priority_base(entry.priority),
                entry.call_sid,
                entry.product,
                keys.QUEUE_TTL,
                keys.CALLBACK_TTL,  # the line itself outlives any callback waiting in it
                keys.CALL_COUNTER_TTL,
                keys.CALLS_TODAY_TTL,
            ],
            decode=as_bool,
        )

    def seal(self, entry: QueueEntry) -> str:
        """The entry as Redis keeps it (sealed: the context is personal). The waitUrl carries
        the same value, so a call Redis forgot comes back with its context."""
        return self._sealer.seal(entry.model_dump_json())

    def carried(self, entry: QueueEntry, sealed: str | None = None) -> str:
        """The entry as a waitUrl carries it: sealed (the same value Redis keeps, when given),
        in the URL-safe alphabet without padding, so that the query string holds no escape
        and the wait webhook has nothing to unquote."""
        if entry.transfer_note or entry.transferred_by:
            # Not the adviser's note (up to 2,000 characters): it would make the URL long and
            # is the desk's, not the caller's; a caller found again comes back without it.
            sealed = self.seal(
                entry.model_copy(update={"transfer_note": None, "transferred_by": None})
            )
        sealed = sealed or self.seal(entry)
        return sealed.replace("+", "-").replace("/", "_").rstrip("=")

    def open_carried(self, carried: str, call_sid: str) -> QueueEntry | None:
        """The entry a waitUrl carried, if it opens and is this call's (else None: the caller
        is taken in as the fallback's)."""
        body = carried.removeprefix(_SEALED)
        try:
            entry = self._open(carried + "=" * (-len(body) % 4))
        except (SealBroken, ValueError):
            return None
        return entry if entry.call_sid == call_sid else None

    async def restore(self, call_sids: Sequence[str]) -> Restored:
        """After Redis was lost: places for the callers Twilio holds, in Twilio's order (oldest
        first), in front of the calls that joined a line since; see queue_restore.lua."""
        step = ScriptStep(
            _RESTORE,
            keys=[keys.queue_index(), keys.queue_arrivals()],
            args=[
                keys.template(keys.queue),
                keys.template(keys.queue_place),
                PRIORITY_STEP,
                keys.QUEUE_PLACE_TTL,
                keys.QUEUE_TTL,
                *call_sids,
            ],
            decode=lambda raw: Restored(*(int(n) for n in raw)),
        )
        return await self._scripts.run_one(step)

    async def remove(self, call_sid: str, entry: QueueEntry | None = None) -> bool:
        """Take a call out of its queue (hung up, answered); False when it was not waiting.
        A callback taken out (made, not reached) is settled in the database as well.

        Pass the entry when it was read already: one round trip less.
        """
        entry = entry or await self.get(call_sid)
        if entry is None:
            return False
        step = ScriptStep(
            _REMOVE,
            keys=[keys.queue(entry.product), keys.queue_entry(call_sid), keys.queue_line(call_sid)],
            args=[call_sid],
            decode=as_bool,
        )
        if not entry.callback or self._callbacks is None:
            return await self._scripts.run_one(step)
        done = await self._scripts.run(step, self._callbacks.settled_step(call_sid))
        self._callbacks.wake()
        return done.of(step)

    async def callback_made(self, call_sid: str) -> None:
        """The caller picked up the callback: the database forgets it now (the entry stays in
        Redis for the adviser's card until the conversation ends)."""
        if self._callbacks is not None:
            await self._scripts.run_one(self._callbacks.settled_step(call_sid))
            self._callbacks.wake()

    def leave_step(self, call_sid: str, unless: Sequence[str] = ()) -> ScriptStep[LeftQueue]:
        """A step of a longer script (the status callback's): the call's entry, and the call
        taken out of its line, entry deleted, unless one of the keys `unless` exists (routing
        still has the call), or it asked to be called back."""
        return ScriptStep(
            _LEAVE,
            keys=[keys.queue_entry(call_sid), keys.queue_line(call_sid), *unless],
            args=[call_sid, keys.template(keys.queue), keys.QUEUE_TTL],
            decode=self._left,
        )

    def _left(self, found: Any) -> LeftQueue:
        raw, left = found
        if left:
            return LeftQueue(None, True)
        return LeftQueue(self.entry_from(raw), False)

    async def ask_callback(self, call_sid: str) -> QueueEntry | None:
        """The caller will hang up and be called back: the entry keeps its place and lives on,
        and (in the same script) its copy for the database goes to the state outbox."""
        entry = await self.get(call_sid)
        if entry is None:
            return None
        entry = entry.model_copy(update={"callback": True})
        sealed = self._sealer.seal(entry.model_dump_json())
        # One script: the entry lives on and leaves no line marker, so a hang-up keeps its place.
        steps: list[ScriptStep[Any]] = [
            ScriptStep(
                _ASK_CALLBACK,
                keys=[
                    keys.queue_entry(call_sid),
                    keys.queue(entry.product),
                    keys.queue_line(call_sid),
                ],
                args=[sealed, keys.CALLBACK_TTL],
                decode=as_bool,
            )
        ]
        if self._callbacks is not None:
            steps.append(self._callbacks.asked_step(entry, sealed))
        try:
            await self._scripts.run(*steps)
        except Refused:
            return None  # gone meanwhile (the call ended): nothing to keep
        if self._callbacks is not None:
            self._callbacks.wake()
        return entry

    async def restore_callbacks(self, pending: Sequence[Pending], now_ms: int) -> int:
        """After Redis was lost: the callbacks the database kept go back in line, each at the
        place `restore` reserved for it, with its entry and the time it has left. Answers how
        many were put back (one Redis already knew again is left as it is)."""
        restored = 0
        for callback in pending:
            try:
                entry = self._open(callback.sealed)
            except (SealBroken, ValueError):  # sealed with another secret key: cannot be made
                sid = callback.call_sid
                log.warning("a kept callback could not be opened", extra={"call_sid": sid})
                continue
            left = int(callback.expires_at.timestamp()) - now_ms // 1000
            if left <= 0:
                continue
            args: list[Arg] = [
                callback.sealed,
                priority_base(entry.priority),
                callback.call_sid,
                entry.product,
                left,
                keys.CALLBACK_TTL,
            ]
            step = ScriptStep(
                _CALLBACK_RESTORE,
                keys=[
                    keys.queue_entry(callback.call_sid),
                    keys.queue(entry.product),
                    keys.queue_index(),
                    keys.queue_arrivals(),
                    keys.queue_place(callback.call_sid),
                ],
                args=args,
                decode=as_bool,
            )
            restored += await self._scripts.run_one(step)
        return restored

    async def get(self, call_sid: str) -> QueueEntry | None:
        return self.entry_from(await self._redis.get(keys.queue_entry(call_sid)))

    def entry_from(self, raw: Any) -> QueueEntry | None:
        return self._open(str(raw)) if raw else None

    def _open(self, raw: str) -> QueueEntry:
        return QueueEntry.model_validate_json(self._sealer.open(raw))

    async def position(self, call_sid: str, product: str) -> int | None:
        """1 for the next call to be answered in that product's line; None if not waiting."""
        rank: int | None = await self._redis.zrank(keys.queue(product), call_sid)  # type: ignore[assignment]
        return None if rank is None else rank + 1

    async def waiting(self) -> list[QueueEntry]:
        """Every waiting call, oldest (and most urgent) first across all products."""
        products = sorted(cast(set[str], await self._redis.smembers(keys.queue_index())))
        scored: list[tuple[float, str]] = []
        for product in products:
            queue_key = keys.queue(product)
            members = cast(
                list[tuple[str, float]], await self._redis.zrange(queue_key, 0, -1, withscores=True)
            )
            scored.extend((float(s), str(m)) for m, s in members)
        scored.sort()
        if not scored:
            return []
        raws: list[Any] = await self._redis.mget([keys.queue_entry(sid) for _, sid in scored])
        return [self._open(raw) for raw in raws if raw]

    async def record_handle_time(self, product: str, seconds: float) -> None:
        """Keep the latest handling times per product, for wait estimates."""
        value = f"{seconds:.1f}"
        step = list_keep_latest(
            keys.handle_times(product), keys.HANDLE_TIMES_TTL, value, keep=HANDLE_TIMES_KEPT
        )
        await self._scripts.run_one(step)

    async def handle_times(self, product: str) -> list[float]:
        values = await self._redis.lrange(keys.handle_times(product), 0, -1)
        return [float(v) for v in values]
