"""What the engine remembers about one call between two webhooks (kept in Redis by CallSid)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class Verification(StrEnum):
    UNVERIFIED = "unverified"  # not asked (yet), or the flow has no verify step on this path
    VERIFIED = "verified"  # number and date of birth matched
    FAILED = "failed"  # tries used up
    LOCKED = "locked"  # the application number is locked after too many failures
    SKIPPED = "skipped"  # the caller has no application number


class CallPhase(StrEnum):
    MENU = "menu"  # walking the flow
    QUEUED = "queued"  # handed to routing
    ENDED = "ended"  # hung up by the flow


class VerifyStage(StrEnum):
    NUMBER = "number"  # waiting for the application number
    DATE_OF_BIRTH = "date_of_birth"  # waiting for the date of birth (never stored)


class CallSession(BaseModel):
    call_sid: str
    caller: str
    flow: str  # the flow's name
    flow_version: str  # hash of the flow text the call started on
    language: str
    started_at: datetime
    seq: int = 0  # number of webhook steps answered; every URL we hand out carries it
    node: str | None = None  # the node waiting for the caller's keys
    attempts: int = 0  # failed tries at `node`
    path: list[str] = Field(default_factory=list)  # "node=key" for every choice made
    values: dict[str, str] = Field(default_factory=dict)  # gathered digits by variable name
    verification: Verification = Verification.UNVERIFIED
    verify_stage: VerifyStage | None = None
    verify_failures: int = 0  # wrong combinations in this call
    verify_locked: bool = False  # a try hit a locked number or a limited caller
    pending_number: str | None = None  # typed, not yet verified; cleared after the check
    application_number: str | None = None  # only once verified
    application_product: str | None = None
    application_status: str | None = None
    application_status_date: date | None = None
    self_service: bool = False  # heard their status from the machine
    phase: CallPhase = CallPhase.MENU
    product: str | None = None
    theme: str | None = None
    priority: int = 0
    queued_at: datetime | None = None
