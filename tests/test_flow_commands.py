"""`kcc flows publish | history | diff | rollback`: directly against the database (and Redis) of
the settings, and through a running server's supervisor API. Every change names its author.

The direct tests run the typer app in-process with `CliRunner`; the server tests start a real
`kcc serve` and run the real `kcc` console script against it. Redis is the real one (the
database of KCC_TEST_REDIS_URL, flushed) when it is running, and required in CI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
import redis
from typer.testing import Result

from api.database.engine import make_engine
from flows.versions import AuditAction, SqlFlowVersions, flow_digest
from routing import keys
from tests.conftest import REDIS_SERVICE, REDIS_UP, REDIS_URL, SECRET_KEY, missing_service
from tests.support.clock import AMSTERDAM
from tests.support.database import sqlite_url
from tests.support.flow_drafts import NEW_WELCOME, OLD_WELCOME, TEXT, edited, line_of
from tests.support.servers import (
    KccServer,
    clean_env,
    free_port,
    invoke_kcc,
    open_kcc_serve,
    run_kcc,
)
from tests.support.staff import AHMED, SANNE, Account, new_database_with_staff

DRAFT = edited()
SUPERVISOR, ADVISER = SANNE.name, AHMED.name  # as the commands take them (--user, KCC_USER)
SERVER_TOKEN = "flow-cli-test-auth-token-0123456789"

# No KCC_/TWILIO_ variable from outside; cwd in tmp_path.
pytestmark = pytest.mark.usefixtures("isolated")


def broken(text: str) -> tuple[str, int]:
    """`text` with one menu option pointing at a node that does not exist, and its line."""
    fragment = '"9": {next: main_menu, language: en}'
    assert fragment in text
    return text.replace(fragment, '"9": {next: main_menuu, language: en}', 1), line_of(
        text, fragment
    )


# -- fixtures ------------------------------------------------------------------------------------


def _redis_url() -> str | None:
    """The real Redis when it is there (required in CI), else None: the embedded store."""
    if not REDIS_UP:
        missing_service(REDIS_SERVICE)
        return None
    return REDIS_URL


@pytest.fixture
def redis_db() -> Iterator[redis.Redis | None]:
    """The real Redis (its test database, flushed), or None off CI when it is not running."""
    url = _redis_url()
    if url is None:
        yield None
        return
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def add_staff(directory: Path) -> None:
    """A supervisor and an adviser in the new database of `directory`."""
    new_database_with_staff(sqlite_url(directory), SANNE, AHMED)


@pytest.fixture
def direct_env(tmp_path: Path, redis_db: redis.Redis | None) -> dict[str, str]:
    add_staff(tmp_path)
    env = {"KCC_DATABASE_URL": sqlite_url(tmp_path), "KCC_SECRET_KEY": SECRET_KEY}
    if redis_db is not None:
        env["KCC_REDIS_URL"] = REDIS_URL
    return env


def kcc(*args: str, env: Mapping[str, str]) -> Result:
    """Run `kcc ARGS` in-process; a crash (traceback) fails the test rather than pass as exit 1."""
    return invoke_kcc(*args, env=env)


def assert_exits(result: Result, code: int, saying: str) -> None:
    """`kcc` exited with `code`, and its stderr says `saying`."""
    assert result.exit_code == code, result.output
    assert saying in result.stderr


def versions_of(directory: Path) -> SqlFlowVersions:
    return SqlFlowVersions(make_engine(sqlite_url(directory)))


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def history_rows(stdout: str) -> list[dict[str, str]]:
    """The table rows of `kcc flows history` (after the title), cut at the header's columns."""
    header, *rows = stdout.splitlines()[1:]
    names = ["#", "live", "created", "author", "comment"]
    starts = [0, *(header.index(name) for name in names[1:])]
    ends = [*starts[1:], None]
    return [
        {name: row[a:b].strip() for name, a, b in zip(names, starts, ends, strict=True)}
        for row in rows
    ]


# -- directly against the database ---------------------------------------------------------------


def test_publish_history_diff_rollback_and_audit_directly(
    direct_env: dict[str, str], tmp_path: Path, redis_db: redis.Redis | None
) -> None:
    draft = write(tmp_path, "draft.yaml", DRAFT)

    published = kcc(
        "flows", "publish", str(draft), "--comment", "kerst: tot 15 uur", "--user", SUPERVISOR,
        env=direct_env,
    )  # fmt: skip

    assert published.exit_code == 0, published.stderr
    digest = flow_digest(DRAFT)
    assert published.stdout.splitlines()[0] == (
        f"published version 2 of flow kcc (digest {digest})"
    )
    if redis_db is not None:  # new calls on every instance take it at once
        assert redis_db.get(keys.live_flow("kcc")) == f"2:2:{digest}"  # generation:number:digest
        assert "note:" not in published.stdout
    else:
        assert "KCC_REDIS_URL is unset" in published.stdout
    versions = versions_of(tmp_path)
    live = versions.live("kcc")
    assert live is not None and live.number == 2 and live.author == SUPERVISOR

    history = kcc("flows", "history", env=direct_env)
    assert history.exit_code == 0, history.stderr
    assert history.stdout.splitlines()[0] == "flow kcc: 2 version(s), version 2 live"
    rows = history_rows(history.stdout)
    assert [(r["#"], r["live"], r["author"], r["comment"]) for r in rows] == [  # newest first
        ("2", "*", SUPERVISOR, "kerst: tot 15 uur"),
        ("1", "", "system", "first version, from kcc.yaml"),
    ]
    assert live.created_at.tzinfo is not None  # UTC, even from SQLite
    created = live.created_at.astimezone(AMSTERDAM)
    assert rows[0]["created"] == f"{created:%Y-%m-%d %H:%M:%S}"  # Amsterdam time

    diff = kcc("flows", "diff", "1", env=direct_env)  # to the live version
    assert diff.exit_code == 0, diff.stderr
    assert diff.stdout.startswith("--- version 1\n+++ version 2\n")
    changed = [line for line in diff.stdout.splitlines() if line[:1] in "+-"][2:]
    assert changed == [f'-    nl: "{OLD_WELCOME}"', f'+    nl: "{NEW_WELCOME}"']
    assert kcc("flows", "diff", "1", "2", env=direct_env).stdout == diff.stdout

    assert kcc("flows", "show", env=direct_env).stdout == DRAFT  # the live version's text
    assert kcc("flows", "show", "1", env=direct_env).stdout == TEXT

    back = kcc(
        "flows", "rollback", "1", "--comment", "te vroeg", "--user", SUPERVISOR, env=direct_env
    )

    assert back.exit_code == 0, back.stderr
    first = versions.get("kcc", 1)
    assert back.stdout.splitlines()[0] == (
        f"rolled back to version 1 of flow kcc (digest {first.digest})"
    )
    live = versions.live("kcc")
    assert live is not None and live.number == 1
    if redis_db is not None:
        assert redis_db.get(keys.live_flow("kcc")) == f"3:1:{first.digest}"
    audit = versions.audit("kcc")
    assert [(e.action, e.actor, e.from_number, e.to_number, e.comment) for e in audit[:2]] == [
        (AuditAction.ROLLBACK, SUPERVISOR, 2, 1, "te vroeg"),
        (AuditAction.PUBLISH, SUPERVISOR, 1, 2, "kerst: tot 15 uur"),
    ]

    shown = kcc("flows", "history", "--audit", env=direct_env)
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "flow kcc: 3 change(s)"
    assert lines[2].split()[2:] == [SUPERVISOR, "rollback", "2", "->", "1", "te", "vroeg"]
    assert lines[3].split()[2:8] == [SUPERVISOR, "publish", "1", "->", "2", "kerst:"]
    assert lines[4].split()[2:7] == ["system", "publish", "-", "->", "1"]


def test_an_invalid_draft_is_refused_with_its_line_and_nothing_changes(
    direct_env: dict[str, str], tmp_path: Path, redis_db: redis.Redis | None
) -> None:
    text, line = broken(DRAFT)
    draft = write(tmp_path, "draft.yaml", text)

    result = kcc(
        "flows", "publish", str(draft), "--comment", "oeps", "--user", SUPERVISOR, env=direct_env
    )

    assert result.exit_code == 1
    assert f"{draft}:{line}: " in result.stderr
    assert "main_menuu" in result.stderr
    assert "nothing was changed" in result.stderr
    assert result.stdout == ""
    history = kcc("flows", "history", env=direct_env)
    assert [row["#"] for row in history_rows(history.stdout)] == ["1"]
    if redis_db is not None:
        assert redis_db.get(keys.live_flow("kcc")) is None  # not even touched


def test_only_an_active_supervisor_may_publish_or_roll_back_directly(
    direct_env: dict[str, str], tmp_path: Path
) -> None:
    draft = str(write(tmp_path, "draft.yaml", DRAFT))

    as_adviser = kcc(
        "flows", "publish", draft, "--comment", "kerst", "--user", ADVISER, env=direct_env
    )
    nobody = kcc("flows", "publish", draft, "--comment", "kerst", "--user", "piet", env=direct_env)
    anonymous = kcc("flows", "publish", draft, "--comment", "kerst", env=direct_env)
    rollback = kcc("flows", "rollback", "1", "--user", ADVISER, env=direct_env)

    assert_exits(as_adviser, 2, "ahmed is an adviser")
    assert_exits(nobody, 2, "no user 'piet'")
    assert_exits(anonymous, 2, "--user")
    assert_exits(rollback, 2, "adviser")
    versions = versions_of(tmp_path)
    assert [v.number for v in versions.history("kcc")] == [1]
    assert len(versions.audit("kcc")) == 1  # the seeded version 1 only


def test_the_user_may_come_from_kcc_user(direct_env: dict[str, str], tmp_path: Path) -> None:
    draft = str(write(tmp_path, "draft.yaml", DRAFT))

    result = kcc(
        "flows", "publish", draft, "--comment", "kerst", env={**direct_env, "KCC_USER": SUPERVISOR}
    )

    assert result.exit_code == 0, result.stderr
    assert versions_of(tmp_path).audit("kcc")[0].actor == SUPERVISOR


def test_nothing_to_change_and_unknown_versions_exit_1(
    direct_env: dict[str, str], tmp_path: Path
) -> None:
    same = str(write(tmp_path, "same.yaml", TEXT))
    by = ("--user", SUPERVISOR)

    again = kcc("flows", "publish", same, "--comment", "nog eens", *by, env=direct_env)
    live_already = kcc("flows", "rollback", "1", *by, env=direct_env)
    unknown = kcc("flows", "rollback", "7", *by, env=direct_env)
    unknown_diff = kcc("flows", "diff", "7", env=direct_env)

    assert_exits(again, 1, "nothing published: version 1 of 'kcc' is this text already")
    assert_exits(live_already, 1, "version 1 of 'kcc' is live already")
    assert_exits(unknown, 1, "no version 7")
    assert_exits(unknown_diff, 1, "no version 7")
    assert len(versions_of(tmp_path).audit("kcc")) == 1


def test_publish_needs_a_comment_and_a_readable_file(
    direct_env: dict[str, str], tmp_path: Path
) -> None:
    draft = str(write(tmp_path, "draft.yaml", DRAFT))
    by = ("--user", SUPERVISOR)

    blank = kcc("flows", "publish", draft, "--comment", "  ", *by, env=direct_env)
    missing = kcc("flows", "publish", draft, *by, env=direct_env)
    no_file = kcc("flows", "publish", "nope.yaml", "--comment", "x", *by, env=direct_env)

    assert_exits(blank, 2, "--comment")
    assert missing.exit_code == 2
    assert "--comment" in missing.output
    assert_exits(no_file, 2, "nope.yaml: cannot read")
    assert all(v.number == 1 for v in versions_of(tmp_path).history("kcc"))


def test_without_a_shared_redis_publish_says_how_instances_learn_of_it(tmp_path: Path) -> None:
    add_staff(tmp_path)
    env = {"KCC_DATABASE_URL": sqlite_url(tmp_path), "KCC_SECRET_KEY": SECRET_KEY}
    draft = str(write(tmp_path, "draft.yaml", DRAFT))

    result = kcc("flows", "publish", draft, "--comment", "kerst", "--user", SUPERVISOR, env=env)

    assert result.exit_code == 0, result.stderr
    assert "published version 2 of flow kcc" in result.stdout
    assert "note: KCC_REDIS_URL is unset" in result.stdout
    assert "within about 10 s" in result.stdout


def test_a_publish_stands_when_redis_cannot_be_told(tmp_path: Path) -> None:
    """The database is the truth: the version is live there, and instances reconcile with it."""
    add_staff(tmp_path)
    env = {
        "KCC_DATABASE_URL": sqlite_url(tmp_path),
        "KCC_SECRET_KEY": SECRET_KEY,
        "KCC_REDIS_URL": f"redis://127.0.0.1:{free_port()}/15",  # nobody listens there
    }
    draft = str(write(tmp_path, "draft.yaml", DRAFT))

    result = kcc("flows", "publish", draft, "--comment", "kerst", "--user", SUPERVISOR, env=env)

    assert result.exit_code == 0, result.stderr
    assert "published version 2 of flow kcc" in result.stdout
    assert "warning: the database has version 2 live, but Redis could not be told" in (
        result.stderr
    )
    live = versions_of(tmp_path).live("kcc")
    assert live is not None and live.number == 2


# -- through a running server ------------------------------------------------------------------


def cli_env(account: Account = SANNE, password: str | None = None) -> dict[str, str]:
    """A client's environment: a name and a password (the account's unless given), not the
    server's database."""
    return clean_env(KCC_USER=account.name, KCC_PASSWORD=password or account.password)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    """`kcc serve` in its own process on a SQLite file with a supervisor and an adviser, the
    real Redis (flushed) when it is there, open for calls (clock on a Tuesday morning)."""
    with open_kcc_serve(
        tmp_path_factory.mktemp("serve"),
        secret_key=SECRET_KEY,
        staff=[SANNE, AHMED],
        redis_url=_redis_url(),
        TWILIO_AUTH_TOKEN=SERVER_TOKEN,
    ) as served:
        yield served


def first_words(server: KccServer) -> str:
    """What a caller hears first from the server now."""
    done = run_kcc(
        "call", "--url", server.url, "--keys", "q", env=clean_env(TWILIO_AUTH_TOKEN=SERVER_TOKEN)
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def healthz_number(server: KccServer) -> str:
    return str(httpx.get(f"{server.url}/healthz", timeout=5).json()["flow_number"])


@pytest.mark.slow
def test_publish_history_diff_and_rollback_through_the_api(
    server: KccServer, tmp_path: Path
) -> None:
    draft = write(tmp_path, "draft.yaml", DRAFT)
    env = cli_env()
    assert OLD_WELCOME in first_words(server)

    published = run_kcc(
        "flows", "publish", str(draft), "--url", server.url, "--comment", "kerst", env=env
    )

    assert published.returncode == 0, published.stderr
    assert published.stdout == (f"published version 2 of flow kcc (digest {flow_digest(DRAFT)})\n")
    assert NEW_WELCOME in first_words(server)

    history = run_kcc("flows", "history", "--url", server.url, env=env)
    assert history.returncode == 0, history.stderr
    rows = history_rows(history.stdout)
    assert [(r["#"], r["live"], r["author"], r["comment"]) for r in rows] == [
        ("2", "*", SUPERVISOR, "kerst"),
        ("1", "", "system", "first version, from kcc.yaml"),
    ]

    diff = run_kcc("flows", "diff", "1", "2", "--url", server.url, env=env)
    assert diff.returncode == 0, diff.stderr
    assert f'+    nl: "{NEW_WELCOME}"' in diff.stdout.splitlines()

    shown = run_kcc("flows", "show", "--url", server.url, env=env)  # the live text
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == DRAFT
    missing = run_kcc("flows", "show", "9", "--url", server.url, env=env)
    assert missing.returncode == 1 and "no version 9" in missing.stderr

    text, line = broken(DRAFT)
    bad = write(tmp_path, "bad.yaml", text)
    refused = run_kcc("flows", "publish", str(bad), "--url", server.url, "--comment", "x", env=env)
    assert refused.returncode == 1
    assert f"{bad}:{line}: " in refused.stderr

    back = run_kcc("flows", "rollback", "1", "--url", server.url, "--comment", "te vroeg", env=env)
    assert back.returncode == 0, back.stderr
    assert back.stdout.startswith("rolled back to version 1 of flow kcc")
    assert OLD_WELCOME in first_words(server)
    again = run_kcc("flows", "rollback", "1", "--url", server.url, env=env)
    assert again.returncode == 1
    assert "live already" in again.stderr

    audit = run_kcc("flows", "history", "--audit", "--url", server.url, env=env)
    assert audit.returncode == 0, audit.stderr
    lines = audit.stdout.splitlines()
    assert lines[2].split()[2:6] == [SUPERVISOR, "rollback", "2", "->"]
    assert lines[3].split()[2:6] == [SUPERVISOR, "publish", "1", "->"]


@pytest.mark.slow
def test_a_direct_publish_reaches_the_running_server(server: KccServer, tmp_path: Path) -> None:
    """The server's database and Redis, no API: the running instance takes the new version (at
    once through Redis; within the reconcile tick with the embedded store)."""
    text = DRAFT.replace(NEW_WELCOME, "Welkom bij Justis. Direct gepubliceerd.", 1)
    draft = write(tmp_path, "direct.yaml", text)
    env = {**server.env, "KCC_USER": SUPERVISOR}

    done = run_kcc("flows", "publish", str(draft), "--comment", "direct", env=env)

    assert done.returncode == 0, done.stderr
    number = done.stdout.split()[2]
    deadline = time.monotonic() + 15
    while healthz_number(server) != number and time.monotonic() < deadline:
        time.sleep(0.2)
    assert healthz_number(server) == number
    assert "Direct gepubliceerd." in first_words(server)


@pytest.mark.slow
def test_a_wrong_password_exits_2_with_one_clear_line(server: KccServer) -> None:
    done = run_kcc("flows", "history", "--url", server.url, env=cli_env(SANNE, "not-the-password"))

    assert done.returncode == 2
    assert done.stderr == (
        f"error: sign-in refused at {server.url}: incorrect user name or password\n"
    )
    assert done.stdout == ""


@pytest.mark.slow
def test_an_adviser_is_refused_with_exit_2(server: KccServer, tmp_path: Path) -> None:
    draft = write(tmp_path, "draft.yaml", DRAFT)
    env = cli_env(AHMED)

    done = run_kcc("flows", "publish", str(draft), "--url", server.url, "--comment", "x", env=env)

    assert done.returncode == 2
    assert "ahmed is an adviser" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_server_exits_2(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    done = run_kcc("flows", "history", "--url", url, env=clean_env(KCC_USER="x", KCC_PASSWORD="y"))

    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot reach {url}")
    assert len(done.stderr.splitlines()) == 1
