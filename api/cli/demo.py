"""Demo data for the embedded set-up (`kcc serve --demo`): accounts to try the API with, and
applications to check a caller against (documented in the README)."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from api.accounts import Role, create_user, get_user
from api.database.engine import session_scope
from api.database.schema import open_database
from api.services import current_flow
from api.settings import Settings
from ivr.identity.applications import DateOfBirthHasher
from ivr.identity.importer import import_applications

DEMO_USERS = (
    ("supervisor", Role.SUPERVISOR, "supervisor-demo"),
    ("adviser", Role.ADVISER, "adviser-demo"),
    ("wallboard", Role.VIEWER, "wallboard-demo"),  # the room's screen: /wallboard only
)
DEMO_ADVISER = ("adviser", "adviser-demo")  # the adviser `kcc call` plays in-process
# Made-up applications; the README lists them with the dates of birth to type.
DEMO_APPLICATIONS = Path(__file__).resolve().parent / "demo_applications.csv"


def seed_demo(settings: Settings) -> list[str]:
    """Create the demo accounts that are missing and add (or refresh) the demo applications;
    returns lines to show the user.

    Raises api.database.schema.SchemaError when the database is not at this release's schema
    (the embedded SQLite database is upgraded in passing)."""
    engine = open_database(settings.database_url)
    lines = []
    try:
        with session_scope(engine) as session:
            for name, role, password in DEMO_USERS:
                if get_user(session, name) is None:
                    create_user(session, name=name, role=role, password=password)
                lines.append(f"demo account: {name} / {password} ({role.value})")
        flow = current_flow(settings).engine.flow
        report = import_applications(
            DEMO_APPLICATIONS,
            engine=engine,
            hasher=DateOfBirthHasher(settings.secret_key),
            products=flow.products.keys(),
            today=datetime.now(UTC).astimezone(ZoneInfo(flow.calendar.timezone)).date(),
        )
    finally:
        engine.dispose()
    rejected = {row.line: row.reason for row in report.rejected}
    with DEMO_APPLICATIONS.open(encoding="utf-8-sig", newline="") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):
            if line in rejected:
                lines.append(f"demo application on line {line} not added: {rejected[line]}")
                continue
            # Fake people: showing their dates of birth is the point of the demo.
            born = date.fromisoformat(row["date_of_birth"]).strftime("%d-%m-%Y")
            lines.append(
                f"demo application {row['application_number']}, born {born}: "
                f"{row['product']} {row['status']}"
            )
    return lines
