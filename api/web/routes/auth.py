"""Staff sign-in (OAuth2 password flow -> bearer JWT) and who the signed-in user is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.accounts import Role, UserPublic, authenticate
from api.database.engine import session_scope
from api.web.deps import ServicesDep, StaffUser
from api.web.errors import NotSignedIn
from api.web.tokens import issue_token

router = APIRouter(prefix="/api", tags=["auth"])

# One message for an unknown name and a wrong password, so a caller cannot probe for names.
BAD_LOGIN = "incorrect user name or password"


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    role: Role


@router.post("/token")
def login(services: ServicesDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    # The scope commits a password hash upgraded by authenticate.
    with session_scope(services.db_engine) as session:
        user = authenticate(session, name=form.username, password=form.password)
    if user is None:
        raise NotSignedIn("bad_login", BAD_LOGIN)
    settings = services.settings
    token = issue_token(
        subject=user.name,
        role=user.role.value,
        secret=settings.secret_key,
        ttl_seconds=settings.token_ttl_seconds,
    )
    return Token(access_token=token, role=user.role)


@router.get("/me")
def me(user: StaffUser) -> UserPublic:
    return UserPublic.model_validate(user)
