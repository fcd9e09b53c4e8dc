"""The data that passes between the engine and the identity check (which does the I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


@dataclass(frozen=True)
class IdentityCheck:
    """What the caller typed, for one check. Lives only in memory during one request."""

    application_number: str
    born: date

    def __repr__(self) -> str:  # never let a date of birth reach a log through a repr
        return "IdentityCheck(<hidden>)"


class CheckResult(StrEnum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"  # unknown number or wrong date: the caller cannot tell which
    LOCKED = "locked"  # too many failures for this number or from this caller


@dataclass(frozen=True)
class CheckOutcome:
    result: CheckResult
    product: str | None = None  # the application's, only when verified
    status: str | None = None
    status_date: date | None = None
