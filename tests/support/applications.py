"""An app that knows the demo applications, for tests of the identity check."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from fastapi import FastAPI

from api.cli.demo import DEMO_APPLICATIONS
from ivr.identity.applications import DateOfBirthHasher
from ivr.identity.importer import import_applications
from tests.support.staff import SANNE, add_staff


def app_with_demo_applications(make_app: Callable[..., FastAPI], secret_key: str) -> FastAPI:
    """The demo applications imported, a supervisor `sanne`, and no padding of the identity
    check's answer time, so that the tests run fast."""
    app = make_app(verify_min_seconds=0)
    services = app.state.services
    import_applications(
        DEMO_APPLICATIONS,
        engine=services.db_engine,
        hasher=DateOfBirthHasher(secret_key),
        products=set(services.flows.current.engine.flow.products),
        today=date(2026, 11, 28),
    )
    add_staff(services.db_engine, SANNE)
    return app
