"""Check, publish and roll back flow versions. A mistake never reaches a caller: a draft that
fails any check is refused with every problem and its line, and the live version stays."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from redis.exceptions import RedisError

from flows.errors import ErrorKind, FlowInvalid, KccError, Problem
from flows.loader import inspect_flow_text
from flows.model import Flow, QueueNode
from flows.problems import problem
from flows.versions import FlowVersion, SqlFlowVersions
from ivr.flow_registry import FlowRegistry, RunSync

log = logging.getLogger(__name__)

# Adviser name -> the products they take; an empty list means every product.
AdviserSkills = Callable[[], Mapping[str, list[str]]]


class PublishedNotAnnounced(KccError):
    """The change is live in the database; Redis could not be told."""

    code = "not_announced"
    kind = ErrorKind.UNAVAILABLE

    def __init__(self, version: FlowVersion, cause: Exception) -> None:
        super().__init__(
            f"version {version.number} is live but not announced: {cause}", version=version.number
        )
        self.version = version


@dataclass(frozen=True)
class DraftCheck:
    problems: list[Problem]  # any of these refuses the draft
    warnings: list[Problem] = field(default_factory=list)  # worth knowing, not refusing
    flow: Flow | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.flow is not None


class FlowPublisher:
    def __init__(
        self,
        *,
        registry: FlowRegistry,
        versions: SqlFlowVersions,
        adviser_skills: AdviserSkills,
        run_sync: RunSync,
        now: Callable[[], datetime],
    ) -> None:
        self._registry = registry
        self._versions = versions
        self._adviser_skills = adviser_skills
        self._run_sync = run_sync
        self._now = now

    def check(self, text: str, filename: str = "draft") -> DraftCheck:
        """Everything `kcc flows check` checks, plus what only the running centre knows: the
        flow's name, and that every adviser's skill is still a product of the flow. A draft
        with problems is judged on what parsed, so every problem comes at once."""
        checked = inspect_flow_text(text, filename)
        draft, gaps, source = checked.draft, checked.gaps, checked.source
        if draft is None or source is None:
            return DraftCheck(checked.problems)
        problems = list(checked.problems)
        warnings: list[Problem] = []

        def add(to: list[Problem], path: tuple[str, ...], code: str, **params: str) -> None:
            line = source.line_of(path)
            to.append(problem(filename, line, code, where=".".join(path), **params))

        if gaps.ok("name") and draft.name != self._registry.name:
            add(
                problems,
                ("name",),
                "wrong_flow_name",
                expected=self._registry.name,
                name=draft.name,
            )
        skills = self._adviser_skills()
        if gaps.ok("products"):
            products = set(draft.products) | gaps.products
            for adviser, adviser_products in sorted(skills.items()):
                for product in adviser_products:
                    if product not in products:
                        code = "skill_not_a_product"
                        add(problems, ("products",), code, adviser=adviser, product=product)
            queued = {n.product for n in draft.nodes.values() if isinstance(n, QueueNode)}
            if gaps.ok("queue"):
                queued.add(draft.queue.general_product)
            for product in sorted(queued & products) if skills else ():
                if not any(not p or product in p for p in skills.values()):
                    add(warnings, ("products", product), "product_without_adviser")
        problems = sorted(set(problems))
        return DraftCheck(problems, warnings, None if problems else checked.flow)

    async def validate(self, text: str, filename: str = "draft") -> DraftCheck:
        return await self._run_sync(self.check, text, filename)  # type: ignore[no-any-return]

    async def publish(self, text: str, *, author: str, comment: str) -> FlowVersion:
        """Check, store as the next version, make it live and announce it.

        Raises FlowInvalid (with every problem) or flows.versions.AlreadyLive."""
        checked = await self.validate(text)
        if not checked.ok:
            raise FlowInvalid(checked.problems)
        version: FlowVersion = await self._run_sync(
            lambda: self._versions.publish(
                self._registry.name, text, author=author, comment=comment, at=self._now()
            )
        )
        await self._announce(version)
        return version

    async def _announce(self, version: FlowVersion) -> None:
        """Announce the database's pointer as it is now: if another change landed meanwhile,
        that one (the newest) is what every instance should take.

        Raises PublishedNotAnnounced when Redis fails after the change was committed: every
        instance still takes it from the database at its next re-sync."""
        try:
            pointer = await self._run_sync(self._versions.live_pointer, self._registry.name)
            if pointer is not None:
                await self._registry.announce(pointer)
        except RedisError as exc:
            log.warning("a flow change was committed but not announced", exc_info=True)
            raise PublishedNotAnnounced(version, exc) from exc

    async def rollback(self, number: int, *, actor: str, comment: str) -> FlowVersion:
        """Make version `number` live again. Raises UnknownVersion or AlreadyLive.

        The old version is checked against today's advisers first: it may name a product
        that has been dropped since."""
        stored: FlowVersion = await self._run_sync(self._versions.get, self._registry.name, number)
        checked = await self.validate(stored.text, f"version {number}")
        if not checked.ok:
            raise FlowInvalid(checked.problems)
        version: FlowVersion = await self._run_sync(
            lambda: self._versions.rollback(
                self._registry.name, number, actor=actor, comment=comment, at=self._now()
            )
        )
        await self._announce(version)
        return version
