"""Applications a caller can ask about, and the check of who is asking.

The date of birth is never stored: a row holds HMAC-SHA256(KCC_SECRET_KEY, YYYY-MM-DD) of it,
which is enough to check the date a caller types and useless to anyone reading the table without
the key. The flow engine only sees `ApplicationDirectory`, so a real case-management system can
replace the table without touching the engine.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import DateTime, Engine, bindparam, select
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from routing.database_reads import autocommit_read

# Application numbers are 6 to 12 digits.
APPLICATION_NUMBER = re.compile(r"^[0-9]{6,12}$")
EARLIEST_BIRTH = date(1900, 1, 1)
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class ApplicationStatus(StrEnum):
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    WAITING_FOR_INFORMATION = "waiting_for_information"
    ISSUED = "issued"
    REFUSED = "refused"
    OBJECTION_IN_PROGRESS = "objection_in_progress"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Application(SQLModel, table=True):
    __tablename__ = "applications"

    application_number: str = Field(primary_key=True, max_length=20)
    product: str = Field(index=True, max_length=64)
    # The plain value ("in_progress") in a VARCHAR, not a PostgreSQL ENUM type, so a new status
    # needs no ALTER TYPE.
    status: ApplicationStatus = Field(
        sa_type=SAEnum(
            ApplicationStatus,
            native_enum=False,
            length=32,
            values_callable=lambda statuses: [status.value for status in statuses],
        )
    )
    status_date: date
    dob_hmac: str = Field(min_length=64, max_length=64)  # hex HMAC-SHA256 of the date of birth
    # SQLite hands timestamps back naive; they are still UTC.
    updated_at: datetime = Field(default_factory=_utcnow, sa_type=DateTime(timezone=True))


@dataclass(frozen=True)
class ApplicationInfo:
    """What a verified caller (and the adviser who takes the call) may learn: never the date of
    birth, nor its hash."""

    application_number: str
    product: str
    status: ApplicationStatus
    status_date: date


class DateOfBirthHasher:
    """HMAC-SHA256 of a date of birth under the service's secret key."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the secret key must not be empty")
        self._key = secret.encode("utf-8")

    def digest(self, born: date) -> str:
        message = born.isoformat().encode("ascii")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def matches(self, born: date, digest: str) -> bool:
        return hmac.compare_digest(self.digest(born), digest)


class ApplicationDirectory(Protocol):
    def check(self, application_number: str, born: date) -> ApplicationInfo | None:
        """The application when the number exists and `born` is its date of birth, else None.

        Unknown number and wrong date look the same to the caller, and take the same work.
        Synchronous: async callers run it in a thread.
        """
        ...


# Compared against when the number is unknown: a well-formed digest no date hashes to in practice.
_DUMMY_DIGEST = "0" * 64


class SqlApplicationDirectory:
    """The `applications` table as an ApplicationDirectory."""

    def __init__(self, engine: Engine, hasher: DateOfBirthHasher) -> None:
        self._engine = engine
        self._hasher = hasher
        # A Core statement, not an ORM session: one check per verifying caller, and the
        # session's unit of work cost more than the query (docs/BENCHMARKS.md, the load test).
        table = Application.__table__  # type: ignore[attr-defined]
        self._select = select(
            table.c.product, table.c.status, table.c.status_date, table.c.dob_hmac
        ).where(table.c.application_number == bindparam("number"))

    def check(self, application_number: str, born: date) -> ApplicationInfo | None:
        # One round trip: no transaction around the one SELECT.
        row = autocommit_read(
            self._engine,
            lambda connection: connection.execute(
                self._select, {"number": application_number}
            ).first(),
        )
        # The same HMAC and comparison whether or not the number exists.
        matched = self._hasher.matches(born, row.dob_hmac if row is not None else _DUMMY_DIGEST)
        if row is None or not matched:
            return None
        return ApplicationInfo(
            application_number=application_number,
            product=row.product,
            status=ApplicationStatus(row.status),
            status_date=row.status_date,
        )


def parse_iso_date(text: str, *, field: str) -> date:
    """A YYYY-MM-DD date; the ValueError names the field and the problem, never the value."""
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f"{field} is not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field} is not a real date") from None


def parse_date_of_birth(text: str, *, today: date) -> date:
    """A date of birth as YYYY-MM-DD, not in the future and not before 1900.

    The ValueError says what is wrong without repeating the date.
    """
    born = parse_iso_date(text, field="date_of_birth")
    if born > today:
        raise ValueError("date_of_birth is in the future")
    if born < EARLIEST_BIRTH:
        raise ValueError("date_of_birth is before 1900")
    return born
