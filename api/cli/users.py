"""`kcc users list|set|reset-password|deactivate` and `kcc audit users`: the staff accounts from
the command line, through the same rules and audit log as the supervisor page
(api/user_admin.py). The actor in the log is `cli:<login name>`."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from sqlmodel import Session

T = TypeVar("T")


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"


def cli_actor() -> str:
    """Who ran the command, as the audit log names them."""
    try:
        login = os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        login = "unknown"
    return f"cli:{login}"


@contextmanager
def _database() -> Iterator[Callable[[Callable[[Session], T]], T]]:
    from api.cli.main import _fail, _settings
    from api.database.engine import session_scope
    from api.database.schema import SchemaError, open_database

    try:
        engine = open_database(_settings().database_url)
    except SchemaError as exc:
        raise _fail(exc.message) from exc

    def run(work: Callable[[Session], T]) -> T:
        from api.accounts import UserError

        try:
            with session_scope(engine) as session:
                return work(session)
        except UserError as exc:
            raise _fail(exc.message) from exc

    try:
        yield run
    finally:
        engine.dispose()


def _products() -> list[str]:
    from api.cli.main import _fail, _settings
    from api.database.schema import SchemaError
    from api.services import current_flow
    from flows.errors import FlowInvalid

    try:
        return list(current_flow(_settings()).engine.flow.products)
    except SchemaError as exc:
        raise _fail(exc.message) from exc
    except FlowInvalid as exc:
        raise _fail(f"the flow is invalid, cannot check the skills: {exc}", 2) from exc


def register_user_commands(users_app: typer.Typer) -> None:
    @users_app.command("list")
    def users_list(
        output: Annotated[
            Format, typer.Option("--format", help="table (for people) or json (for scripts).")
        ] = Format.TABLE,
    ) -> None:
        """Every staff account: name, role, skills, device, active."""
        from api.accounts import device_of
        from api.user_admin import list_users, skills_of

        with _database() as run:
            rows = run(
                lambda s: [
                    {
                        "name": u.name,
                        "role": u.role.value,
                        "skills": skills_of(u),
                        "device": device_of(u),
                        "active": u.active,
                    }
                    for u in list_users(s)
                ]
            )
        if output is Format.JSON:
            typer.echo(json.dumps(rows, indent=2))
            return
        typer.echo("name\trole\tskills\tdevice\tactive")
        for row in rows:
            skills = ",".join(row["skills"]) or "all"  # type: ignore[arg-type]
            active = "yes" if row["active"] else "no"
            typer.echo(f"{row['name']}\t{row['role']}\t{skills}\t{row['device']}\t{active}")

    @users_app.command("set")
    def users_set(
        name: Annotated[str, typer.Argument(help="The account's login name.")],
        skills: Annotated[
            str | None,
            typer.Option(
                metavar="PRODUCTS", help="Advisers: products, e.g. vog_np,pardon ('' = all)."
            ),
        ] = None,
        device: Annotated[
            str | None,
            typer.Option(metavar="DEVICE", help="What rings: client:NAME or +31... ."),
        ] = None,
        role: Annotated[
            str | None, typer.Option(metavar="ROLE", help="supervisor or adviser.")
        ] = None,
    ) -> None:
        """Change an account's skills, device or role (recorded in the audit log)."""
        from api.accounts import Role
        from api.cli.main import _fail
        from api.user_admin import UserChange, change_user, skills_of

        if skills is None and device is None and role is None:
            raise _fail("nothing to change: give --skills, --device or --role", 2)
        try:
            chosen = Role(role) if role is not None else None
        except ValueError as exc:
            raise _fail(f"unknown role {role!r} (supervisor or adviser)", 2) from exc
        skill_list = None if skills is None else [s for s in skills.split(",") if s.strip()]
        products = _products() if skill_list else []
        change = UserChange(skills=skill_list, device=device, role=chosen)
        actor = cli_actor()
        with _database() as run:
            user = run(
                lambda s: change_user(s, actor=actor, name=name, change=change, products=products)
            )
        shown = ",".join(skills_of(user)) or "all"
        typer.echo(f"{user.name}: {user.role.value}; skills: {shown}; device: {user.device}")

    @users_app.command("reset-password")
    def users_reset_password(
        name: Annotated[str, typer.Argument(help="The account's login name.")],
        prompt: Annotated[
            bool, typer.Option("--prompt", help="Type the new password instead.")
        ] = False,
    ) -> None:
        """Give an account a new password: generated and shown once, or KCC_PASSWORD, or typed
        (--prompt)."""
        from api.cli.main import _fail
        from api.user_admin import reset_password

        password = os.environ.get("KCC_PASSWORD")
        if prompt and password is None:
            if not sys.stdin.isatty():
                raise _fail("--prompt needs a terminal (or set KCC_PASSWORD)", 2)
            password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        actor = cli_actor()
        with _database() as run:
            new = run(lambda s: reset_password(s, actor=actor, name=name, password=password))
        if password is None:
            typer.echo(f"new password for {name} (shown once): {new}")
        else:
            typer.echo(f"password of {name} changed")

    @users_app.command("deactivate")
    def users_deactivate(
        name: Annotated[str, typer.Argument(help="The account's login name.")],
        reactivate: Annotated[
            bool, typer.Option("--reactivate", help="Let the account sign in again.")
        ] = False,
    ) -> None:
        """Stop an account from signing in (its tokens stop working), or --reactivate it."""
        from api.user_admin import set_active

        actor = cli_actor()
        with _database() as run:
            run(lambda s: set_active(s, actor=actor, name=name, active=reactivate))
        typer.echo(f"{name} {'reactivated' if reactivate else 'deactivated'}")


def register_user_audit_command(audit_app: typer.Typer) -> None:
    @audit_app.command("users")
    def audit_users(
        name: Annotated[
            str | None, typer.Option("--user", metavar="NAME", help="Only this account.")
        ] = None,
    ) -> None:
        """Changes to staff accounts, newest first: when, who, what, whose, the details."""
        from api.user_admin import user_audit

        with _database() as run:
            rows = run(
                lambda s: [
                    (r.at, r.actor, r.action, r.subject, r.details)
                    for r in user_audit(s, subject=name)
                ]
            )
        typer.echo("at (UTC)\tactor\taction\tuser\tdetails")
        for at, actor, action, subject, details in rows:
            typer.echo(f"{at:%Y-%m-%d %H:%M:%S}\t{actor}\t{action}\t{subject}\t{details}")
        typer.echo(f"{len(rows)} change(s)")
