"""The `kcc` command: serve, upgrade the database, check flows, manage users and applications,
and a phone in the terminal."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli.audit import register_audit_commands
from api.cli.flows import register_flow_commands
from api.cli.forecast import register_forecast_command
from api.cli.records import register_records_commands
from api.cli.reports import register_report_command
from api.cli.staffing import register_staffing_command
from api.cli.users import register_user_audit_command, register_user_commands
from api.settings import DEFAULT_FLOW, Settings

if TYPE_CHECKING:
    from flows.model import Flow

app = typer.Typer(
    help="kcc-ivr: IVR and call routing for the Justis contact centre.", no_args_is_help=True
)
flows_app = typer.Typer(
    help="Check, publish and roll back the YAML call flows.", no_args_is_help=True
)
users_app = typer.Typer(help="Manage staff accounts.", no_args_is_help=True)
applications_app = typer.Typer(
    help="Manage the applications callers can ask about.", no_args_is_help=True
)
db_app = typer.Typer(
    help="Upgrade the database's schema to this release, or say where it stands.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(flows_app, name="flows")
app.add_typer(users_app, name="users")
app.add_typer(applications_app, name="applications")
audit_app = typer.Typer(
    help="Read the audit logs (supervisors' monitoring, staff accounts).", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")


MAX_HOLD_SECONDS = 4 * 3600  # a call's session lives 4 h (KCC_SESSION_TTL_SECONDS)
FLOW_DEFAULT_HELP = "the packaged flows/kcc.yaml"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _settings() -> Settings:
    """The settings from the environment, or a clear message naming the bad variable."""
    from pydantic import ValidationError

    from api.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        raise _fail(f"KCC_{field.upper()}: {message}" if field else message) from exc


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT", help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1, metavar="N", help="Worker processes (more than 1 needs KCC_REDIS_URL)."
        ),
    ] = 1,
    demo: Annotated[bool, typer.Option(help="Add demo accounts (development only).")] = False,
) -> None:
    """Run the service with uvicorn."""
    import uvicorn

    from api.cli.demo import seed_demo
    from api.database.schema import SchemaError
    from flows.errors import FlowInvalid

    if "KCC_PUBLIC_URL" not in os.environ:
        # Unset: the URL this server is reached at (a tunnel or proxy must set it explicitly).
        os.environ["KCC_PUBLIC_URL"] = f"http://{host}:{port}"
    settings = _settings()
    if workers > 1 and settings.redis_url is None:
        raise _fail(
            "--workers > 1 needs a shared Redis: set KCC_REDIS_URL "
            "(the embedded store lives in one process)"
        )
    try:
        from api.services import current_flow

        # The schema (SQLite: upgraded; else checked) and the first flow version: once, not in
        # every worker.
        current_flow(settings)
    except SchemaError as exc:
        raise _fail(exc.message) from exc
    except FlowInvalid as exc:
        typer.echo(f"error: the flow {settings.flow} is invalid, refusing to start:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1) from exc
    _refuse_a_second_embedded_instance(settings)
    if demo:
        if settings.env != "dev":
            raise _fail("--demo is for development only")
        for line in seed_demo(settings):
            typer.echo(line)
    uvicorn.run(
        "api.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=settings.access_log,
        proxy_headers=False,  # signatures use KCC_PUBLIC_URL, never forwarded headers
    )


def _shown(url: str) -> str:
    """A database URL fit to print: without its password."""
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database (KCC_DATABASE_URL) to this release's schema.

    Back it up first; run it once, before the new release starts (on PostgreSQL the service
    refuses to start until then; SQLite is upgraded by whatever opens it).
    """
    from sqlalchemy.exc import OperationalError

    from api.database.engine import make_engine
    from api.database.schema import BASELINE, SchemaError, Standing, upgrade

    url = _settings().database_url
    engine = make_engine(url)
    try:
        done = upgrade(engine)
    except SchemaError as exc:
        raise _fail(exc.message) from exc
    except OperationalError as exc:
        raise _fail(f"cannot reach the database {_shown(url)}: {exc.orig}") from exc
    finally:
        engine.dispose()
    typer.echo(f"database {_shown(url)}")
    before = done.before
    if before.standing is Standing.UP_TO_DATE:
        typer.echo(f"already up to date at revision {done.after} (head)")
        return
    if done.stamped:
        typer.echo(f"recognised the tables of the release before migrations as revision {BASELINE}")
    start = before.revision or (BASELINE if done.stamped else None)
    if start == done.after:
        typer.echo(f"up to date at revision {done.after} (head)")
    else:
        origin = f"revision {start}" if start else "no tables"
        typer.echo(f"upgraded from {origin} to revision {done.after} (head)")


@db_app.command("current")
def db_current() -> None:
    """Say where the database (KCC_DATABASE_URL) stands: its revision, up to date or not.

    Exit code 0 when it is up to date, 1 when it needs `kcc db upgrade` or is refused.
    """
    from sqlalchemy import make_url
    from sqlalchemy.exc import OperationalError

    from api.database.engine import make_engine
    from api.database.schema import BASELINE, Standing, head, state

    url = _settings().database_url
    typer.echo(f"database {_shown(url)}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in {None, "", ":memory:"}:
        file = Path(str(parsed.database))
        if not str(parsed.database).startswith("file:") and not file.exists():
            typer.echo(f"no file {file}: not a kcc database yet (head is {head()})")
            raise typer.Exit(1)
    engine = make_engine(url)
    try:
        found = state(engine)
    except OperationalError as exc:
        raise _fail(f"cannot reach the database: {exc.orig}") from exc
    finally:
        engine.dispose()
    behind = "behind: run `kcc db upgrade`"
    match found.standing:
        case Standing.UP_TO_DATE:
            typer.echo(f"revision {found.revision} (head): up to date")
            return
        case Standing.BEHIND:
            typer.echo(f"revision {found.revision}, head is {found.head}: {behind}")
        case Standing.PREVIOUS_RELEASE:
            typer.echo(
                f"no revision; the tables of the release before migrations ({BASELINE}), "
                f"head is {found.head}: {behind}"
            )
        case Standing.EMPTY:
            typer.echo(f"no revision and no kcc tables: not a kcc database yet (head is {head()})")
        case Standing.UNKNOWN | Standing.UNRECOGNISED:
            error = found.error()
            assert error is not None
            raise _fail(error.message)
    raise typer.Exit(1)


def _refuse_a_second_embedded_instance(settings: Settings) -> None:
    """One line and exit 1 when another process serves this database on the embedded store. The
    service itself holds the lock while it runs (api/web/app.py); this early look only spares
    the user uvicorn's traceback."""
    from api.instance_lock import InstanceLocked, lock_embedded_store

    try:
        lock = lock_embedded_store(settings.redis_url, settings.database_url)
    except InstanceLocked as exc:
        raise _fail(str(exc)) from exc
    if lock is not None:
        lock.release()


def _checked_flow(file: Path) -> Flow:
    """The flow in `file`; else every problem as file:line: message on stdout, and exit 1."""
    from flows.loader import check_flow_text

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"{file}: cannot read: {exc.strerror}", 2) from exc
    except UnicodeDecodeError as exc:
        raise _fail(f"{file}: not UTF-8 text ({exc.reason})", 2) from exc
    flow, problems = check_flow_text(text, str(file))
    for problem in problems:
        typer.echo(str(problem))
    if problems or flow is None:
        typer.echo(f"{len(problems)} problem(s) in {file}", err=True)
        raise typer.Exit(1)
    return flow


@flows_app.command("check")
def flows_check(
    file: Annotated[
        Path, typer.Argument(help="Flow file to check.", show_default=FLOW_DEFAULT_HELP)
    ] = DEFAULT_FLOW,
) -> None:
    """Check a flow; prints every problem as file:line: message."""
    flow = _checked_flow(file)
    typer.echo(f"{file}: ok ({len(flow.nodes)} nodes, languages {', '.join(flow.languages)})")


@flows_app.command("paths")
def flows_paths(
    file: Annotated[
        Path, typer.Argument(help="Flow file to walk.", show_default=FLOW_DEFAULT_HELP)
    ] = DEFAULT_FLOW,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang", metavar="LANG", help="Language of the prompts (default: the flow's)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Every text of every path, none shortened.")
    ] = False,
) -> None:
    """List every path from the start to a queue or hang-up: keys, what is said, warnings."""
    from flows.paths import flow_paths, format_report

    flow = _checked_flow(file)  # the same lines as `kcc flows check` when it is invalid
    if lang is not None and lang not in flow.languages:
        raise typer.BadParameter(
            f"{lang!r} is not a language of the flow ({', '.join(flow.languages)})",
            param_hint="--lang",
        )
    report = flow_paths(flow, lang)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    for line in format_report(report, full=full):
        typer.echo(line)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name, e.g. j.devries.")],
    role: Annotated[
        str, typer.Option(metavar="ROLE", help="supervisor, adviser or viewer (the wallboard).")
    ] = "adviser",
    skills: Annotated[
        str | None,
        typer.Option(
            metavar="PRODUCTS",
            help="Advisers: products they handle, e.g. vog_np,pardon (default: all).",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            metavar="DEVICE",
            help="What rings: client:NAME (the browser phone, default) or +31... .",
        ),
    ] = None,
) -> None:
    """Add a staff account. The password comes from KCC_PASSWORD or a prompt."""
    from api.accounts import Role, UserError
    from api.cli.users import cli_actor
    from api.database.engine import session_scope
    from api.database.schema import SchemaError, open_database
    from api.services import current_flow
    from api.user_admin import add_user
    from flows.errors import FlowInvalid

    try:
        chosen = Role(role)
    except ValueError as exc:
        raise _fail(f"unknown role {role!r} (supervisor, adviser or viewer)", 2) from exc
    if chosen is not Role.ADVISER and skills:
        raise _fail("--skills are for advisers", 2)
    if chosen is Role.VIEWER and device:
        raise _fail("--device is for advisers and supervisors: a viewer has no phone", 2)
    skill_list = [s.strip() for s in (skills or "").split(",") if s.strip()]
    if skill_list:
        try:
            products = current_flow(_settings()).engine.flow.products
        except SchemaError as exc:
            raise _fail(exc.message) from exc
        except FlowInvalid as exc:
            raise _fail(f"the flow is invalid, cannot check the skills: {exc}", 2) from exc
        unknown = [s for s in skill_list if s not in products]
        if unknown:
            known = ", ".join(products)
            raise _fail(f"unknown skill(s) {', '.join(unknown)} (products: {known})", 2)
    password = os.environ.get("KCC_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise _fail("no password: set KCC_PASSWORD or run in a terminal", 2)
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        engine = open_database(_settings().database_url)
    except SchemaError as exc:
        raise _fail(exc.message) from exc
    try:
        with session_scope(engine) as session:
            user, _ = add_user(
                session,
                actor=cli_actor(),
                name=name,
                role=chosen,
                password=password,
                skills=skill_list,
                device=device,
                products=skill_list,  # checked against the live flow above
            )
            extra = f" (device: {user.device})"
            if user.role is Role.VIEWER:
                extra = " (the wallboard only)"
            elif user.role is Role.ADVISER:
                extra = f" (skills: {user.skills or 'all'}; device: {user.device})"
            typer.echo(f"added {user.role.value} {user.name}{extra}")
    except UserError as exc:
        raise _fail(str(exc)) from exc
    finally:
        engine.dispose()


@applications_app.command("import")
def applications_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV file; its header row names the columns application_number, "
            "date_of_birth, product, status and status_date."
        ),
    ],
) -> None:
    """Add or update applications from a CSV file; prints file:line: reason per rejected row."""
    from datetime import UTC
    from zoneinfo import ZoneInfo

    from api.database.schema import SchemaError, open_database
    from api.services import current_flow
    from flows.errors import FlowInvalid
    from ivr.identity.applications import DateOfBirthHasher
    from ivr.identity.importer import import_applications

    settings = _settings()
    try:
        flow = current_flow(settings).engine.flow
    except SchemaError as exc:
        raise _fail(exc.message) from exc
    except FlowInvalid as exc:
        typer.echo(
            f"error: the flow {settings.flow} is invalid; it lists the known products:", err=True
        )
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from exc
    today = datetime.now(UTC).astimezone(ZoneInfo(flow.calendar.timezone)).date()
    engine = open_database(settings.database_url)  # checked (or upgraded) by current_flow
    try:
        report = import_applications(
            file,
            engine=engine,
            hasher=DateOfBirthHasher(settings.secret_key),
            products=flow.products.keys(),
            today=today,
        )
    except OSError as exc:
        raise _fail(f"{file}: cannot read: {exc.strerror}", 2) from exc
    except UnicodeDecodeError as exc:
        raise _fail(f"{file}: not UTF-8 text ({exc.reason})", 2) from exc
    finally:
        engine.dispose()
    for row in report.rejected:
        typer.echo(f"{file}:{row.line}: {row.reason}", err=True)
    typer.echo(f"{report.added} added, {report.updated} updated, {len(report.rejected)} rejected")
    if report.rejected:
        raise typer.Exit(1)


def _instant(text: str) -> datetime:
    """--at: an ISO-8601 time (`call` refuses one without a UTC offset)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not an ISO-8601 time, e.g. 2026-12-24T16:30+01:00"
        ) from exc
    return moment


@app.command()
def call(
    caller: Annotated[
        str, typer.Option("--from", metavar="NUMBER", help="Caller number.")
    ] = "+31612345678",
    at: Annotated[
        datetime | None,
        typer.Option(
            parser=_instant,
            metavar="TIME",
            help="Pin the clock (in-process only), ISO-8601 with offset, "
            "e.g. 2026-12-24T16:30+01:00.",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Base URL of a running server; default: in-process."),
    ] = None,
    flow: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Flow file to walk (in-process only).")
    ] = None,
    hold: Annotated[
        int,
        typer.Option(
            min=0,
            max=MAX_HOLD_SECONDS,
            metavar="SECONDS",
            help="Seconds to stay in the queue (try the desk meanwhile).",
        ),
    ] = 0,
    keys: Annotated[
        str | None,
        typer.Option(
            metavar="KEYS",
            help="Keys to press (0-9, * and #), space separated; '-' is silence, q hangs up. "
            "Default: ask.",
        ),
    ] = None,
) -> None:
    """Walk the flow as a phone would: prints what is said and reads keypad keys."""
    from api.cli.call import run_call, scripted_problem

    if url is not None and (at is not None or flow is not None):
        raise _fail("--at and --flow work in-process only (leave out --url)", 2)
    if at is not None and at.tzinfo is None:
        raise _fail("--at needs a UTC offset, e.g. 2026-12-24T16:30+01:00", 2)
    problem = scripted_problem(keys) if keys is not None else None
    if problem is not None:
        raise _fail(problem, 2)
    _settings()  # a bad KCC_ variable is reported before the call starts
    code = asyncio.run(
        run_call(caller=caller, at=at, url=url, flow=flow, scripted=keys, hold_seconds=hold)
    )
    raise typer.Exit(code)


register_flow_commands(flows_app)  # publish, history, diff, show, rollback: api/cli/flows.py
register_audit_commands(audit_app)  # monitor: api/cli/audit.py
register_user_commands(users_app)  # list, set, reset-password, deactivate: api/cli/users.py
register_user_audit_command(audit_app)  # users: api/cli/users.py
register_staffing_command(app)  # Erlang C and its simulation: api/cli/staffing.py
register_records_commands(app)  # retention: api/cli/records.py
register_forecast_command(app)  # calls and advisers per weekday and hour: api/cli/forecast.py
register_report_command(app)  # call figures of a period: api/cli/reports.py


def main() -> None:
    app()
