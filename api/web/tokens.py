"""Signed bearer tokens (JWT, HS256) for the staff API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from flows.errors import ErrorKind, KccError

ALGORITHM = "HS256"


class InvalidToken(KccError):
    """The token is malformed, badly signed, expired or lacks a claim."""

    code = "bad_token"
    kind = ErrorKind.UNAUTHORIZED


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    role: str
    exp: datetime


def issue_token(
    *, subject: str, role: str, secret: str, ttl_seconds: int, now: datetime | None = None
) -> str:
    issued = now if now is not None else datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": role,
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
            options={"require": ["sub", "role", "iat", "exp"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    sub, role, exp = claims["sub"], claims["role"], claims["exp"]
    if not isinstance(sub, str) or not isinstance(role, str) or not isinstance(exp, int | float):
        raise InvalidToken("claims sub and role must be strings, exp a number")
    return TokenClaims(sub=sub, role=role, exp=datetime.fromtimestamp(exp, UTC))
