"""Demo data for the embedded set-up (`kcc serve --demo`): accounts to try the API with."""

from __future__ import annotations

from api.db import create_tables, make_engine, session_scope
from api.settings import Settings
from api.users import Role, create_user, get_user

DEMO_USERS = (
    ("supervisor", Role.SUPERVISOR, "supervisor-demo"),
    ("adviser", Role.ADVISER, "adviser-demo"),
)


def seed_demo(settings: Settings) -> list[str]:
    """Create the demo accounts that are missing; returns lines to show the user."""
    engine = make_engine(settings.database_url)
    create_tables(engine)
    lines = []
    try:
        with session_scope(engine) as session:
            for name, role, password in DEMO_USERS:
                if get_user(session, name) is None:
                    create_user(session, name=name, role=role, password=password)
                lines.append(f"demo account: {name} / {password} ({role.value})")
    finally:
        engine.dispose()
    return lines
