"""Publish and roll back across two `kcc serve` processes on one Redis and one database: the
other instance takes the new live version within 2 s, without a call to prompt it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from tests.conftest import REDIS_SERVICE, REDIS_UP, REDIS_URL, need_service
from tests.support.database import sqlite_url
from tests.support.flow_drafts import NEW_WELCOME, edited
from tests.support.servers import open_kcc_serve
from tests.support.staff import SANNE, new_database_with_staff, signed_in_to

pytestmark = pytest.mark.slow  # two real `kcc serve` processes

ANNOUNCE_SECONDS = 2.0  # the promise: a publish reaches every instance within 2 s


def flow_number(url: str) -> int:
    return int(httpx.get(f"{url}/healthz", timeout=2).json()["flow_number"])


def wait_for_number(url: str, number: int) -> float:
    """Seconds until the instance at `url` serves version `number` (fails after the promise)."""
    started = time.monotonic()
    while flow_number(url) != number:
        if time.monotonic() - started > ANNOUNCE_SECONDS:
            pytest.fail(f"{url} still on version {flow_number(url)} after {ANNOUNCE_SECONDS} s")
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
def instances(tmp_path: Path, redis_client: aioredis.Redis) -> Iterator[list[str]]:
    # In CI a missing Redis fails here (and in redis_client already).
    need_service(REDIS_UP, REDIS_SERVICE, "two processes need a shared Redis (CI has one)")
    database = sqlite_url(tmp_path)
    new_database_with_staff(database, SANNE)
    urls: list[str] = []
    with ExitStack() as stack:
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            served = open_kcc_serve(
                folder,
                secret_key="instances-test-secret-0123456789abcdef",
                database_url=database,
                KCC_REDIS_URL=REDIS_URL,  # shared, and flushed by redis_client (not per instance)
                TWILIO_AUTH_TOKEN="instances-test-token-0123456789",
            )
            urls.append(stack.enter_context(served).url)
        yield urls


def test_publish_and_rollback_reach_the_other_instance_within_two_seconds(
    instances: list[str],
) -> None:
    first, second = instances
    assert flow_number(first) == flow_number(second) == 1
    headers = signed_in_to(first, SANNE)

    published = httpx.post(
        f"{first}/api/flows/publish",
        json={"text": edited(), "comment": "kerst"},
        headers=headers,
        timeout=10,
    )
    assert published.status_code == 201, published.text
    wait_for_number(second, 2)
    tree = httpx.get(f"{second}/api/flows/tree", headers=headers, timeout=5).json()
    assert tree["nodes"][0]["prompts"][0]["texts"]["nl"] == NEW_WELCOME

    rolled_back = httpx.post(
        f"{second}/api/flows/rollback", json={"version": 1}, headers=headers, timeout=10
    )
    assert rolled_back.status_code == 200, rolled_back.text
    wait_for_number(first, 1)
