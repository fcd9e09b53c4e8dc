"""What the routes depend on: the services, and the signed-in staff member with their role."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from api.accounts import Role, User, get_user
from api.database.engine import session_scope
from api.services import Services
from api.web.errors import Forbidden, NotSignedIn
from api.web.tokens import InvalidToken, decode_token

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)
BAD_TOKEN = "invalid or expired token"


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def current_user(
    services: ServicesDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    """The active user the bearer token names; 401 otherwise."""
    if not token:
        raise NotSignedIn("not_signed_in", "not signed in")
    try:
        claims = decode_token(token, secret=services.settings.secret_key)
    except InvalidToken as exc:
        raise NotSignedIn("bad_token", BAD_TOKEN) from exc
    # The database, not the token, is the authority on role and standing: a user disabled or
    # demoted after login loses access at once.
    with session_scope(services.db_engine) as session:
        user = get_user(session, claims.sub)
    if user is None or not user.active:
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


SupervisorUser = Annotated[User, Depends(_supervisor)]
AdviserUser = Annotated[User, Depends(_adviser)]
StaffUser = Annotated[User, Depends(_staff)]  # not a viewer
WallboardUser = Annotated[User, Depends(_wallboard_viewer)]
