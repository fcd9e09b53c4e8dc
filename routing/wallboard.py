"""The wallboard: what the contact centre's room screen and the supervisor's "Nu" show, as one
snapshot read from Redis (so every instance shows the same): calls in the menu, the lines per
product with their longest wait, advisers per state, today's calls with the service level and
the average speed of answer, and the callbacks still to be made.

The advisers' names are in the snapshot for supervisors only; the API leaves them out for the
room's screen (`Wallboard.without_names`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from routing.board import AdviserBoard, AdviserState, AdviserView
from routing.live_figures import (
    DayFigures,
    LiveFigureReader,
    advisers_per_state,
    waiting_lines,
)
from routing.queue import CallQueue


@dataclass(frozen=True)
class ProductLine:
    product: str
    waiting: int  # callers on the line (callbacks not included)
    oldest_wait_seconds: int  # the longest of their waits, whole seconds; 0 if none


@dataclass(frozen=True)
class AdviserLine:
    """An adviser by name, for supervisors only."""

    name: str
    state: AdviserState
    since: datetime | None
    product: str | None  # the product of the call they have (offered, on call), if any


@dataclass(frozen=True)
class Wallboard:
    at: datetime
    calls_in_menu: int
    products: list[ProductLine]  # the live flow's products, in its order
    advisers: dict[AdviserState, int]  # every state, zeros included
    today: DayFigures
    service_level_seconds: int
    callbacks_waiting: int  # callers who asked to be called back and were not called yet
    adviser_list: list[AdviserLine]

    def without_names(self) -> Wallboard:
        return replace(self, adviser_list=[])

    def same_as(self, other: Wallboard | None) -> bool:
        """The same figures, whenever each was read (a stream sends only what changed)."""
        return other is not None and replace(other, at=self.at) == self


class WallboardReader:
    def __init__(
        self,
        *,
        figures: LiveFigureReader,
        queue: CallQueue,
        board: AdviserBoard,
        products: Callable[[], Sequence[str]],
        now: Callable[[], datetime],
    ) -> None:
        self._figures = figures
        self._queue = queue
        self._board = board
        self._products = products
        self._now = now  # the app's clock (KCC_NOW moves "today")

    async def read(self, *, names: bool) -> Wallboard:
        """The snapshot now; with the advisers' names only when `names`."""
        now = self._now()
        products = list(self._products())
        entries = await self._queue.waiting()
        waiting, oldest = waiting_lines(entries, products, now)
        views = await self._board.views()
        days = self._figures.days
        return Wallboard(
            at=now,
            calls_in_menu=await self._figures.calls_in_menu(),
            products=[
                # a product of an older flow version still with callers waiting comes last
                ProductLine(product, waiting[product], int(oldest[product]))
                for product in [*products, *sorted(set(waiting) - set(products))]
            ],
            advisers=advisers_per_state(views),
            today=await days.read(now),
            service_level_seconds=days.service_level_seconds,
            callbacks_waiting=sum(1 for entry in entries if entry.callback),
            adviser_list=[await self._adviser(view) for view in views] if names else [],
        )

    async def _adviser(self, view: AdviserView) -> AdviserLine:
        entry = await self._queue.get(view.call_sid) if view.call_sid else None
        return AdviserLine(
            name=view.name,
            state=view.state,
            since=datetime.fromtimestamp(view.since_ms / 1000, UTC) if view.since_ms else None,
            product=entry.product if entry is not None else None,
        )
