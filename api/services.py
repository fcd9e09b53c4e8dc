"""Builds the collaborators once at start-up; routes reach them through app.state.services."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import redis.asyncio as aioredis
from fakeredis import FakeAsyncRedis
from sqlalchemy import Engine
from twilio.request_validator import RequestValidator

from api.db import create_tables, make_engine
from api.settings import Settings
from flows.loader import parse_flow, read_flow_text
from flows.model import Flow
from ivr.applications import DateOfBirthHasher, SqlApplicationDirectory
from ivr.calls import CallHandler
from ivr.clock import Clock, FixedClock, SystemClock
from ivr.engine import Engine as CallEngine
from ivr.hours import OpeningHours
from ivr.records import CallRecord, SqlCallRecorder
from ivr.sealing import Pseudonymizer, Sealer
from ivr.store import SessionStore
from ivr.verification import GuardPolicy, IdentityVerifier
from routing.queue import CallQueue


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    db_engine: Engine
    flow: Flow
    flow_version: str
    hours: OpeningHours
    call_engine: CallEngine
    calls: CallHandler
    queue: CallQueue
    clock: Clock
    validator: RequestValidator

    async def close(self) -> None:
        await self.redis.aclose()
        self.db_engine.dispose()


def make_redis(url: str | None) -> aioredis.Redis:
    if url is None:
        return FakeAsyncRedis(decode_responses=True)  # embedded: one process only
    # Short timeouts: Twilio gives a webhook 15 s in all, and the caller must hear an apology
    # well before that when Redis is unreachable.
    return aioredis.from_url(
        url,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
        client_name="kcc-ivr",
    )


def flow_version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_flow_file(path: Path) -> tuple[Flow, str]:
    """The flow and its version; raises flows.errors.FlowInvalid with every problem."""
    text = read_flow_text(path)
    return parse_flow(text, str(path)), flow_version(text)


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    flow, version = load_flow_file(settings.flow)
    hours = OpeningHours(flow.calendar)
    redis = make_redis(settings.redis_url)
    db_engine = make_engine(settings.database_url)
    create_tables(db_engine)
    if clock is None:
        clock = FixedClock(settings.now) if settings.now else SystemClock()
    call_engine = CallEngine(flow, hours)
    sealer = Sealer(settings.secret_key)
    queue = CallQueue(redis, sealer)
    recorder = SqlCallRecorder(db_engine)
    verifier = IdentityVerifier(
        redis=redis,
        directory=SqlApplicationDirectory(db_engine, DateOfBirthHasher(settings.secret_key)),
        pseudonymize=Pseudonymizer(settings.secret_key),
        run_sync=anyio.to_thread.run_sync,
        policy=GuardPolicy(
            number_failures=settings.verify_number_failures,
            number_lock_seconds=settings.verify_lock_hours * 3600,
            caller_failures=settings.verify_caller_failures,
            min_seconds=settings.verify_min_seconds,
        ),
    )

    async def record_call(record: CallRecord) -> None:
        await anyio.to_thread.run_sync(recorder.record, record)

    calls = CallHandler(
        engine=call_engine,
        store=SessionStore(redis, sealer, ttl=settings.session_ttl_seconds),
        queue=queue,
        clock=clock,
        base_url=settings.public_base,
        flow_version=version,
        verifier=verifier,
        record_call=record_call,
    )
    return Services(
        settings=settings,
        redis=redis,
        db_engine=db_engine,
        flow=flow,
        flow_version=version,
        hours=hours,
        call_engine=call_engine,
        calls=calls,
        queue=queue,
        clock=clock,
        validator=RequestValidator(settings.twilio_auth_token),
    )
