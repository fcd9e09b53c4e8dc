"""What routing learns of a call while it lasts, kept for the call's record (ivr/records.py).

The record is made once, when the caller's leg ends; by then routing may have forgotten the
offer (settled) and the conference. So the moments a report needs are noted here as they happen:
when an adviser answered and who, when the conversation ended and who ended it, the last
completed transfer. One small hash per call (keys.call_facts), read and deleted in the script
that ends the call (`take_step`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from routing import keys
from routing.scripts import LuaScript, ScriptStep

_TAKE = LuaScript.named("call_facts_take")


class EndedByWhom(StrEnum):
    """Who ended a call (ivr.records.HungUpBy has the same values)."""

    CALLER = "caller"
    ADVISER = "adviser"
    SYSTEM = "system"


@dataclass(frozen=True)
class CallFactsView:
    answered_ms: int | None = None
    adviser: str | None = None
    talk_end_ms: int | None = None
    hung_up_by: EndedByWhom | None = None
    transfer_mode: str | None = None
    transfer_target: str | None = None  # "department:wwm", "adviser:ann", "queue:vog_rp"


class CallFacts:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def answered(self, call_sid: str, adviser: str, at_ms: int) -> None:
        """An adviser answered; the first answer counts (a warm transfer's colleague is the
        transfer's target, not the call's answer)."""
        await self._first(call_sid, {"answered_ms": str(at_ms), "adviser": adviser})

    async def conversation_ended(self, call_sid: str, at_ms: int, by: EndedByWhom) -> None:
        """The conversation is over; the first end counts (the other side's leg follows)."""
        await self._first(call_sid, {"talk_end_ms": str(at_ms), "hung_up_by": by.value})

    async def ended_by(self, call_sid: str, by: EndedByWhom) -> None:
        """Who ended a call that had no conversation (the flow or the queue said goodbye)."""
        await self._first(call_sid, {"hung_up_by": by.value})

    async def transferred(self, call_sid: str, mode: str, target: str, at_ms: int) -> None:
        """A transfer completed (the target answered, or a warm one was handed over): the last
        one is the record's. The answering adviser's conversation ends here, by the adviser
        (unless it had ended before): what the department or colleague talks on is not theirs,
        so it is not in the adviser's talk time."""
        key = keys.call_facts(call_sid)
        await asyncio.gather(
            self._redis.hset(key, mapping={"transfer_mode": mode, "transfer_target": target}),
            self._redis.hsetnx(key, "talk_end_ms", str(at_ms)),
            self._redis.hsetnx(key, "hung_up_by", EndedByWhom.ADVISER.value),
            self._redis.expire(key, keys.CALL_FACTS_TTL),
        )

    def take_step(self, call_sid: str) -> ScriptStep[CallFactsView]:
        """Read and forget the call's facts, as a step of the script that ends the call."""
        return ScriptStep(_TAKE, keys=[keys.call_facts(call_sid)], args=[], decode=_view)

    async def _first(self, call_sid: str, fields: dict[str, str]) -> None:
        # Plain commands sent together on the shared pipelined connection (a MULTI/EXEC
        # pipeline would take a pooled connection and a round trip of its own on every call);
        # each HSETNX stands on its own, so no transaction is needed.
        key = keys.call_facts(call_sid)
        await asyncio.gather(
            *(self._redis.hsetnx(key, name, value) for name, value in fields.items()),
            self._redis.expire(key, keys.CALL_FACTS_TTL),
        )


def _view(raw: Any) -> CallFactsView:
    flat = [str(item) for item in raw or []]
    found = dict(zip(flat[::2], flat[1::2], strict=True))
    by = found.get("hung_up_by")
    return CallFactsView(
        answered_ms=int(found["answered_ms"]) if "answered_ms" in found else None,
        adviser=found.get("adviser"),
        talk_end_ms=int(found["talk_end_ms"]) if "talk_end_ms" in found else None,
        hung_up_by=EndedByWhom(by) if by else None,
        transfer_mode=found.get("transfer_mode"),
        transfer_target=found.get("transfer_target"),
    )
