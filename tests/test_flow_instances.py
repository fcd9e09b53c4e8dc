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
from sqlmodel import Session

from api.accounts import Role, create_user
from api.database.engine import make_engine
from tests.conftest import REDIS_UP, REDIS_URL, missing_service
from tests.support.database import create_schema
from tests.support.servers import kcc_serve
from tests.test_flow_versions import NEW_WELCOME, edited

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
    if not REDIS_UP:  # in CI a missing Redis fails here instead (and in redis_client already)
        missing_service("Redis on 127.0.0.1:6379")
        pytest.skip("two processes need a shared Redis (CI has one)")
    database = f"sqlite:///{tmp_path}/kcc.sqlite3"
    engine = make_engine(database)
    create_schema(engine)
    with Session(engine) as db:
        create_user(db, name="sanne", role=Role.SUPERVISOR, password="supervisor-pass")
        db.commit()
    engine.dispose()
    urls: list[str] = []
    with ExitStack() as stack:
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            served = kcc_serve(
                folder,
                KCC_DATABASE_URL=database,
                KCC_REDIS_URL=REDIS_URL,  # shared, and flushed by redis_client (not per instance)
                TWILIO_AUTH_TOKEN="instances-test-token-0123456789",
                KCC_SECRET_KEY="instances-test-secret-0123456789abcdef",
                KCC_NOW="2026-12-01T10:00:00+01:00",
            )
            urls.append(stack.enter_context(served).url)
        yield urls


def test_publish_and_rollback_reach_the_other_instance_within_two_seconds(
    instances: list[str],
) -> None:
    first, second = instances
    assert flow_number(first) == flow_number(second) == 1
    token = httpx.post(
        f"{first}/api/token", data={"username": "sanne", "password": "supervisor-pass"}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

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
