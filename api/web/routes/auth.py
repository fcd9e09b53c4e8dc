"""Staff login (OAuth2 password flow -> bearer JWT) and the dependencies that guard routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol, cast

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel
from sqlalchemy import Engine

from api.accounts import Role, User, UserPublic, authenticate, get_user
from api.database.engine import session_scope
from api.web.tokens import InvalidToken, decode_token, issue_token

router = APIRouter(prefix="/api", tags=["auth"])
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/token")

# One message for an unknown name and a wrong password, so a caller cannot probe for names.
BAD_LOGIN = "incorrect user name or password"
BAD_TOKEN = "invalid or expired token"


class _AuthSettings(Protocol):
    secret_key: str
    token_ttl_seconds: int


class _Services(Protocol):
    db_engine: Engine
    settings: _AuthSettings


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    role: Role


def _services(request: Request) -> _Services:
    return cast(_Services, request.app.state.services)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def current_user(request: Request, token: Annotated[str, Depends(oauth2_scheme)]) -> User:
    """The active user the bearer token names; 401 otherwise."""
    services = _services(request)
    try:
        claims = decode_token(token, secret=services.settings.secret_key)
    except InvalidToken as exc:
        raise _unauthorized(BAD_TOKEN) from exc
    # The database, not the token, is the authority on role and standing: a user disabled or
    # demoted after login loses access at once.
    with session_scope(services.db_engine) as session:
        user = get_user(session, claims.sub)
    if user is None or not user.active:
        raise _unauthorized(BAD_TOKEN)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets through only users with one of these roles (403 otherwise)."""
    allowed = frozenset(roles)
    needed = " or ".join(role.value for role in roles)

    def dependency(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN, detail=f"requires role {needed}"
            )
        return user

    return dependency


SupervisorUser = Annotated[User, Depends(require_role(Role.SUPERVISOR))]


@router.post("/token")
def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    services = _services(request)
    # The scope commits a password hash upgraded by authenticate.
    with session_scope(services.db_engine) as session:
        user = authenticate(session, name=form.username, password=form.password)
    if user is None:
        raise _unauthorized(BAD_LOGIN)
    settings = services.settings
    token = issue_token(
        subject=user.name,
        role=user.role.value,
        secret=settings.secret_key,
        ttl_seconds=settings.token_ttl_seconds,
    )
    return Token(access_token=token, role=user.role)


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
