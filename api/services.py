"""Builds the collaborators once at start-up; routes reach them through app.state.services."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import redis.asyncio as aioredis
from fakeredis import FakeAsyncRedis
from redis.asyncio.sentinel import Sentinel
from sqlalchemy import Engine
from twilio.request_validator import RequestValidator

from api.accounts import active_advisers, adviser_skills, device_of
from api.database.engine import session_scope
from api.database.schema import open_database
from api.redis_url import is_sentinel_url, parse_sentinel_url
from api.settings import Settings
from api.sign_in_guard import SignInGuard, trusted_networks
from flows.errors import FlowInvalid
from flows.loader import parse_flow, read_flow_text
from flows.versions import AlreadyLive, LivePointer, SqlFlowVersions, flow_digest
from flows.yaml_source import YamlSyntaxError, read_yaml
from ivr.calls import CallHandler
from ivr.departments import WhisperStore
from ivr.flow_publishing import FlowPublisher
from ivr.flow_registry import FlowRegistry, LoadedFlow, load_version
from ivr.identity.applications import DateOfBirthHasher, SqlApplicationDirectory
from ivr.identity.lockouts import (
    LOCKOUT,
    lockout_item,
    lockout_of,
    unexpired_lockouts,
    write_lockouts,
)
from ivr.identity.verifier import GuardPolicy, IdentityVerifier
from ivr.records import CallRecordBase, RecordChange, SqlCallRecorder, outbox_item
from ivr.retention import DailyPurge, RecordPurger
from ivr.store import SessionStore
from ivr.survey import SurveyStore
from ivr.twiml import RoutingUrls
from routing import keys
from routing.adviser_history import HOLD_STATE, AdviserStateChange, SqlAdviserLog
from routing.background import BackgroundWriter
from routing.board import AdviserBoard, AdviserState
from routing.call_facts import CallFacts
from routing.callbacks import CallbackBook, Pending, pending_callbacks, write_callbacks
from routing.clock import Clock, ShiftedClock, SystemClock
from routing.conferences import CallConferences
from routing.events import EventBus
from routing.live_figures import DayCounters, LiveFigureReader
from routing.monitor_log import SqlMonitorLog
from routing.monitoring import Monitors, MonitorSession
from routing.outbox import Outbox
from routing.pipelined_redis import PipelinedRedis
from routing.presence import DeskPresence
from routing.queue import CallQueue
from routing.recovery import AdviserSeed, RedisRecovery
from routing.router import Router
from routing.scripts import ScriptRunner, ScriptStep
from routing.sealing import Pseudonymizer, Sealer
from routing.telephony import RecordingTelephony, Telephony, TwilioTelephony
from routing.transfers import CONSULT_STATE, CallTransfer, TransferOutcome, TransferStore
from routing.wallboard import WallboardReader

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    db_engine: Engine
    flows: FlowRegistry
    flow_versions: SqlFlowVersions
    publisher: FlowPublisher
    calls: CallHandler
    queue: CallQueue
    clock: Clock
    validator: RequestValidator
    router: Router
    telephony: Telephony
    adviser_log: SqlAdviserLog
    simulated_telephony: bool
    # Call records and their later changes, through the Redis outbox (routing/outbox.py)
    records: Outbox
    # What only Redis knew, for the database: callbacks asked and settled, identity lock-outs
    state_outbox: Outbox
    state_log: BackgroundWriter[AdviserStateChange]
    transfer_log: BackgroundWriter[CallTransfer]  # each transfer, when it ends (issue 12)
    whispers: WhisperStore  # what a transfer tells the department (issue 12)
    monitors: Monitors  # supervisors listening, whispering, barging in (issue 12)
    monitor_log: SqlMonitorLog
    live_figures: LiveFigureReader  # what /metrics shows of queues, advisers and calls
    wallboard: WallboardReader  # the room's screen and the supervisor's "Nu"
    retention: DailyPurge  # deletes records older than KCC_RECORD_RETENTION_DAYS, once a day
    sign_in: SignInGuard  # limits failed staff sign-ins per account and client address
    recovery: RedisRecovery  # Redis restarted empty: callers and advisers found again
    # Twilio waits 15 s for a webhook's answer; stop well before, so the caller hears an apology.
    webhook_budget_seconds: float = 8.0

    async def close(self) -> None:
        self.router.stop_checks()
        await self.records.flush()
        await self.state_outbox.flush()
        await self.state_log.flush()
        await self.transfer_log.flush()
        await self.router.events.aclose()
        await self.redis.aclose()
        self.db_engine.dispose()
        await self.telephony.aclose()


def redis_for(settings: Settings) -> aioredis.Redis:
    """The Redis of these settings, with this process' keys and channels in their namespace."""
    keys.use_namespace(settings.redis_prefix)
    return make_redis(settings.redis_url)


# Pipelines, transactions and the one pub/sub connection of the event streams (routing/fanout.py)
# take the pool's connections; plain commands share one. Desk streams hold none of their own, but
# 250 desks connecting at once took 200 for their pipelines (bench/load.py): 200 answered 503.
REDIS_MAX_CONNECTIONS = 2000


def make_redis(url: str | None) -> aioredis.Redis:
    if url is None:
        return FakeAsyncRedis(decode_responses=True)  # embedded: one process only
    # Short timeouts: Twilio gives a webhook 15 s in all, and the caller must hear an apology
    # well before that when Redis is unreachable.
    # Plain commands share one pipelined connection (routing/pipelined_redis.py), spoken in
    # RESP2, whose reply shapes the callbacks then follow.
    options: dict[str, Any] = {
        "protocol": 2,
        "decode_responses": True,
        "socket_timeout": 2,
        "socket_connect_timeout": 2,
        "health_check_interval": 30,
        "client_name": "kcc-ivr",
        "max_connections": REDIS_MAX_CONNECTIONS,
    }
    if is_sentinel_url(url):
        return _sentinel_master(url, options)
    return PipelinedRedis.from_url(url, **options)


def _sentinel_master(url: str, options: dict[str, Any]) -> aioredis.Redis:
    """The master of a `redis+sentinel://` URL: every connection, the pipelined line's, the
    pool's for pipelines and pub/sub, asks the Sentinels where the master is when it connects,
    so all of them follow a failover."""
    parsed = parse_sentinel_url(url)
    sentinel = Sentinel(
        parsed.sentinels,
        # One Sentinel that does not answer must leave time to ask the next one within the
        # webhook's budget.
        sentinel_kwargs={"socket_timeout": 1, "socket_connect_timeout": 1, "protocol": 2},
    )
    master: aioredis.Redis = sentinel.master_for(
        parsed.master,
        redis_class=PipelinedRedis,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        **options,
    )
    return master


def live_flow(
    path: Path, versions: SqlFlowVersions, at: datetime
) -> tuple[LoadedFlow, LivePointer]:
    """The live version in the database and its pointer. Only when the database has no flow
    yet is the flow file read, checked and published as version 1: after that a changed or
    even broken file cannot stop the service or reach a caller.

    Raises flows.errors.FlowInvalid when the database is empty and the file invalid.
    """
    names = versions.flows()
    if names:
        try:
            text: str | None = read_flow_text(path)
        except FlowInvalid:  # unreadable: the database has what callers need
            text = None
    else:
        text = read_flow_text(path)
        flow = parse_flow(text, str(path))
        with contextlib.suppress(AlreadyLive):  # another instance seeded it at the same moment
            versions.publish(
                flow.name, text, author="system", comment=f"first version, from {path.name}", at=at
            )
        names = [flow.name]
    named = _flow_name(text) if text is not None else None
    name = named if named in names else names[0]
    pointer = versions.live_pointer(name)
    assert pointer is not None  # `flows()` lists the flows that have one
    stored = versions.get(name, pointer.number)
    if named != name or text is None or flow_digest(text) != stored.digest:
        log.warning(
            "the flow file is not the live version; publish it to use it",
            extra={"flow": name, "file": str(path), "live_version": pointer.number},
        )
    return load_version(stored), pointer


def _flow_name(text: str) -> str | None:
    """The `name:` of a flow document, even of a broken one; None when there is none to read."""
    try:
        data = read_yaml(text).data
    except YamlSyntaxError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def current_flow(settings: Settings) -> LoadedFlow:
    """The live flow of the configured database (seeded from the flow file when it has none).
    For commands that need the known products or the calendar without starting the service.

    Raises api.database.schema.SchemaError when the database's schema is not this release's
    (SQLite is upgraded in passing), flows.errors.FlowInvalid as `live_flow` does."""
    engine = open_database(settings.database_url)
    try:
        return live_flow(settings.flow, SqlFlowVersions(engine), datetime.now(UTC))[0]
    finally:
        engine.dispose()


@dataclass
class FlowAdmin:
    """What publishing and rolling back need, without the call machinery (for `kcc flows`)."""

    redis: aioredis.Redis
    db_engine: Engine
    flows: FlowRegistry
    flow_versions: SqlFlowVersions
    publisher: FlowPublisher

    async def close(self) -> None:
        await self.redis.aclose()
        self.db_engine.dispose()


def build_flow_admin(settings: Settings) -> FlowAdmin:
    """The flow registry, versions and publisher of the configured database and Redis, as
    `build_services` makes them: a publish here is announced to the running instances.

    Raises flows.errors.FlowInvalid when the flow file (KCC_FLOW) is invalid, like the service,
    and api.database.schema.SchemaError when the database is not at this release's schema."""
    db_engine = open_database(settings.database_url)
    try:
        redis = redis_for(settings)
        flows, flow_versions, publisher = _flow_machinery(settings, redis, db_engine)
    except BaseException:
        db_engine.dispose()
        raise
    return FlowAdmin(
        redis=redis,
        db_engine=db_engine,
        flows=flows,
        flow_versions=flow_versions,
        publisher=publisher,
    )


def _flow_machinery(
    settings: Settings, redis: aioredis.Redis, db_engine: Engine
) -> tuple[FlowRegistry, SqlFlowVersions, FlowPublisher]:
    flow_versions = SqlFlowVersions(db_engine)
    live, pointer = live_flow(settings.flow, flow_versions, datetime.now(UTC))
    flows = FlowRegistry(
        live=live,
        pointer=pointer,
        versions=flow_versions,
        redis=redis,
        run_sync=anyio.to_thread.run_sync,
    )

    def skills() -> dict[str, list[str]]:
        with session_scope(db_engine) as session:
            return adviser_skills(session)

    publisher = FlowPublisher(
        registry=flows,
        versions=flow_versions,
        adviser_skills=skills,
        run_sync=anyio.to_thread.run_sync,
        now=lambda: datetime.now(UTC),  # the audit log records real time, even under KCC_NOW
    )
    return flows, flow_versions, publisher


def state_writer(
    db_engine: Engine, now: Callable[[], datetime]
) -> Callable[[list[str]], list[str]]:
    """The state outbox's writer: callbacks and lock-outs of a batch in one transaction
    (routing/callbacks.py, ivr/identity/lockouts.py); nothing waits for anything."""

    def write(items: list[str]) -> list[str]:
        parsed = [json.loads(item) for item in items]
        with db_engine.begin() as connection:
            at = now()
            write_callbacks(connection, [i for i in parsed if i["kind"] != LOCKOUT], at)
            write_lockouts(connection, [i for i in parsed if i["kind"] == LOCKOUT], at)
        return []

    return write


def adviser_roster(
    db_engine: Engine, adviser_log: SqlAdviserLog, products: list[str]
) -> list[AdviserSeed]:
    """The active advisers with skills (none: every product), device and last state change,
    for restoring their states after Redis was lost (routing/recovery.py)."""
    with session_scope(db_engine) as session:
        advisers = active_advisers(session)
    last = adviser_log.last_states()
    seeds = []
    for user in advisers:
        change = last.get(user.name)
        seeds.append(
            AdviserSeed(
                name=user.name,
                skills=[s for s in user.skills.split(",") if s] or list(products),
                device=device_of(user),
                last_state=change.state if change else None,
                last_at_ms=_ms(change.at) if change else None,
            )
        )
    return seeds


def _ms(at: datetime) -> int:
    # SQLite gives the time back without its zone: every state change is written in UTC.
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Everything the app needs, built once.

    Raises api.database.schema.SchemaBehind when the database is behind this release and may not
    migrate itself (PostgreSQL: run `kcc db upgrade`), SchemaUnknown when a newer release has
    migrated it, and flows.errors.FlowInvalid when the database has no flow and KCC_FLOW is
    invalid."""
    db_engine = open_database(settings.database_url)
    redis = redis_for(settings)
    if clock is None:
        clock = ShiftedClock(settings.now) if settings.now else SystemClock()
    flows, flow_versions, publisher = _flow_machinery(settings, redis, db_engine)
    sealer = Sealer(settings.secret_key)
    state_outbox = Outbox(
        redis,
        state_writer(db_engine, clock.now),
        anyio.to_thread.run_sync,
        key=keys.state_outbox(),
        lock_key=keys.state_outbox_lock(),
        ttl_seconds=keys.STATE_OUTBOX_TTL,
        lock_ms=keys.STATE_OUTBOX_LOCK_MS,
    )
    queue = CallQueue(redis, sealer, CallbackBook(state_outbox, clock.now))

    async def keep_lock(number_key: str, until_ms: int) -> None:
        await state_outbox.push(lockout_item(number_key, until_ms))

    async def find_lock(number_key: str, now_ms: int) -> int | None:
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        return await anyio.to_thread.run_sync(lockout_of, db_engine, number_key, now)

    records = Outbox(
        redis,
        SqlCallRecorder(db_engine).apply,
        anyio.to_thread.run_sync,
        key=keys.record_outbox(),
        lock_key=keys.record_outbox_lock(),
        ttl_seconds=keys.RECORD_OUTBOX_TTL,
        lock_ms=keys.RECORD_OUTBOX_LOCK_MS,
    )
    facts = CallFacts(redis)
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
        keep_lock=keep_lock,
        find_lock=find_lock,
    )

    scripts = ScriptRunner(redis)

    async def record_call(record: CallRecordBase) -> None:
        # Nothing personal on a record (no caller number): the outbox holds it unsealed.
        steps: list[ScriptStep[Any]] = [records.push_step(outbox_item(record))]
        if record.product is not None and record.abandoned:
            # The record is where "left the line without an adviser" is decided, once a call;
            # the counts go out in the script that hands the record over (one round trip).
            steps += live_figures.abandoned_steps(record.product)
        await scripts.run(*steps)
        records.wake()

    async def change_record(change: RecordChange) -> None:
        await records.push(outbox_item(change))

    async def record_score(call_sid: str, score: int) -> None:
        """A survey mark that came after the call's record was built (ivr/survey.py): a change
        of the record, through the outbox like a wrap-up (applied whenever the row is there)."""
        await change_record(
            RecordChange(call_sid=call_sid, noted_at=clock.now(), survey_score=score)
        )

    telephony: Telephony
    if settings.simulated_telephony:
        telephony = RecordingTelephony()
    else:
        telephony = TwilioTelephony(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            api_base=settings.twilio_api_base,
        )
    adviser_log = SqlAdviserLog(db_engine)
    state_log: BackgroundWriter[AdviserStateChange] = BackgroundWriter(
        adviser_log.state_changes, anyio.to_thread.run_sync
    )

    monitor_log = SqlMonitorLog(db_engine)

    async def monitor_changed(session: MonitorSession) -> None:
        await anyio.to_thread.run_sync(monitor_log.save, session)

    conferences = CallConferences(redis)

    async def state_changed(
        adviser: str, state: AdviserState, at_ms: int, call_sid: str | None
    ) -> None:
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        state_log.submit(
            AdviserStateChange(adviser=adviser, state=state.value, at=at, call_sid=call_sid)
        )
        if call_sid is not None and state not in (AdviserState.OFFERED, AdviserState.ON_CALL):
            await monitors.conversation_over(call_sid)  # its supervisors leave with it

    async def hold_changed(adviser: str, on_hold: bool, at_ms: int, call_sid: str) -> None:
        # Holds go into the state history as on_hold, and back to on_call when they end.
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        state = HOLD_STATE if on_hold else AdviserState.ON_CALL.value
        state_log.submit(AdviserStateChange(adviser=adviser, state=state, at=at, call_sid=call_sid))

    transfer_log: BackgroundWriter[CallTransfer] = BackgroundWriter(
        adviser_log.transfers, anyio.to_thread.run_sync
    )

    async def transfer_ended(record: CallTransfer) -> None:
        transfer_log.submit(record)
        if record.outcome == TransferOutcome.ANSWERED.value:  # the last one is the record's
            await facts.transferred(
                record.call_sid,
                record.mode,
                f"{record.target_kind}:{record.target}",
                int(record.ended_at.timestamp() * 1000),
            )

    async def consult_changed(adviser: str, consulting: bool, at_ms: int, call_sid: str) -> None:
        # Consults go into the state history as consulting, and back to on_call when they end.
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        state = CONSULT_STATE if consulting else AdviserState.ON_CALL.value
        state_log.submit(AdviserStateChange(adviser=adviser, state=state, at=at, call_sid=call_sid))

    days = DayCounters(redis, service_level_seconds=settings.service_level_seconds)
    router = Router(
        board=AdviserBoard(
            redis,
            offer_seconds=settings.offer_seconds,
            call_check_seconds=settings.call_check_seconds,
        ),
        queue=queue,
        telephony=telephony,
        events=EventBus(redis),
        urls=RoutingUrls(settings.public_base),
        now_ms=lambda: int(clock.now().timestamp() * 1000),
        products=list(flows.current.engine.flow.products),
        days=days,
        wrap_up_seconds=settings.wrap_up_seconds,
        on_state_change=state_changed,
        conferences=conferences,
        rings_in_conference=not settings.simulated_telephony,
        caller_id=settings.caller_id,
        on_hold_change=hold_changed,
        presence=DeskPresence(redis, grace_seconds=settings.presence_grace_seconds),
        transfers=TransferStore(redis),
        on_transfer=transfer_ended,
        on_consult_change=consult_changed,
        facts=facts,
    )
    monitors = Monitors(
        redis=redis,
        board=router.board,
        conferences=conferences,
        telephony=telephony,
        urls=RoutingUrls(settings.public_base),
        now_ms=router.now_ms,
        caller_id=settings.caller_id,
        on_change=monitor_changed,
    )
    live_figures = LiveFigureReader(
        redis=redis,
        queue=queue,
        board=router.board,
        products=lambda: router.products,
        now=clock.now,
        days=days,
    )
    wallboard = WallboardReader(
        figures=live_figures,
        queue=queue,
        board=router.board,
        products=lambda: router.products,
        now=clock.now,
    )
    flows.on_live(lambda loaded: setattr(router, "products", list(loaded.engine.flow.products)))

    async def roster() -> list[AdviserSeed]:
        await state_log.flush()  # the last changes before the loss, if still on their way
        products = list(router.products)
        return await anyio.to_thread.run_sync(adviser_roster, db_engine, adviser_log, products)

    async def kept_callbacks() -> list[Pending]:
        await state_outbox.flush()  # what waits still (when Redis was not lost after all)
        return await anyio.to_thread.run_sync(pending_callbacks, db_engine, clock.now())

    async def kept_lockouts() -> list[tuple[str, int]]:
        return await anyio.to_thread.run_sync(unexpired_lockouts, db_engine, clock.now())

    recovery = RedisRecovery(
        redis,
        queue=queue,
        telephony=telephony,
        roster=roster,
        now_ms=router.now_ms,
        events=router.events,
        on_state_change=state_changed,
        callbacks=kept_callbacks,
        lockouts=kept_lockouts,
    )
    calls = CallHandler(
        flows=flows,
        store=SessionStore(redis, sealer, ttl=settings.session_ttl_seconds),
        queue=queue,
        clock=clock,
        base_url=settings.public_base,
        verifier=verifier,
        router=router,
        record_call=record_call,
        change_record=change_record,
        surveys=SurveyStore(redis),
        record_score=record_score,
    )
    # A conversation found ended by asking Twilio ends as its status callback would end it.
    router.on_call_ended = calls.status
    return Services(
        settings=settings,
        redis=redis,
        db_engine=db_engine,
        flows=flows,
        flow_versions=flow_versions,
        publisher=publisher,
        calls=calls,
        queue=queue,
        clock=clock,
        validator=RequestValidator(settings.twilio_auth_token),
        router=router,
        telephony=telephony,
        adviser_log=adviser_log,
        simulated_telephony=settings.simulated_telephony,
        records=records,
        state_outbox=state_outbox,
        state_log=state_log,
        transfer_log=transfer_log,
        whispers=WhisperStore(redis, sealer),
        monitors=monitors,
        monitor_log=monitor_log,
        live_figures=live_figures,
        wallboard=wallboard,
        retention=DailyPurge(
            redis=redis,
            purger=RecordPurger(db_engine),
            clock=clock,
            days=settings.record_retention_days,
            run_sync=anyio.to_thread.run_sync,
        ),
        sign_in=SignInGuard(
            redis,
            Pseudonymizer(settings.secret_key),
            account_limit=settings.login_account_failures,
            address_limit=settings.login_address_failures,
            trusted_proxies=trusted_networks(settings.trusted_proxies),
        ),
        recovery=recovery,
    )
