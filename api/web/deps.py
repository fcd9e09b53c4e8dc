"""What the routes depend on: the services, and the signed-in staff member with their role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Engine

from api.accounts import Role, User
from api.database.engine import session_scope
from api.services import Services
from api.web.errors import Forbidden, NotSignedIn
from api.web.tokens import InvalidToken, RevokedTokens, TokenClaims, decode_token

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)
BAD_TOKEN = "invalid or expired token"


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def token_claims(
    services: ServicesDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> TokenClaims:
    """The claims of a well-signed, unexpired bearer token; 401 otherwise."""
    if not token:
        raise NotSignedIn("not_signed_in", "not signed in")
    try:
        return decode_token(token, secret=services.settings.secret_key)
    except InvalidToken as exc:
        raise NotSignedIn("bad_token", BAD_TOKEN) from exc


def _user_of(engine: Engine, claims: TokenClaims) -> User | None:
    with session_scope(engine) as session:
        return session.get(User, claims.uid)


async def current_user(
    services: ServicesDep, claims: Annotated[TokenClaims, Depends(token_claims)]
) -> User:
    """The active user the bearer token names; 401 otherwise."""
    if await RevokedTokens(services.redis).is_revoked(claims):  # signed out (POST /api/logout)
        raise NotSignedIn("bad_token", BAD_TOKEN)
    # The database, not the token, is the authority on role and standing: a user disabled or
    # demoted after login loses access at once. The id and the token version must match too: a
    # new account under a deleted one's name, or a changed password or role, signs it out.
    user = await anyio.to_thread.run_sync(_user_of, services.db_engine, claims)
    if user is None or not user.active:
        raise NotSignedIn("bad_token", BAD_TOKEN)
    if (user.name, user.token_version) != (claims.sub, claims.ver):
        raise NotSignedIn("bad_token", BAD_TOKEN)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def _supervisor(user: CurrentUser) -> User:
    if user.role is not Role.SUPERVISOR:
        raise Forbidden("role_required", "requires role supervisor", role=Role.SUPERVISOR.value)
    return user


def _adviser(user: CurrentUser) -> User:
    if user.role is not Role.ADVISER:
        raise Forbidden("role_required", "requires role adviser", role=Role.ADVISER.value)
    return user


def _staff(user: CurrentUser) -> User:
    """Supervisors and advisers: everything of /api that is not one role's own."""
    if user.role not in (Role.SUPERVISOR, Role.ADVISER):
        raise Forbidden(
            "role_required", "requires role supervisor or adviser", role=Role.ADVISER.value
        )
    return user


def _wallboard_viewer(user: CurrentUser) -> User:
    """The wallboard: supervisors, and the room's screen (viewer), which may see nothing else."""
    if user.role not in (Role.SUPERVISOR, Role.VIEWER):
        raise Forbidden(
            "role_required", "requires role supervisor or viewer", role=Role.VIEWER.value
        )
    return user


# The role each gate lets in, the first the one it is for (the schema's 403 names them).
ROLE_GATES: dict[Callable[..., User], tuple[Role, ...]] = {
    _supervisor: (Role.SUPERVISOR,),
    _adviser: (Role.ADVISER,),
    _staff: (Role.ADVISER, Role.SUPERVISOR),
    _wallboard_viewer: (Role.SUPERVISOR, Role.VIEWER),
}

SupervisorUser = Annotated[User, Depends(_supervisor)]
AdviserUser = Annotated[User, Depends(_adviser)]
StaffUser = Annotated[User, Depends(_staff)]  # not a viewer
WallboardUser = Annotated[User, Depends(_wallboard_viewer)]
