"""Dates typed on a keypad, and dates spoken back, in Dutch and English."""

from __future__ import annotations

from datetime import date

EARLIEST_BIRTH_YEAR = 1900

_MONTHS = {
    "nl": (
        "januari", "februari", "maart", "april", "mei", "juni",
        "juli", "augustus", "september", "oktober", "november", "december",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
}  # fmt: skip


def keyed_date_of_birth(digits: str, *, today: date) -> date | None:
    """DDMMYYYY as typed; None unless it is a real date between 1900 and today."""
    digits = digits.rstrip("#")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        born = date(int(digits[4:]), int(digits[2:4]), int(digits[:2]))
    except ValueError:
        return None
    if born.year < EARLIEST_BIRTH_YEAR or born > today:
        return None
    return born


def spoken_date(day: date, language: str, *, today: date) -> str:
    """'3 november' (with the year when it is not this year); English for unknown languages."""
    months = _MONTHS.get(language, _MONTHS["en"])
    text = f"{day.day} {months[day.month - 1]}"
    return text if day.year == today.year else f"{text} {day.year}"
