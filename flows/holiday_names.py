"""Which holiday names a calendar may list: those the `holidays` package knows for the country."""

from __future__ import annotations

from functools import cache

import holidays

_CATEGORIES = ("public", "optional")
_SAMPLE_YEARS = range(2024, 2034)  # wide enough to include lustrum-only days such as 5 May


@cache
def known_holiday_names(country: str) -> frozenset[str]:
    """English names of the country's public and optional holidays; empty if unknown country."""
    try:
        calendar = holidays.country_holidays(
            country, years=_SAMPLE_YEARS, categories=_CATEGORIES, language="en_US"
        )
    except (NotImplementedError, KeyError):
        return frozenset()
    return frozenset(name for names in calendar.values() for name in names.split("; "))


def unknown_holiday_names(country: str, names: list[str]) -> list[str]:
    known = known_holiday_names(country)
    return [name for name in names if name not in known]
