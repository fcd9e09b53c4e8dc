"""The database schema: Alembic revisions shipped in the package (api/database/migrations), the
check every entry point makes before it uses a database, and the work of `kcc db`.

Where a database stands (`State`):
- up to date: its `alembic_version` names this release's head revision;
- behind: it names an older revision, or it has none: either no kcc table at all (empty), or
  the tables the release before migrations made with create_all (those of `BASELINE`);
- refused: it names a revision this release does not know (a newer release migrated it), or
  it has kcc tables without a revision that are not those of `BASELINE`.

`upgrade` brings a database that is behind to the head: an empty one gets every revision; one
made by the release before migrations is marked as `BASELINE` (stamped, no DDL) and upgraded
from there. `ensure_schema` is what the service and the commands call before they touch the
database: with `migrate` it upgrades, without it refuses with a message naming `kcc db upgrade`.
Only an embedded SQLite database migrates itself (`migrates_itself`); see
docs/adr/0006-schema-migrations-with-alembic.md.

For developers, `python -m api.database.schema revision -m "what changes"` writes the next
revision from the difference between the models and a database at the head (docs/database.md).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, inspect, text

from api.database.engine import make_engine
from flows.errors import ErrorKind, KccError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # the tables of the release before migrations, as its create_all made them
VERSION_TABLE = "alembic_version"
# The advisory lock held while a PostgreSQL database is upgraded: a second `kcc db upgrade`
# waits for the first, then finds the work done.
_PG_LOCK = 0x6B6363DB


class SchemaError(KccError):
    """The database's schema is not the one this release works with."""

    code = "schema_error"
    kind = ErrorKind.UNAVAILABLE


class SchemaBehind(SchemaError):
    """The database is behind this release (or has no tables yet): `kcc db upgrade` fixes it."""

    code = "schema_behind"


class SchemaUnknown(SchemaError):
    """The database is at a revision this release does not know, or has tables of no revision:
    nothing this release can do to it is safe."""

    code = "schema_unknown"


class Standing(StrEnum):
    UP_TO_DATE = "up_to_date"
    BEHIND = "behind"  # at an older revision
    PREVIOUS_RELEASE = "previous_release"  # the tables of BASELINE, no revision
    EMPTY = "empty"  # no kcc table and no revision: not a kcc database yet
    UNKNOWN = "unknown"  # a revision this release does not know (a newer release ran)
    UNRECOGNISED = "unrecognised"  # kcc tables without a revision, not those of BASELINE


@dataclass(frozen=True)
class State:
    standing: Standing
    revision: str | None  # what the database's alembic_version says; None: nothing
    head: str  # this release's
    problems: tuple[str, ...] = ()  # UNRECOGNISED: how its tables differ from BASELINE's

    @property
    def refused(self) -> bool:
        return self.standing in {Standing.UNKNOWN, Standing.UNRECOGNISED}

    def error(self) -> SchemaError | None:
        """What an entry point that may not migrate raises; None when up to date."""
        match self.standing:
            case Standing.UP_TO_DATE:
                return None
            case Standing.BEHIND:
                return SchemaBehind(
                    f"the database is at schema revision {self.revision} and this release "
                    f"needs {self.head}: run `kcc db upgrade`",
                    revision=self.revision,
                    head=self.head,
                )
            case Standing.PREVIOUS_RELEASE:
                return SchemaBehind(
                    "the database was made by a release before schema migrations: run "
                    "`kcc db upgrade`",
                    revision=None,
                    head=self.head,
                )
            case Standing.EMPTY:
                return SchemaBehind(
                    "the database has no kcc tables yet: run `kcc db upgrade` to create them",
                    revision=None,
                    head=self.head,
                )
            case Standing.UNKNOWN:
                return SchemaUnknown(
                    f"the database is at schema revision {self.revision}, which this release "
                    f"does not know (it knows up to {self.head}): a newer release has migrated "
                    "it; run that release, or restore the backup taken before its upgrade",
                    revision=self.revision,
                    head=self.head,
                )
            case Standing.UNRECOGNISED:
                return SchemaUnknown(
                    "the database has kcc tables but no schema revision, and they are not those "
                    f"of revision {BASELINE} ({'; '.join(self.problems)}): refusing to guess "
                    "which release made them",
                    revision=None,
                    head=self.head,
                )


@dataclass(frozen=True)
class Upgrade:
    before: State
    after: str  # the revision the database is at now

    @property
    def stamped(self) -> bool:
        """Tables of the release before migrations, marked as BASELINE before upgrading."""
        return self.before.standing is Standing.PREVIOUS_RELEASE


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built here rather than read from an alembic.ini; with a
    connection, the migrations run on it (in its transaction)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("truncate_slug_length", "60")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def script_directory() -> ScriptDirectory:
    """The revisions shipped with this release."""
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The revision this release's models are at (the newest shipped)."""
    heads = script_directory().get_heads()
    if len(heads) != 1:  # two revisions with the same parent: a merge is missing
        raise RuntimeError(f"the migrations have {len(heads)} heads: {', '.join(heads)}")
    return heads[0]


def current(engine: Engine) -> str | None:
    """The revision the database is at; None when it has none (empty, or the release before
    migrations made it)."""
    with engine.connect() as connection:
        return _revision(connection)


def state(engine: Engine) -> State:
    with engine.connect() as connection:
        return _state(connection)


def migrates_itself(engine: Engine) -> bool:
    """The auto-migrate rule: an embedded SQLite database is brought up to date by whatever
    opens it; a server database (PostgreSQL) only by `kcc db upgrade`, run by the operator
    before the new release starts (a backup first, one run, not one per instance)."""
    return engine.dialect.name == "sqlite"


def open_database(url: str) -> Engine:
    """An engine for the database at `url`, whose schema is this release's: what the service and
    every command that touches the database use. SQLite is upgraded in passing
    (`migrates_itself`); any other database must be upgraded already.

    Raises SchemaBehind or SchemaUnknown (see `ensure_schema`)."""
    engine = make_engine(url)
    try:
        ensure_schema(engine, migrate=migrates_itself(engine))
    except BaseException:
        engine.dispose()
        raise
    return engine


def ensure_schema(engine: Engine, *, migrate: bool) -> None:
    """Return when the database is at this release's head, upgrading it first if `migrate`.

    Raises SchemaBehind (behind, empty, or made before migrations) when it may not migrate,
    SchemaUnknown (a revision this release does not know, or unrecognised tables) always."""
    found = state(engine)
    if found.standing is Standing.UP_TO_DATE:
        return
    if found.refused or not migrate:
        error = found.error()
        assert error is not None
        raise error
    done = upgrade(engine)
    log.info(
        "database schema upgraded",
        extra={"from_revision": done.before.revision, "to_revision": done.after},
    )


def upgrade(engine: Engine) -> Upgrade:
    """Bring the database to the head: every revision for an empty one; tables of the release
    before migrations are marked BASELINE first. One transaction on PostgreSQL (its DDL is
    transactional), under a lock, so concurrent runs do the work once.

    Raises SchemaUnknown for a revision this release does not know, or unrecognised tables."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        before = _state(connection)
        if before.refused:
            error = before.error()
            assert error is not None
            raise error
        cfg = config(connection)
        if before.standing is Standing.PREVIOUS_RELEASE:
            command.stamp(cfg, BASELINE)
        if before.standing is not Standing.UP_TO_DATE:
            command.upgrade(cfg, "head")
        after = _revision(connection)
    assert after is not None
    return Upgrade(before=before, after=after)


def _revision(connection: Connection) -> str | None:
    heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(heads) if heads else None


def _known(revision: str) -> bool:
    try:
        return script_directory().get_revision(revision) is not None
    except CommandError:
        return False


def _state(connection: Connection) -> State:
    target = head()
    heads = MigrationContext.configure(connection).get_current_heads()
    if heads:
        revision = ",".join(heads)
        if not all(_known(each) for each in heads):
            return State(Standing.UNKNOWN, revision, target)
        standing = Standing.UP_TO_DATE if heads == (target,) else Standing.BEHIND
        return State(standing, revision, target)
    expected = _baseline_tables()
    if not expected.keys() & set(inspect(connection).get_table_names()):
        return State(Standing.EMPTY, None, target)
    problems = tuple(_differences(connection, expected))
    if problems:
        return State(Standing.UNRECOGNISED, None, target, problems)
    return State(Standing.PREVIOUS_RELEASE, None, target)


Columns = dict[str, bool]  # name -> nullable


@cache
def _baseline_tables() -> dict[str, Columns]:
    """The tables BASELINE makes, read back from a throwaway in-memory database it ran on.

    Column names and nullability, not types: those are reflected differently per dialect, and
    a release's create_all never left a column's type to chance without also changing a name
    or a table."""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            command.upgrade(config(connection), BASELINE)
            return _tables(connection, exclude={VERSION_TABLE})
    finally:
        engine.dispose()


def _tables(connection: Connection, *, exclude: set[str] | None = None) -> dict[str, Columns]:
    inspector = inspect(connection)
    return {
        table: {column["name"]: column["nullable"] for column in inspector.get_columns(table)}
        for table in inspector.get_table_names()
        if table not in (exclude or set())
    }


def _differences(connection: Connection, expected: dict[str, Columns]) -> Iterator[str]:
    """How the database's kcc tables differ from `expected` (tables of other applications
    sharing the database are none of our business)."""
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    for table, columns in sorted(expected.items()):
        if table not in present:
            yield f"no table {table}"
            continue
        found = {c["name"]: c["nullable"] for c in inspector.get_columns(table)}
        for name in sorted(columns.keys() - found.keys()):
            yield f"{table} has no column {name}"
        for name in sorted(found.keys() - columns.keys()):
            yield f"{table} has an unexpected column {name}"
        for name in sorted(columns.keys() & found.keys()):
            if columns[name] != found[name]:
                yield f"{table}.{name} is {'' if found[name] else 'NOT '}NULL"


# -- writing the next revision (developers) ---------------------------------------------------


@contextmanager
def _database_at_head(url: str | None) -> Iterator[Engine]:
    """A temporary SQLite file upgraded to the head, or the database at `url`, which must be at
    the head already (this never migrates a database of yours)."""
    with tempfile.TemporaryDirectory(prefix="kcc-revision-") as tmp:
        engine = make_engine(url or f"sqlite:///{tmp}/head.sqlite3")
        try:
            if url is None:
                upgrade(engine)
            elif (found := state(engine)).standing is not Standing.UP_TO_DATE:
                raise SystemExit(f"{url} is not at the head {found.head}: upgrade it first")
            yield engine
        finally:
            engine.dispose()


def write_revision(message: str, *, url: str | None = None) -> Path:
    """Write the next revision (0002, 0003, ...) from what the models have and a database at the
    head does not; returns its file, to be read and edited before it is committed."""
    number = max(int(script.revision) for script in script_directory().walk_revisions()) + 1
    with _database_at_head(url) as engine, engine.begin() as connection:
        written = command.revision(
            config(connection), message, autogenerate=True, rev_id=f"{number:04d}"
        )
    scripts = written if isinstance(written, list) else [written]
    assert scripts and scripts[0] is not None
    return Path(scripts[0].path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.database.schema")
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="write the next revision from the models")
    revision.add_argument("-m", "--message", required=True, help="what the revision changes")
    revision.add_argument(
        "--database",
        metavar="URL",
        help="compare with this database, at the head (default: a temporary SQLite file)",
    )
    args = parser.parse_args(argv)
    path = write_revision(args.message, url=args.database)
    print(f"wrote {path}: read it, adjust it, run `ruff format` on it and the migration tests")


if __name__ == "__main__":
    main()
