"""The `kcc` command as a user sees it: exit codes, what is printed, and on which stream.

Most tests run the typer app in-process with `CliRunner`; a real console-script process is used
where a real process matters (the installed `kcc` entry point, `kcc serve` with a live HTTP
server and `kcc call --url` against it). The environment is always built explicitly, so a
KCC_REDIS_URL or TWILIO_AUTH_TOKEN in the shell that runs the tests changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner, Result

from api.cli import app
from api.db import create_tables, make_engine
from api.settings import DEFAULT_FLOW, PLACEHOLDER_AUTH_TOKEN, PLACEHOLDER_SECRET
from api.users import Role, authenticate, get_user
from flows.loader import load_flow
from tests.support.servers import KccServer, clean_env, kcc_serve, run_kcc

PROMPTS = load_flow(DEFAULT_FLOW).prompts
OPEN_TUESDAY = "2026-12-01T10:00+01:00"  # Tuesday 1 December 2026, 10:00 in Amsterdam
KINGS_DAY = "2026-04-27T10:00+02:00"  # a Monday, and a public holiday
GOOD_PASSWORD = "correct horse battery staple"
SERVER_TOKEN = "cli-test-auth-token-0123456789abcdef"

# No KCC_/TWILIO_ variable from outside; cwd in tmp_path (the default DB is relative).
pytestmark = pytest.mark.usefixtures("isolated")


# -- helpers -----------------------------------------------------------------------------------


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/kcc.sqlite3"


def kcc(*args: str, env: Mapping[str, str] | None = None, tmp_path: Path) -> Result:
    """Run `kcc ARGS` in-process; a crash (traceback) fails the test rather than pass as exit 1."""
    full_env = {"KCC_DATABASE_URL": db_url(tmp_path), **(env or {})}
    result = CliRunner().invoke(app, list(args), env=full_env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


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


def line_of(text: str, marker: str, after: str | None = None) -> int:
    """1-based number of the line equal to `marker` (the first after the line `after`)."""
    lines = text.splitlines()
    start = lines.index(after) + 1 if after is not None else 0
    hits = [number for number in range(start, len(lines)) if lines[number] == marker]
    assert hits, f"{marker!r} not in the edited flow"
    assert after is not None or len(hits) == 1, f"{marker!r} is not unique"
    return hits[0] + 1


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
    done = run_kcc("flows", "check", env=clean_env(KCC_DATABASE_URL=db_url(tmp_path)))
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
    assert result.stdout.strip() == "added supervisor alice"
    engine = make_engine(db_url(tmp_path))
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
    assert "supervisor or adviser" in result.stderr


def test_users_add_rejects_a_short_password_and_says_why(tmp_path: Path) -> None:
    result = kcc("users", "add", "alice", env={"KCC_PASSWORD": "short"}, tmp_path=tmp_path)

    assert result.exit_code == 1
    assert "password too short" in result.stderr
    assert "at least 8 characters" in result.stderr
    engine = make_engine(db_url(tmp_path))
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
    assert PROMPTS["closed"]["nl"] in out
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

    engine = make_engine(db_url(tmp_path))
    create_tables(engine)
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
    tmp = tmp_path_factory.mktemp("serve")
    with kcc_serve(
        tmp,
        TWILIO_AUTH_TOKEN=SERVER_TOKEN,
        KCC_DATABASE_URL=db_url(tmp),
        KCC_NOW="2026-12-01T10:00:00+01:00",
    ) as served:
        yield served


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
    engine = make_engine(db_url(tmp_path))
    try:
        with Session(engine) as session:
            user = get_user(session, "piet")
            assert user is not None and (user.skills, user.device) == (
                "vog_np,pardon",
                "+31201234567",
            )
    finally:
        engine.dispose()


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
    assert "device must be client:NAME or a phone number" in result.stderr
