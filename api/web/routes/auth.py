"""Staff sign-in (OAuth2 password flow -> bearer JWT) and who the signed-in user is."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from sqlalchemy import Engine

from api.accounts import Role, User, UserPublic, authenticate
from api.database.engine import session_scope
from api.sign_in_guard import client_address
from api.web.deps import ServicesDep, StaffUser, token_claims
from api.web.errors import NotSignedIn
from api.web.refusals import refusals
from api.web.tokens import RevokedTokens, TokenClaims, issue_token
from flows.errors import ErrorKind

router = APIRouter(prefix="/api", tags=["auth"])

# One message for an unknown name and a wrong password, so a caller cannot probe for names.
BAD_LOGIN = "incorrect user name or password"


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    role: Role


def _authenticate(engine: Engine, name: str, password: str) -> User | None:
    # The scope commits a password hash upgraded by authenticate.
    with session_scope(engine) as session:
        return authenticate(session, name=name, password=password)


@router.post(
    "/token",
    responses=refusals(ErrorKind.UNAUTHORIZED, ErrorKind.LIMITED, ErrorKind.UNAVAILABLE),
)
async def login(
    request: Request,
    services: ServicesDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    """429 `too_many_attempts` (with Retry-After) past the limits of api/sign_in_guard.py."""
    guard = services.sign_in
    peer = request.client.host if request.client else None
    address = client_address(peer, request.headers, guard.trusted_proxies)
    await guard.reserve(form.username, address)
    # argon2 in a worker thread, a few at a time: guessers queue there, not on the event loop.
    user = await anyio.to_thread.run_sync(
        _authenticate, services.db_engine, form.username, form.password, limiter=guard.argon2
    )
    if user is None or user.id is None:
        raise NotSignedIn("bad_login", BAD_LOGIN)
    await guard.succeeded(form.username, address)
    settings = services.settings
    token = issue_token(
        subject=user.name,
        role=user.role.value,
        user_id=user.id,
        version=user.token_version,
        secret=settings.secret_key,
        ttl_seconds=settings.token_ttl_seconds,
    )
    return Token(access_token=token, role=user.role)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    services: ServicesDep, claims: Annotated[TokenClaims, Depends(token_claims)]
) -> Response:
    """Signs out this token only (the user's other sessions stay signed in)."""
    await RevokedTokens(services.redis).revoke(claims)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me")
def me(user: StaffUser) -> UserPublic:
    return UserPublic.model_validate(user)
