"""Signed bearer tokens (JWT, HS256) for the staff API, and their revocation.

A token names the user by id as well as by name (`uid`: a deleted account's token does not work
for a new account of the same name), the user's token version it was issued under (`ver`:
raising it signs out all of the user's tokens, see accounts.revoke_all_tokens) and an id of its
own (`jti`: signing out puts just this token on a revocation list in Redis until it expires).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flows.errors import ErrorKind, KccError
from routing import keys

log = logging.getLogger(__name__)
ALGORITHM = "HS256"
TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # a jti goes into a Redis key name


class InvalidToken(KccError):
    """The token is malformed, badly signed, expired or lacks a claim."""

    code = "bad_token"
    kind = ErrorKind.UNAUTHORIZED


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    role: str
    exp: datetime
    uid: int
    ver: int
    jti: str


def issue_token(
    *,
    subject: str,
    role: str,
    user_id: int,
    version: int,
    secret: str,
    ttl_seconds: int,
    now: datetime | None = None,
) -> str:
    issued = now if now is not None else datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": role,
        "uid": user_id,
        "ver": version,
        "jti": secrets.token_urlsafe(16),
        "iat": issued,
        "exp": issued + timedelta(seconds=ttl_seconds),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(token: str, *, secret: str) -> TokenClaims:
    try:
        # algorithms is pinned so a token cannot choose its own (e.g. "none").
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "role", "uid", "ver", "jti", "iat", "exp"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    sub, role, exp = claims["sub"], claims["role"], claims["exp"]
    uid, ver, jti = claims["uid"], claims["ver"], claims["jti"]
    texts = all(isinstance(value, str) for value in (sub, role, jti))
    numbers = all(type(value) is int for value in (uid, ver)) and isinstance(exp, int | float)
    if not texts or not numbers or not TOKEN_ID.fullmatch(jti):
        raise InvalidToken("claims sub, role and jti must be strings, uid, ver and exp numbers")
    return TokenClaims(
        sub=sub, role=role, exp=datetime.fromtimestamp(exp, UTC), uid=uid, ver=ver, jti=jti
    )


class RevokedTokens:
    """Tokens signed out one by one (POST /api/logout), remembered until they would expire."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def revoke(self, claims: TokenClaims, *, now: datetime | None = None) -> None:
        left = int((claims.exp - (now or datetime.now(UTC))).total_seconds()) + 1
        if left > 0:
            await self._redis.set(keys.revoked_token(claims.jti), "1", ex=left)

    async def is_revoked(self, claims: TokenClaims) -> bool:
        """False while Redis is away: staff keep working through an outage (a token signed out
        in the last hours works until Redis is back; a version bump still holds)."""
        try:
            return bool(await self._redis.exists(keys.revoked_token(claims.jti)))
        except (RedisConnectionError, RedisTimeoutError):
            log.warning("token revocations unavailable: Redis is away")
            return False
