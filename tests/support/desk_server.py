"""A real `kcc serve` for the pages' tests in a browser (tests/test_desk_page.py,
tests/test_desk_call_controls.py, tests/test_supervisor_monitoring_page.py): its Redis database,
its seeded SQLite file, the staff's password, and, with a Twilio account that is the stub, the
caller's side on an event loop of its own thread (Playwright's sync API owns the test's)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import httpx

from api.cli.demo import DEMO_APPLICATIONS
from api.cli.phone import Phone
from api.database.engine import make_engine
from api.settings import DEFAULT_FLOW
from flows.loader import load_flow
from ivr.identity.applications import DateOfBirthHasher
from ivr.identity.importer import import_applications
from tests.conftest import REDIS_UP, SECRET_KEY
from tests.support.conference_calls import ConferenceCall
from tests.support.database import create_schema, sqlite_url
from tests.support.servers import KccServer, open_kcc_serve
from tests.support.twilio_stub import TwilioStub

T = TypeVar("T")

# A Redis database of its own, flushed before and after: the server shares it with nobody.
DESK_REDIS_URL = os.environ.get("KCC_TEST_DESK_REDIS_URL", "redis://127.0.0.1:6379/12")
PASSWORD = "correct horse battery staple"
ADVISER_PHONE = "+31201234567"
KCC_NUMBER = "+31703704900"


def seed_demo_database(database_url: str) -> None:
    """The tables and the demo applications (the caller's identity is checked against them)."""
    engine = make_engine(database_url)
    try:
        create_schema(engine)
        report = import_applications(
            DEMO_APPLICATIONS,
            engine=engine,
            hasher=DateOfBirthHasher(SECRET_KEY),
            products=load_flow(DEFAULT_FLOW).products.keys(),
            today=date(2026, 12, 1),
        )
        assert not report.rejected, report.rejected
    finally:
        engine.dispose()


@contextmanager
def open_kcc_serve_with_stub(tmp: Path, stub: TwilioStub) -> Iterator[KccServer]:
    """`kcc serve` in its own process on the seeded SQLite file of `tmp` (see
    `seed_demo_database`), the desk's Redis database when Redis is up, and a Twilio account that
    is `stub` (KCC_TWILIO_API_BASE), calling from KCC_NUMBER."""
    seed_demo_database(sqlite_url(tmp))
    with open_kcc_serve(
        tmp,
        secret_key=SECRET_KEY,
        redis_url=DESK_REDIS_URL if REDIS_UP else None,
        TWILIO_ACCOUNT_SID=stub.account_sid,
        TWILIO_AUTH_TOKEN=stub.auth_token,
        KCC_TWILIO_API_BASE=stub.base_url,
        KCC_CALLER_ID=KCC_NUMBER,
    ) as served:
        yield served


class CallerLine:
    """The caller's side on an event loop of its own thread."""

    def __init__(self, server: KccServer, stub: TwilioStub) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = server
        self._stub = stub
        self.call: ConferenceCall | None = None
        self._client: httpx.AsyncClient | None = None

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(30)

    async def _queue_and_connect(self) -> None:
        self._client = httpx.AsyncClient(base_url=self._server.url, timeout=10)
        phone = Phone(self._client, public_url=self._server.url, auth_token=self._stub.auth_token)
        await phone.dial()
        await phone.press("2")
        assert (await phone.press("#")).queue == "kcc-vog_rp"
        self.call = ConferenceCall(phone, self._stub)
        await self.call.connect()

    def queue_and_connect(self) -> ConferenceCall:
        self.run(self._queue_and_connect())
        assert self.call is not None
        return self.call

    def deliver(self) -> None:
        assert self.call is not None
        self.run(self.call.deliver())

    async def _close(self) -> None:
        if self.call is not None and self._stub.call_status(self.call.call_sid) != "completed":
            await self.call.hang_up()
        if self._client is not None:
            await self._client.aclose()

    def close(self) -> None:
        try:
            self.run(self._close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
