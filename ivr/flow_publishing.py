"""Check, publish and roll back flow versions. A mistake never reaches a caller: a draft that
fails any check is refused with every problem and its line, and the live version stays."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from redis.exceptions import RedisError

from flows.errors import ErrorKind, FlowInvalid, KccError, Problem
from flows.loader import check_flow_text
from flows.model import Flow, QueueNode
from flows.versions import FlowVersion, SqlFlowVersions
from flows.yaml_source import YamlSyntaxError, read_yaml
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
        flow's name, and that every adviser's skill is still a product of the flow."""
        flow, problems = check_flow_text(text, filename)
        if flow is None:
            return DraftCheck(problems)
        try:
            source = read_yaml(text)
        except YamlSyntaxError:  # cannot happen: check_flow_text parsed it
            return DraftCheck(problems)
        problems = list(problems)
        warnings: list[Problem] = []
        if flow.name != self._registry.name:
            problems.append(
                Problem(
                    filename,
                    source.line_of(("name",)),
                    f"name: this centre runs the flow {self._registry.name!r}, not {flow.name!r}",
                )
            )
        products_line = source.line_of(("products",))
        skills = self._adviser_skills()
        for adviser, adviser_products in sorted(skills.items()):
            for product in adviser_products:
                if product not in flow.products:
                    problems.append(
                        Problem(
                            filename,
                            products_line,
                            f"products: adviser {adviser!r} has the skill {product!r}, which "
                            "this flow does not define (keep the product, or change the "
                            "adviser's skills first)",
                        )
                    )
        queued = {n.product for n in flow.nodes.values() if isinstance(n, QueueNode)}
        queued.add(flow.queue.general_product)
        if skills:
            for product in sorted(queued):
                if not any(not p or product in p for p in skills.values()):
                    warnings.append(
                        Problem(
                            filename,
                            source.line_of(("products", product)),
                            f"products.{product}: no adviser has this skill; its callers "
                            "would wait until one has",
                        )
                    )
        problems = sorted(set(problems))
        return DraftCheck(problems, warnings, None if problems else flow)

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
