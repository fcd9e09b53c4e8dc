"""Applications: the table, the check of number + date of birth, the CSV import and the demo set.

The date of birth is only ever stored as an HMAC; these tests look for it in the raw table, in
every reason the import gives and in what the command prints.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import traceback
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select
from typer.testing import Result

from api.cli.demo import DEMO_APPLICATIONS, seed_demo
from api.database.engine import make_engine
from api.settings import DEFAULT_FLOW, Settings
from ivr.identity.applications import (
    APPLICATION_NUMBER,
    Application,
    ApplicationInfo,
    ApplicationStatus,
    DateOfBirthHasher,
    SqlApplicationDirectory,
    parse_date_of_birth,
)
from ivr.identity.importer import HEADER, ImportReport, RejectedRow, import_applications
from tests.support.database import sqlite_url
from tests.support.paths import ROOT
from tests.support.servers import invoke_kcc

SECRET = "test-secret-key-0123456789abcdef0123456789"
TODAY = date(2026, 12, 1)
PRODUCTS = ("vog_np", "vog_rp", "gva", "name_change")
HEADER_LINE = ",".join(HEADER)
README = ROOT / "README.md"

# Three good rows; the dates of birth are written in every way the tests look for them.
ALICE = "1234567,1985-11-03,vog_np,in_progress,2026-11-03"
BOB = "2345678,1990-02-14,vog_rp,received,2026-11-20"
CAROL = "34567890,1978-07-30,gva,issued,2026-09-15"
GOOD = (ALICE, BOB, CAROL)


def csv_text(*rows: str, header: str = HEADER_LINE) -> str:
    return "\n".join([header, *rows]) + "\n"


def write(tmp_path: Path, content: str, name: str = "applications.csv", **kw: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding=kw.get("encoding", "utf-8"), newline="")
    return path


def run_import(path: Path, engine: Engine, hasher: DateOfBirthHasher | None = None) -> ImportReport:
    return import_applications(
        path,
        engine=engine,
        hasher=hasher or DateOfBirthHasher(SECRET),
        products=PRODUCTS,
        today=TODAY,
    )


def spellings(born: str) -> list[str]:
    """A YYYY-MM-DD date as it could show up anywhere: ISO, Dutch, typed, compact, US."""
    year, month, day = born.split("-")
    return [
        born,
        f"{day}-{month}-{year}",
        f"{day}{month}{year}",
        f"{year}{month}{day}",
        f"{day}/{month}/{year}",
        f"{month}/{day}/{year}",
        f"{int(day)}-{int(month)}-{year}",
    ]


def stored_applications(engine: Engine) -> dict[str, Application]:
    with Session(engine) as session:
        return {a.application_number: a for a in session.exec(select(Application))}


class CountingHasher(DateOfBirthHasher):
    """Counts the HMACs computed and the digests compared."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.digests = 0
        self.comparisons = 0

    def digest(self, born: date) -> str:
        self.digests += 1
        return super().digest(born)

    def matches(self, born: date, digest: str) -> bool:
        self.comparisons += 1
        return super().matches(born, digest)


# -- the hasher and the validation helpers ------------------------------------------------------


def test_hasher_gives_the_hex_hmac_sha256_of_the_iso_date_under_the_key() -> None:
    hasher = DateOfBirthHasher(SECRET)
    born = date(1985, 11, 3)
    expected = hmac.new(SECRET.encode(), b"1985-11-03", hashlib.sha256).hexdigest()

    assert hasher.digest(born) == expected
    assert hasher.digest(born) == DateOfBirthHasher(SECRET).digest(born)  # deterministic
    assert re.fullmatch(r"[0-9a-f]{64}", expected)
    assert hasher.digest(date(1985, 11, 4)) != expected
    assert DateOfBirthHasher(SECRET + "x").digest(born) != expected
    assert hasher.matches(born, expected)
    assert not hasher.matches(date(1985, 3, 11), expected)


def test_hasher_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError, match="secret"):
        DateOfBirthHasher("")


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("03-11-1985", "date_of_birth is not a date in the form YYYY-MM-DD"),
        ("19851103", "date_of_birth is not a date in the form YYYY-MM-DD"),
        ("", "date_of_birth is not a date in the form YYYY-MM-DD"),
        ("1985-02-30", "date_of_birth is not a real date"),
        ("1985-13-01", "date_of_birth is not a real date"),
        ("2026-12-02", "date_of_birth is in the future"),
        ("1899-12-31", "date_of_birth is before 1900"),
    ],
)
def test_parse_date_of_birth_says_what_is_wrong_without_the_date(typed: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_date_of_birth(typed, today=TODAY)

    assert str(caught.value) == reason
    # Nor in a chained exception of the traceback (fromisoformat's own message repeats it).
    shown = "".join(traceback.format_exception(caught.value))
    assert not typed or typed not in shown


def test_parse_date_of_birth_accepts_today_and_1900() -> None:
    assert parse_date_of_birth("2026-12-01", today=TODAY) == TODAY
    assert parse_date_of_birth("1900-01-01", today=TODAY) == date(1900, 1, 1)


@pytest.mark.parametrize("number", ["123456", "123456789012", "000001"])
def test_application_numbers_of_6_to_12_digits_are_well_formed(number: str) -> None:
    assert APPLICATION_NUMBER.fullmatch(number)


@pytest.mark.parametrize(
    "number", ["12345", "1234567890123", "12345a", "123 456", "", "１２３４５６"]
)
def test_other_application_numbers_are_not(number: str) -> None:
    assert not APPLICATION_NUMBER.fullmatch(number)


def test_application_info_carries_no_date_of_birth_nor_its_hash() -> None:
    assert [f.name for f in fields(ApplicationInfo)] == [
        "application_number",
        "product",
        "status",
        "status_date",
    ]


# -- the table -----------------------------------------------------------------------------------


def test_stored_rows_hold_the_hmac_and_no_date_of_birth_in_any_format(
    db_engine: Engine, tmp_path: Path
) -> None:
    run_import(write(tmp_path, csv_text(*GOOD)), db_engine)

    with db_engine.connect() as connection:
        raw = connection.execute(text("SELECT * FROM applications")).mappings().all()
    assert len(raw) == 3
    dump = repr([dict(row) for row in raw])
    for row in GOOD:
        for spelling in spellings(row.split(",")[1]):
            assert spelling not in dump
    hasher = DateOfBirthHasher(SECRET)
    by_number = {row["application_number"]: row for row in raw}
    assert by_number["1234567"]["dob_hmac"] == hasher.digest(date(1985, 11, 3))
    assert by_number["1234567"]["status"] == "in_progress"  # the plain value, not the enum name
    assert set(raw[0]) == {
        "application_number",
        "product",
        "status",
        "status_date",
        "dob_hmac",
        "updated_at",
    }


# -- the directory -------------------------------------------------------------------------------


@pytest.fixture
def directory_engine(db_engine: Engine, tmp_path: Path) -> Engine:
    report = run_import(write(tmp_path, csv_text(*GOOD)), db_engine)
    assert report == ImportReport(added=3, updated=0, rejected=[])
    return db_engine


def test_directory_gives_the_application_for_the_right_number_and_date(
    directory_engine: Engine,
) -> None:
    directory = SqlApplicationDirectory(directory_engine, DateOfBirthHasher(SECRET))

    info = directory.check("1234567", date(1985, 11, 3))

    assert info == ApplicationInfo(
        application_number="1234567",
        product="vog_np",
        status=ApplicationStatus.IN_PROGRESS,
        status_date=date(2026, 11, 3),
    )
    assert info is not None
    assert type(info.status) is ApplicationStatus


@pytest.mark.parametrize(
    ("number", "born"),
    [
        ("1234567", date(1985, 3, 11)),
        ("1234567", date(1990, 2, 14)),
        ("9999999", date(1985, 11, 3)),
        ("", date(1985, 11, 3)),
    ],
    ids=[
        "wrong date: day and month swapped",
        "wrong date: another applicant's",
        "unknown number",
        "no number",
    ],
)
def test_directory_gives_nothing_for_a_wrong_date_or_an_unknown_number(
    directory_engine: Engine, number: str, born: date
) -> None:
    directory = SqlApplicationDirectory(directory_engine, DateOfBirthHasher(SECRET))

    assert directory.check(number, born) is None


def test_directory_gives_nothing_under_another_secret_key(directory_engine: Engine) -> None:
    directory = SqlApplicationDirectory(directory_engine, DateOfBirthHasher(SECRET + "-rotated"))

    assert directory.check("1234567", date(1985, 11, 3)) is None


def test_directory_does_the_same_work_for_an_unknown_number_as_for_a_wrong_date(
    directory_engine: Engine,
) -> None:
    wrong_date = CountingHasher(SECRET)
    unknown_number = CountingHasher(SECRET)
    right = CountingHasher(SECRET)

    assert (
        SqlApplicationDirectory(directory_engine, wrong_date).check("1234567", date(1985, 3, 11))
        is None
    )
    assert (
        SqlApplicationDirectory(directory_engine, unknown_number).check(
            "9999999", date(1985, 11, 3)
        )
        is None
    )
    assert (
        SqlApplicationDirectory(directory_engine, right).check("1234567", date(1985, 11, 3))
        is not None
    )

    work = [(h.digests, h.comparisons) for h in (wrong_date, unknown_number, right)]
    assert work == [(1, 1), (1, 1), (1, 1)]


# -- the import: good files ---------------------------------------------------------------------


def test_import_of_a_good_file_adds_every_row(db_engine: Engine, tmp_path: Path) -> None:
    report = run_import(write(tmp_path, csv_text(*GOOD)), db_engine)

    assert report == ImportReport(added=3, updated=0, rejected=[])
    stored = stored_applications(db_engine)
    assert set(stored) == {"1234567", "2345678", "34567890"}
    carol = stored["34567890"]
    assert (carol.product, carol.status, carol.status_date) == (
        "gva",
        ApplicationStatus.ISSUED,
        date(2026, 9, 15),
    )


def test_import_again_updates_product_status_date_and_date_of_birth(
    db_engine: Engine, tmp_path: Path
) -> None:
    run_import(write(tmp_path, csv_text(*GOOD)), db_engine)
    changed = (
        "1234567,1985-11-03,vog_np,issued,2026-11-25",  # the status moved on
        "2345678,1990-02-15,name_change,refused,2026-11-26",  # the date of birth was corrected
        "4567890,2001-01-01,vog_np,received,2026-11-27",  # new
    )

    report = run_import(write(tmp_path, csv_text(*changed), name="again.csv"), db_engine)

    assert report == ImportReport(added=1, updated=2, rejected=[])
    stored = stored_applications(db_engine)
    assert len(stored) == 4
    assert stored["1234567"].status is ApplicationStatus.ISSUED
    assert stored["1234567"].status_date == date(2026, 11, 25)
    assert (stored["2345678"].product, stored["2345678"].status) == (
        "name_change",
        ApplicationStatus.REFUSED,
    )
    assert stored["34567890"].status is ApplicationStatus.ISSUED  # not in the file: unchanged
    directory = SqlApplicationDirectory(db_engine, DateOfBirthHasher(SECRET))
    assert directory.check("2345678", date(1990, 2, 15)) is not None
    assert directory.check("2345678", date(1990, 2, 14)) is None


def test_import_tolerates_a_byte_order_mark(db_engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, csv_text(*GOOD), encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    report = run_import(path, db_engine)

    assert report == ImportReport(added=3, updated=0, rejected=[])


def test_import_tolerates_windows_line_ends_blank_lines_and_spaces(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    content = "\r\n".join(
        [HEADER_LINE, ALICE, "", " 2345678 , 1990-02-14 ,vog_rp,received,2026-11-20"]
    )
    content += "\r\n" + "1234567,1985-11-03,nope,in_progress,2026-11-03" + "\r\n"

    report = run_import(write(tmp_path, content), sqlite_engine)

    assert (report.added, report.updated) == (2, 0)
    assert [r.line for r in report.rejected] == [5]  # physical lines: the blank one counts


def test_import_of_a_header_only_file_adds_nothing_and_rejects_nothing(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    report = run_import(write(tmp_path, csv_text()), sqlite_engine)

    assert report == ImportReport(added=0, updated=0, rejected=[])


# -- the import: bad rows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    row: str
    reason: str


BAD_ROWS = {
    "number too short": Bad("12345,1985-11-03,vog_np,received,2026-11-03", "6 to 12 digits"),
    "number too long": Bad("1234567890123,1985-11-03,vog_np,received,2026-11-03", "6 to 12 digits"),
    "number with a letter": Bad("12345X7,1985-11-03,vog_np,received,2026-11-03", "6 to 12 digits"),
    "number missing": Bad(",1985-11-03,vog_np,received,2026-11-03", "6 to 12 digits"),
    "birth date as DD-MM-YYYY": Bad(
        "5550001,03-11-1985,vog_np,received,2026-11-03",
        "date_of_birth is not a date in the form YYYY-MM-DD",
    ),
    "birth date missing": Bad(
        "5550002,,vog_np,received,2026-11-03", "date_of_birth is not a date in the form YYYY-MM-DD"
    ),
    "birth date not real": Bad(
        "5550003,1985-02-30,vog_np,received,2026-11-03", "date_of_birth is not a real date"
    ),
    "birth date in the future": Bad(
        "5550004,2027-01-01,vog_np,received,2026-11-03", "date_of_birth is in the future"
    ),
    "birth date before 1900": Bad(
        "5550005,1899-12-31,vog_np,received,2026-11-03", "date_of_birth is before 1900"
    ),
    "unknown product": Bad("5550006,1985-11-03,passport,received,2026-11-03", "unknown product"),
    "unknown status": Bad("5550007,1985-11-03,vog_np,lost,2026-11-03", "unknown status"),
    "status date not a date": Bad(
        "5550008,1985-11-03,vog_np,received,soon", "status_date is not a date in the form"
    ),
    "status date not real": Bad(
        "5550009,1985-11-03,vog_np,received,2026-13-01", "status_date is not a real date"
    ),
    "status date in the future": Bad(
        "5550010,1985-11-03,vog_np,received,2026-12-02", "status_date is in the future"
    ),
    "too few fields": Bad("5550011,1985-11-03,vog_np,received", "expected 5 fields, found 4"),
    "too many fields": Bad(
        "5550012,1985-11-03,vog_np,received,2026-11-03,extra", "expected 5 fields, found 6"
    ),
    "broken quoting": Bad('5550013,"1985-11-03"x,vog_np,received,2026-11-03', "not readable"),
    # A quote left open must not swallow the rows after it into one field.
    "unterminated quote": Bad('5550014,"1985-11-03,vog_np,received,2026-11-03', "not readable"),
}


def assert_private(reason: str, row: str) -> None:
    """A reason never shows a date of birth, nor an application number in full."""
    values = row.split(",")
    number, born = values[0].strip(), (values[1].strip('"x ') if len(values) > 1 else "")
    if len(number) > 2:
        assert number not in reason, reason
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", born):
        for spelling in spellings(born):
            assert spelling not in reason, reason
    elif born:
        assert born not in reason, reason


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_import_rejects_a_bad_row_with_its_line_and_keeps_the_good_ones(
    kind: str, sqlite_engine: Engine, tmp_path: Path
) -> None:
    bad = BAD_ROWS[kind]

    report = run_import(write(tmp_path, csv_text(ALICE, bad.row, BOB)), sqlite_engine)

    assert (report.added, report.updated) == (2, 0)
    assert len(report.rejected) == 1
    assert report.rejected[0].line == 3
    assert bad.reason in report.rejected[0].reason
    assert_private(report.rejected[0].reason, bad.row)
    assert set(stored_applications(sqlite_engine)) == {"1234567", "2345678"}


def test_import_rejects_every_kind_of_bad_row_at_its_line_on_both_databases(
    db_engine: Engine, tmp_path: Path
) -> None:
    rows = [ALICE]
    expected: list[tuple[int, str]] = []
    for bad in BAD_ROWS.values():
        rows.append(bad.row)
        expected.append((len(rows) + 1, bad.reason))  # +1: the header is line 1
    rows.append(BOB)

    report = run_import(write(tmp_path, csv_text(*rows)), db_engine)

    assert (report.added, report.updated) == (2, 0)
    assert [r.line for r in report.rejected] == [line for line, _ in expected]
    for rejected, (_, reason) in zip(report.rejected, expected, strict=True):
        assert reason in rejected.reason
    for rejected, bad in zip(report.rejected, BAD_ROWS.values(), strict=True):
        assert_private(rejected.reason, bad.row)
    assert set(stored_applications(db_engine)) == {"1234567", "2345678"}


def test_import_names_every_line_with_a_quote_left_open_and_keeps_the_rows_between(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    carol = "3456789,1970-01-01,vog_np,received,2026-11-03"
    rows = [ALICE, '"5550015,1985-11-03,vog_np', BOB, '5550016,"x', carol, '"']

    report = run_import(write(tmp_path, csv_text(*rows)), sqlite_engine)

    assert [r.line for r in report.rejected] == [3, 5, 7]
    assert all("not readable" in r.reason for r in report.rejected)
    assert (report.added, report.updated) == (3, 0)
    assert set(stored_applications(sqlite_engine)) == {"1234567", "2345678", "3456789"}


def test_import_rejects_the_later_of_two_rows_with_one_number_naming_the_first_line(
    db_engine: Engine, tmp_path: Path
) -> None:
    again = "1234567,1990-02-14,vog_rp,issued,2026-11-04"

    report = run_import(write(tmp_path, csv_text(ALICE, BOB, again)), db_engine)

    assert (report.added, report.updated) == (2, 0)
    assert report.rejected == [
        RejectedRow(line=4, reason="duplicate application_number *****67, first on line 2")
    ]
    stored = stored_applications(db_engine)["1234567"]
    assert (stored.product, stored.status) == ("vog_np", ApplicationStatus.IN_PROGRESS)


def test_import_lists_every_problem_of_a_row(sqlite_engine: Engine, tmp_path: Path) -> None:
    row = "12,1985-02-30,passport,lost,2027-01-01"

    report = run_import(write(tmp_path, csv_text(row)), sqlite_engine)

    assert len(report.rejected) == 1
    reason = report.rejected[0].reason
    for part in ("6 to 12 digits", "date_of_birth is not a real date", "unknown product"):
        assert part in reason
    assert "unknown status 'lost'" in reason
    assert "status_date is in the future" in reason
    assert_private(reason, row)


def test_import_does_not_echo_a_product_or_status_holding_digits(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    # Columns swapped: the product and status fields hold a date of birth and a number.
    row = "1234567,vog_np,1985-11-03,7654321,2026-11-03"

    report = run_import(write(tmp_path, csv_text(row)), sqlite_engine)

    reason = report.rejected[0].reason
    assert "unknown product" in reason
    assert "unknown status" in reason
    for spelling in spellings("1985-11-03"):
        assert spelling not in reason
    assert "7654321" not in reason
    assert "1234567" not in reason


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(csv_text(*GOOD, header="number,dob,product,status,date"), id="other names"),
        pytest.param(
            csv_text(*GOOD, header="date_of_birth,application_number,product,status,status_date"),
            id="other order",
        ),
        pytest.param(csv_text(*GOOD, header=HEADER_LINE + ",extra"), id="extra column"),
        pytest.param("\n".join(GOOD) + "\n", id="no header: data on line 1"),
        pytest.param("", id="empty file"),
    ],
)
def test_import_with_a_bad_header_rejects_line_1_and_imports_nothing(
    content: str, db_engine: Engine, tmp_path: Path
) -> None:
    report = run_import(write(tmp_path, content), db_engine)

    assert (report.added, report.updated) == (0, 0)
    assert len(report.rejected) == 1
    assert report.rejected[0].line == 1
    assert "header must be exactly " + HEADER_LINE in report.rejected[0].reason
    assert_private(report.rejected[0].reason, ALICE)
    assert stored_applications(db_engine) == {}


def test_import_of_a_missing_file_raises_os_error(sqlite_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run_import(tmp_path / "missing.csv", sqlite_engine)


# -- kcc applications import ---------------------------------------------------------------------


def kcc_import(path: Path, tmp_path: Path) -> Result:
    env = {"KCC_DATABASE_URL": sqlite_url(tmp_path), "KCC_SECRET_KEY": SECRET}
    return invoke_kcc("applications", "import", str(path), env=env)


def cli_directory_check(tmp_path: Path, number: str, born: date) -> ApplicationInfo | None:
    engine = make_engine(sqlite_url(tmp_path))
    try:
        return SqlApplicationDirectory(engine, DateOfBirthHasher(SECRET)).check(number, born)
    finally:
        engine.dispose()


@pytest.mark.usefixtures("isolated")
def test_cli_import_of_a_good_file_exits_0_with_the_counts(tmp_path: Path) -> None:
    path = write(tmp_path, csv_text(*GOOD))

    result = kcc_import(path, tmp_path)

    assert result.exit_code == 0, result.output
    assert result.stdout == "3 added, 0 updated, 0 rejected\n"
    assert result.stderr == ""
    assert cli_directory_check(tmp_path, "1234567", date(1985, 11, 3)) is not None
    again = kcc_import(path, tmp_path)
    assert again.exit_code == 0
    assert again.stdout == "0 added, 3 updated, 0 rejected\n"
    database = (tmp_path / "kcc.sqlite3").read_bytes()
    for spelling in spellings("1985-11-03"):
        assert spelling.encode() not in database


@pytest.mark.usefixtures("isolated")
def test_cli_import_prints_file_line_reason_per_rejected_row_and_exits_1(
    tmp_path: Path,
) -> None:
    future = "5550004,2999-01-01,vog_np,received,2026-11-03"
    unknown = "5550006,1985-11-03,passport,received,2026-11-03"
    path = write(tmp_path, csv_text(ALICE, future, BOB, unknown))

    result = kcc_import(path, tmp_path)

    assert result.exit_code == 1
    assert result.stdout == "2 added, 0 updated, 2 rejected\n"
    assert result.stderr.splitlines() == [
        f"{path}:3: date_of_birth is in the future",
        f"{path}:5: unknown product 'passport'",
    ]
    for spelling in [*spellings("1985-11-03"), *spellings("2999-01-01"), "5550004", "5550006"]:
        assert spelling not in result.output
    assert cli_directory_check(tmp_path, "2345678", date(1990, 2, 14)) is not None


@pytest.mark.usefixtures("isolated")
def test_cli_import_with_a_bad_header_exits_1_and_imports_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join(GOOD) + "\n")

    result = kcc_import(path, tmp_path)

    assert result.exit_code == 1
    assert result.stdout == "0 added, 0 updated, 1 rejected\n"
    assert result.stderr.startswith(f"{path}:1: the header must be exactly {HEADER_LINE}")
    assert "1985-11-03" not in result.output
    assert cli_directory_check(tmp_path, "1234567", date(1985, 11, 3)) is None


@pytest.mark.usefixtures("isolated")
def test_cli_import_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"

    result = kcc_import(missing, tmp_path)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{missing}: cannot read" in result.stderr
    assert "No such file" in result.stderr


@pytest.mark.usefixtures("isolated")
def test_cli_import_of_a_file_that_is_not_utf8_exits_2_and_imports_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        csv_text(ALICE, "2345678,1990-02-14,vog_rp,received,2026-11-20").encode()
        + "9999999,1990-02-14,gva,received,2026-11-20 café\n".encode("latin-1")
    )

    result = kcc_import(path, tmp_path)

    assert result.exit_code == 2
    assert f"{path}: not UTF-8 text" in result.stderr
    assert "added" not in result.stdout
    assert cli_directory_check(tmp_path, "1234567", date(1985, 11, 3)) is None


# -- the demo data set ---------------------------------------------------------------------------


def readme_demo_applications() -> list[tuple[str, str, str, str]]:
    """(number, DDMMYYYY, product, status) from the README's table of demo applications."""
    section = README.read_text(encoding="utf-8").split("### Demo applications", 1)[1]
    section = section.split("\n#", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (\d{8}) \| (\w+) \| (\w+) \|$", section, flags=re.MULTILINE)
    return [(number, typed, product, status) for number, typed, product, status in rows]


@pytest.mark.usefixtures("isolated")
def test_demo_seed_imports_the_demo_applications_the_readme_documents(tmp_path: Path) -> None:
    settings = Settings(database_url=sqlite_url(tmp_path), secret_key=SECRET, flow=DEFAULT_FLOW)

    lines = seed_demo(settings)

    assert "demo application 1234567, born 03-11-1985: vog_np in_progress" in lines
    # the README's demo accounts, the room's screen among them
    for account in (
        "supervisor / supervisor-demo (supervisor)",
        "adviser / adviser-demo (adviser)",
        "wallboard / wallboard-demo (viewer)",
    ):
        assert f"demo account: {account}" in lines
    assert not [line for line in lines if "not added" in line]
    documented = readme_demo_applications()
    assert len(documented) == len(DEMO_APPLICATIONS.read_text().splitlines()) - 1
    assert {status for *_, status in documented} == {s.value for s in ApplicationStatus}
    for number, typed, product, status in documented:
        born = date(int(typed[4:]), int(typed[2:4]), int(typed[:2]))
        info = cli_directory_check(tmp_path, number, born)
        assert info is not None, f"demo application {number} does not verify with {typed}"
        assert (info.product, info.status) == (product, status)
        assert f"demo application {number}, born {born:%d-%m-%Y}: {product} {status}" in lines
    seed_demo(settings)  # a second start refreshes, and adds no second copy
    engine = make_engine(sqlite_url(tmp_path))
    try:
        assert len(stored_applications(engine)) == len(documented)
    finally:
        engine.dispose()
