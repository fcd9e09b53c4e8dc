"""Parameter types of the staff API that pydantic alone would take too widely."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # how every ISO 8601 date and time starts


def _not_a_number(value: object) -> object:
    """Pydantic reads a number (1e5, "0.5") as seconds since 1970; the schema says ISO 8601."""
    if isinstance(value, int | float) or (isinstance(value, str) and not _ISO_DAY.match(value)):
        raise ValueError("an ISO 8601 date or time (YYYY-MM-DD...), not a number")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_not_a_number)]
IsoDate = Annotated[date, BeforeValidator(_not_a_number)]


def _without_offset(moment: time) -> time:
    """A time of day in the contact centre's zone: an offset (12:00Z) would mean another hour."""
    if moment.tzinfo is not None:
        raise ValueError("a local time of day, HH:MM, without an offset")
    return moment


LocalTime = Annotated[
    time,
    AfterValidator(_without_offset),
    # JSON schema's "time" format requires an offset: this one has none.
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
            "description": "local time (the flow's time zone), HH:MM",
        }
    ),
]
