"""Waiting calls per product, in Redis so that every app instance sees the same line.

A queue is a sorted set of CallSids; the score orders by priority first (higher first), then by
arrival. Arrival is a Redis counter, not a clock reading: two calls in the same millisecond (or
under a pinned demo clock) still keep the order in which they came. The entry itself (the
context for the adviser) is a JSON string beside it. Enqueueing is one Lua script, so a retried
webhook or two instances racing can never queue a call twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

from redis.asyncio import Redis

from routing import keys
from routing.entry import QueueEntry
from routing.scripts import ScriptStep


class Sealing(Protocol):
    """Encrypts entries at rest (they hold caller and application numbers)."""

    def seal(self, text: str) -> str: ...

    def open(self, sealed: str) -> str: ...


PRIORITY_STEP = 10**13  # room for 10^13 arrivals per priority; scores stay exact in a double

_ENQUEUE = """
-- KEYS: entry, queue, index, arrivals, ended marker, line
-- ARGV: entry json, priority base, call sid, product, entry ttl, queue ttl
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[5]) == 1 then
  return 0
end
local arrival = redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], ARGV[5])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
redis.call('SET', KEYS[6], ARGV[4], 'EX', ARGV[5])
redis.call('ZADD', KEYS[2], 'NX', tonumber(ARGV[2]) + arrival, ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return 1
"""

_REMOVE = """
-- KEYS: queue, entry, line
-- ARGV: call sid
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
return redis.call('DEL', KEYS[2])
"""

_LEAVE = """
-- KEYS: entry, line, then keys any of which, if it exists, means: not now (routing has the call)
-- ARGV: call sid, queue key prefix, the entry ttl of a call that did not ask for a callback
-- Returns {entry or '', 1 if the call was taken out of its line and the entry deleted}.
local raw = redis.call('GET', KEYS[1])
if not raw then return {'', 0} end
local product = redis.call('GET', KEYS[2])
if not product then return {raw, 0} end
-- A callback keeps its place. Asking for one drops the line marker, but an instance of the
-- version before the marker (a rolling upgrade) does not: every version gives the entry the
-- longer callback ttl, though.
if redis.call('TTL', KEYS[1]) > tonumber(ARGV[3]) then return {raw, 0} end
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {raw, 0} end
end
redis.call('ZREM', ARGV[2] .. product, ARGV[1])
redis.call('DEL', KEYS[1], KEYS[2])
return {raw, 1}
"""

_ASK_CALLBACK = """
-- KEYS: entry, queue, line
-- ARGV: entry json, ttl
if not redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'XX') then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
return 1
"""


def priority_base(priority: int) -> int:
    return (9 - priority) * PRIORITY_STEP


class CallQueue:
    def __init__(self, redis: Redis, sealer: Sealing) -> None:
        self._redis = redis
        self._sealer = sealer
        self._enqueue = redis.register_script(_ENQUEUE)
        self._remove = redis.register_script(_REMOVE)
        self._ask_callback = redis.register_script(_ASK_CALLBACK)

    async def enqueue(self, entry: QueueEntry) -> bool:
        """Add a waiting call; False when it was already queued (a retried webhook)."""
        step = self.enqueue_step(entry)
        return bool(await self._enqueue(keys=step.keys, args=step.args))

    def enqueue_step(self, entry: QueueEntry) -> ScriptStep:
        """`enqueue` as a step of a longer script (routing/scripts.py); returns 1 if added."""
        return ScriptStep(
            _ENQUEUE,
            keys=[
                keys.queue_entry(entry.call_sid),
                keys.queue(entry.product),
                keys.queue_index(),
                keys.queue_arrivals(),
                keys.ended(entry.call_sid),  # a status callback that came first: never queue
                keys.queue_line(entry.call_sid),
            ],
            args=[
                self._sealer.seal(entry.model_dump_json()),
                priority_base(entry.priority),
                entry.call_sid,
                entry.product,
                keys.QUEUE_TTL,
                keys.CALLBACK_TTL,  # the line itself outlives any callback waiting in it
            ],
        )

    async def remove(self, call_sid: str, entry: QueueEntry | None = None) -> bool:
        """Take a call out of its queue (hung up, answered); False when it was not waiting.

        Pass the entry when it was read already: one round trip less.
        """
        entry = entry or await self.get(call_sid)
        if entry is None:
            return False
        deleted = await self._remove(
            keys=[keys.queue(entry.product), keys.queue_entry(call_sid), keys.queue_line(call_sid)],
            args=[call_sid],
        )
        return bool(deleted)

    def leave_step(self, call_sid: str, unless: Sequence[str] = ()) -> ScriptStep:
        """A step of a longer script (the status callback's): the call's entry, and the call
        taken out of its line, entry deleted, unless one of the keys `unless` exists (routing
        still has the call), or it asked to be called back. Its result goes to `left_from`."""
        return ScriptStep(
            _LEAVE,
            keys=[keys.queue_entry(call_sid), keys.queue_line(call_sid), *unless],
            args=[call_sid, keys.queue_key_prefix(), keys.QUEUE_TTL],
        )

    def left_from(self, found: Any) -> tuple[QueueEntry | None, bool]:
        """The entry the leave step found, and whether it took the call out of its line."""
        raw, left = found
        return self.entry_from(raw), bool(left)

    async def ask_callback(self, call_sid: str) -> QueueEntry | None:
        """The caller will hang up and be called back: the entry keeps its place and lives on."""
        entry = await self.get(call_sid)
        if entry is None:
            return None
        entry = entry.model_copy(update={"callback": True})
        # One script: the entry lives on and leaves no line marker, so a hang-up keeps its place.
        kept = await self._ask_callback(
            keys=[keys.queue_entry(call_sid), keys.queue(entry.product), keys.queue_line(call_sid)],
            args=[self._sealer.seal(entry.model_dump_json()), keys.CALLBACK_TTL],
        )
        return entry if kept else None  # gone meanwhile (the call ended): nothing to keep

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
        """Keep the last 50 handling times per product, for wait estimates."""
        key = keys.handle_times(product)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, f"{seconds:.1f}")
            pipe.ltrim(key, 0, 49)
            pipe.expire(key, keys.HANDLE_TIMES_TTL)
            await pipe.execute()

    async def handle_times(self, product: str) -> list[float]:
        values = await self._redis.lrange(keys.handle_times(product), 0, -1)
        return [float(v) for v in values]
