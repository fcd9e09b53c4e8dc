"""Staff accounts (supervisors and advisers) and signing in with them, for the tests of the staff
API, the pages, the `kcc` command and the running servers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine
from sqlmodel import Session

from api.accounts import Role, create_user
from api.database.engine import make_engine
from tests.support.database import create_schema

SUPERVISOR_PASSWORD = "supervisor-pass"
ADVISER_PASSWORD = "adviser-pass"


@dataclass(frozen=True)
class Account:
    """A staff account to add, and how it signs in."""

    name: str
    role: Role
    password: str
    skills: Sequence[str] | None = None  # an adviser's products; None: all of them
    device: str | None = None  # an adviser's phone; None: their softphone


def supervisor(name: str = "sanne", password: str = SUPERVISOR_PASSWORD) -> Account:
    """A supervisor account."""
    return Account(name, Role.SUPERVISOR, password)


def adviser(
    name: str = "ahmed",
    password: str = ADVISER_PASSWORD,
    *,
    skills: Sequence[str] | None = None,
    device: str | None = None,
) -> Account:
    """An adviser account (all products and the softphone unless told otherwise)."""
    return Account(name, Role.ADVISER, password, skills, device)


SANNE = supervisor()
AHMED = adviser()


def add_staff(engine: Engine, *accounts: Account) -> None:
    """The accounts in the database of `engine`, committed."""
    with Session(engine) as session:
        for account in accounts:
            create_user(
                session,
                name=account.name,
                role=account.role,
                password=account.password,
                skills=None if account.skills is None else list(account.skills),
                device=account.device,
            )
        session.commit()


def add_staff_at(database_url: str, *accounts: Account) -> None:
    """The accounts in the database at `database_url` (a server's, in another process)."""
    engine = make_engine(database_url)
    try:
        add_staff(engine, *accounts)
    finally:
        engine.dispose()


def new_database_with_staff(database_url: str, *accounts: Account) -> None:
    """The schema (see `create_schema`) and the accounts in the new database at `database_url`."""
    engine = make_engine(database_url)
    try:
        create_schema(engine)
        add_staff(engine, *accounts)
    finally:
        engine.dispose()


def _bearer(response: httpx.Response) -> dict[str, str]:
    """The Authorization header for the token of a successful POST /api/token."""
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def signed_in(http: httpx.AsyncClient, account: Account) -> dict[str, str]:
    """The Authorization header of `account`, signed in through POST /api/token."""
    return _bearer(await http.post("/api/token", data=_form(account)))


def signed_in_to(url: str, account: Account) -> dict[str, str]:
    """The Authorization header of `account`, signed in to the running server at `url`."""
    return _bearer(httpx.post(f"{url}/api/token", data=_form(account), timeout=10))


def _form(account: Account) -> dict[str, str]:
    return {"username": account.name, "password": account.password}
