"""Desk events (offer, connected, ended, state) for one adviser, through Redis pub/sub.

Any app instance may publish; the instance holding the adviser's event stream delivers it. Only
the adviser a call is offered to is sent its context: the channel is theirs alone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from routing import keys


class EventBus:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish(self, adviser: str, event: str, data: dict[str, Any]) -> None:
        message = json.dumps({"event": event, "data": data}, default=str)
        await self._redis.publish(keys.adviser_events(adviser), message)

    async def listen(self, adviser: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Events for one adviser until the caller stops iterating. The first item, ("", {}),
        comes once the subscription is in place; ("", {}) also marks idle seconds."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(keys.adviser_events(adviser))
        try:
            yield "", {}  # subscribed: from here on nothing published is missed
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    yield "", {}  # a heartbeat tick: lets the stream notice a gone client
                    continue
                payload = json.loads(message["data"])
                yield str(payload["event"]), dict(payload["data"])
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()
