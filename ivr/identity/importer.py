"""Import of applications from a CSV export of the case-management system.

The file has the header `application_number,date_of_birth,product,status,status_date`, dates as
YYYY-MM-DD. Every good row is inserted or updated; every bad row is reported with its line number
and the reason, and never stops the good ones (a row is one line: a quote left open is that
line's problem, never the rows' after it). Reasons never repeat a date of birth, and show an
application number only masked: they end up on terminals and in CI logs.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from ivr.identity.applications import (
    APPLICATION_NUMBER,
    Application,
    ApplicationStatus,
    DateOfBirthHasher,
    parse_date_of_birth,
    parse_iso_date,
)
from routing.privacy import mask_number

HEADER = ("application_number", "date_of_birth", "product", "status", "status_date")
_STATUSES = tuple(status.value for status in ApplicationStatus)
# A value is echoed in a reason only when it cannot be a number or a date (no digits at all).
_SHOWABLE = re.compile(r"^[A-Za-z_ -]{1,40}$")
_CHUNK = 500  # numbers per `IN (...)` when looking up existing rows


@dataclass(frozen=True)
class RejectedRow:
    line: int  # physical line in the file; the header is line 1
    reason: str


@dataclass(frozen=True)
class ImportReport:
    added: int
    updated: int
    rejected: list[RejectedRow]


@dataclass(frozen=True)
class _Row:
    application_number: str
    dob_hmac: str
    product: str
    status: ApplicationStatus
    status_date: date


def _shown(value: str) -> str:
    return f" {value!r}" if _SHOWABLE.fullmatch(value) else ""


def _records(text: str) -> Iterator[tuple[int, list[str] | None]]:
    """(physical line, fields) per line; fields None when the line is not a readable CSV row.

    No field of this file holds a line break, so every line is a record of its own: a quote left
    open costs its own line only, instead of swallowing every row after it into one field.
    """
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        try:
            rows = list(csv.reader([line.rstrip("\r\n")], strict=True))
        except csv.Error:
            yield number, None
            continue
        yield number, rows[0] if rows else []


def _check_row(
    fields: list[str],
    *,
    line: int,
    first_seen: dict[str, int],
    hasher: DateOfBirthHasher,
    products: Collection[str],
    today: date,
) -> tuple[_Row | None, list[str]]:
    if len(fields) != len(HEADER):
        return None, [f"expected {len(HEADER)} fields, found {len(fields)}"]
    number, born_text, product, status_text, status_date_text = (f.strip() for f in fields)
    reasons = []

    if not APPLICATION_NUMBER.fullmatch(number):
        reasons.append("application_number must be 6 to 12 digits")
    elif number in first_seen:
        # The first row with a number claims it, even when that row is rejected for another
        # reason: which of two rows is right is for the sender of the file to say.
        reasons.append(
            f"duplicate application_number {mask_number(number)}, "
            f"first on line {first_seen[number]}"
        )
    else:
        first_seen[number] = line

    born: date | None = None
    try:
        born = parse_date_of_birth(born_text, today=today)
    except ValueError as exc:
        reasons.append(str(exc))

    if product not in products:
        reasons.append(f"unknown product{_shown(product)}")

    status: ApplicationStatus | None = None
    if status_text in _STATUSES:
        status = ApplicationStatus(status_text)
    else:
        reasons.append(f"unknown status{_shown(status_text)} (one of {', '.join(_STATUSES)})")

    status_date: date | None = None
    try:
        status_date = parse_iso_date(status_date_text, field="status_date")
    except ValueError as exc:
        reasons.append(str(exc))
    else:
        if status_date > today:
            reasons.append("status_date is in the future")

    if reasons or born is None or status is None or status_date is None:
        return None, reasons
    row = _Row(
        application_number=number,
        dob_hmac=hasher.digest(born),
        product=product,
        status=status,
        status_date=status_date,
    )
    return row, []


def _upsert(engine: Engine, rows: list[_Row]) -> tuple[int, int]:
    """Insert or update the rows in one transaction; returns (added, updated)."""
    added = updated = 0
    now = datetime.now(UTC)
    with Session(engine) as session:
        existing: dict[str, Application] = {}
        numbers = [row.application_number for row in rows]
        for start in range(0, len(numbers), _CHUNK):
            chunk = numbers[start : start + _CHUNK]
            query = select(Application).where(col(Application.application_number).in_(chunk))
            existing.update((app.application_number, app) for app in session.exec(query))
        for row in rows:
            application = existing.get(row.application_number)
            if application is None:
                application = Application(
                    application_number=row.application_number,
                    product=row.product,
                    status=row.status,
                    status_date=row.status_date,
                    dob_hmac=row.dob_hmac,
                    updated_at=now,
                )
                existing[row.application_number] = application
                added += 1
            else:
                application.product = row.product
                application.status = row.status
                application.status_date = row.status_date
                application.dob_hmac = row.dob_hmac
                application.updated_at = now
                updated += 1
            session.add(application)
        session.commit()
    return added, updated


def import_applications(
    path: Path,
    *,
    engine: Engine,
    hasher: DateOfBirthHasher,
    products: Collection[str],
    today: date,
) -> ImportReport:
    """Upsert the good rows of the CSV file at `path` and report the rejected ones.

    Raises OSError when the file cannot be read and UnicodeDecodeError when it is not UTF-8;
    nothing is imported then.
    """
    with path.open(encoding="utf-8-sig", newline="") as file:
        text = file.read()
    records = _records(text)
    first = next(records, None)
    if first is None or first[1] is None or tuple(f.strip() for f in first[1]) != HEADER:
        reason = "the header must be exactly " + ",".join(HEADER) + "; nothing was imported"
        return ImportReport(added=0, updated=0, rejected=[RejectedRow(line=1, reason=reason)])

    rejected: list[RejectedRow] = []
    good: list[_Row] = []
    first_seen: dict[str, int] = {}
    for line, fields in records:
        if fields is None:
            rejected.append(
                RejectedRow(line=line, reason="not readable as a CSV row (a quote left open?)")
            )
            continue
        if len(fields) <= 1 and not "".join(fields).strip():
            continue  # a blank line
        row, reasons = _check_row(
            fields,
            line=line,
            first_seen=first_seen,
            hasher=hasher,
            products=products,
            today=today,
        )
        if row is None:
            rejected.append(RejectedRow(line=line, reason="; ".join(reasons)))
        else:
            good.append(row)
    added, updated = _upsert(engine, good) if good else (0, 0)
    return ImportReport(added=added, updated=updated, rejected=rejected)
