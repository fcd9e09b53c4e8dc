"""Masking of personal data before anything is written to a log.

Personal here: phone numbers, application numbers and dates (a date of birth is typed on the
keypad as DDMMYYYY, or written 03-11-1985, 1985-11-03, 3 november 1985). What an operator needs
to read stays: ports (`:8000`, `:34463`), process ids (`process [12345]`), durations and counts
with their unit (`1500000 ms`, `2048000 bytes`), versions (`1.2.3`), HTTP statuses, IP addresses,
Twilio SIDs and digests (`CA` + hex).

The rules, privacy first (a rule that keeps something readable never wins over a date or a phone
number):

1. Dates written with separators (a two-digit year too, with dashes or slashes), as a Python
   repr (`date(1985, 11, 3)`) or with a month name become `**-**-****`.
2. A number that starts with `+` (or `%2B`, a URL-encoded `+`) and has 6 or more digits is a phone
   number: masked, whatever follows.
3. Any other run of 6 or more digits (single spaces, dashes or parentheses inside join it, as in
   `06-12345678` or keys typed one by one) is an application number, a phone number or a typed
   date: masked, keeping the last two digits. Only two kinds stay readable: a process id (after
   `process` or `pid`) and a quantity followed by its unit, and even those are masked when they
   read as a date (DDMMYYYY, YYYYMMDD, DDMMYY) or as a Dutch phone number (0 and 9 digits, 00...).
4. Runs of up to 5 digits are never personal (ports, statuses, counts, years, times).
5. Digits glued to letters belong to an identifier (`CA0123...`, a digest) and stay; digits after
   a dot are a decimal, an IP address or a version.
"""

from __future__ import annotations

import re
from datetime import date

MIN_DIGITS = 6  # application numbers have 6-12 digits; every phone number and typed date more

_MONTHS = (
    "januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|december|"
    "january|february|march|may|june|july|august|october|"
    "jan|feb|mrt|mar|apr|jun|jul|aug|sep|sept|okt|oct|nov|dec"
)
_DATES = (
    # 03-11-1985, 3/11/1985, 3.11.1985, 1985-11-03, 1985/11/03 (and the date of a timestamp).
    re.compile(r"(?<![\d.])(?:\d{1,2}([-/.])\d{1,2}\1\d{4}|\d{4}([-/.])\d{1,2}\2\d{1,2})(?![\d.])"),
    # 03-11-85, 3/11/85: a two-digit year, when it can be a day and a month (with dots it is
    # a version: 3.11.10).
    re.compile(r"(?<![\d.])(?P<day>\d{1,2})([-/])(?P<month>\d{1,2})\2\d{2}(?![\d.])"),
    # date(1985, 11, 3) and datetime(1985, 11, 3, ...): a repr in an exception text.
    re.compile(r"\b(date(?:time)?\()\s*\d{4},\s*\d{1,2},\s*\d{1,2}"),
    # 3 november 1985, 3 Nov. 1985, November 3, 1985.
    re.compile(
        rf"(?i)\b(?:\d{{1,2}}\s+(?:{_MONTHS})\.?\s+\d{{4}}|(?:{_MONTHS})\.?\s+\d{{1,2}},?\s+\d{{4}})\b"
    ),
)
_MASKED_DATE = "**-**-****"

# A candidate number: an optional + (or %2B), digits joined by single spaces, dashes or
# parentheses, and a decimal fraction (read for the unit rule only). Not glued to letters, not
# after a dot (decimals, IP addresses, versions) and not after another + or digit.
_RUN = re.compile(
    r"(?<![\w.+])(?P<lead>\+|%2[Bb])?\(?(?P<number>\d(?:(?:[ \-]|\)[ \-]?|[ \-]?\()?\d)*)"
    r"(?P<fraction>\.\d+)?(?![\w])"
)
_PROCESS_BEFORE = re.compile(r"(?i)\b(?:process|pid)(?:\s+id)?\s*[:=#]?\s*\[?$")
_UNIT_AFTER = re.compile(
    r"(?i)\s?(?:%|(?:ms|µs|us|ns|s|sec|secs|seconds?|min|mins|minutes?|h|hours?|days?"
    r"|b|bytes?|kb|kib|mb|mib|gb|gib|calls?|requests?|rows?|items?|entries|lines?|times"
    r"|attempts?|retries|messages?|events?|tasks?|connections?|commands?|ops)\b)"
)


def mask_number(number: str) -> str:
    """Every digit a star but the last two; separators dropped."""
    digits = [c for c in number if c.isdigit()]
    if len(digits) <= 2:
        return "*" * len(number)
    return "*" * (len(digits) - 2) + "".join(digits[-2:])


def _is_date(digits: str) -> bool:
    """DDMMYYYY, YYYYMMDD or DDMMYY: a date of birth as typed on a keypad."""
    candidates: list[tuple[int, int, int]] = []
    if len(digits) == 8:
        candidates += [
            (int(digits[4:]), int(digits[2:4]), int(digits[:2])),
            (int(digits[:4]), int(digits[4:6]), int(digits[6:])),
        ]
    elif len(digits) == 6:
        candidates.append((1900 + int(digits[4:]), int(digits[2:4]), int(digits[:2])))
    for year, month, day in candidates:
        try:
            date(year, month, day)
        except ValueError:
            continue
        return True
    return False


def _is_phone(digits: str) -> bool:
    return digits.startswith("00") or (digits.startswith("0") and len(digits) == 10)


def _readable(text: str, match: re.Match[str], digits: str) -> bool:
    """A process id or a quantity with its unit, which is neither a date nor a phone number."""
    if _is_date(digits) or _is_phone(digits):
        return False
    before = text[max(0, match.start() - 24) : match.start()]
    return bool(_PROCESS_BEFORE.search(before) or _UNIT_AFTER.match(text, match.end()))


def _mask_run(text: str, match: re.Match[str]) -> str:
    number = match.group("number")
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) < MIN_DIGITS:
        return match.group(0)
    if not match.group("lead") and _readable(text, match, digits):
        return match.group(0)
    # From the lead (+, %2B) to the last digit; an opening parenthesis and a fraction stay.
    start = match.start("lead") if match.group("lead") else match.start("number")
    whole, offset = match.group(0), match.start()
    return whole[: start - offset] + mask_number(number) + whole[match.end("number") - offset :]


def _short_date(match: re.Match[str]) -> str:
    day, month = int(match.group("day")), int(match.group("month"))
    return "**-**-**" if 1 <= day <= 31 and 1 <= month <= 12 else match.group(0)


def mask_text(text: str) -> str:
    """`text` with every date and personal number masked (see the module's rules)."""
    text = _DATES[0].sub(_MASKED_DATE, text)
    text = _DATES[1].sub(_short_date, text)
    text = _DATES[2].sub(lambda m: m.group(1) + "****, **, **", text)
    text = _DATES[3].sub(_MASKED_DATE, text)
    return _RUN.sub(lambda m: _mask_run(text, m), text)
