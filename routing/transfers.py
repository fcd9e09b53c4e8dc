"""Transfers of a call in conversation (issue 12): to a colleague, a product's queue or a
department; cold (the adviser lets go at once) or warm (a consult first, the caller held).

Routing keeps one transfer per call in Redis (`keys.call_transfer`); its existence is the lock
that makes a second transfer of the same call answer `transfer_in_progress`. Every change that
decides something is Lua (routing/lua/transfer_*.lua). Each finished transfer becomes a row of
`call_transfers` (to whom, cold or warm, answered or not, when) for reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from sqlmodel import DateTime, Field, SQLModel

from flows.errors import ErrorKind, KccError
from routing import keys
from routing.board import Offer, Settled, settled_of
from routing.scripts import LuaScript, Outcomes, ScriptRunner, ScriptStep

_CLAIM = LuaScript.named("transfer_claim")
_ROUTE = LuaScript.named("transfer_route")
_STEP = LuaScript.named("transfer_step")
_CONSULT_END = LuaScript.named("transfer_consult_end")

# The history's mark that the adviser consults a transfer's target (the live state stays
# on_call); the row after it ends the consult.
CONSULT_STATE = "consulting"


class TransferMode(StrEnum):
    COLD = "cold"  # the caller goes to the target at once; the adviser goes to wrap-up
    WARM = "warm"  # the adviser talks to the target first, the caller held


class TargetKind(StrEnum):
    ADVISER = "adviser"  # a colleague, by name
    QUEUE = "queue"  # a product's line
    DEPARTMENT = "department"  # a department's phone, from the flow


class TransferState(StrEnum):
    STARTED = "started"  # claimed; the target is being called
    ANSWERED = "answered"  # the target answered: a warm transfer's consult
    HANDED_OVER = "handed_over"  # the caller talks to the department; the adviser has gone


class TransferOutcome(StrEnum):
    """How a transfer ended, as `call_transfers.outcome` counts it."""

    ANSWERED = "answered"  # the target took the call
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the adviser went back to the caller
    CALLER_HUNG_UP = "caller_hung_up"


TARGET_FAILED = {
    "no-answer": TransferOutcome.NO_ANSWER,
    "busy": TransferOutcome.BUSY,
    "failed": TransferOutcome.FAILED,
    "canceled": TransferOutcome.NO_ANSWER,  # stopped ringing (its timeout, or the caller left)
}


class TransferRefused(KccError):
    kind = ErrorKind.CONFLICT

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


REFUSALS = {
    1: ("transfer_in_progress", "this call is being transferred already"),
    2: ("no_call_in_progress", "there is no call in progress"),
    3: ("adviser_unavailable", "that adviser is not signed in and available"),
}


class WarmNeedsSomeone(KccError):
    """A consult is with a department or a colleague; a queue's line has nobody to consult
    (the call waits there for whoever is free), so it takes the call cold."""

    code = "warm_transfer_to_queue"
    kind = ErrorKind.INVALID


class ConsultEnd(StrEnum):
    """Where a warm transfer's colleague goes when the consult ends without the call."""

    MISSED = "missed"  # did not answer (busy, failed): as for any offer
    AVAILABLE = "available"  # cancelled, hung up, or the caller gone


class NoTransferInProgress(KccError):
    code = "no_transfer_in_progress"
    kind = ErrorKind.CONFLICT


class TargetNotAnswered(KccError):
    """Complete before the target answered: there is nobody to hand the caller to yet."""

    code = "transfer_not_answered"
    kind = ErrorKind.CONFLICT


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    key: str  # the adviser's name, the product, or the department's key
    to: str = ""  # the number or device called (a department's phone)
    announce_url: str = ""  # what the target hears when it answers (a department's whisper)

    @property
    def name(self) -> str:
        return f"{self.kind.value}:{self.key}"


@dataclass(frozen=True)
class Transfer:
    """A transfer in progress, as Redis holds it."""

    call_sid: str
    offer_id: str  # the transferring adviser's offer
    adviser: str  # who transfers
    mode: TransferMode
    target: Target
    since_ms: int
    state: TransferState
    leg: str | None  # the target's CallSid in the conference


class CallTransfer(SQLModel, table=True):
    """One transfer of a call (revision 0003): a call can be transferred several times, so a
    row per transfer rather than columns of `call_records`."""

    __tablename__ = "call_transfers"

    id: int | None = Field(default=None, primary_key=True)
    call_sid: str = Field(index=True, max_length=64)
    adviser: str = Field(index=True, max_length=64)  # who transferred it
    target_kind: str = Field(max_length=16)  # adviser, queue, department
    target: str = Field(max_length=64)  # the adviser's name, the product, the department's key
    mode: str = Field(max_length=8)  # cold, warm
    answered: bool
    outcome: str = Field(max_length=16)  # a TransferOutcome value
    started_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    ended_at: datetime = Field(sa_type=DateTime(timezone=True))


class TransferStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._scripts = ScriptRunner(redis)

    def claim_step(
        self,
        call_sid: str,
        *,
        offer_id: str,
        adviser: str,
        mode: TransferMode,
        target: Target,
        now_ms: int,
    ) -> ScriptStep[bool]:
        target_hash = keys.adviser(target.key if target.kind is TargetKind.ADVISER else adviser)
        return ScriptStep(
            _CLAIM,
            keys=[keys.call_transfer(call_sid), keys.offer(offer_id), target_hash],
            args=[
                offer_id,
                adviser,
                mode.value,
                target.kind.value,
                target.key,
                now_ms,
                keys.TRANSFER_TTL,
                target.to,
                target.announce_url,
            ],
            decode=bool,
        )

    def route_step(
        self,
        call_sid: str,
        *,
        sealed_entry: str,
        product: str,
        adviser: str | None,
        now_ms: int,
        offer_deadline_ms: int,
        empty_line_score: int,
    ) -> ScriptStep[Offer | bool | None]:
        """The call takes the head of `product`'s line, or is offered to `adviser` at once.
        Decodes to the offer made, None (waits in the line) or False (the caller has gone)."""
        entry_key = keys.queue_entry(call_sid)
        return ScriptStep(
            _ROUTE,
            keys=[
                entry_key,
                keys.queue_line(call_sid),
                keys.queue(product),
                keys.queue_index(),
                keys.offer_sequence(),
                keys.offer_deadlines(),
                keys.call_offer(call_sid),
                keys.adviser(adviser) if adviser else entry_key,
            ],
            args=[
                call_sid,
                sealed_entry,
                product,
                keys.QUEUE_TTL,
                adviser or "",
                keys.template(keys.available),
                keys.template(keys.offer),
                now_ms,
                offer_deadline_ms,
                keys.OFFER_TTL,
                empty_line_score,
            ],
            decode=_routed,
        )

    async def end_consult(
        self,
        *,
        consult_offer: str,
        colleague: str,
        call_sid: str,
        first_offer: str,
        outcome: ConsultEnd,
        now_ms: int,
    ) -> Settled | None:
        """A warm transfer's colleague leaves without the call: their offer ends, they go to
        `outcome`, and the call's offer is the transferring adviser's again. None: their offer
        had ended already."""
        step = ScriptStep(
            _CONSULT_END,
            keys=[
                keys.offer_deadlines(),
                keys.call_offer(call_sid),
                keys.offer(consult_offer),
                keys.adviser(colleague),
                keys.offer(first_offer),
            ],
            args=[
                consult_offer,
                first_offer,
                outcome.value,
                now_ms,
                keys.OFFER_TTL,
                keys.template(keys.available),
            ],
            decode=settled_of,
        )
        return await self._scripts.run_one(step)

    async def step(
        self,
        call_sid: str,
        from_states: tuple[TransferState, ...],
        to_state: TransferState | None,
        *,
        leg: str = "",
    ) -> Transfer | None:
        """Move the transfer on from one of `from_states`; None leaves it done (deleted).
        Answers the transfer as it was, or None when it was in none of those states."""
        step = ScriptStep(
            _STEP,
            keys=[keys.call_transfer(call_sid)],
            args=[
                ",".join(s.value for s in from_states),
                to_state.value if to_state else "",
                leg,
                keys.TRANSFER_TTL,
            ],
            decode=lambda raw: _transfer(call_sid, raw),
        )
        return await self._scripts.run_one(step)

    async def run(self, *steps: ScriptStep[Any]) -> Outcomes:
        """A transfer's steps (and routing's, e.g. settle and match) as one script."""
        return await self._scripts.run(*steps)

    async def get(self, call_sid: str) -> Transfer | None:
        raw = await self._redis.hmget(
            keys.call_transfer(call_sid),
            ["offer", "from", "mode", "kind", "target", "since", "state", "leg", "to", "announce"],
        )
        return _transfer(call_sid, raw)


ALL_STATES = tuple(TransferState)


def _routed(raw: Any) -> Offer | bool | None:
    if not raw:
        return None
    if raw[0] == "gone":
        return False
    offer_id, call, adviser, product = (str(v) for v in raw)
    return Offer(offer_id, call, adviser, product)


def _transfer(call_sid: str, raw: Any) -> Transfer | None:
    if not raw or not raw[6]:
        return None
    offer, adviser, mode, kind, target, since, state, leg, to, announce = (
        str(v or "") for v in raw
    )
    return Transfer(
        call_sid=call_sid,
        offer_id=offer,
        adviser=adviser,
        mode=TransferMode(mode),
        target=Target(TargetKind(kind), target, to=to, announce_url=announce),
        since_ms=int(since or 0),
        state=TransferState(state),
        leg=leg or None,
    )
