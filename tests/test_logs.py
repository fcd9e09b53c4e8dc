"""Structured logs: one JSON object per line, personal numbers masked wherever they appear."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import httpx
import pytest

from api.logs import JsonFormatter, MaskingFilter
from routing.privacy import mask_number, mask_text
from tests.support.database import sqlite_url
from tests.support.servers import kcc_serve


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
        ("born 3.11.1985", "born **-**-****"),
        ("born 03-11-85", "born **-**-**"),
        ("born 3/11/85", "born **-**-**"),
        ("born 3 november 1985", "born **-**-****"),
        ("born Nov. 3, 1985", "born **-**-****"),
        ("ValueError: date(1985, 11, 3)", "ValueError: date(****, **, **)"),
        ("Digits=03111985", "Digits=******85"),
        ("Digits=031185", "Digits=****85"),
        ("Digits=19851103", "Digits=******03"),
        ("tel 06-12345678", "tel ********78"),
        ("tel 06 1234 5678", "tel ********78"),
        ("tel (020) 123 4567", "tel (********67"),
        ("tel +31 (0)6 1234 5678", "tel **********78"),
        ("tel 0031612345678", "tel ***********78"),
        ("POST /Calls.json To=%2B31612345678&From=x", "POST /Calls.json To=*********78&From=x"),
        ("application 123456", "application ****56"),
        ("application 123456789012", "application **********12"),
        ("keys 0 3 1 1 1 9 8 5 #", "keys ******85 #"),
        ("application 1234567#", "application *****67#"),
        # A unit or a process keeps a number readable, never a date or a phone number.
        ("waited 03111985 ms", "waited ******85 ms"),
        ("process [0612345678]", "process [********78]"),
        ("+31612345678 calls", "*********78 calls"),
    ],
)
def test_what_is_personal_is_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
        "Uvicorn running on http://0.0.0.0:34463 (Press CTRL+C to quit)",
        "Started server process [1234]",
        "Started server process [4194303]",
        "Started parent process [123456]",
        "Finished server process [1234567]",
        "Waiting for child process [654321]",
        "Booting worker with pid: 3456789",
        'GET /api/hours 127.0.0.1:54321 - "GET /api/hours HTTP/1.1" 200',
        "connect to [::1]:65535 and redis:6379 and db.internal:5432",
        "took 1500000 ms, waited 86400 s and 0.123456 s",
        "wrote 1048576 bytes, 2097152 B and 250000 rows; 123456 calls, 99.5%",
        "fakeredis 2.26.1, fastapi 0.115.12, python 3.11.10, version 1.2.3",
        "host 127.0.0.1 HTTP/1.1 200",
        "call CA0123456789abcdef0123456789abcdef, adviser AC00000000000000000000000000000000",
        "flow version 0123456789abcdef",
        "opens at 09:00, closes 17:00, waited 12 s for 3 calls",
        "lock for 86400 seconds after 5 failures",
    ],
)
def test_what_is_not_personal_stays_readable(text: str) -> None:
    assert mask_text(text) == text


def test_mask_number_keeps_the_last_two_digits() -> None:
    assert mask_number("+31612345678") == "*********78"
    assert mask_number("12") == "**"


@pytest.mark.slow
def test_the_start_up_lines_of_kcc_serve_stay_readable(tmp_path: Path) -> None:
    """The real server's own lines: its address with the port, its process id."""
    with kcc_serve(tmp_path, KCC_DATABASE_URL=sqlite_url(tmp_path)) as served:
        url, pid = served.url, served.pid
    messages = [
        json.loads(line)["message"]
        for line in (tmp_path / "server.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert f"Uvicorn running on {url} (Press CTRL+C to quit)" in messages
    assert f"Started server process [{pid}]" in messages
    assert f"Finished server process [{pid}]" in messages
    assert not any("*" in message for message in messages), messages


def _access_lines(log_file: Path) -> list[str]:
    return [
        str(entry["message"])
        for entry in map(json.loads, filter(None, log_file.read_text().splitlines()))
        if entry["logger"] == "uvicorn.access"
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "logged"), [(None, True), ("false", False)])
def test_each_request_is_logged_unless_the_proxy_does_it(
    tmp_path: Path, setting: str | None, logged: bool
) -> None:
    """By default a line per request; KCC_ACCESS_LOG=false (the compose stack, where the proxy
    logs requests) writes none, while the server's other lines still come."""
    env = {"KCC_DATABASE_URL": sqlite_url(tmp_path)}
    if setting is not None:
        env["KCC_ACCESS_LOG"] = setting
    with kcc_serve(tmp_path, **env) as served:
        assert httpx.get(f"{served.url}/api/hours", timeout=5).status_code == 200
    access = _access_lines(tmp_path / "server.log")
    if logged:
        assert any('"GET /api/hours HTTP/1.1" 200' in line for line in access), access
    else:
        assert access == []
        assert "Uvicorn running on" in (tmp_path / "server.log").read_text()
