"""Several Lua scripts run as one: one round trip to Redis, and one atomic change.

A webhook that needs three scripts (commit the session, queue the call, match it with an
adviser) pays a Redis round trip for each, and each costs more of the caller's time in redis-py
than in Redis. A `ScriptStep` is one script's Lua with its own KEYS and ARGV; `ScriptChain` runs
steps in order inside one EVALSHA, each step seeing only its own KEYS and ARGV, exactly as if it
ran alone. When the first step returns 0 or a negative number (it refused: e.g. another delivery
of the webhook committed first) the others do not run, and `run` raises `Refused` with it.

Key names still come from routing/keys.py: the steps are built by the owners of the keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError


class Refused(Exception):
    """The first step of a chain refused (returned `code` <= 0); nothing else ran."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the script refused with {code}")
        self.code = code


@dataclass(frozen=True)
class ScriptStep:
    lua: str  # a script body that reads KEYS and ARGV and returns a value
    keys: list[str]
    args: list[str | int | float]


_RUN = """
local function slice(list, first, count)
  local part = {}
  for i = 1, count do part[i] = list[first + i - 1] end
  return part
end
local steps = {%s}
local counts = #steps * 2
local next_key, next_arg = 1, counts + 1
local results = {}
for i = 1, #steps do
  local key_count, arg_count = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local result = steps[i](slice(KEYS, next_key, key_count), slice(ARGV, next_arg, arg_count))
  next_key, next_arg = next_key + key_count, next_arg + arg_count
  if i == 1 and type(result) == 'number' and result <= 0 then return {'refused', result} end
  if result == nil then result = false end
  results[i] = result
end
return results
"""


def chain_lua(bodies: Sequence[str]) -> str:
    """One script that runs each body as a function of its own KEYS and ARGV."""
    functions = ", ".join(f"function(KEYS, ARGV)\n{body}\nend" for body in bodies)
    return _RUN % functions


class ScriptChain:
    """Runs steps as one script; the script of each combination is loaded once.

    EVALSHA directly rather than redis-py's registered scripts: those check on every call
    whether they were given a pipeline, an isinstance against a Protocol (slow). After a Redis
    restart forgot the script, it is loaded again.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._scripts: dict[tuple[str, ...], tuple[str, str]] = {}  # bodies: (lua, sha1)

    async def run(self, steps: Sequence[ScriptStep]) -> list[Any]:
        """Each step's result, in order. Raises Refused when the first step refused."""
        bodies = tuple(step.lua for step in steps)
        script = self._scripts.get(bodies)
        if script is None:
            lua = chain_lua(bodies)
            script = self._scripts[bodies] = (lua, hashlib.sha1(lua.encode()).hexdigest())
        counts: list[str | int | float] = []
        keys: list[str] = []
        args: list[str | int | float] = []
        for step in steps:
            counts += [len(step.keys), len(step.args)]
            keys += step.keys
            args += step.args
        lua, sha = script
        try:
            reply = await self._redis.evalsha(sha, len(keys), *keys, *counts, *args)
        except NoScriptError:
            await self._redis.script_load(lua)
            reply = await self._redis.evalsha(sha, len(keys), *keys, *counts, *args)
        results = list(reply)
        if len(results) == 2 and results[0] == "refused":
            raise Refused(int(results[1]))
        return results
