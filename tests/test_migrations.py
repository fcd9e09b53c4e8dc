"""Schema migrations (api/database/schema.py, api/database/migrations/): every revision gives
exactly the models' schema; a database made by the release before migrations is recognised and
upgraded without losing a row; the service refuses a PostgreSQL database that is behind and
brings an SQLite one up to date itself.

PostgreSQL tests use a database of their own (`kcc_migrate_<pid>_<random>`), created on the
server and dropped after, never the shared `test` database."""

from __future__ import annotations

import ast
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import Engine, MetaData, create_engine, inspect, make_url, text
from sqlmodel import Session, SQLModel

from api.accounts import Role, authenticate, create_user, get_user, revoke_all_tokens
from api.database import schema
from api.database.engine import make_engine
from api.database.schema import SchemaBehind, SchemaUnknown, Standing
from api.services import build_services
from api.settings import DEFAULT_FLOW
from api.web.app import create_app
from flows.versions import SqlFlowVersions
from ivr.reports import ReportQuery, run_report
from routing.adviser_history import SqlAdviserLog, WrapUp, WrapUpDone
from routing.monitor_log import SqlMonitorLog
from routing.monitoring import EndReason, MonitorMode, MonitorSession, MonitorState
from routing.transfers import CallTransfer
from tests.conftest import (
    POSTGRES_SERVICE,
    POSTGRES_UP,
    POSTGRES_URL,
    make_settings,
    need_service,
)
from tests.support.database import sqlite_url
from tests.support.servers import clean_env, free_port, invoke_kcc, run_kcc

DATA = Path(__file__).resolve().parent / "data"
DIALECTS = ["sqlite", "postgresql"]
AT = datetime(2026, 11, 30, 14, 5, 6, 123456, tzinfo=UTC)


# -- a database of the test's own -------------------------------------------------------------


def _drop_leftovers(admin: Engine) -> None:
    """Databases of runs that were killed before they could drop theirs."""
    with admin.connect() as connection:
        names = connection.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE 'kcc\\_migrate\\_%'")
        ).scalars()
        for name in list(names):
            pid = name.split("_")[2]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    need_service(POSTGRES_UP, POSTGRES_SERVICE)
    name = f"kcc_migrate_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        _drop_leftovers(admin)
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database: an SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine_of() -> Iterator[Callable[[str], Engine]]:
    engines: list[Engine] = []

    def open_engine(url: str) -> Engine:
        engines.append(make_engine(url))
        return engines[-1]

    yield open_engine
    for engine in engines:
        engine.dispose()


def load_previous_release(engine: Engine) -> None:
    """The tables the release before migrations made, from the DDL its create_all emitted."""
    ddl = (DATA / f"previous_release_{engine.dialect.name}.sql").read_text(encoding="utf-8")
    lines = [line for line in ddl.splitlines() if not line.startswith("--")]
    with engine.begin() as connection:
        for statement in "\n".join(lines).split(";"):
            if statement.strip():
                connection.exec_driver_sql(statement)


# -- 1. the revisions give exactly the models' schema -----------------------------------------


def differences(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def altered_models(dialect: str) -> tuple[MetaData, set[str]]:
    """A copy of the models' metadata with one change of each kind the comparison must see,
    and the kinds of difference they must be reported as."""
    copy = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(copy)
    copy.tables["wrap_ups"].c["note"].type = sa.String(length=1000)  # a type
    copy.tables["flow_audit"].c["from_number"].nullable = False  # nullability
    audit = copy.tables["flow_audit"]
    audit.indexes.discard(next(i for i in audit.indexes if i.name == "ix_flow_audit_flow"))
    sa.Index("ix_wrap_ups_category", copy.tables["wrap_ups"].c["category"])  # an index
    copy.tables["adviser_state_changes"].append_constraint(sa.UniqueConstraint("adviser", "at"))
    versions = copy.tables["flow_versions"]  # its unique (flow, number)
    versions.constraints -= {c for c in versions.constraints if isinstance(c, sa.UniqueConstraint)}
    copy.tables["user"].append_column(sa.Column("email", sa.String(length=200)))  # a column
    expected = {
        "modify_type",
        "modify_nullable",
        "remove_index",
        "add_index",
        "add_constraint",
        "add_column",
    }
    # SQLite's unique constraints have no names to compare by: a constraint the models lack is
    # seen on PostgreSQL only (one they have and the database lacks is seen on both).
    if dialect == "postgresql":
        expected.add("remove_constraint")
    return copy, expected


def kinds(found: list[Any]) -> set[str]:
    """The kinds of difference compare_metadata reported (column changes come grouped)."""
    flat: list[Any] = []
    for entry in found:
        flat.extend(entry if isinstance(entry, list) else [entry])
    return {entry[0] for entry in flat}


def test_every_revision_gives_exactly_the_models_schema(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    engine = engine_of(database_url)
    done = schema.upgrade(engine)

    assert done.before.standing is Standing.EMPTY
    assert done.after == schema.head() == schema.current(engine)
    assert differences(engine, SQLModel.metadata) == []
    # The comparison sees types, nullability, indexes, unique constraints and columns.
    altered, expected = altered_models(engine.dialect.name)
    assert kinds(differences(engine, altered)) == expected


def test_the_test_databases_made_the_fast_way_are_the_migrated_schema(
    db_engine: Engine,
) -> None:
    """tests/support/database.py: create_all, stamped at the head (what every other test uses)."""
    assert schema.state(db_engine).standing is Standing.UP_TO_DATE
    assert differences(db_engine, SQLModel.metadata) == []


# -- 2. a database of the release before migrations, upgraded with its data -------------------

FLOW_TEXT = DEFAULT_FLOW.read_text(encoding="utf-8")
ROWS: dict[str, list[dict[str, Any]]] = {
    "user": [
        {
            "id": 1,
            "name": "sanne",
            "role": "supervisor",
            "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
            "skills": "",
            "device": "",
            "created_at": AT,
            "active": True,
        },
        {
            "id": 2,
            "name": "j.devries",
            "role": "adviser",
            "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdDI$aGFzaDI",
            "skills": "vog_np,pardon",
            "device": "+31612345678",
            "created_at": AT + timedelta(minutes=1),
            "active": False,
        },
    ],
    "applications": [
        {
            "application_number": "1234567",
            "product": "vog_np",
            "status": "waiting_for_information",
            "status_date": date(2026, 11, 28),
            "dob_hmac": "ab" * 32,
            "updated_at": AT,
        }
    ],
    "call_records": [
        {
            "id": 1,
            "call_sid": "CA" + "1" * 32,
            "started_at": AT,
            "ended_at": AT + timedelta(seconds=95),
            "flow": "kcc",
            "flow_version": "0123456789abcdef",
            "language": "nl",
            "product": "vog_np",
            "theme": "status",
            "path": ["welcome", "main_menu", "vog_np_menu"],
            "verification": "verified",
            "outcome": "answered",
            "self_service": False,
            "call_status": "completed",
            "queued_at": AT + timedelta(seconds=40),
        },
        {
            "id": 2,
            "call_sid": "CA" + "2" * 32,
            "started_at": AT,
            "ended_at": AT + timedelta(seconds=12),
            "flow": "kcc",
            "flow_version": "0123456789abcdef",
            "language": "en",
            "product": None,
            "theme": None,
            "path": [],
            "verification": "none",
            "outcome": "abandoned_in_menu",
            "self_service": True,
            "call_status": "completed",
            "queued_at": None,
        },
    ],
    "adviser_state_changes": [
        {"id": 1, "adviser": "j.devries", "state": "available", "at": AT, "call_sid": None},
        {
            "id": 2,
            "adviser": "j.devries",
            "state": "busy",
            "at": AT + timedelta(seconds=41),
            "call_sid": "CA" + "1" * 32,
        },
    ],
    "wrap_ups": [
        {
            "id": 1,
            "adviser": "j.devries",
            "call_sid": "CA" + "1" * 32,
            "category": "status",
            "note": "Asked when the VOG arrives; told 5 working days.",
            "at": AT + timedelta(seconds=120),
        }
    ],
    "flow_versions": [
        {
            "id": number,
            "flow": "kcc",
            "number": number,
            "digest": f"{number:016x}",
            "text": FLOW_TEXT,
            "author": author,
            "created_at": AT + timedelta(days=number),
            "comment": comment,
        }
        for number, author, comment in ((1, "system", "first version"), (2, "sanne", "hours"))
    ],
    "flow_live": [{"flow": "kcc", "number": 2, "since": AT + timedelta(days=2), "generation": 2}],
    "flow_audit": [
        {
            "id": number,
            "flow": "kcc",
            "at": AT + timedelta(days=number),
            "actor": actor,
            "action": "publish",
            "from_number": number - 1 if number > 1 else None,
            "to_number": number,
            "comment": "",
        }
        for number, actor in ((1, "system"), (2, "sanne"))
    ],
}


def every_row(engine: Engine, tables: MetaData) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {
            name: [
                tuple(row)
                for row in connection.execute(sa.select(table).order_by(*table.primary_key.columns))
            ]
            for name, table in tables.tables.items()
        }


def test_a_database_of_the_release_before_migrations_is_upgraded_without_losing_a_row(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    engine = engine_of(database_url)
    load_previous_release(engine)
    # Its tables as they are (reflected), not as the models are now: rows written the way the
    # release before migrations wrote them, read back the same way after the upgrade.
    previous = MetaData()
    previous.reflect(engine)
    assert set(previous.tables) == set(ROWS)
    with engine.begin() as connection:
        for name, rows in ROWS.items():
            connection.execute(previous.tables[name].insert(), rows)
    if engine.dialect.name == "postgresql":  # as SERIAL would have them after those rows
        with engine.begin() as connection:
            for name in ROWS:
                if "id" in previous.tables[name].c:
                    connection.execute(
                        text(f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), 9)")
                    )
    before = every_row(engine, previous)
    assert schema.state(engine).standing is Standing.PREVIOUS_RELEASE
    env = clean_env(KCC_DATABASE_URL=database_url)

    upgraded = run_kcc("db", "upgrade", env=env)

    assert upgraded.returncode == 0, upgraded.stderr
    assert "recognised the tables of the release before migrations as revision 0001" in (
        upgraded.stdout
    )
    assert f"revision {schema.head()} (head)" in upgraded.stdout
    assert every_row(engine, previous) == before
    assert all(before[name] for name in ROWS)  # every table had rows to lose
    assert differences(engine, SQLModel.metadata) == []
    current = run_kcc("db", "current", env=env)
    assert current.returncode == 0, current.stderr
    assert current.stdout.splitlines()[-1] == f"revision {schema.head()} (head): up to date"
    # The service reads what was there, and writes on (the next id is free).
    versions = SqlFlowVersions(engine)
    pointer = versions.live_pointer("kcc")
    assert pointer is not None and (pointer.number, pointer.generation) == (2, 2)
    versions.rollback("kcc", 1, actor="sanne", comment="back", at=AT + timedelta(days=3))
    with Session(engine) as session:
        user = get_user(session, "j.devries")
        assert user is not None and user.skills == "vog_np,pardon" and not user.active


def test_calls_recorded_before_hold_existed_get_zero_hold_seconds_on_upgrade(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    """Revision 0002 adds call_records.hold_seconds to a database with calls in it."""
    engine = engine_of(database_url)
    load_previous_release(engine)
    previous = MetaData()
    previous.reflect(engine)
    with engine.begin() as connection:
        connection.execute(previous.tables["call_records"].insert(), ROWS["call_records"])

    done = schema.upgrade(engine)

    assert done.after == schema.head()
    with engine.connect() as connection:
        held = connection.execute(
            text("SELECT call_sid, hold_seconds FROM call_records ORDER BY id")
        ).all()
    assert [tuple(row) for row in held] == [(row["call_sid"], 0) for row in ROWS["call_records"]]
    assert differences(engine, SQLModel.metadata) == []


def test_calls_recorded_before_transfers_existed_keep_their_rows_and_get_a_transfers_table(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    """Revision 0003 adds call_transfers to a database with calls in it: the calls stay, and a
    transfer of one of them can be recorded and counted."""
    engine = engine_of(database_url)
    load_previous_release(engine)
    previous = MetaData()
    previous.reflect(engine)
    with engine.begin() as connection:
        connection.execute(previous.tables["call_records"].insert(), ROWS["call_records"])
    assert "call_transfers" not in previous.tables

    done = schema.upgrade(engine)

    assert done.after == schema.head()
    call_sid = ROWS["call_records"][0]["call_sid"]
    with Session(engine) as session:
        session.add(
            CallTransfer(
                call_sid=call_sid,
                adviser="ann",
                target_kind="department",
                target="wwm",
                mode="warm",
                answered=True,
                outcome="answered",
                started_at=AT,
                ended_at=AT + timedelta(seconds=40),
            )
        )
        session.commit()
    with engine.connect() as connection:
        calls = connection.execute(text("SELECT call_sid FROM call_records ORDER BY id")).all()
        counted = connection.execute(
            text(
                "SELECT target_kind, mode, COUNT(*) FROM call_transfers"
                " WHERE answered GROUP BY target_kind, mode"
            )
        ).all()
    assert [row[0] for row in calls] == [row["call_sid"] for row in ROWS["call_records"]]
    assert [tuple(row) for row in counted] == [("department", "warm", 1)]
    assert differences(engine, SQLModel.metadata) == []


# -- 3. start-up: refused on PostgreSQL when behind, self-migrating on SQLite ------------------


def test_the_service_refuses_a_postgresql_database_that_is_behind(
    postgres_url: str, tmp_path: Path, engine_of: Callable[[str], Engine]
) -> None:
    settings = make_settings(tmp_path, database_url=postgres_url, redis_url=None)

    with pytest.raises(SchemaBehind, match="run `kcc db upgrade`") as empty:
        build_services(settings)
    with pytest.raises(SchemaBehind, match="run `kcc db upgrade`"):
        create_app(settings)
    load_previous_release(engine_of(postgres_url))
    with pytest.raises(SchemaBehind, match="before schema migrations: run `kcc db upgrade`"):
        create_app(settings)

    assert empty.value.code == "schema_behind" and empty.value.kind == "unavailable"
    assert schema.current(engine_of(postgres_url)) is None  # refused: nothing was changed
    port = free_port()
    env = clean_env(KCC_DATABASE_URL=postgres_url, KCC_PUBLIC_URL=f"http://127.0.0.1:{port}")
    served = run_kcc("serve", "--port", str(port), env=env)
    assert served.returncode == 1
    assert served.stderr.splitlines() == [
        "error: the database was made by a release before schema migrations: run `kcc db upgrade`"
    ]


def test_a_database_at_an_older_revision_is_behind_and_named(
    postgres_url: str, engine_of: Callable[[str], Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_of(postgres_url)
    schema.upgrade(engine)
    at = schema.head()
    monkeypatch.setattr(schema, "head", lambda: "9999")  # as if this release had one more

    with pytest.raises(SchemaBehind) as behind:
        schema.ensure_schema(engine, migrate=False)

    assert behind.value.message == (
        f"the database is at schema revision {at} and this release needs 9999: run `kcc db upgrade`"
    )
    assert behind.value.params == {"revision": at, "head": "9999"}


async def test_the_service_brings_an_sqlite_database_up_to_date_itself(
    make_app: Callable[..., FastAPI], tmp_path: Path, engine_of: Callable[[str], Engine]
) -> None:
    engine = engine_of(sqlite_url(tmp_path))  # where make_settings points
    load_previous_release(engine)

    app = make_app()

    assert schema.current(engine) == schema.head()
    assert app.state.services.flows.current.version.number == 1  # seeded on the new schema
    assert differences(engine, SQLModel.metadata) == []


async def test_an_empty_sqlite_database_is_created_at_the_head_by_the_service(
    tmp_path: Path,
) -> None:
    services = build_services(make_settings(tmp_path / "new", redis_url=None))
    try:
        assert schema.current(services.db_engine) == schema.head()
    finally:
        await services.close()


# -- where a database stands; what is refused ------------------------------------------------


def kcc_db(*args: str, url: str) -> tuple[int, list[str]]:
    """`kcc db ARGS` in-process: exit code, and stdout and stderr lines."""
    result = invoke_kcc("db", *args, env={"KCC_DATABASE_URL": url})
    return result.exit_code, result.output.splitlines()


@pytest.mark.usefixtures("isolated")
def test_db_current_on_an_empty_database_says_it_is_not_a_kcc_database_yet(
    database_url: str,
) -> None:
    code, lines = kcc_db("current", url=database_url)

    assert code == 1
    assert lines[0] == f"database {make_url(database_url).render_as_string(hide_password=True)}"
    assert "not a kcc database yet" in lines[1]
    assert f"(head is {schema.head()})" in lines[1]


@pytest.mark.usefixtures("isolated")
def test_db_upgrade_then_current_on_an_empty_database(database_url: str) -> None:
    assert kcc_db("upgrade", url=database_url) == (
        0,
        [
            f"database {make_url(database_url).render_as_string(hide_password=True)}",
            f"upgraded from no tables to revision {schema.head()} (head)",
        ],
    )
    assert kcc_db("upgrade", url=database_url)[1][1] == (
        f"already up to date at revision {schema.head()} (head)"
    )
    assert kcc_db("current", url=database_url)[1][1] == (
        f"revision {schema.head()} (head): up to date"
    )


@pytest.mark.usefixtures("isolated")
def test_db_current_says_a_database_of_the_release_before_migrations_is_behind(
    tmp_path: Path, engine_of: Callable[[str], Engine]
) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite3"
    load_previous_release(engine_of(url))

    code, lines = kcc_db("current", url=url)

    assert code == 1
    assert lines[1] == (
        "no revision; the tables of the release before migrations (0001), "
        f"head is {schema.head()}: behind: run `kcc db upgrade`"
    )


@pytest.mark.usefixtures("isolated")
def test_a_database_a_newer_release_migrated_is_refused_by_everything(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    engine = engine_of(database_url)
    schema.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    message = (
        "the database is at schema revision 0999, which this release does not know (it knows "
        f"up to {schema.head()}): a newer release has migrated it; run that release, or restore "
        "the backup taken before its upgrade"
    )

    with pytest.raises(SchemaUnknown) as unknown:
        schema.ensure_schema(engine, migrate=True)  # even where it may migrate
    assert unknown.value.message == message
    assert unknown.value.code == "schema_unknown"
    assert kcc_db("upgrade", url=database_url) == (1, [f"error: {message}"])
    assert kcc_db("current", url=database_url)[0] == 1
    assert kcc_db("current", url=database_url)[1][-1] == f"error: {message}"
    assert schema.current(engine) == "0999"


@pytest.mark.usefixtures("isolated")
def test_tables_without_a_revision_that_are_not_the_first_revisions_are_refused(
    tmp_path: Path, engine_of: Callable[[str], Engine]
) -> None:
    url = f"sqlite:///{tmp_path}/odd.sqlite3"
    engine = engine_of(url)
    load_previous_release(engine)
    with engine.begin() as connection:  # as a release before flow generations left it
        connection.execute(text("ALTER TABLE flow_live DROP COLUMN generation"))
        connection.execute(text("DROP TABLE wrap_ups"))

    code, lines = kcc_db("upgrade", url=url)

    assert code == 1
    assert lines == [
        "error: the database has kcc tables but no schema revision, and they are not those of "
        "revision 0001 (flow_live has no column generation; no table wrap_ups): refusing to "
        "guess which release made them"
    ]
    assert schema.current(engine) is None


FAILING_REVISION = '''"""Creates a table, then fails."""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    raise RuntimeError("the revision failed half-way")


def downgrade() -> None:
    pass
'''


def next_revision() -> str:
    """The number the revision after this release's head gets."""
    return f"{int(schema.head()) + 1:04d}"


@pytest.fixture
def migrations_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The shipped migrations, copied: what a test adds to it never reaches the package."""
    copy = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(schema, "MIGRATIONS", copy)
    schema.script_directory.cache_clear()
    yield copy
    schema.script_directory.cache_clear()


def test_a_failed_upgrade_leaves_a_postgresql_database_as_it_was(
    postgres_url: str, engine_of: Callable[[str], Engine], migrations_copy: Path
) -> None:
    engine = engine_of(postgres_url)
    schema.upgrade(engine)
    at, following = schema.head(), next_revision()
    failing = FAILING_REVISION.replace("{revision}", following).replace("{down_revision}", at)
    (migrations_copy / "versions" / f"{following}_half_done.py").write_text(failing)
    schema.script_directory.cache_clear()

    with pytest.raises(RuntimeError, match="half-way"):
        schema.upgrade(engine)

    assert schema.current(engine) == at
    assert not sa.inspect(engine).has_table("half_done")
    assert schema.state(engine).standing is Standing.BEHIND


# -- the next revision -------------------------------------------------------------------------


def test_the_revision_command_writes_the_next_revision_and_finds_nothing_to_change(
    migrations_copy: Path,
) -> None:
    """`python -m api.database.schema revision -m ...`, on a copy of the migrations: the models
    and the head are the same schema, so the new revision has nothing to do."""
    at, following = schema.head(), next_revision()
    schema.main(["revision", "-m", "nothing yet"])

    written = sorted((migrations_copy / "versions").glob(f"{following}_*.py"))
    assert [path.name for path in written] == [f"{following}_nothing_yet.py"]
    text_written = written[0].read_text(encoding="utf-8")
    assert f'revision: str = "{following}"' in text_written
    assert f'down_revision: str | Sequence[str] | None = "{at}"' in text_written
    functions = {f.name: f for f in ast.parse(text_written).body if isinstance(f, ast.FunctionDef)}
    assert [type(statement) for statement in functions["upgrade"].body] == [ast.Pass]


def test_monitor_sessions_is_added_to_a_database_with_calls_in_it(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    """Revision 0004 adds the monitor_sessions table (the audit log of supervisors' monitoring)
    to a database at 0003 with calls in it; the calls stay, the log starts empty and takes rows."""
    engine = engine_of(database_url)
    load_previous_release(engine)
    previous = MetaData()
    previous.reflect(engine)
    with engine.begin() as connection:
        connection.execute(previous.tables["call_records"].insert(), ROWS["call_records"])
    with engine.begin() as connection:  # the database as revision 0003 left it
        cfg = schema.config(connection)
        command.stamp(cfg, schema.BASELINE)
        command.upgrade(cfg, "0003")
    assert not sa.inspect(engine).has_table("monitor_sessions")

    done = schema.upgrade(engine)

    assert done.after == schema.head()
    with engine.connect() as connection:
        calls = connection.execute(text("SELECT call_sid FROM call_records ORDER BY id")).all()
        assert [row[0] for row in calls] == [row["call_sid"] for row in ROWS["call_records"]]
        assert connection.execute(text("SELECT count(*) FROM monitor_sessions")).scalar() == 0
    session = MonitorSession(
        id="0123456789abcdef",
        supervisor="sanne",
        call_sid="CA" + "1" * 32,
        adviser="ann",
        product="vog_rp",
        device="client:sanne",
        mode=MonitorMode.LISTEN,
        state=MonitorState.ENDED,
        reason=EndReason.LEFT,
        started_ms=1_764_583_200_000,
        answered_ms=1_764_583_202_000,
        ended_ms=1_764_583_262_000,
        modes=[(MonitorMode.LISTEN, 1_764_583_200_000)],
    )
    log = SqlMonitorLog(engine)
    log.save(session)
    [row] = log.between()
    assert (row.supervisor, row.seconds, row.reason) == ("sanne", 60, "left")
    assert differences(engine, SQLModel.metadata) == []


def test_second_wrap_ups_of_a_call_are_dropped_on_upgrade_and_refused_after(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    """Revision 0005: one wrap-up per adviser and call. A database at 0004 that holds a second
    wrap-up of a call keeps the first; the log then answers a second one with WrapUpDone."""
    engine = engine_of(database_url)
    load_previous_release(engine)
    with engine.begin() as connection:
        cfg = schema.config(connection)
        command.stamp(cfg, schema.BASELINE)
        command.upgrade(cfg, "0004")
    first = ROWS["wrap_ups"][0]
    again = {**first, "id": 2, "category": "other", "at": first["at"] + timedelta(seconds=5)}
    colleague = {**first, "id": 3, "adviser": "a.bakker"}  # a colleague's wrap-up of the call
    previous = MetaData()
    previous.reflect(engine)
    with engine.begin() as connection:
        connection.execute(previous.tables["wrap_ups"].insert(), [first, again, colleague])

    done = schema.upgrade(engine)

    assert done.after == schema.head()
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT id, category FROM wrap_ups ORDER BY id")).all()
    assert [tuple(row) for row in kept] == [(1, "status"), (3, "status")]
    assert differences(engine, SQLModel.metadata) == []
    log = SqlAdviserLog(engine)
    with pytest.raises(WrapUpDone):
        log.wrap_up(WrapUp(**{**first, "id": None, "category": "procedure"}))


def test_calls_recorded_before_complete_records_get_abandoned_and_callback_from_their_outcome(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    """Revision 0006 puts answer time, adviser, wait, talk and wrap-up time, who hung up,
    abandoned, callback, transfer and survey score on call_records. Calls recorded at 0005 keep
    their rows; `abandoned` and `callback_requested` follow from the outcome they were recorded
    with, the rest stays empty."""
    engine = engine_of(database_url)
    load_previous_release(engine)
    with engine.begin() as connection:
        cfg = schema.config(connection)
        command.stamp(cfg, schema.BASELINE)
        command.upgrade(cfg, "0005")
    previous = MetaData()
    previous.reflect(engine)
    base = ROWS["call_records"][0]
    outcomes = ["answered", "abandoned_in_queue", "left_queue", "callback", "abandoned_in_menu"]
    rows = [
        {**base, "id": n + 1, "call_sid": f"CA{n:032d}", "outcome": outcome}
        for n, outcome in enumerate(outcomes)
    ]
    with engine.begin() as connection:
        connection.execute(previous.tables["call_records"].insert(), rows)

    done = schema.upgrade(engine)

    assert done.after == schema.head()
    with engine.connect() as connection:
        upgraded = connection.execute(
            text(
                "SELECT outcome, abandoned, callback_requested, answered_at, adviser,"
                " survey_score FROM call_records ORDER BY id"
            )
        ).all()
    assert [tuple(row) for row in upgraded] == [
        ("answered", False, False, None, None, None),
        ("abandoned_in_queue", True, False, None, None, None),
        ("left_queue", True, False, None, None, None),
        ("callback", False, True, None, None, None),
        ("abandoned_in_menu", False, False, None, None, None),
    ]
    assert differences(engine, SQLModel.metadata) == []


def test_users_get_token_version_0_on_upgrade_and_revoking_raises_it(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    """Revision 0007 adds user.token_version to a database at 0006 with users in it: they keep
    their rows at version 0, and revoke_all_tokens raises a user's version."""
    engine = engine_of(database_url)
    load_previous_release(engine)
    previous = MetaData()
    previous.reflect(engine)
    with engine.begin() as connection:
        connection.execute(previous.tables["user"].insert(), ROWS["user"])
    with engine.begin() as connection:
        cfg = schema.config(connection)
        command.stamp(cfg, schema.BASELINE)
        command.upgrade(cfg, "0006")

    done = schema.upgrade(engine)

    assert done.after == schema.head()
    with engine.connect() as connection:
        users = connection.execute(
            text('SELECT name, active, token_version FROM "user" ORDER BY id')
        ).all()
    assert [tuple(row) for row in users] == [
        (row["name"], row["active"], 0) for row in ROWS["user"]
    ]
    assert differences(engine, SQLModel.metadata) == []
    with Session(engine) as session:
        user = get_user(session, "sanne")
        assert user is not None
        revoke_all_tokens(session, user)
        session.commit()
    with engine.connect() as connection:
        version = connection.execute(
            text("SELECT token_version FROM \"user\" WHERE name = 'sanne'")
        ).scalar()
    assert version == 1


def test_user_audit_is_added_to_a_database_with_staff_in_it(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    """Revision 0008 adds the user_audit table to a database at 0007 with an account in it: the
    account keeps its password and standing, the log starts empty and takes a change."""
    from api.user_admin import UserChange, change_user, user_audit

    engine = engine_of(database_url)
    load_previous_release(engine)
    with engine.begin() as connection:
        cfg = schema.config(connection)
        command.stamp(cfg, schema.BASELINE)
        command.upgrade(cfg, "0007")
    with Session(engine) as session:
        create_user(session, name="ann", role=Role.ADVISER, password="a-long-password")
        session.commit()
    assert not sa.inspect(engine).has_table("user_audit")

    done = schema.upgrade(engine)

    assert done.after == schema.head()
    with Session(engine) as session:
        assert user_audit(session) == []
        assert authenticate(session, name="ann", password="a-long-password") is not None
        change = UserChange(device="+31612345678")
        change_user(session, actor="cli:root", name="ann", change=change, products=())
        session.commit()
        [row] = user_audit(session)
    assert (row.actor, row.action, row.subject) == ("cli:root", "changed", "ann")
    assert json.loads(row.details) == {"device": {"from": "client:ann", "to": "+31612345678"}}
    assert differences(engine, SQLModel.metadata) == []


def test_calls_recorded_before_the_started_at_index_are_reported_from_it_after_upgrade(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    """Revision 0009 indexes call_records.started_at for reports. Calls recorded at 0008 keep
    their rows, and a report of their period finds them through the index."""
    engine = engine_of(database_url)
    load_previous_release(engine)
    with engine.begin() as connection:
        cfg = schema.config(connection)
        command.stamp(cfg, schema.BASELINE)
        command.upgrade(cfg, "0008")
    previous = MetaData()
    previous.reflect(engine)
    base = ROWS["call_records"][0]
    days = [datetime(2026, 11, day, 9, 0, tzinfo=UTC) for day in (1, 15, 30)]
    days.append(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    rows = [
        {**base, "id": n + 1, "call_sid": f"CA{n:032d}", "started_at": day, "ended_at": day}
        for n, day in enumerate(days)
    ]
    with engine.begin() as connection:
        connection.execute(previous.tables["call_records"].insert(), rows)

    done = schema.upgrade(engine)

    assert done.after == schema.head()
    indexes = {
        index["name"]: index["column_names"]
        for index in inspect(engine).get_indexes("call_records")
    }
    assert indexes["ix_call_records_started_at"] == ["started_at"]
    november = ReportQuery.parse("2026-11-01", "2026-11-30", "day")
    report = run_report(engine, november, ZoneInfo("Europe/Amsterdam"))
    assert [(row.key, row.figures.calls) for row in report.rows] == [
        ("2026-11-01", 1), ("2026-11-15", 1), ("2026-11-30", 1),
    ]  # fmt: skip
    assert differences(engine, SQLModel.metadata) == []


def test_callbacks_and_lockouts_get_tables_in_a_database_with_calls_in_it(
    database_url: str, engine_of: Callable[[str], Engine]
) -> None:
    """Revision 0010 adds pending_callbacks and identity_lockouts to a database at 0009 with
    calls in it: the calls stay, both tables start empty and take what the state outbox writes
    (a callback asked, then settled; a lock-out), read back as the recovery reads them."""
    from api.services import state_writer
    from ivr.identity.lockouts import lockout_item, unexpired_lockouts
    from routing.callbacks import pending_callbacks

    engine = engine_of(database_url)
    load_previous_release(engine)
    previous = MetaData()
    previous.reflect(engine)
    with engine.begin() as connection:
        connection.execute(previous.tables["call_records"].insert(), ROWS["call_records"])
        cfg = schema.config(connection)
        command.stamp(cfg, schema.BASELINE)
        command.upgrade(cfg, "0009")
    assert not sa.inspect(engine).has_table("pending_callbacks")

    done = schema.upgrade(engine)

    assert done.after == schema.head()
    with engine.connect() as connection:
        calls = connection.execute(text("SELECT call_sid FROM call_records ORDER BY id")).all()
        assert [row[0] for row in calls] == [row["call_sid"] for row in ROWS["call_records"]]
        for table in ("pending_callbacks", "identity_lockouts"):
            assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
    asked = {
        "kind": "callback_asked",
        "product": "vog_rp",
        "entry": "2.sealed",
        "expires_at": (AT + timedelta(days=5)).isoformat(),
    }
    write = state_writer(engine, lambda: AT)
    later = write(
        [
            json.dumps({**asked, "call_sid": "CA1", "queued_at": AT.isoformat()}),
            json.dumps({**asked, "call_sid": "CA2", "queued_at": (AT - timedelta(1)).isoformat()}),
            json.dumps({"kind": "callback_settled", "call_sid": "CA1", "at": AT.isoformat()}),
            # settled before its ask was written (two instances, out of order): stays settled
            json.dumps({"kind": "callback_settled", "call_sid": "CA3", "at": AT.isoformat()}),
            json.dumps({**asked, "call_sid": "CA3", "queued_at": AT.isoformat()}),
            lockout_item("a" * 32, int((AT + timedelta(hours=24)).timestamp() * 1000)),
        ]
    )
    assert later == []
    [pending] = pending_callbacks(engine, AT)
    assert (pending.call_sid, pending.sealed, pending.queued_at) == (
        "CA2",
        "2.sealed",
        AT - timedelta(1),
    )
    assert unexpired_lockouts(engine, AT) == [("a" * 32, int(AT.timestamp() * 1000) + 86_400_000)]
    assert differences(engine, SQLModel.metadata) == []
