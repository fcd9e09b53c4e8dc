"""Masking of personal numbers before anything is written to a log.

Application numbers and phone numbers keep only their last two digits. A date of birth typed
as 8 digits (DDMMYYYY) is a run of digits too, so it is masked by the same rule.
"""

from __future__ import annotations

import re

# Runs of 5 or more digits, optionally with a leading + and single spaces or dashes inside.
# Not inside identifiers such as a CallSid (CA + hex), which logs need to correlate a call.
_NUMBER = re.compile(r"(?<![A-Za-z0-9])\+?\d(?:[ \-]?\d){4,}(?![A-Za-z0-9])")
# Dates written with separators: 03-11-1985, 1985-11-03, 3/11/1985, 3.11.1985.
_DATE = re.compile(
    r"(?<![\d.])(?:\d{1,2}([-/.])\d{1,2}\1\d{4}|\d{4}([-/.])\d{1,2}\2\d{1,2})(?![\d.])"
)


def mask_number(number: str) -> str:
    digits = [c for c in number if c.isdigit()]
    if len(digits) <= 2:
        return "*" * len(number)
    return "*" * (len(digits) - 2) + "".join(digits[-2:])


def mask_text(text: str) -> str:
    text = _DATE.sub(lambda m: "**-**-****", text)
    return _NUMBER.sub(lambda m: mask_number(m.group(0)), text)
