"""`kcc flows publish | history | diff | rollback`: flow versions from the terminal.

Two ways to reach the versions, the same commands and output for both:

- `--url URL`: a running server's supervisor API (api/web/routes/flows.py), signed in as `--user`
  (or KCC_USER) with the password from KCC_PASSWORD or a hidden prompt;
- without `--url`: the database and Redis of the settings (KCC_DATABASE_URL, KCC_REDIS_URL),
  through the same publisher the service uses, so running instances hear of a new live version.
  Publish and rollback name an author here too: `--user` must be an active supervisor.

Exit codes: 0 done; 1 refused (an invalid draft, nothing to change, an unknown version); 2 could
not try (bad settings or options, an unreadable file, sign-in refused, not a supervisor, the
server unreachable or answering unexpectedly).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import typer

from flows.version_summary import AuditOut, VersionSummary
from flows.versions import as_utc, version_diff

if TYPE_CHECKING:
    import httpx

    from api.services import FlowAdmin
    from api.settings import Settings
    from flows.errors import Problem
    from flows.versions import FlowVersion

LOCAL_TIME = ZoneInfo("Europe/Amsterdam")  # the contact centre's time, whatever the terminal's
MAX_COMMENT = 500  # as the API and the audit table allow
HTTP_TIMEOUT = 30.0
RECONCILE_SECONDS = 10  # api/web/app.py: TICK_SECONDS * RECONCILE_TICKS

T = TypeVar("T")


class CommandFailed(Exception):
    """Ends the command: `details` (one a line), then `error: message`, on stderr."""

    def __init__(self, message: str, code: int = 1, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or []


@dataclass(frozen=True)
class Changed:
    """A version that went live, with what the user should know about how it spreads."""

    flow: str
    version: VersionSummary
    notes: list[str] = field(default_factory=list)  # stdout
    warnings: list[str] = field(default_factory=list)  # stderr


class Backend(Protocol):
    async def flow_name(self) -> str: ...

    async def history(self) -> list[VersionSummary]: ...  # newest first

    async def audit(self) -> list[AuditOut]: ...  # newest first

    async def diff(self, a: int, b: int | None) -> tuple[int, int, str]: ...

    async def text(self, number: int | None) -> str: ...  # None: the live version

    async def publish(self, text: str, *, filename: str, comment: str) -> Changed: ...

    async def rollback(self, number: int, *, comment: str) -> Changed: ...


# -- shared helpers ------------------------------------------------------------------------------


def local_time(moment: datetime) -> str:
    return f"{as_utc(moment).astimezone(LOCAL_TIME):%Y-%m-%d %H:%M:%S}"


def _problem_lines(filename: str, problems: list[tuple[int, str]]) -> list[str]:
    return [f"{filename}:{line}: {message}" for line, message in sorted(problems)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.append("  ".join(cells).rstrip())
    return out


def history_lines(flow: str, versions: list[VersionSummary]) -> list[str]:
    live = next((v.number for v in versions if v.live), None)
    title = f"flow {flow}: {len(versions)} version(s)"
    title += f", version {live} live" if live is not None else ", none live"
    rows = [
        [
            str(v.number),
            "*" if v.live else "",
            local_time(v.created_at),
            v.author,
            _one_line(v.comment),
        ]
        for v in versions
    ]
    header = ["#", "live", "created (Europe/Amsterdam)", "author", "comment"]
    return [title, *_table(header, rows, right={0})]


def audit_lines(flow: str, entries: list[AuditOut]) -> list[str]:
    rows = [
        [
            local_time(e.at),
            e.actor,
            e.action,
            f"{e.from_version if e.from_version is not None else '-'} -> {e.to_version}",
            _one_line(e.comment),
        ]
        for e in entries
    ]
    header = ["at (Europe/Amsterdam)", "who", "action", "version", "comment"]
    return [f"flow {flow}: {len(entries)} change(s)", *_table(header, rows, right=set())]


# -- directly against the database -------------------------------------------------------------


class DirectBackend:
    """The settings' database (the truth) and Redis (the live pointer and announcements)."""

    def __init__(self, admin: FlowAdmin, *, settings: Settings, user: str | None) -> None:
        self._admin = admin
        self._settings = settings
        self._user = user

    async def _sync(self, function: Callable[..., T], *args: Any) -> T:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(function, *args)

    async def flow_name(self) -> str:
        return self._admin.flows.name

    async def _live_number(self) -> int | None:
        pointer = await self._sync(self._admin.flow_versions.live_pointer, self._admin.flows.name)
        return pointer.number if pointer else None

    async def history(self) -> list[VersionSummary]:
        versions = self._admin.flow_versions
        history = await self._sync(versions.history, self._admin.flows.name)
        live = await self._live_number()
        return [VersionSummary.of(v, live) for v in history]

    async def audit(self) -> list[AuditOut]:
        entries = await self._sync(self._admin.flow_versions.audit, self._admin.flows.name)
        return [AuditOut.of(e) for e in entries]

    async def _get(self, number: int) -> FlowVersion:
        from flows.versions import UnknownVersion

        try:
            return await self._sync(self._admin.flow_versions.get, self._admin.flows.name, number)
        except UnknownVersion as exc:
            raise CommandFailed(str(exc)) from exc

    async def diff(self, a: int, b: int | None) -> tuple[int, int, str]:
        if b is None:
            live = await self._live_number()
            if live is None:
                raise CommandFailed("no version is live yet")
            b = live
        old, new = await self._get(a), await self._get(b)
        return a, b, version_diff(old, new)

    async def text(self, number: int | None) -> str:
        if number is None:
            number = await self._live_number()
            if number is None:
                raise CommandFailed("no version is live yet")
        return (await self._get(number)).text

    async def _author(self) -> str:
        """The --user, once the users table shows an active supervisor of that name."""
        from api.accounts import Role, get_user
        from api.database.engine import session_scope

        if not self._user:
            raise CommandFailed(
                "name the supervisor who does this: --user NAME (or KCC_USER); "
                "the audit log records it",
                2,
            )
        name = self._user

        def lookup() -> tuple[bool, bool, str | None]:
            with session_scope(self._admin.db_engine) as session:
                user = get_user(session, name)
                if user is None:
                    return False, False, None
                return True, user.active, user.role.value

        exists, active, role = await self._sync(lookup)
        if not exists:
            raise CommandFailed(f"no user {name!r} in the database (see `kcc users add`)", 2)
        if not active:
            raise CommandFailed(f"user {name!r} is disabled", 2)
        if role != Role.SUPERVISOR.value:
            raise CommandFailed(f"{name} is an {role}: only supervisors change flows", 2)
        return name

    def _spread_notes(self, version: VersionSummary) -> list[str]:
        if self._settings.redis_url is not None:
            return []
        return [
            "note: KCC_REDIS_URL is unset (the embedded store), so no running instance was told "
            f"directly; each takes version {version.number} from the database within about "
            f"{RECONCILE_SECONDS} s"
        ]

    async def _announced(self, change: Callable[[], Awaitable[FlowVersion]]) -> Changed:
        """Run a publish or rollback; a Redis failure after the database committed is a note."""
        from ivr.flow_publishing import PublishedNotAnnounced

        try:
            version = await change()
        except PublishedNotAnnounced as exc:
            info = VersionSummary.of(exc.version, exc.version.number)
            note = (
                f"warning: the database has version {info.number} live, but Redis could not be "
                f"told ({exc.__cause__}); running instances take it from the database within "
                f"about {RECONCILE_SECONDS} s"
            )
            return Changed(self._admin.flows.name, info, warnings=[note])
        info = VersionSummary.of(version, version.number)
        return Changed(self._admin.flows.name, info, self._spread_notes(info))

    async def publish(self, text: str, *, filename: str, comment: str) -> Changed:
        from flows.errors import FlowInvalid
        from flows.versions import AlreadyLive

        author = await self._author()
        publisher = self._admin.publisher
        checked = await publisher.validate(text, filename)
        if not checked.ok:
            raise _invalid(filename, checked.problems)
        try:
            return await self._announced(
                lambda: publisher.publish(text, author=author, comment=comment)
            )
        except FlowInvalid as exc:  # an adviser's skills changed in the meantime
            raise _invalid(filename, exc.problems) from exc
        except AlreadyLive as exc:
            raise CommandFailed(f"nothing published: {exc}") from exc

    async def rollback(self, number: int, *, comment: str) -> Changed:
        from flows.errors import FlowInvalid
        from flows.versions import AlreadyLive, UnknownVersion

        actor = await self._author()
        try:
            return await self._announced(
                lambda: self._admin.publisher.rollback(number, actor=actor, comment=comment)
            )
        except UnknownVersion as exc:
            raise CommandFailed(str(exc)) from exc
        except AlreadyLive as exc:
            raise CommandFailed(f"nothing rolled back: {exc}") from exc
        except FlowInvalid as exc:
            raise _invalid(f"version {number}", exc.problems) from exc


def _invalid(filename: str, problems: list[Problem]) -> CommandFailed:
    lines = _problem_lines(filename, [(p.line, p.message) for p in problems])
    return CommandFailed(
        f"{len(lines)} problem(s) in {filename}; nothing was changed", 1, details=lines
    )


# -- through a running server's API --------------------------------------------------------------


class HttpBackend:
    """The supervisor API of a running server, with a bearer token."""

    def __init__(self, client: httpx.AsyncClient, *, url: str) -> None:
        self._client = client
        self._url = url
        self._name: str | None = None

    async def sign_in(self, user: str, password: str) -> None:
        response = await self._request(
            "POST", "/api/token", data={"username": user, "password": password}, signing_in=True
        )
        if response.status_code == 401:
            raise CommandFailed(f"sign-in refused at {self._url}: {_detail(response)}", 2)
        body = self._json(response, 200)
        if not isinstance(body, dict) or "access_token" not in body:
            raise CommandFailed(f"{self._url} did not answer a token: is it a kcc server?", 2)
        role = body.get("role")
        if role != "supervisor":
            raise CommandFailed(f"{user} is an {role}: the flow commands are for supervisors", 2)
        self._client.headers["Authorization"] = f"Bearer {body['access_token']}"

    async def _request(
        self, method: str, path: str, *, signing_in: bool = False, **kwargs: Any
    ) -> httpx.Response:
        import httpx

        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CommandFailed(
                f"cannot reach {self._url}: {exc or type(exc).__name__}", 2
            ) from exc
        if response.status_code == 401 and not signing_in:
            raise CommandFailed(f"{self._url} refused the token: {_detail(response)}", 2)
        if response.status_code == 403:
            raise CommandFailed(f"{self._url} refused: {_detail(response)}", 2)
        return response

    def _expect(self, response: httpx.Response, *expected: int) -> None:
        if response.status_code not in expected:
            raise CommandFailed(
                f"{self._url} answered {response.status_code} to "
                f"{response.request.method} {response.request.url.path}: {_detail(response)}",
                2,
            )

    def _json(self, response: httpx.Response, *expected: int) -> Any:
        self._expect(response, *expected)
        try:
            return response.json()
        except ValueError as exc:
            raise CommandFailed(f"{self._url} did not answer JSON: is it a kcc server?", 2) from exc

    async def _versions(self) -> dict[str, Any]:
        body: dict[str, Any] = self._json(await self._request("GET", "/api/flows"), 200)
        self._name = str(body["flow"])
        return body

    async def flow_name(self) -> str:
        if self._name is None:
            await self._versions()
        assert self._name is not None
        return self._name

    async def history(self) -> list[VersionSummary]:
        return [VersionSummary.model_validate(v) for v in (await self._versions())["versions"]]

    async def audit(self) -> list[AuditOut]:
        response = await self._request("GET", "/api/flows/audit")
        return [AuditOut.model_validate(e) for e in self._json(response, 200)]

    async def diff(self, a: int, b: int | None) -> tuple[int, int, str]:
        params = {"a": a} if b is None else {"a": a, "b": b}
        response = await self._request("GET", "/api/flows/diff", params=params)
        if response.status_code == 404:
            raise CommandFailed(_detail(response))
        body = self._json(response, 200)
        return int(body["a"]), int(body["b"]), str(body["diff"])

    async def text(self, number: int | None) -> str:
        if number is None:
            number = int((await self._versions())["live"])
        response = await self._request("GET", f"/api/flows/versions/{number}")
        if response.status_code == 404:
            raise CommandFailed(_detail(response))
        return str(self._json(response, 200)["text"])

    async def publish(self, text: str, *, filename: str, comment: str) -> Changed:
        response = await self._request(
            "POST", "/api/flows/publish", json={"text": text, "comment": comment}
        )
        if response.status_code == 409:
            raise CommandFailed(f"nothing published: {_detail(response)}")
        if response.status_code == 422:
            raise _refused(filename, response)
        body = self._json(response, 201)
        return Changed(await self.flow_name(), VersionSummary.model_validate(body))

    async def rollback(self, number: int, *, comment: str) -> Changed:
        response = await self._request(
            "POST", "/api/flows/rollback", json={"version": number, "comment": comment}
        )
        if response.status_code == 404:
            raise CommandFailed(_detail(response))
        if response.status_code == 409:
            raise CommandFailed(f"nothing rolled back: {_detail(response)}")
        if response.status_code == 422:
            raise _refused(f"version {number}", response)
        body = self._json(response, 200)
        return Changed(await self.flow_name(), VersionSummary.model_validate(body))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return response.text.strip()[:200] or response.reason_phrase
    detail = body.get("detail")
    if isinstance(detail, dict):
        return str(detail.get("message", detail))
    if isinstance(detail, list):  # FastAPI's request validation
        return "; ".join(str(item.get("msg", item)) for item in detail)
    return str(detail)


def _refused(filename: str, response: httpx.Response) -> CommandFailed:
    """422: the flow's problems (file:line: message), or the request itself was refused."""
    try:
        body = response.json()
    except ValueError:
        body = None
    found = body.get("problems") if isinstance(body, dict) else None
    if isinstance(found, list):  # the server's flow_invalid answer: every problem and its line
        problems = [(int(p["line"]), str(p["message"])) for p in found]
        lines = _problem_lines(filename, problems)
        return CommandFailed(
            f"{len(lines)} problem(s) in {filename}; nothing was changed", 1, details=lines
        )
    return CommandFailed(f"the server refused the request: {_detail(response)}", 2)


# -- opening one or the other --------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    url: str | None
    user: str | None


def _password() -> str:
    password = os.environ.get("KCC_PASSWORD")
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise CommandFailed("no password: set KCC_PASSWORD or run in a terminal", 2)
    answer: str = typer.prompt("Password", hide_input=True)
    return answer


@asynccontextmanager
async def open_backend(target: Target) -> AsyncIterator[Backend]:
    if target.url is not None:
        import httpx

        if not target.user:
            raise CommandFailed("--url needs --user NAME (or KCC_USER) to sign in", 2)
        url = target.url.rstrip("/")
        password = _password()
        async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT) as client:
            backend = HttpBackend(client, url=url)
            await backend.sign_in(target.user, password)
            yield backend
        return

    from api.cli.main import _settings
    from api.database.schema import SchemaError
    from api.services import build_flow_admin
    from flows.errors import FlowInvalid

    settings = _settings()
    # The service's start-up warning that the flow file differs from the live version says
    # nothing here: publishing a file other than KCC_FLOW is what these commands are for.
    services_log = logging.getLogger("api.services")
    level = services_log.level
    services_log.setLevel(logging.ERROR)
    try:
        admin = build_flow_admin(settings)
    except FlowInvalid as exc:
        raise CommandFailed(
            f"the flow file {settings.flow} (KCC_FLOW) is invalid; the service would not start "
            "on it either",
            2,
            details=[str(p) for p in exc.problems],
        ) from exc
    except SchemaError as exc:
        raise CommandFailed(exc.message, 2) from exc
    finally:
        services_log.setLevel(level)
    try:
        yield DirectBackend(admin, settings=settings, user=target.user)
    finally:
        await admin.close()


def _run(target: Target, work: Callable[[Backend], Awaitable[list[str]]]) -> None:
    """Open the backend, do the work, print its lines; a CommandFailed ends with its code."""

    async def main() -> list[str]:
        async with open_backend(target) as backend:
            return await work(backend)

    try:
        lines = asyncio.run(main())
    except CommandFailed as exc:
        for line in exc.details:
            typer.echo(line, err=True)
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(exc.code) from exc
    for line in lines:
        typer.echo(line)


def _usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _comment(comment: str, *, required: bool) -> str:
    comment = comment.strip()
    if required and not comment:
        raise _usage("--comment must say what changes and why (it goes into the audit log)")
    if len(comment) > MAX_COMMENT:
        raise _usage(f"--comment is {len(comment)} characters; at most {MAX_COMMENT}")
    return comment


def _changed_lines(verb: str, changed: Changed) -> list[str]:
    for warning in changed.warnings:
        typer.echo(warning, err=True)
    version = changed.version
    return [
        f"{verb} version {version.number} of flow {changed.flow} (digest {version.digest})",
        *changed.notes,
    ]


# -- the commands --------------------------------------------------------------------------------

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="Base URL of a running server (its supervisor API); default: the database and "
        "Redis of the settings (KCC_DATABASE_URL, KCC_REDIS_URL).",
    ),
]
User = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="KCC_USER",
        metavar="NAME",
        help="Supervisor name: signs in with --url (password from KCC_PASSWORD or a prompt); "
        "the author in the audit log.",
    ),
]


def flows_publish(
    file: Annotated[Path, typer.Argument(help="The flow file (YAML, UTF-8) to publish.")],
    comment: Annotated[
        str,
        typer.Option(
            "--comment", metavar="TEXT", help="What changes and why (goes into the audit log)."
        ),
    ],
    url: Url = None,
    user: User = None,
) -> None:
    """Check FILE and make it the live version; prints every problem as file:line: message.

    Exit 1 when it is invalid or identical to the live version (nothing changes)."""
    from api.web.routes.flows import MAX_FLOW_BYTES

    comment = _comment(comment, required=True)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise _usage(f"{file}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise _usage(f"{file}: not UTF-8 text ({exc.reason})") from exc
    if len(text) > MAX_FLOW_BYTES:
        raise _usage(f"{file}: {len(text)} characters; a flow has at most {MAX_FLOW_BYTES}")

    async def work(backend: Backend) -> list[str]:
        changed = await backend.publish(text, filename=str(file), comment=comment)
        return _changed_lines("published", changed)

    _run(Target(url, user), work)


def flows_history(
    url: Url = None,
    user: User = None,
    audit: Annotated[
        bool, typer.Option("--audit", help="The audit log instead: who published or rolled back.")
    ] = False,
) -> None:
    """Every version, newest first: number, live (*), when (Europe/Amsterdam), author, comment."""

    async def work(backend: Backend) -> list[str]:
        flow = await backend.flow_name()
        if audit:
            return audit_lines(flow, await backend.audit())
        return history_lines(flow, await backend.history())

    _run(Target(url, user), work)


def flows_diff(
    a: Annotated[int, typer.Argument(min=1, help="The version to compare from.")],
    b: Annotated[
        int | None, typer.Argument(min=1, help="The version to compare to (default: live).")
    ] = None,
    url: Url = None,
    user: User = None,
) -> None:
    """Unified diff from version A to version B (default: the live version)."""

    async def work(backend: Backend) -> list[str]:
        first, second, diff = await backend.diff(a, b)
        if not diff:
            return [f"version {first} and version {second} are the same text"]
        return diff.rstrip("\n").split("\n")

    _run(Target(url, user), work)


def flows_show(
    version: Annotated[
        int | None,
        typer.Argument(min=1, help="The version to print (default: the live one)."),
    ] = None,
    url: Url = None,
    user: User = None,
) -> None:
    """Print a version's YAML text, e.g. to start a draft: kcc flows show > draft.yaml."""

    async def work(backend: Backend) -> list[str]:
        return (await backend.text(version)).rstrip("\n").split("\n")

    _run(Target(url, user), work)


def flows_rollback(
    version: Annotated[int, typer.Argument(min=1, help="The earlier version to make live again.")],
    comment: Annotated[
        str, typer.Option("--comment", metavar="TEXT", help="Why (goes into the audit log).")
    ] = "",
    url: Url = None,
    user: User = None,
) -> None:
    """Make an earlier version live again (checked against today's advisers first).

    Exit 1 when the version is unknown or live already."""
    comment = _comment(comment, required=False)

    async def work(backend: Backend) -> list[str]:
        changed = await backend.rollback(version, comment=comment)
        return _changed_lines("rolled back to", changed)

    _run(Target(url, user), work)


def register_flow_commands(flows_app: typer.Typer) -> None:
    """Add publish, history, diff, show and rollback to `kcc flows`."""
    flows_app.command("publish")(flows_publish)
    flows_app.command("history")(flows_history)
    flows_app.command("diff")(flows_diff)
    flows_app.command("show")(flows_show)
    flows_app.command("rollback")(flows_rollback)
