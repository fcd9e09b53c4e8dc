"""Structured logs: one JSON object per line, personal numbers masked wherever they appear."""

from __future__ import annotations

import io
import json
import logging

import pytest

from api.logs import JsonFormatter, MaskingFilter
from routing.privacy import mask_number, mask_text


@pytest.fixture
def log() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("tests.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_message_arguments_and_fields_are_masked(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    logger.info(
        "call from %s about %s",
        "+31612345678",
        "1234567",
        extra={"Digits": "03111985", "seconds": 86400},
    )
    [entry] = lines(stream)
    assert entry["message"] == "call from *********78 about *****67"
    assert entry["Digits"] == "******85"
    assert entry["seconds"] == 86400  # numbers that are measurements stay readable
    assert "612345678" not in stream.getvalue()


def test_exception_text_is_masked(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    try:
        raise ValueError("no application 7654321 for +31 6 1234 5678")
    except ValueError:
        logger.exception("lookup failed")
    [entry] = lines(stream)
    assert "*****21" in str(entry["exception"])
    assert "7654321" not in stream.getvalue() and "1234 5678" not in stream.getvalue()


def test_call_sids_and_timestamps_stay_readable(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    logger.info("step", extra={"call_sid": "CA0123456789abcdef0123456789abcdef"})
    [entry] = lines(stream)
    assert entry["call_sid"] == "CA0123456789abcdef0123456789abcdef"
    assert str(entry["time"])[:4].isdigit()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("born 03-11-1985", "born **-**-****"),
        ("born 1985-11-03", "born **-**-****"),
        ("born 3/11/1985", "born **-**-****"),
        ("tel 06-12345678", "tel ********78"),
        ("host 127.0.0.1 HTTP/1.1 200", "host 127.0.0.1 HTTP/1.1 200"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_mask_number_keeps_the_last_two_digits() -> None:
    assert mask_number("+31612345678") == "*********78"
    assert mask_number("12") == "**"
