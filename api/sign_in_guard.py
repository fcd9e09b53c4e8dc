"""Limits on staff sign-in: failed attempts per account name and per client address, in Redis so
every instance counts together.

An attempt is counted before the password is checked (so guesses sent at once cannot all slip
under the limit) and given back when it was right. Past a limit the answer is `too_many_attempts`
with the seconds to wait, the same for a name that exists and one that does not. While Redis is
away attempts go uncounted (staff can still sign in), and say so in the log. The argon2
check itself runs in a worker thread, at most ARGON2_AT_ONCE at a time: a crowd of guessers
waits for its turn there and never takes the event loop (or the cores) from the webhooks.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence

from anyio import CapacityLimiter
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flows.errors import ErrorKind, KccError
from routing import keys
from routing.scripts import LuaScript, Refused, ScriptRunner, ScriptStep, as_int
from routing.sealing import Pseudonymizer

log = logging.getLogger(__name__)
REDIS_AWAY = (RedisConnectionError, RedisTimeoutError)
ARGON2_AT_ONCE = 2  # password checks running at once, per instance (each takes ~64 MB and a core)

_RESERVE = LuaScript.named("login_reserve")
_SETTLE = LuaScript.named("login_settle")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TooManyAttempts(KccError):
    """Too many failed sign-ins for this account or from this address; try again later."""

    code = "too_many_attempts"
    kind = ErrorKind.LIMITED

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed sign-ins; try again later", retry_after=retry_after)
        self.retry_after = retry_after


class SignInGuard:
    def __init__(
        self,
        redis: Redis,
        pseudonymize: Pseudonymizer,
        *,
        account_limit: int,
        address_limit: int,
        trusted_proxies: Sequence[Network] = (),
        window_seconds: int = keys.LOGIN_WINDOW_SECONDS,
    ) -> None:
        self.trusted_proxies = tuple(trusted_proxies)
        self.argon2 = CapacityLimiter(ARGON2_AT_ONCE)  # the worker threads checking passwords
        self._scripts = ScriptRunner(redis)
        self._pseudonymize = pseudonymize
        self._limits = (account_limit, address_limit)
        self._window = window_seconds

    def _keys(self, name: str, address: str) -> list[str]:
        return [
            keys.login_attempts_by_account(self._pseudonymize("account\x00" + name.lower())),
            keys.login_attempts_by_address(self._pseudonymize("address\x00" + address)),
        ]

    async def reserve(self, name: str, address: str) -> None:
        """Count an attempt; raises TooManyAttempts when a limit is reached already."""
        args = [*self._limits, self._window]
        step = ScriptStep(_RESERVE, self._keys(name, address), args, as_int)
        try:
            await self._scripts.run_one(step)
        except Refused as refused:
            raise TooManyAttempts(refused.reason) from None
        except REDIS_AWAY:
            # Staff must still sign in while Redis is away (to publish a flow, say): uncounted,
            # and the argon2 pool still bounds the pace of any guessing.
            log.warning("sign-in limits unavailable: Redis is away; the attempt is not counted")

    async def succeeded(self, name: str, address: str) -> None:
        try:
            await self._scripts.run_one(ScriptStep(_SETTLE, self._keys(name, address), [], as_int))
        except REDIS_AWAY:
            log.warning("sign-in limits unavailable: Redis is away")


def trusted_networks(setting: str) -> tuple[Network, ...]:
    """KCC_TRUSTED_PROXIES: comma-separated addresses or networks of the proxies in front."""
    parts = (part.strip() for part in setting.split(","))
    return tuple(ipaddress.ip_network(part, strict=False) for part in parts if part)


def client_address(peer: str | None, headers: Mapping[str, str], trusted: Sequence[Network]) -> str:
    """Who is signing in: the peer, or, when the peer is a trusted proxy, the last address in
    X-Forwarded-For that is not one of the trusted proxies (anything before it can be forged)."""
    address = peer or "unknown"
    if not trusted or not _is_trusted(address, trusted):
        return address
    hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return address


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
