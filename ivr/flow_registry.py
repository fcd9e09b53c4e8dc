"""Which flow version a call runs on, for every app instance.

The database holds the versions and the live pointer (flows/versions.py). Redis holds a copy of
the live digest, which the commit of every new call checks in the same script (ivr/store.py: no
extra round trip), and carries an announcement when a version goes live, so that instances load
it before the next call needs it. A call keeps the version it started on: later webhooks ask for
it by the digest in the call's session.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis

from flows.loader import parse_flow
from flows.model import Flow
from flows.versions import FlowVersion, SqlFlowVersions
from ivr.engine import Engine
from ivr.hours import OpeningHours
from routing import keys

log = logging.getLogger(__name__)

T = TypeVar("T")
RunSync = Callable[..., Awaitable[Any]]
OnLive = Callable[["LoadedFlow"], None]

KEEP_VERSIONS = 8  # parsed versions kept per instance: calls still on older ones find theirs


@dataclass(frozen=True)
class LoadedFlow:
    version: FlowVersion
    engine: Engine

    @property
    def digest(self) -> str:
        return self.version.digest

    @property
    def number(self) -> int:
        return self.version.number


def load_version(version: FlowVersion) -> LoadedFlow:
    """Parse a stored version (it was checked when published; parsing checks it again)."""
    flow = parse_flow(version.text, f"{version.flow} version {version.number}")
    return LoadedFlow(version=version, engine=Engine(flow, OpeningHours(flow.calendar)))


class FlowRegistry:
    """The live version and recently used ones, parsed, for one flow."""

    def __init__(
        self,
        *,
        live: LoadedFlow,
        versions: SqlFlowVersions,
        redis: Redis,
        run_sync: RunSync,
    ) -> None:
        self.name = live.version.flow
        self.current = live  # the live version as this instance last saw it
        self._versions = versions
        self._redis = redis
        self._run_sync = run_sync
        self._loaded: OrderedDict[str, LoadedFlow] = OrderedDict({live.digest: live})
        self._listeners: list[OnLive] = []

    @property
    def flow(self) -> Flow:
        """The live flow as this instance last saw it (languages, products: not per call)."""
        return self.current.engine.flow

    def on_live(self, listener: OnLive) -> None:
        """Call `listener` whenever another version becomes live here."""
        self._listeners.append(listener)

    async def live(self) -> LoadedFlow:
        """The live version as Redis names it (so an instance that missed an announcement
        still serves the right one)."""
        digest = await self._redis.get(keys.live_flow(self.name))
        if digest is None:  # Redis restarted or the copy expired: the database knows
            return await self.reconcile()
        if digest != self.current.digest:
            self._set_current(await self.version(str(digest)))
        return self.current

    async def version(self, digest: str) -> LoadedFlow:
        """The version a call started on; the live one if the database no longer has it."""
        known = self._loaded.get(digest)
        if known is not None:
            self._loaded.move_to_end(digest)
            return known
        stored = await self._run_sync(self._versions.by_digest, self.name, digest)
        if stored is None:
            log.warning("a call's flow version is unknown; using the live one")
            return self.current
        loaded: LoadedFlow = await self._run_sync(load_version, stored)
        self._remember(loaded)
        return loaded

    async def reconcile(self) -> LoadedFlow:
        """Take the live version from the database and repair Redis' copy of the pointer."""
        stored = await self._run_sync(self._versions.live, self.name)
        if stored is not None and stored.digest != self.current.digest:
            self._set_current(await self.version(stored.digest))
        await self._redis.set(keys.live_flow(self.name), self.current.digest, ex=keys.LIVE_FLOW_TTL)
        return self.current

    async def announce(self, version: FlowVersion) -> None:
        """Tell every instance (this one included) that `version` is live now."""
        self._set_current(await self.version(version.digest))
        await self._redis.set(keys.live_flow(self.name), version.digest, ex=keys.LIVE_FLOW_TTL)
        message = json.dumps({"flow": self.name, "digest": version.digest})
        await self._redis.publish(keys.flow_announcements(), message)

    async def listen(self, retry_seconds: float = 1.0) -> None:
        """Follow announcements until cancelled; reconnects when Redis goes away."""
        while True:
            try:
                await self._follow_announcements()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("flow announcements interrupted; reconnecting", exc_info=True)
                await asyncio.sleep(retry_seconds)

    async def _follow_announcements(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(keys.flow_announcements())
        try:
            await self.reconcile()  # whatever went live while we were not listening
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is None:
                    continue
                payload = json.loads(message["data"])
                if payload.get("flow") == self.name and payload.get("digest"):
                    self._set_current(await self.version(str(payload["digest"])))
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _remember(self, loaded: LoadedFlow) -> None:
        self._loaded[loaded.digest] = loaded
        self._loaded.move_to_end(loaded.digest)
        while len(self._loaded) > KEEP_VERSIONS:
            oldest = next(iter(self._loaded))
            if oldest == self.current.digest:
                self._loaded.move_to_end(oldest)
                continue
            del self._loaded[oldest]

    def _set_current(self, loaded: LoadedFlow) -> None:
        if loaded.digest == self.current.digest:
            return
        self.current = loaded
        self._remember(loaded)
        log.info(
            "flow version live",
            extra={"flow": self.name, "flow_version": loaded.digest, "number": loaded.number},
        )
        for listener in self._listeners:
            listener(loaded)
