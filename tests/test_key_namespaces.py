"""Redis key names cannot be forged from outside, and deployments sharing a Redis server stay
apart: every key and pub/sub channel is in the namespace KCC_REDIS_PREFIX names."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from fastapi import FastAPI
from pydantic import ValidationError

from api.cli.phone import Phone
from api.settings import DEFAULT_FLOW, Settings
from routing import keys
from tests.conftest import (
    AUTH_TOKEN,
    PUBLIC_URL,
    REDIS_SERVICE,
    REDIS_UP,
    REDIS_URL,
    SECRET_KEY,
    need_service,
)
from tests.support.database import sqlite_url
from tests.support.servers import invoke_kcc
from tests.support.staff import SANNE, new_database_with_staff

# Staging on a database of its own on the same server as the tests' ("production").
STAGING_URL = f"{REDIS_URL.rsplit('/', 1)[0]}/14"


@pytest.fixture(autouse=True)
def default_namespace() -> Iterator[None]:
    """The namespace is the process'; whatever a test sets, the next starts at the default."""
    yield
    keys.use_namespace(keys.DEFAULT_NAMESPACE)


# -- caller-chosen ids --------------------------------------------------------------------------


@pytest.mark.parametrize("forged", ["CA1:ended", "CA1:reply:0", "CA{x}", "CA1 ", "CA1:offer"])
async def test_a_callsid_that_could_name_another_key_is_refused_at_the_edge(
    http: httpx.AsyncClient, redis_client: aioredis.Redis, forged: str
) -> None:
    refused = await Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, call_sid=forged).post(
        f"{PUBLIC_URL}/twilio/voice", {"CallStatus": "ringing"}
    )
    assert refused.status_code == 400
    assert [k for k in await redis_client.keys("*") if ":call:" in k] == []
    # The call whose keys it would have named is answered as ever (not "ended").
    turn = await Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, call_sid="CA1").dial()
    assert turn.gather_url is not None and not turn.hung_up


async def test_a_forged_call_in_the_query_is_refused_too(http: httpx.AsyncClient) -> None:
    phone = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
    response = await phone.post(f"{PUBLIC_URL}/twilio/transfer-status?call=CA1:transfer")
    assert response.status_code == 400


def test_twilio_callsids_and_the_demos_fit_the_pattern() -> None:
    for sid in ("CA" + "0123456789abcdef" * 2, "CA1", "CA-urgent", "CAnew"):
        assert keys.CALL_SID.fullmatch(sid), sid


# -- the namespace ------------------------------------------------------------------------------


def test_every_key_and_channel_is_in_the_namespace() -> None:
    not_names = {"template", "use_namespace"}
    makers = [
        value
        for name, value in vars(keys).items()
        if callable(value) and not name.startswith("_") and name not in not_names
        and getattr(value, "__module__", "") == keys.__name__
    ]  # fmt: skip
    assert len(makers) > 30
    keys.use_namespace("staging")
    for make in makers:
        arguments = [1] * make.__code__.co_argcount
        name = make(*arguments)
        assert name.startswith("{staging}:"), (make.__name__, name)
    assert keys.template(keys.offer) == "{staging}:offer:{}"


@pytest.mark.parametrize("namespace", ["", "Kcc", "a:b", "{kcc}", "x" * 33, "-kcc"])
def test_a_namespace_that_could_break_the_names_is_refused(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        keys.use_namespace(namespace)
    with pytest.raises(ValidationError):
        Settings(redis_prefix=namespace)


def test_two_deployments_on_one_redis_server_do_not_hear_each_others_flow_announcements(
    tmp_path: Path,
) -> None:
    """Staging publishes a flow on database 14 under KCC_REDIS_PREFIX=staging; production (the
    default namespace, another database of the same server) hears nothing of it."""
    need_service(REDIS_UP, REDIS_SERVICE)
    staging_redis = redis.Redis.from_url(STAGING_URL, decode_responses=True)
    staging_redis.flushdb()
    listener = redis.Redis.from_url(REDIS_URL, decode_responses=True).pubsub()
    production_channel = "{" + keys.DEFAULT_NAMESPACE + "}:flow-announcements"
    listener.subscribe(production_channel, "{staging}:flow-announcements")
    try:
        new_database_with_staff(sqlite_url(tmp_path), SANNE)
        draft = tmp_path / "draft.yaml"
        text = DEFAULT_FLOW.read_text(encoding="utf-8")
        draft.write_text(text.replace("Justis", "Justis (staging)", 1), encoding="utf-8")
        env = {
            "KCC_DATABASE_URL": sqlite_url(tmp_path),
            "KCC_SECRET_KEY": SECRET_KEY,
            "KCC_REDIS_URL": STAGING_URL,
            "KCC_REDIS_PREFIX": "staging",
        }
        published = invoke_kcc(
            "flows", "publish", str(draft), "--comment", "staging", "--user", SANNE.name, env=env
        )
        assert published.exit_code == 0, published.output
        heard = _messages(listener)
        assert [channel for channel, _ in heard] == ["{staging}:flow-announcements"], heard
        assert staging_redis.exists("{staging}:flow:kcc:live")
        assert not staging_redis.exists("{kcc}:flow:kcc:live")
    finally:
        listener.close()
        staging_redis.flushdb()
        staging_redis.close()


def _messages(pubsub: redis.client.PubSub, seconds: float = 1.0) -> list[tuple[str, str]]:
    """What arrived on the subscribed channels within `seconds`."""
    heard: list[tuple[str, str]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            heard.append((str(message["channel"]), str(message["data"])))
    return heard


def test_the_app_uses_the_namespace_of_its_settings(
    make_app: Callable[..., FastAPI],
) -> None:
    make_app(redis_prefix="blue")
    assert keys.session("CA1") == "{blue}:call:CA1"
    make_app()
    assert keys.session("CA1") == "{kcc}:call:CA1"
