"""Which flow version a call runs on, for every app instance.

The database holds the versions and the live pointer (flows/versions.py). Redis holds a copy of
the pointer ("generation:number:digest"), which the commit of every new call checks in the same
script (ivr/store.py: no extra round trip), and carries an announcement when a version goes
live, so that instances load it before the next call needs it. The generation grows with every
publish and rollback: a late announcement or a slow re-sync never puts an older pointer back,
in Redis or in an instance. A call keeps the version it started on: later webhooks ask for it
by the digest in the call's session.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from flows.loader import parse_flow
from flows.model import Flow
from flows.versions import FlowVersion, LivePointer, SqlFlowVersions
from ivr.departments import Departments
from ivr.engine import Engine
from ivr.hours import OpeningHours
from routing import keys
from routing.scripts import LuaScript, ScriptRunner, ScriptStep, as_bool

log = logging.getLogger(__name__)

RunSync = Callable[..., Awaitable[Any]]
OnLive = Callable[["LoadedFlow"], None]

KEEP_VERSIONS = 8  # parsed versions kept per instance: calls still on older ones find theirs

_SET_POINTER = LuaScript.named("flow_pointer")


@dataclass(frozen=True)
class LoadedFlow:
    version: FlowVersion
    engine: Engine

    @property
    def digest(self) -> str:
        return self.version.digest

    @functools.cached_property
    def departments(self) -> Departments:
        """The version's departments, their hours read once (a version never changes)."""
        return Departments(self.engine)


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
        pointer: LivePointer,
        versions: SqlFlowVersions,
        redis: Redis,
        run_sync: RunSync,
    ) -> None:
        self.name = live.version.flow
        self.current = live  # the live version as this instance last saw it
        self.pointer = pointer  # ... and which publish or rollback made it live
        self._versions = versions
        self._redis = redis
        self._run_sync = run_sync
        self._loaded: OrderedDict[str, LoadedFlow] = OrderedDict({live.digest: live})
        self._loading = asyncio.Lock()  # a burst of calls parses a missed version once
        self._scripts = ScriptRunner(redis)
        self._listeners: list[OnLive] = []

    @property
    def flow(self) -> Flow:
        """The live flow as this instance last saw it (languages, products: not per call)."""
        return self.current.engine.flow

    @property
    def number(self) -> int:
        """The live version's number (the same text may have been published under several)."""
        return self.pointer.number

    def on_live(self, listener: OnLive) -> None:
        """Call `listener` whenever another version becomes live here."""
        self._listeners.append(listener)

    async def live(self) -> LoadedFlow:
        """The live version as Redis names it (so an instance that missed an announcement
        still serves the right one); the database's when Redis' copy is missing or odd."""
        value = await self._redis.get(keys.live_flow(self.name))
        pointer = LivePointer.parse(str(value)) if value is not None else None
        if pointer is None:  # Redis restarted empty, the copy expired, or an old format
            return await self.reconcile(force=value is not None)
        if pointer.value == self.pointer.value:
            return self.current
        if pointer.generation > self.pointer.generation and await self._adopt(pointer):
            return self.current
        # Older than what we know, or a version our database does not have (a restored
        # database, or another environment on this Redis): the database decides.
        return await self.reconcile(force=True)

    async def version(self, digest: str) -> LoadedFlow:
        """The version a call started on; the live one if the database no longer has it."""
        return await self._load(digest) or self.current

    async def reconcile(self, *, force: bool = False) -> LoadedFlow:
        """Take the live pointer from the database and repair Redis' copy with it."""
        pointer = await self._run_sync(self._versions.live_pointer, self.name)
        if pointer is not None:
            await self._adopt(pointer, force=force)
        await self._write_pointer(force=force)
        return self.current

    async def announce(self, pointer: LivePointer) -> None:
        """Tell every instance (this one included) that `pointer` is live now."""
        await self._adopt(pointer)
        if await self._write_pointer(force=False):
            await self._redis.publish(keys.flow_announcements(), pointer.value)

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
                pointer = LivePointer.parse(str(message["data"]))
                if pointer is not None and pointer.generation > self.pointer.generation:
                    await self._adopt(pointer)
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()

    async def _write_pointer(self, *, force: bool) -> bool:
        pointer = self.pointer
        step = ScriptStep(
            _SET_POINTER,
            keys=[keys.live_flow(self.name)],
            args=[pointer.value, pointer.generation, keys.LIVE_FLOW_TTL, 1 if force else 0],
            decode=as_bool,
        )
        return await self._scripts.run_one(step)

    async def _adopt(self, pointer: LivePointer, *, force: bool = False) -> bool:
        """Make `pointer` current here if it is newer than ours (or `force`: the database says
        so); False when its version cannot be loaded."""
        loaded = await self._load(pointer.digest)
        if loaded is None:
            log.error("the live flow version is not in the database", extra={"flow": self.name})
            return False
        if not force and pointer.generation <= self.pointer.generation:
            return True  # not newer, or a newer change arrived while we loaded this one
        changed = loaded.digest != self.current.digest
        self.current, self.pointer = loaded, pointer
        self._remember(loaded)
        log.info(
            "flow version live",
            extra={"flow": self.name, "flow_version": loaded.digest, "number": pointer.number},
        )
        if changed:
            for listener in self._listeners:
                listener(loaded)
        return True

    async def _load(self, digest: str) -> LoadedFlow | None:
        known = self._loaded.get(digest)
        if known is not None:
            self._loaded.move_to_end(digest)
            return known
        async with self._loading:
            known = self._loaded.get(digest)
            if known is not None:
                return known
            stored = await self._run_sync(self._versions.by_digest, self.name, digest)
            if stored is None:
                log.warning("a flow version is unknown here", extra={"flow_version": digest})
                return None
            loaded: LoadedFlow = await self._run_sync(load_version, stored)
            self._remember(loaded)
            return loaded

    def _remember(self, loaded: LoadedFlow) -> None:
        self._loaded[loaded.digest] = loaded
        self._loaded.move_to_end(loaded.digest)
        while len(self._loaded) > KEEP_VERSIONS:
            oldest = next(iter(self._loaded))
            if oldest == self.current.digest:
                self._loaded.move_to_end(oldest)
                continue
            del self._loaded[oldest]
