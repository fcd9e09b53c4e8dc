"""KCC_REDIS_URL naming Redis behind Sentinel: `redis+sentinel://`.

    redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]

The hosts are the Sentinels (port 26379 when left out), MASTER the name they monitor
(`sentinel monitor MASTER ...`), DB the database (0 when left out). The user and password are the
Redis servers'; the Sentinels are asked without one. The same form as the `redis-sentinel-url`
package and Sidekiq's; kombu's `sentinel://` takes the master name from a transport option instead,
which a single setting cannot carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

SCHEME = "redis+sentinel"
FORM = "redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]"
DEFAULT_SENTINEL_PORT = 26379


class BadSentinelUrl(ValueError):
    """The URL names Sentinel but cannot be used; the message never repeats the password."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"not a usable Sentinel URL: {problem} (the form is {FORM})")


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(f"{SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Raises BadSentinelUrl saying what is wrong."""
    if not is_sentinel_url(url):
        raise BadSentinelUrl(f"the scheme must be {SCHEME}://")
    rest = url[len(SCHEME) + 3 :]
    if "?" in rest or "#" in rest:
        raise BadSentinelUrl("it takes no query string or fragment")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
        if password is None:
            raise BadSentinelUrl("a user needs a password (USER:PASSWORD@ or :PASSWORD@)")
    sentinels = tuple(_address(part) for part in hosts.split(","))
    path = path.removesuffix("/")  # a trailing slash is harmless
    parts = path.split("/")
    if not parts[0]:
        raise BadSentinelUrl("the master name is missing after the Sentinels")
    if len(parts) > 2:
        raise BadSentinelUrl("after the master name only a database number may follow")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise BadSentinelUrl(f"the database must be a number, not {parts[1]!r}")
        db = int(parts[1])
    return SentinelUrl(
        sentinels=sentinels,
        master=unquote(parts[0]),
        db=db,
        username=username,
        password=password,
    )


def _address(part: str) -> tuple[str, int]:
    if not part:
        raise BadSentinelUrl("a Sentinel's host is empty (HOST:PORT, separated by commas)")
    split = urlsplit(f"//{part}")  # brackets around an IPv6 address, as in any URL
    try:
        port = split.port
    except ValueError:
        raise BadSentinelUrl(f"{part!r} has no valid port") from None
    if not split.hostname:
        raise BadSentinelUrl(f"{part!r} is not HOST:PORT")
    return split.hostname, port or DEFAULT_SENTINEL_PORT
