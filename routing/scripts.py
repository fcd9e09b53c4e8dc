"""Every Lua script of kcc-ivr (routing/lua/), and the one way they run.

A `ScriptStep` is one script with its own KEYS and ARGV and a `decode` that turns what Redis
answered into a typed value. `ScriptRunner.run` runs one or more steps as ONE script (EVALSHA
of routing/lua/chain.lua wrapped around their bodies): one round trip and one atomic change,
each step seeing only its own KEYS and ARGV, exactly as if it ran alone. A step that answers
`{'refused', code}` stops the chain; `run` raises `Refused` with the code. The results are read
by step (`Outcomes.of(step)`), never by position.

EVALSHA directly rather than redis-py's registered scripts: those check on every call whether
they were given a pipeline, an isinstance against a Protocol (slow). After a Redis restart
forgot the script, it is loaded again. Key names come from routing/keys.py: the steps are built
by the owners of the keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from flows.errors import ErrorKind, KccError

T = TypeVar("T")
Arg = str | int | float


class Refused(KccError):
    """A step of a chain refused (answered {'refused', code}); nothing after it ran."""

    code = "script_refused"
    kind = ErrorKind.INTERNAL  # always handled by the step's owner; never reaches anyone

    def __init__(self, reason: int) -> None:
        super().__init__(f"the script refused with {reason}", reason=reason)
        self.reason = reason


@dataclass(frozen=True)
class LuaScript:
    name: str  # the file in routing/lua/, without .lua
    body: str

    @classmethod
    def named(cls, name: str) -> LuaScript:
        return _script(name)


@cache
def _script(name: str) -> LuaScript:
    body = resources.files("routing.lua").joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return LuaScript(name, body)


def as_int(raw: Any) -> int:
    return int(raw)


def as_bool(raw: Any) -> bool:
    return bool(raw)


@dataclass(frozen=True, eq=False)
class ScriptStep(Generic[T]):
    script: LuaScript
    keys: Sequence[str]
    args: Sequence[Arg]
    decode: Callable[[Any], T]


class Outcomes:
    """What each step of a chain answered; `of(step)` decodes one step's answer."""

    def __init__(self, steps: Sequence[ScriptStep[Any]], raw: Sequence[Any]) -> None:
        if len(raw) != len(steps):
            raise ValueError(f"{len(steps)} steps ran but {len(raw)} answered")
        self._steps = steps
        self._raw = raw

    def of(self, step: ScriptStep[T]) -> T:
        try:  # steps compare by identity (eq=False)
            raw = self._raw[self._steps.index(step)]
        except ValueError:
            raise KeyError(f"{step.script.name} was not a step of this chain") from None
        return step.decode(raw)


def as_text(raw: Any) -> str | None:
    return None if raw is None else str(raw)


_HASH_SET_GET = LuaScript.named("hash_set_get")
_LIST_KEEP_LATEST = LuaScript.named("list_keep_latest")
_SORTED_SETS_REMOVE = LuaScript.named("sorted_sets_remove")


def hash_set_get(
    key: str, ttl_seconds: int, fields: Mapping[str, Arg], *, read: str = ""
) -> ScriptStep[str | None]:
    """Set `fields` of the hash `key` and renew its time to live; the step answers the field
    `read` as it is after the set (None: absent, or none asked). One command on the shared
    connection where a MULTI/EXEC took a pooled connection and five commands."""
    args: list[Arg] = [ttl_seconds, read]
    for field, value in fields.items():
        args += [field, value]
    return ScriptStep(_HASH_SET_GET, keys=[key], args=args, decode=as_text)


def list_keep_latest(key: str, ttl_seconds: int, value: Arg, *, keep: int) -> ScriptStep[int]:
    """Put `value` at the head of the list `key`, keep the latest `keep`, renew the TTL."""
    if keep < 1:  # LTRIM 0 -1 would keep them all
        raise ValueError(f"keep at least one value, not {keep}")
    return ScriptStep(_LIST_KEEP_LATEST, keys=[key], args=[ttl_seconds, keep, value], decode=as_int)


def sorted_sets_remove(sorted_sets: Sequence[str], member: str) -> ScriptStep[int]:
    """Take `member` out of each of the sorted sets; the step answers how many held it."""
    return ScriptStep(_SORTED_SETS_REMOVE, keys=list(sorted_sets), args=[member], decode=as_int)


def chain_lua(scripts: Sequence[LuaScript]) -> str:
    """One script that runs each body as a function of its own KEYS and ARGV."""
    functions = ", ".join(f"function(KEYS, ARGV)\n{script.body}\nend" for script in scripts)
    return LuaScript.named("chain").body % functions


class ScriptRunner:
    """Runs steps as one script; the script of each combination is made and hashed once."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._chains: dict[tuple[str, ...], tuple[str, str]] = {}  # script names: (lua, sha1)

    async def run_one(self, step: ScriptStep[T]) -> T:
        """Run one step; raises Refused when it refused."""
        return (await self.run(step)).of(step)

    async def run(self, *steps: ScriptStep[Any]) -> Outcomes:
        """Run the steps as one script. Raises Refused when a step refused."""
        names = tuple(step.script.name for step in steps)
        chain = self._chains.get(names)
        if chain is None:
            lua = chain_lua([step.script for step in steps])
            chain = self._chains[names] = (lua, hashlib.sha1(lua.encode()).hexdigest())
        counts: list[Arg] = []
        keys: list[str] = []
        args: list[Arg] = []
        for step in steps:
            counts += [len(step.keys), len(step.args)]
            keys += step.keys
            args += step.args
        lua, sha = chain
        try:
            reply = await self._redis.evalsha(sha, len(keys), *keys, *counts, *args)
        except NoScriptError:
            await self._redis.script_load(lua)
            reply = await self._redis.evalsha(sha, len(keys), *keys, *counts, *args)
        results = list(reply)
        if len(results) == 2 and results[0] == "refused":
            raise Refused(int(results[1]))
        return Outcomes(steps, results)
