"""The Lua scripts and their one runner: key names only from routing/keys.py, states that are
the code's enums, typed results read by step, a refusal that stops the chain."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from routing import keys
from routing.board import REFUSALS, AdviserState, Command, OfferKind, OfferState, Settle
from routing.scripts import (
    LuaScript,
    Refused,
    ScriptRunner,
    ScriptStep,
    as_bool,
    as_int,
    hash_set_get,
    list_keep_latest,
    sorted_sets_remove,
)
from tests.support.paths import ROOT

LUA = Path(str(resources.files("routing.lua")))
SCRIPTS = sorted(path.stem for path in LUA.glob("*.lua"))
_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")
# Hash fields of the adviser, offer and session hashes; not key names.
FIELDS = {
    "state",
    "since",
    "skills",
    "device",
    "call_sid",
    "offer_id",
    "wrap_until",
    "last_call",
    "last_product",
    "desk_seen",
    "adviser",
    "product",
    "score",
    "created",
    "connected",
    "seq",
    "data",
}
SYNTAX = {"refused", "-inf", "1", "", "%.0f", "[^,]+", "^(.-){}(.*)$", "^(%d+):", "table", "number"}
STATES = {
    *(s.value for s in AdviserState),
    *(s.value for s in OfferState),
    *(s.value for s in OfferKind),
    *(s.value for s in Settle),
    *(s.value for s in Command),
    *REFUSALS,
}


def _literals(name: str) -> list[str]:
    text = "\n".join(
        line.split("--", 1)[0] for line in (LUA / f"{name}.lua").read_text().splitlines()
    )
    return _LITERAL.findall(text)


def test_the_folder_holds_every_script_and_each_is_used() -> None:
    sources = "\n".join(
        path.read_text()
        for package in ("routing", "ivr", "api")  # api: the staff sign-in limits
        for path in (ROOT / package).rglob("*.py")
    )
    assert len(SCRIPTS) >= 10
    unused = [name for name in SCRIPTS if name != "chain" and f'"{name}"' not in sources]
    assert unused == []
    assert "redis.call(" not in sources  # no Lua written inline in Python


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_script_builds_no_key_name_of_its_own(name: str) -> None:
    for literal in _literals(name):
        assert keys.PREFIX not in literal
        assert not re.fullmatch(r"[a-z-]+:|:[a-z-]+", literal), f"{name}.lua: {literal!r}"


@pytest.mark.parametrize(
    "name", ["adviser_command", "offer_match", "offer_settle", "advisers_working"]
)
def test_every_word_a_routing_script_compares_is_a_state_of_the_code(name: str) -> None:
    """Renaming an enum value without the script (or the other way round) fails here."""
    unknown = [
        literal
        for literal in _literals(name)
        if literal not in STATES | FIELDS | SYNTAX and not literal.isupper()
    ]
    assert unknown == []


def test_the_checker_above_can_fail() -> None:
    assert "on-call" not in STATES | FIELDS | SYNTAX  # a misspelt state would be reported
    assert re.fullmatch(r"[a-z-]+:|:[a-z-]+", "available:")


def test_key_templates_name_the_same_keys_as_the_functions() -> None:
    for name in (keys.queue, keys.available, keys.adviser, keys.offer, keys.call_offer):
        before, after = keys.template(name).split(keys.PLACEHOLDER)
        assert before + "vog_np" + after == name("vog_np")


_SET = LuaScript("test_set", "redis.call('SET', KEYS[1], ARGV[1]) return 1")
_REFUSE = LuaScript("test_refuse", "if ARGV[1] == 'no' then return {'refused', -1} end return 1")
_GET = LuaScript("test_get", "return redis.call('GET', KEYS[1])")


async def test_steps_run_as_one_script_and_are_read_by_step(
    redis_client: aioredis.Redis,
) -> None:
    runner = ScriptRunner(redis_client)
    write = ScriptStep(_SET, keys=["t:a"], args=["42"], decode=as_bool)
    read = ScriptStep(_GET, keys=["t:a"], args=[], decode=lambda raw: int(raw) + 1)
    done = await runner.run(write, read)
    assert (done.of(read), done.of(write)) == (43, True)
    with pytest.raises(KeyError):
        done.of(ScriptStep(_GET, keys=["t:a"], args=[], decode=as_int))


async def test_a_refusing_step_stops_the_chain(redis_client: aioredis.Redis) -> None:
    runner = ScriptRunner(redis_client)
    guard = ScriptStep(_REFUSE, keys=[], args=["no"], decode=as_int)
    write = ScriptStep(_SET, keys=["t:b"], args=["1"], decode=as_bool)
    with pytest.raises(Refused) as refused:
        await runner.run(guard, write)
    assert refused.value.reason == -1
    assert await redis_client.exists("t:b") == 0  # nothing after the refusal ran


async def test_a_script_redis_forgot_is_loaded_again(redis_client: aioredis.Redis) -> None:
    runner = ScriptRunner(redis_client)
    step = ScriptStep(_SET, keys=["t:c"], args=["1"], decode=as_bool)
    assert await runner.run_one(step)
    await redis_client.script_flush()
    assert await runner.run_one(ScriptStep(_SET, keys=["t:c"], args=["2"], decode=as_bool))
    assert await redis_client.get("t:c") == "2"


async def test_a_hash_is_set_read_after_the_set_and_kept_alive(
    redis_client: aioredis.Redis,
) -> None:
    """The survey's and the conference's writes: set, read another field, renew the TTL."""
    runner = ScriptRunner(redis_client)
    assert await runner.run_one(hash_set_get("t:h", 60, {"version": "v1"})) is None
    assert await runner.run_one(hash_set_get("t:h", 60, {"score": 7}, read="recorded")) is None
    assert await runner.run_one(hash_set_get("t:h", 90, {"recorded": "1"}, read="score")) == "7"
    assert await runner.run_one(hash_set_get("t:h", 90, {"score": 8}, read="recorded")) == "1"
    assert await redis_client.hgetall("t:h") == {"version": "v1", "score": "8", "recorded": "1"}
    assert 60 < await redis_client.ttl("t:h") <= 90


async def test_a_list_keeps_the_latest_values_first(redis_client: aioredis.Redis) -> None:
    """The handling times per product: the newest first, only the latest few, a TTL."""
    runner = ScriptRunner(redis_client)
    for value in range(1, 8):
        await runner.run_one(list_keep_latest("t:l", 60, f"{value}.0", keep=5))
    assert await redis_client.lrange("t:l", 0, -1) == ["7.0", "6.0", "5.0", "4.0", "3.0"]
    assert 0 < await redis_client.ttl("t:l") <= 60


async def test_a_member_leaves_each_sorted_set(redis_client: aioredis.Redis) -> None:
    """A verified try is no failure: it leaves both failure sets (by number, by caller)."""
    runner = ScriptRunner(redis_client)
    await redis_client.zadd("t:z1", {"CA1:1": 1, "CA2:1": 2})
    await redis_client.zadd("t:z2", {"CA1:1": 1})
    assert await runner.run_one(sorted_sets_remove(["t:z1", "t:z2", "t:z3"], "CA1:1")) == 2
    assert await redis_client.zrange("t:z1", 0, -1) == ["CA2:1"]
    assert await redis_client.exists("t:z2") == 0
