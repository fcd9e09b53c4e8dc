"""Desk events (offer, connected, ended, state) for one adviser, and call events for the caller's
side of one call, through Redis pub/sub.

Any app instance may publish; the instance holding the adviser's event stream delivers it, all
its streams listening through one Redis connection (routing/fanout.py). Only
the adviser a call is offered to is sent its context: the channel is theirs alone. A call's
channel carries only event names and reasons (no context): the demo's terminal phone follows it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from routing import keys
from routing.fanout import RESYNC, Fanout

__all__ = ["RESYNC", "CallEvent", "EndedBy", "EventBus"]


class CallEvent(StrEnum):
    """What happens to a call on the adviser's side, for the caller's side (docs/routing.md)."""

    OFFERED = "offered"  # an adviser's phone rings for it
    ANSWERED = "answered"  # the adviser answered: they talk
    RETURNED = "returned"  # not answered (or taken back): back at the head of its line
    ENDED = "ended"  # the conversation ended (data: who hung up)
    HELD = "held"  # the adviser put the caller on hold (call controls)
    UNHELD = "unheld"  # the caller is back with the adviser
    TRANSFERRED = "transferred"  # the call went to another adviser, queue or department


class EndedBy(StrEnum):
    ADVISER = "adviser"
    CALLER = "caller"


class EventBus:
    """Publishes from any instance; the streams of this instance listen through one Redis
    connection (routing/fanout.py), whatever their number."""

    def __init__(self, redis: Redis, fanout: Fanout | None = None) -> None:
        self._redis = redis
        self.fanout = fanout or Fanout(redis)

    async def publish(self, adviser: str, event: str, data: dict[str, Any]) -> None:
        message = json.dumps({"event": event, "data": data}, default=str)
        await self._redis.publish(keys.adviser_events(adviser), message)

    async def call_event(self, call_sid: str, event: CallEvent, **data: str) -> None:
        """The one way a call's events are published (routing and the call controls)."""
        message = json.dumps({"event": event.value, "data": data})
        await self._redis.publish(keys.call_events(call_sid), message)

    def listen_call(self, call_sid: str) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """One call's events, as `listen` gives an adviser's."""
        return self.fanout.listen(keys.call_events(call_sid))

    def listen(self, adviser: str) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """Events for one adviser until the caller stops iterating. The first item, ("", {}),
        comes once the subscription is in place; ("", {}) also marks idle seconds, and
        (RESYNC, {}) a subscription made again after a lost connection (what was published
        meanwhile is lost: read the state again). The events end when the listener falls
        behind (fanout.QUEUE_SIZE unread)."""
        return self.fanout.listen(keys.adviser_events(adviser))

    async def aclose(self) -> None:
        await self.fanout.aclose()
