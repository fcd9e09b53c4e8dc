"""The `kcc` command as a user sees it: exit codes, what is printed, and on which stream.

Most tests run the typer app in-process with `CliRunner`; a real console-script process is used
where a real process matters (the installed `kcc` entry point, `kcc serve` with a live HTTP
server and `kcc call --url` against it). The environment is always built explicitly, so a
KCC_REDIS_URL or TWILIO_AUTH_TOKEN in the shell that runs the tests changes nothing.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from sqlmodel import Session
from typer.testing import Result

from api.accounts import Role, authenticate, get_user, staff_devices
from api.cli.main import app
from api.database.engine import make_engine
from api.settings import DEFAULT_FLOW, PLACEHOLDER_AUTH_TOKEN, PLACEHOLDER_SECRET
from flows.loader import load_flow
from tests.conftest import SECRET_KEY
from tests.support.clock import OPEN_TUESDAY
from tests.support.database import create_schema, sqlite_url
from tests.support.flow_drafts import MISTAKES, line_of, several_mistakes
from tests.support.servers import (
    KCC,
    KccServer,
    clean_env,
    invoke_kcc,
    open_kcc_serve,
    run_kcc,
)

PROMPTS = load_flow(DEFAULT_FLOW).prompts
KINGS_DAY = "2026-04-27T10:00+02:00"  # a Monday, and a public holiday
GOOD_PASSWORD = "correct horse battery staple"
SERVER_TOKEN = "cli-test-auth-token-0123456789abcdef"
WEEKLY_HOURS_NL = "van maandag tot en met vrijdag van 9.00 tot 17.00 uur"

# No KCC_/TWILIO_ variable from outside; cwd in tmp_path (the default DB is relative).
pytestmark = pytest.mark.usefixtures("isolated")


# -- helpers -----------------------------------------------------------------------------------


def kcc(*args: str, env: Mapping[str, str] | None = None, tmp_path: Path) -> Result:
    """Run `kcc ARGS` in-process; a crash (traceback) fails the test rather than pass as exit 1."""
    return invoke_kcc(*args, env={"KCC_DATABASE_URL": sqlite_url(tmp_path), **(env or {})})


# -- broken flows: kcc.yaml with one edit each, and where the problem must be reported ----------


@dataclass(frozen=True)
class Breakage:
    old: str  # text of the shipped flow to replace (must occur exactly once)
    new: str
    marker: str  # the line the problem must point at, in the edited text
    after: str | None  # the marker is the first one after this line (None: anywhere, unique)
    fragments: tuple[str, ...]  # the message must contain these


BREAKAGES = {
    "menu option to an unknown node": Breakage(
        old='      "6": other_menu\n',
        new='      "6": other_menu\n      "7": nowhere\n',
        marker='      "7": nowhere',
        after=None,
        fragments=("main_menu", "'nowhere'"),
    ),
    "prompt without its English text": Breakage(
        old='    en: "Welcome to Justis, the screening authority."\n',
        new="",
        marker="  welcome:",
        after="prompts:",
        fragments=("prompts.welcome", "'en'"),
    ),
    "duplicate digit in a menu": Breakage(
        old='      "5": verify_vog_np_other\n',
        new='      "5": verify_vog_np_other\n      "5": verify_vog_np_childcare\n',
        marker='      "5": verify_vog_np_childcare',
        after=None,
        fragments=("vog_np_menu", "duplicate", "'5'"),
    ),
}


def break_flow(*names: str) -> str:
    text = DEFAULT_FLOW.read_text(encoding="utf-8")
    for name in names:
        breakage = BREAKAGES[name]
        assert text.count(breakage.old) == 1, f"kcc.yaml changed: cannot apply {name!r}"
        text = text.replace(breakage.old, breakage.new)
    return text


def expected_problems(path: Path, text: str, names: tuple[str, ...]) -> dict[str, str]:
    """name -> the `FILE:LINE: ` prefix its problem must be printed with."""
    return {
        name: f"{path}:{line_of(text, BREAKAGES[name].marker, BREAKAGES[name].after)}: "
        for name in names
    }


def assert_problems_listed(output: str, path: Path, text: str, names: tuple[str, ...]) -> None:
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith(f"{path}:")]
    assert len(lines) == len(names), output
    for name, prefix in expected_problems(path, text, names).items():
        matching = [line for line in lines if line.startswith(prefix)]
        assert len(matching) == 1, f"{name}: no line starting {prefix!r} in:\n{output}"
        for fragment in BREAKAGES[name].fragments:
            assert fragment in matching[0], f"{name}: {fragment!r} not in {matching[0]!r}"


@pytest.fixture
def bad_flow(tmp_path: Path) -> tuple[Path, str, tuple[str, ...]]:
    """BAD.yaml with all three breakages at once."""
    names = tuple(BREAKAGES)
    text = break_flow(*names)
    path = tmp_path / "BAD.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text, names


# -- kcc flows check ---------------------------------------------------------------------------


def test_flows_check_passes_the_shipped_flow_with_the_installed_command(tmp_path: Path) -> None:
    done = run_kcc("flows", "check", env=clean_env(KCC_DATABASE_URL=sqlite_url(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert f"{DEFAULT_FLOW}: ok" in done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_flows_check_reports_a_broken_flow_at_the_line_to_fix(name: str, tmp_path: Path) -> None:
    text = break_flow(name)
    path = tmp_path / "BAD.yaml"
    path.write_text(text, encoding="utf-8")

    result = kcc("flows", "check", str(path), tmp_path=tmp_path)

    assert result.exit_code == 1
    assert_problems_listed(result.stdout, path, text, (name,))
    assert "1 problem(s)" in result.stderr
    assert ": ok" not in result.stdout


def test_flows_check_lists_every_problem_not_just_the_first(
    bad_flow: tuple[Path, str, tuple[str, ...]], tmp_path: Path
) -> None:
    path, text, names = bad_flow

    result = kcc("flows", "check", str(path), tmp_path=tmp_path)

    assert result.exit_code == 1
    assert_problems_listed(result.stdout, path, text, names)
    assert f"{len(names)} problem(s) in {path}" in result.stderr


def test_flows_check_lists_mistakes_of_every_kind_at_once(tmp_path: Path) -> None:
    """A wrong key, an unknown kind or a wrong value does not hide an unknown target, a missing
    translation or an unknown product: each is on its own line, at its line."""
    text = several_mistakes()
    path = tmp_path / "draft.yaml"
    path.write_text(text, encoding="utf-8")

    result = kcc("flows", "check", str(path), tmp_path=tmp_path)

    assert result.exit_code == 1
    printed = result.stdout.splitlines()
    assert len(printed) == len(MISTAKES), result.stdout
    for mistake in MISTAKES:
        line = line_of(text, mistake.fragment, mistake.after)
        expected = f"{path}:{line}: {mistake.message}"
        assert any(printed_line.startswith(expected) for printed_line in printed), (
            expected,
            result.stdout,
        )
    assert f"{len(MISTAKES)} problem(s) in {path}" in result.stderr


def test_flows_check_duplicate_key_also_names_the_line_of_the_first(tmp_path: Path) -> None:
    text = break_flow("duplicate digit in a menu")
    path = tmp_path / "BAD.yaml"
    path.write_text(text, encoding="utf-8")
    first = line_of(text, '      "5": verify_vog_np_other')

    result = kcc("flows", "check", str(path), tmp_path=tmp_path)

    assert f"first on line {first}" in result.stdout


def test_flows_check_of_a_missing_file_exits_2_with_a_message_on_stderr(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"

    result = kcc("flows", "check", str(missing), tmp_path=tmp_path)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{missing}: cannot read" in result.stderr
    assert "No such file" in result.stderr


# -- kcc users add -----------------------------------------------------------------------------


def test_users_add_creates_a_supervisor_with_a_hashed_password(tmp_path: Path) -> None:
    result = kcc(
        "users",
        "add",
        "alice",
        "--role",
        "supervisor",
        env={"KCC_PASSWORD": GOOD_PASSWORD},
        tmp_path=tmp_path,
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "added supervisor alice (device: client:alice)"
    engine = make_engine(sqlite_url(tmp_path))
    try:
        with Session(engine) as session:
            user = get_user(session, "alice")
            assert user is not None
            assert user.role is Role.SUPERVISOR
            assert user.active
            assert GOOD_PASSWORD not in user.password_hash
            assert user.password_hash.startswith("$argon2")
            assert authenticate(session, name="alice", password=GOOD_PASSWORD) is not None
            assert authenticate(session, name="alice", password="wrong password!") is None
    finally:
        engine.dispose()
    assert GOOD_PASSWORD.encode() not in (tmp_path / "kcc.sqlite3").read_bytes()


def test_users_add_refuses_a_name_that_is_taken(tmp_path: Path) -> None:
    env = {"KCC_PASSWORD": GOOD_PASSWORD}
    first = kcc("users", "add", "alice", "--role", "supervisor", env=env, tmp_path=tmp_path)
    assert first.exit_code == 0, first.output

    again = kcc("users", "add", "alice", "--role", "supervisor", env=env, tmp_path=tmp_path)

    assert again.exit_code == 1
    assert "alice" in again.stderr
    assert "already exists" in again.stderr
    assert "added" not in again.stdout


def test_users_add_rejects_an_unknown_role_with_exit_2(tmp_path: Path) -> None:
    result = kcc(
        "users",
        "add",
        "alice",
        "--role",
        "king",
        env={"KCC_PASSWORD": GOOD_PASSWORD},
        tmp_path=tmp_path,
    )

    assert result.exit_code == 2
    assert "unknown role 'king'" in result.stderr
    assert "supervisor, adviser or viewer" in result.stderr


def test_users_add_rejects_a_short_password_and_says_why(tmp_path: Path) -> None:
    result = kcc("users", "add", "alice", env={"KCC_PASSWORD": "short"}, tmp_path=tmp_path)

    assert result.exit_code == 1
    assert "password too short" in result.stderr
    assert "at least 8 characters" in result.stderr
    engine = make_engine(sqlite_url(tmp_path))
    try:
        with Session(engine) as session:
            assert get_user(session, "alice") is None
    finally:
        engine.dispose()


def test_users_add_without_password_and_without_a_terminal_exits_2(tmp_path: Path) -> None:
    # CliRunner's stdin is not a TTY, as in a script or a CI job.
    result = kcc("users", "add", "alice", tmp_path=tmp_path)

    assert result.exit_code == 2
    assert "no password" in result.stderr
    assert "KCC_PASSWORD" in result.stderr


# -- kcc call, in-process ----------------------------------------------------------------------


def test_call_to_vog_procedure_hears_welcome_submenu_and_queue_position(tmp_path: Path) -> None:
    result = kcc("call", "--keys", "1 2 #", "--at", OPEN_TUESDAY, tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert PROMPTS["welcome"]["nl"] in out
    assert PROMPTS["main_menu"]["nl"] in out
    assert PROMPTS["vog_np_menu"]["nl"] in out
    assert PROMPTS["connecting"]["nl"] in out
    assert "U bent nummer 1 in de wachtrij" in out
    assert "-- waiting in queue" in out
    # What was heard, in order.
    assert out.index("Welkom") < out.index("> 1") < out.index(PROMPTS["vog_np_menu"]["nl"])
    assert out.index("> 2") < out.index("U bent nummer 1")


def test_call_on_kings_day_hears_the_holiday_and_only_the_status_offer(tmp_path: Path) -> None:
    result = kcc("call", "--keys", "-", "--at", KINGS_DAY, tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Koningsdag" in out
    assert PROMPTS["closed"]["nl"].format(hours=WEEKLY_HOURS_NL) in out
    assert PROMPTS["goodbye"]["nl"] in out
    assert "hung up by the flow" in out
    assert PROMPTS["main_menu"]["nl"] not in out
    assert "waiting in queue" not in out


def test_call_pressing_9_switches_the_prompts_to_english(tmp_path: Path) -> None:
    result = kcc("call", "--keys", "9 1 2 #", "--at", OPEN_TUESDAY, tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    out = result.stdout
    after_nine = out[out.index("> 9") :]
    assert PROMPTS["main_menu"]["en"] in after_nine
    assert PROMPTS["vog_np_menu"]["en"] in after_nine
    assert PROMPTS["connecting"]["en"] in after_nine
    assert "You are number 1 in the queue" in after_nine
    assert "[nl-NL]" not in after_nine
    assert PROMPTS["main_menu"]["nl"] in out[: out.index("> 9")]


def test_call_silent_four_times_on_the_main_menu_ends_in_the_general_queue(
    tmp_path: Path,
) -> None:
    result = kcc("call", "--keys", "- - - -", "--at", OPEN_TUESDAY, tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.count("U heeft geen keuze gemaakt") == 4
    assert PROMPTS["connecting_general"]["nl"] in out
    queue_lines = [line for line in out.splitlines() if line.startswith("-- waiting in queue")]
    assert len(queue_lines) == 1
    assert queue_lines[0].endswith("general")


def test_call_plays_the_adviser_who_answers_and_hangs_up_then_the_caller_gives_a_mark(
    tmp_path: Path,
) -> None:
    # "-" at the adviser's turn is Enter: the adviser ends the conversation.
    result = kcc("call", "--keys", "2 # - 8#", "--at", OPEN_TUESDAY, tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    answered = lines.index("-- an adviser answers: you are talking")
    assert lines[answered + 2 :] == [
        "-- the adviser hangs up",
        "  [nl-NL] Hoe tevreden bent u over dit gesprek? Toets een cijfer van 1 tot en met 10, "
        "gevolgd door een hekje.",
        "> 8#",
        "  [nl-NL] Dank u wel voor uw beoordeling. Tot ziens.",
        "-- the line goes dead (hung up by the flow)",
    ]


def test_call_hanging_up_while_talking_to_the_played_adviser_hears_no_survey(
    tmp_path: Path,
) -> None:
    result = kcc("call", "--keys", "2 # q", "--at", OPEN_TUESDAY, tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    assert "-- an adviser answers: you are talking" in result.stdout
    assert result.stdout.splitlines()[-1] == "-- you hang up"
    assert "Hoe tevreden" not in result.stdout


def test_call_at_without_utc_offset_exits_2(tmp_path: Path) -> None:
    result = kcc("call", "--keys", "2", "--at", "2026-12-01T10:00:00", tmp_path=tmp_path)

    assert result.exit_code == 2
    assert "--at needs a UTC offset" in result.stderr
    assert "calling from" not in result.stdout


def test_call_at_with_url_is_refused_with_exit_2(tmp_path: Path) -> None:
    result = kcc(
        "call",
        "--url",
        "http://127.0.0.1:9",
        "--at",
        OPEN_TUESDAY,
        "--keys",
        "2",
        tmp_path=tmp_path,
    )

    assert result.exit_code == 2
    assert "in-process only" in result.stderr
    assert "calling from" not in result.stdout


def test_call_with_an_invalid_flow_exits_1_listing_every_problem(
    bad_flow: tuple[Path, str, tuple[str, ...]], tmp_path: Path
) -> None:
    path, text, names = bad_flow

    result = kcc(
        "call", "--flow", str(path), "--keys", "2", "--at", OPEN_TUESDAY, tmp_path=tmp_path
    )

    assert result.exit_code == 1
    assert "the flow is invalid" in result.stderr
    assert_problems_listed(result.stderr, path, text, names)
    assert "Welkom" not in result.stdout


def test_call_walks_a_draft_at_any_moment_without_publishing_it(tmp_path: Path) -> None:
    draft = tmp_path / "draft.yaml"
    text = DEFAULT_FLOW.read_text(encoding="utf-8")
    draft.write_text(
        text.replace("Welkom bij Justis, de screeningsautoriteit.", "Fijne feestdagen!", 1),
        encoding="utf-8",
    )

    result = kcc(
        "call", "--flow", str(draft), "--keys", "-", "--at", "2026-12-24T16:30+01:00",
        tmp_path=tmp_path,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "Fijne feestdagen!" in result.stdout
    again = kcc("call", "--keys", "-", "--at", "2026-12-24T16:30+01:00", tmp_path=tmp_path)
    assert "Welkom bij Justis" in again.stdout  # nothing was published


def test_call_in_process_walks_the_live_version_of_the_database(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from flows.versions import SqlFlowVersions

    engine = make_engine(sqlite_url(tmp_path))
    create_schema(engine)
    text = DEFAULT_FLOW.read_text(encoding="utf-8")
    versions = SqlFlowVersions(engine)
    now = datetime.now(UTC)
    versions.publish("kcc", text, author="system", comment="first", at=now)
    changed = text.replace("Welkom bij Justis, de screeningsautoriteit.", "Goedemiddag!", 1)
    versions.publish("kcc", changed, author="sanne", comment="kort", at=now)
    engine.dispose()

    result = kcc("call", "--keys", "-", "--at", OPEN_TUESDAY, tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    assert "Goedemiddag!" in result.stdout
    assert "Welkom bij Justis" not in result.stdout


# -- kcc call --url against a real `kcc serve` ------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    """`kcc serve` in its own process, open for calls (clock pinned to a Tuesday morning)."""
    with open_kcc_serve(
        tmp_path_factory.mktemp("serve"), secret_key=SECRET_KEY, TWILIO_AUTH_TOKEN=SERVER_TOKEN
    ) as served:
        yield served


@pytest.mark.slow
def test_call_over_http_to_a_running_server_queues_for_vog_rp(server: KccServer) -> None:
    env = clean_env(TWILIO_AUTH_TOKEN=SERVER_TOKEN)

    done = run_kcc("call", "--url", server.url, "--keys", "2 #", env=env)

    assert done.returncode == 0, done.stderr
    assert PROMPTS["welcome"]["nl"] in done.stdout
    assert PROMPTS["connecting"]["nl"] in done.stdout
    queue_lines = [line for line in done.stdout.splitlines() if "-- waiting in queue" in line]
    assert len(queue_lines) == 1
    assert queue_lines[0].endswith("vog_rp")
    assert "U bent nummer 1 in de wachtrij" in done.stdout
    assert done.stderr == ""


@pytest.mark.slow
def test_call_over_http_with_the_wrong_token_is_refused_and_exits_1(server: KccServer) -> None:
    env = clean_env(TWILIO_AUTH_TOKEN="not-the-token-of-this-server")

    done = run_kcc("call", "--url", server.url, "--keys", "2", env=env)

    assert done.returncode == 1
    assert "error:" in done.stderr
    assert "403" in done.stderr
    assert "Traceback" not in done.stderr
    assert "Welkom" not in done.stdout


# -- kcc serve refuses to start ----------------------------------------------------------------


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make uvicorn.run fail loudly: these `kcc serve` runs must stop before starting one."""
    import uvicorn

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("kcc serve started uvicorn; it should have refused")

    monkeypatch.setattr(uvicorn, "run", refuse)


@pytest.mark.usefixtures("no_server")
def test_serve_refuses_an_invalid_flow_and_lists_its_problems(
    bad_flow: tuple[Path, str, tuple[str, ...]], tmp_path: Path
) -> None:
    path, text, names = bad_flow

    result = kcc("serve", env={"KCC_FLOW": str(path)}, tmp_path=tmp_path)

    assert result.exit_code == 1
    assert "invalid, refusing to start" in result.stderr
    assert_problems_listed(result.stderr, path, text, names)


@pytest.mark.usefixtures("no_server")
def test_serve_with_several_workers_needs_a_shared_redis(tmp_path: Path) -> None:
    result = kcc("serve", "--workers", "2", tmp_path=tmp_path)

    assert result.exit_code == 1
    assert "KCC_REDIS_URL" in result.stderr
    assert "--workers" in result.stderr


@pytest.mark.usefixtures("no_server")
@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["serve", "--port", "99999"], "99999 is not in the range 1<=x<=65535"),
        (["serve", "--port", "0"], "0 is not in the range 1<=x<=65535"),
        (["serve", "--port", "-1"], "-1 is not in the range 1<=x<=65535"),
        (["serve", "--workers", "0"], "0 is not in the range x>=1"),
        (["call", "--hold", "-5"], "-5 is not in the range 0<=x<=14400"),
        (["call", "--hold", "99999"], "99999 is not in the range 0<=x<=14400"),
        (["call", "--at", "tomorrow"], "'tomorrow' is not an ISO-8601 time"),
        (["flows", "diff", "0"], "0 is not in the range x>=1"),
        (["flows", "show", "0"], "0 is not in the range x>=1"),
        (["flows", "rollback", "0"], "0 is not in the range x>=1"),
    ],
)
def test_numbers_out_of_range_are_refused_with_exit_2(
    args: list[str], refusal: str, tmp_path: Path
) -> None:
    result = kcc(*args, env={"COLUMNS": "200"}, tmp_path=tmp_path)

    assert result.exit_code == 2, result.output
    assert refusal in result.stderr
    assert "calling from" not in result.stdout


def test_serve_on_a_port_out_of_range_exits_2_and_listens_nowhere(tmp_path: Path) -> None:
    """The installed command: before, --port 99999 listened on 99999 % 65536 = 34463."""
    env = clean_env(KCC_DATABASE_URL=sqlite_url(tmp_path))
    try:
        result = run_kcc("serve", "--port", "99999", env=env, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("kcc serve --port 99999 started a server")
    assert result.returncode == 2
    assert "Invalid value for '--port'" in result.stderr
    assert "Uvicorn running" not in result.stderr


def _commands(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))
TYPE_TAG = re.compile(r"<[a-z][^<>\n]*>")


def test_every_command_is_walked() -> None:
    assert {" ".join(path) for path in COMMANDS} >= {
        "", "serve", "call", "flows", "flows check", "flows paths", "flows publish",
        "flows history", "flows diff", "flows show", "flows rollback", "users", "users add",
        "applications", "applications import",
    }  # fmt: skip


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "kcc")
def test_help_in_80_columns_has_no_type_tags_and_nothing_cut_off(
    path: tuple[str, ...], tmp_path: Path
) -> None:
    result = kcc(*path, "--help", env={"COLUMNS": "80", "TERMINAL_WIDTH": ""}, tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    help_text = result.stdout
    assert "Usage: " in help_text
    assert not TYPE_TAG.search(help_text), help_text  # <str>, <bool>, <int range>, <path>
    assert "…" not in help_text, help_text  # a help text cut off
    assert max(len(line) for line in help_text.splitlines()) <= 80, help_text
    assert str(DEFAULT_FLOW.parent) not in help_text  # no path of this machine


@pytest.mark.usefixtures("no_server")
def test_serve_in_production_refuses_placeholder_secrets(tmp_path: Path) -> None:
    env = {
        "KCC_ENV": "production",
        "KCC_SECRET_KEY": PLACEHOLDER_SECRET,
        "TWILIO_AUTH_TOKEN": PLACEHOLDER_AUTH_TOKEN,
    }

    result = kcc("serve", env=env, tmp_path=tmp_path)

    assert result.exit_code == 1
    assert "refusing to start in production" in result.stderr
    assert "KCC_SECRET_KEY" in result.stderr
    assert "TWILIO_AUTH_TOKEN" in result.stderr


def test_users_add_adviser_with_skills_and_a_phone(tmp_path: Path) -> None:
    result = kcc(
        "users", "add", "piet", "--role", "adviser", "--skills", "vog_np,pardon",
        "--device", "+31201234567", env={"KCC_PASSWORD": GOOD_PASSWORD}, tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.strip() == "added adviser piet (skills: vog_np,pardon; device: +31201234567)"
    )
    engine = make_engine(sqlite_url(tmp_path))
    try:
        with Session(engine) as session:
            user = get_user(session, "piet")
            assert user is not None and (user.skills, user.device) == (
                "vog_np,pardon",
                "+31201234567",
            )
    finally:
        engine.dispose()


def test_users_add_viewer_for_the_room_screen_has_no_phone(tmp_path: Path) -> None:
    env = {"KCC_PASSWORD": GOOD_PASSWORD}
    result = kcc("users", "add", "wand", "--role", "viewer", env=env, tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "added viewer wand (the wallboard only)"
    engine = make_engine(sqlite_url(tmp_path))
    try:
        with Session(engine) as session:
            user = get_user(session, "wand")
            assert user is not None and user.role is Role.VIEWER
            assert "client:wand" not in staff_devices(session)  # nobody can call the screen
    finally:
        engine.dispose()
    phone = kcc(
        "users", "add", "wand2", "--role", "viewer", "--device", "+31201234567",
        env=env, tmp_path=tmp_path,
    )  # fmt: skip
    assert phone.exit_code == 2 and "a viewer has no phone" in phone.stderr


def test_users_add_adviser_defaults_to_all_skills_and_a_softphone(tmp_path: Path) -> None:
    result = kcc("users", "add", "anna", env={"KCC_PASSWORD": GOOD_PASSWORD}, tmp_path=tmp_path)
    assert result.stdout.strip() == "added adviser anna (skills: all; device: client:anna)"


def test_users_add_refuses_an_unknown_skill_listing_the_products(tmp_path: Path) -> None:
    result = kcc(
        "users", "add", "piet", "--skills", "vog_np,gratie",
        env={"KCC_PASSWORD": GOOD_PASSWORD}, tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unknown skill(s) gratie" in result.stderr and "pardon" in result.stderr


def test_users_add_refuses_skills_for_a_supervisor(tmp_path: Path) -> None:
    result = kcc(
        "users", "add", "sanne", "--role", "supervisor", "--skills", "vog_np",
        env={"KCC_PASSWORD": GOOD_PASSWORD}, tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "for advisers" in result.stderr


def test_users_add_refuses_a_device_that_is_not_a_client_or_number(tmp_path: Path) -> None:
    result = kcc(
        "users", "add", "piet", "--device", "0612345678",
        env={"KCC_PASSWORD": GOOD_PASSWORD}, tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "device must be client:NAME (letters, digits, '_') or a phone number" in result.stderr


def test_users_add_gives_a_supervisor_the_device_asked_for(tmp_path: Path) -> None:
    result = kcc(
        "users", "add", "sanne", "--role", "supervisor", "--device", "+31201234567",
        env={"KCC_PASSWORD": GOOD_PASSWORD}, tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "added supervisor sanne (device: +31201234567)"


def test_users_add_makes_a_browser_phone_twilio_takes_from_a_dotted_name(tmp_path: Path) -> None:
    result = kcc(
        "users", "add", "j.de-vries",
        env={"KCC_PASSWORD": GOOD_PASSWORD}, tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "added adviser j.de-vries (skills: all; device: client:j_de_vries)"
    )


# -- production refuses what only fits a laptop --------------------------------------------------

PRODUCTION_ENV = {
    "KCC_ENV": "production",
    "KCC_SECRET_KEY": "production-secret-key-0123456789abcdef0123",
    "TWILIO_AUTH_TOKEN": "production-auth-token-0123456789abcdef",
    "KCC_PUBLIC_URL": "https://ivr.justis.example.nl",
    "KCC_REDIS_URL": "redis://redis.justis.internal:6379/0",
    "TWILIO_API_KEY_SID": "SK" + "0123456789abcdef" * 2,
    "TWILIO_API_KEY_SECRET": "production-api-key-secret-0123456789",
    "TWILIO_TWIML_APP_SID": "AP" + "fedcba9876543210" * 2,
}


@pytest.mark.usefixtures("no_server")
@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"KCC_REDIS_URL": None},
            "KCC_REDIS_URL is unset (the embedded store is for one process only)",
        ),
        ({"KCC_NOW": OPEN_TUESDAY}, "KCC_NOW pins the clock"),
        (
            {"TWILIO_API_KEY_SID": None},
            "TWILIO_API_KEY_SID is missing or not an API key SID (SK...)",
        ),
        (
            {"TWILIO_API_KEY_SECRET": "change-me"},
            "TWILIO_API_KEY_SECRET is missing or a placeholder",
        ),
        (
            {"TWILIO_TWIML_APP_SID": "AP-the-twiml-app"},
            "TWILIO_TWIML_APP_SID is missing or not a TwiML App SID (AP...)",
        ),
    ],
    ids=["embedded store", "pinned clock", "no api key", "placeholder secret", "bad twiml app"],
)
def test_serve_in_production_refuses_a_single_process_store_or_a_pinned_clock(
    changes: dict[str, str | None], problem: str, tmp_path: Path
) -> None:
    # Otherwise valid, so the one problem named is the one this case introduces.
    env = {**PRODUCTION_ENV, **changes}
    settings = {name: value for name, value in env.items() if value is not None}

    result = kcc("serve", env=settings, tmp_path=tmp_path)

    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: refusing to start in production: {problem}"
    assert result.stdout == ""


# -- kcc call: keys typed at the prompt, another caller number ----------------------------------


def kcc_typing(*args: str, typed: str, tmp_path: Path) -> Result:
    """`kcc ARGS` in-process with `typed` on standard input, as if typed at its prompts."""
    return invoke_kcc(*args, env={"KCC_DATABASE_URL": sqlite_url(tmp_path)}, input=typed)


def test_call_without_keys_reads_them_from_standard_input_to_the_vog_rp_queue(
    tmp_path: Path,
) -> None:
    result = kcc_typing("call", "--at", OPEN_TUESDAY, typed="2\n#\n", tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    out = result.stdout
    # Asked once per menu, and at the adviser's turn (the phone plays the adviser in-process).
    assert out.count("keys (Enter: silence, q: hang up)> ") == 3
    queue_lines = [line for line in out.splitlines() if line.startswith("-- waiting in queue")]
    assert queue_lines == ["-- waiting in queue kcc-vog_rp"]
    assert out.index("> 2") < out.index("> #") < out.index(queue_lines[0])
    assert "U bent nummer 1 in de wachtrij" in out
    assert out.rstrip().endswith("-- you hang up")  # end of input: the caller hangs up


@pytest.mark.parametrize(
    ("keys", "refusal"),
    [
        ("x", "'x' is not a key on a phone: it has 0-9, * and #"),
        ("1 12a#", "'a' (in '12a#') is not a key on a phone"),
        ("2 + -", "'+' is not a key on a phone"),
        ("1 --", "'-' (in '--') is not a key on a phone"),
    ],
)
def test_call_refuses_keys_a_phone_does_not_have_with_exit_2(
    keys: str, refusal: str, tmp_path: Path
) -> None:
    result = kcc("call", "--keys", keys, "--at", OPEN_TUESDAY, tmp_path=tmp_path)

    assert result.exit_code == 2, result.output
    assert f"error: --keys: {refusal}" in result.stderr
    assert "calling from" not in result.stdout  # refused before the call is placed


def test_call_accepts_every_key_of_a_phone(tmp_path: Path) -> None:
    result = kcc("call", "--keys", "- 0 * #", "--at", OPEN_TUESDAY, tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    assert "> *" in result.stdout and "> #" in result.stdout


def test_call_with_q_in_the_keys_hangs_up_there_as_at_the_prompt(tmp_path: Path) -> None:
    result = kcc("call", "--keys", "1 q 2", "--at", OPEN_TUESDAY, tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    assert "> 1" in result.stdout and "> 2" not in result.stdout
    assert result.stdout.rstrip().endswith("-- you hang up")


def test_call_at_the_prompt_names_a_key_that_is_not_on_a_phone_and_asks_again(
    tmp_path: Path,
) -> None:
    result = kcc_typing("call", "--at", OPEN_TUESDAY, typed="x\n2\n1 2\n#\n", tmp_path=tmp_path)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "'x' is not a key on a phone: it has 0-9, * and #; try again" in out
    assert "a space (in '1 2') is not a key on a phone" in out
    assert "> x" not in out and "> 1 2" not in out  # never pressed
    queue_lines = [line for line in out.splitlines() if line.startswith("-- waiting in queue")]
    assert queue_lines == ["-- waiting in queue kcc-vog_rp"]  # 2, then #: as if typed right


def test_call_from_another_number_calls_from_that_number(tmp_path: Path) -> None:
    result = kcc(
        "call", "--from", "+31687654321", "--keys", "-", "--at", OPEN_TUESDAY,
        tmp_path=tmp_path,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("calling from +31687654321 (call CA")
    assert "+31612345678" not in result.stdout  # not the default number


# -- kcc users add at a real terminal ------------------------------------------------------------


class Terminal:
    """The screen and keyboard of a pseudo-terminal that a `kcc` process runs in."""

    def __init__(self, process: subprocess.Popen[bytes], master: int) -> None:
        self.process = process
        self.master = master
        self.screen = ""  # everything shown so far
        self._seen = 0  # how much of the screen `wait_for` has consumed

    def _read(self, deadline: float) -> bool:
        """Read what is shown; False once the process has closed the terminal."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: every end of the terminal on the process side is closed
            return False
        self.screen += chunk.decode("utf-8", errors="replace")
        return bool(chunk)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """Wait until `text` is shown; what was shown up to and including it."""
        deadline = time.monotonic() + timeout
        while text not in self.screen[self._seen :]:
            if time.monotonic() > deadline or not self._read(deadline):
                pytest.fail(f"{text!r} never shown; the screen:\n{self.screen}")
        end = self.screen.index(text, self._seen) + len(text)
        shown, self._seen = self.screen[self._seen : end], end
        return shown

    def type(self, line: str) -> None:
        os.write(self.master, f"{line}\n".encode())

    def exit_code(self, timeout: float = 30) -> int:
        """Read the screen to the end and wait for the process to exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(deadline):
            pass
        return self.process.wait(timeout=max(0.1, deadline - time.monotonic()))


@contextmanager
def kcc_in_a_terminal(*args: str, tmp_path: Path) -> Iterator[Terminal]:
    """The installed `kcc ARGS` with a pseudo-terminal for stdin, stdout and stderr. A session of
    its own: no controlling terminal, so a password prompt cannot reach the one running pytest."""
    master, slave = os.openpty()
    try:
        process = subprocess.Popen(
            [*KCC, *args], env=clean_env(KCC_DATABASE_URL=sqlite_url(tmp_path)), cwd=tmp_path,
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(slave)
    try:
        yield Terminal(process, master)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(master)


def signs_in(tmp_path: Path, name: str, password: str) -> Role | None:
    """The role `name` signs in with using `password`; None if refused."""
    engine = make_engine(sqlite_url(tmp_path))
    try:
        with Session(engine) as session:
            user = authenticate(session, name=name, password=password)
            return None if user is None else user.role
    finally:
        engine.dispose()


def test_users_add_at_a_terminal_asks_for_the_password_twice_without_echoing_it(
    tmp_path: Path,
) -> None:
    with kcc_in_a_terminal("users", "add", "bram", "--role", "adviser", tmp_path=tmp_path) as tty:
        tty.wait_for("Password: ")
        tty.type(GOOD_PASSWORD)
        tty.wait_for("Repeat for confirmation: ")
        tty.type(GOOD_PASSWORD)
        code = tty.exit_code()

    assert code == 0, tty.screen
    assert "added adviser bram (skills: all; device: client:bram)" in tty.screen
    assert GOOD_PASSWORD not in tty.screen  # hidden input
    assert signs_in(tmp_path, "bram", GOOD_PASSWORD) is Role.ADVISER


def test_users_add_at_a_terminal_refuses_a_mismatched_confirmation_and_asks_again(
    tmp_path: Path,
) -> None:
    first, mistyped = "first password typed", "first pasword typed"
    with kcc_in_a_terminal("users", "add", "bram", "--role", "adviser", tmp_path=tmp_path) as tty:
        tty.wait_for("Password: ")
        tty.type(first)
        tty.wait_for("Repeat for confirmation: ")
        tty.type(mistyped)
        refused = tty.wait_for("Password: ")  # asked again from the start
        assert "Error: The two entered values do not match." in refused
        assert "added" not in refused
        tty.type(GOOD_PASSWORD)
        tty.wait_for("Repeat for confirmation: ")
        tty.type(GOOD_PASSWORD)
        code = tty.exit_code()

    assert code == 0, tty.screen  # not "already exists": the mismatch created nobody
    assert tty.screen.count("added adviser bram") == 1
    assert signs_in(tmp_path, "bram", GOOD_PASSWORD) is Role.ADVISER
    assert signs_in(tmp_path, "bram", first) is None
    assert signs_in(tmp_path, "bram", mistyped) is None
