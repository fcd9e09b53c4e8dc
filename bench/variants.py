"""The kcc app with proposed changes applied from outside, to measure them before making them.

    KCC_BENCH_VARIANT=batched,rtt .venv/bin/python -m bench.webhooks --kcc-app bench.variants:app

KCC_BENCH_VARIANT is a comma-separated list of:

* ``none``      the app exactly as api/asgi.py builds it (the default);
* ``norecord``  no call record at all on the status callback (an upper bound, not a proposal);
* ``batched``   call records queued in memory and written by one background task, many rows per
                INSERT ... ON CONFLICT DO NOTHING transaction, after the status callback has
                been answered;
* ``wal``       SQLite in WAL mode with synchronous=NORMAL;
* ``rtt``       fewer Redis round trips per call, 12 -> 6: the first webhook commits without
                loading first (the script checks the ended marker), the step that queues
                enqueues in the same script as its commit, and the status callback ends the
                call and leaves the queue in one script;
* ``cache``     TwiML memoised per (turn, URLs) and the empty document a constant, instead of
                building it with twilio.twiml + ElementTree on every webhook;
* ``sig``       one HMAC per signature check (the library's with/without-port pair only when
                the first does not match) and the signed URL built from the ASGI scope;
* ``form``      the form read with urllib.parse.parse_qsl from the body instead of Starlette's
                request.form() (python-multipart), Twilio posting urlencoded forms only;
* ``nosocktimeout`` the Redis client without socket_timeout (redis-py then writes without an
                asyncio.wait_for task per command); the webhook budget still bounds a hang;
* ``timeout``   ``async with asyncio.timeout()`` instead of ``asyncio.wait_for()`` (no task per
                webhook);
* ``all``       every proposal above but nosocktimeout (batched, wal, rtt, cache, sig, form,
                timeout).

Written against the app as of commit 8d4773b; it patches module attributes and subclasses, so a
refactor of those modules may break a variant (not the baseline). Nothing here is used by the
service itself.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
import redis.asyncio as aioredis
from fastapi import HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import Engine, event, insert
from sqlmodel import Session
from twilio.request_validator import RequestValidator

import api.services as services_module
import api.twilio_routes as twilio_routes
import api.twilio_signature as twilio_signature
import ivr.calls as calls_module
from api.app import create_app
from api.logs import configure_logging
from api.services import build_services
from api.settings import Settings
from ivr.calls import CallHandler, CallNotFound
from ivr.records import CallRecord
from ivr.session import CallSession
from ivr.store import NEW_CALL
from ivr.turn import JoinQueue, Turn
from ivr.twiml import CallUrls, empty, render, speak_and_hang_up
from routing import keys
from routing.queue import priority_base

log = logging.getLogger(__name__)
original_make_redis = services_module.make_redis
ALL = {"batched", "wal", "rtt", "cache", "sig", "form", "timeout"}
KNOWN = {"none", "norecord", "noping", "nosocktimeout", "all", *ALL}
VARIANTS = {v.strip() for v in os.environ.get("KCC_BENCH_VARIANT", "none").split(",")}
if VARIANTS - KNOWN:
    raise SystemExit(f"unknown KCC_BENCH_VARIANT {sorted(VARIANTS - KNOWN)}; known: {KNOWN}")
if "all" in VARIANTS:
    VARIANTS |= ALL


# -- call records ----------------------------------------------------------------------------


def sqlite_wal(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


class BatchedRecorder:
    """One writer task; each batch is one INSERT ... ON CONFLICT DO NOTHING transaction."""

    def __init__(self, engine: Engine, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[CallRecord] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, record: CallRecord) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._queue.put_nowait(record)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < self._max_batch:
                batch.append(self._queue.get_nowait())
            try:
                await anyio.to_thread.run_sync(self._write, batch)
            except Exception:
                log.exception("writing call records failed", extra={"records": len(batch)})

    def _write(self, batch: list[CallRecord]) -> None:
        rows = [r.model_dump(exclude={"id"}) for r in batch]
        dialect = self._engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement: Any = sqlite_insert(CallRecord).on_conflict_do_nothing(
                index_elements=["call_sid"]
            )
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement = pg_insert(CallRecord).on_conflict_do_nothing(index_elements=["call_sid"])
        else:
            statement = insert(CallRecord)
        with Session(self._engine) as session:
            session.execute(statement, rows)
            session.commit()


# -- fewer Redis round trips -----------------------------------------------------------------

# The store's commit script, plus: a new call is refused when it has ended already (-1), and
# the queue entry of a call that joins the queue is written in the same script.
_COMMIT_AND_QUEUE = """
-- KEYS: session, reply, ended [, entry, queue, index, arrivals]
-- ARGV: expected seq, new seq, data, ttl, reply, reply ttl
--       [, entry json, priority base, call sid, product, queue ttl]
local current = redis.call('HGET', KEYS[1], 'seq')
local expected = tonumber(ARGV[1])
if expected < 0 then
  if current then return 0 end
  if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
elseif (not current) or tonumber(current) ~= expected then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
if #KEYS > 3 and redis.call('EXISTS', KEYS[4]) == 0 then
  local arrival = redis.call('INCR', KEYS[7])
  redis.call('EXPIRE', KEYS[7], ARGV[11])
  redis.call('SET', KEYS[4], ARGV[7], 'EX', ARGV[11])
  redis.call('ZADD', KEYS[5], 'NX', tonumber(ARGV[8]) + arrival, ARGV[9])
  redis.call('EXPIRE', KEYS[5], ARGV[11])
  redis.call('SADD', KEYS[6], ARGV[10])
  redis.call('EXPIRE', KEYS[6], ARGV[11])
end
return 1
"""

# SessionStore.end and CallQueue.remove in one: returns {session data or false, removed}.
# (With sealed entries the product would be kept as a plain field of the session hash.)
_END = """
-- KEYS: session, ended, entry   ARGV: ended ttl, queue key prefix, call sid
local data = redis.call('HGET', KEYS[1], 'data')
local raw = redis.call('GET', KEYS[3])
local removed = 0
if raw then
  local product = cjson.decode(raw)['product']
  redis.call('ZREM', ARGV[2] .. product, ARGV[3])
  removed = redis.call('DEL', KEYS[3])
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return {data or false, removed}
"""


@dataclass
class FewerRoundTrips(CallHandler):
    def __post_init__(self) -> None:
        redis = self.queue._redis
        self._commit_script = redis.register_script(_COMMIT_AND_QUEUE)
        self._end_script = redis.register_script(_END)
        self._ttl = self.store._ttl

    async def incoming(self, call_sid: str, caller: str) -> str:
        now = self.clock.now()
        session = CallSession(
            call_sid=call_sid,
            caller=caller,
            flow=self.engine.flow.name,
            flow_version=self.flow_version,
            language=self.engine.flow.default_language,
            started_at=now,
        )
        turn = self.engine.start(session, now)
        done, reply = await self._try_commit(session, NEW_CALL, turn)
        if done == 1:
            return reply
        if done < 0:
            return speak_and_hang_up([])
        existing = await self.store.load(call_sid)  # Twilio retried the first webhook
        if existing is None:
            raise CallNotFound(call_sid)
        return await self._earlier_reply(existing, 0)

    async def _commit(self, session: CallSession, answered_seq: int, turn: Turn) -> str:
        done, reply = await self._try_commit(session, answered_seq, turn)
        if done == 1:
            return reply
        current = await self.store.load(session.call_sid)  # another delivery won
        if current is None:
            raise CallNotFound(session.call_sid)
        return await self._earlier_reply(current, max(answered_seq, 0))

    async def _try_commit(
        self, session: CallSession, answered_seq: int, turn: Turn
    ) -> tuple[int, str]:
        session.seq = max(answered_seq, 0) + 1
        reply = calls_module.render(turn, CallUrls(self.base_url, session.language, session.seq))
        sid = session.call_sid
        script_keys = [keys.session(sid), keys.reply(sid, max(answered_seq, 0)), keys.ended(sid)]
        args: list[Any] = [
            answered_seq,
            session.seq,
            session.model_dump_json(),
            self._ttl,
            reply,
            keys.REPLY_TTL,
        ]
        if isinstance(turn.ending, JoinQueue):
            entry = self._entry(session)
            script_keys += [
                keys.queue_entry(sid),
                keys.queue(entry.product),
                keys.queue_index(),
                keys.queue_arrivals(),
            ]
            args += [
                entry.model_dump_json(),
                priority_base(entry.priority),
                sid,
                entry.product,
                keys.QUEUE_TTL,
            ]
        done = await self._commit_script(keys=script_keys, args=args)
        return int(done), reply

    async def status(self, call_sid: str, call_status: str) -> None:
        if call_status not in calls_module.FINAL_STATUSES:
            return
        data, removed = await self._end_script(
            keys=[keys.session(call_sid), keys.ended(call_sid), keys.queue_entry(call_sid)],
            args=[keys.ENDED_TTL, keys.queue(""), call_sid],
        )
        if data and self.record_call is not None:
            session = CallSession.model_validate_json(data)
            await self.record_call(self._record(session, call_status, bool(removed)))


# -- TwiML -----------------------------------------------------------------------------------

_RENDERED: dict[tuple[str, CallUrls], str] = {}
EMPTY = empty()


def cached_render(turn: Turn, urls: CallUrls) -> str:
    """render(), memoised: a flow has few distinct turns and a call few seqs."""
    key = (repr(turn), urls)
    twiml = _RENDERED.get(key)
    if twiml is None:
        if len(_RENDERED) > 10_000:
            _RENDERED.clear()
        twiml = _RENDERED[key] = render(turn, urls)
    return twiml


# -- signature -------------------------------------------------------------------------------


class OneHmacValidator(RequestValidator):  # type: ignore[misc]
    """The URL as configured first; the library's with/without-port pair only if that fails."""

    def validate(self, uri: str, params: Any, signature: str, algorithm: Any = None) -> bool:
        if (
            algorithm is None
            and isinstance(params, dict)
            and "bodySHA256" not in uri
            and hmac.compare_digest(self.compute_signature(uri, params), signature)
        ):
            return True
        result: bool = super().validate(uri, params, signature, algorithm)
        return result


def scope_url(public_base: str, request: Request) -> str:
    query = request.scope["query_string"]
    path: str = request.scope["path"]
    return f"{public_base}{path}?{query.decode('latin-1')}" if query else public_base + path


FAST_FORMS = [0]  # forms read by the variant (proves the swap took effect)


def form_from_body(app: Any) -> Any:
    """verified_form, reading the urlencoded body with parse_qsl instead of request.form()."""

    async def verified_form(request: Request) -> dict[str, str]:
        services = request.app.state.services
        body = await request.body()
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        FAST_FORMS[0] += 1
        signature = request.headers.get("X-Twilio-Signature", "")
        url = twilio_signature.signed_url(services.settings.public_base, request)
        if not signature or not services.validator.validate(url, params, signature):
            raise HTTPException(status_code=403, detail="invalid Twilio signature")
        return params

    return verified_form


def replace_dependency(routes: list[Any], old: Any, new: Any) -> int:
    """Swap a dependency in place (dependency_overrides would rebuild it on every request)."""
    replaced = 0

    def walk(dependant: Any) -> None:
        nonlocal replaced
        for sub in dependant.dependencies:
            if sub.call is old:
                sub.call = new
                replaced += 1
            walk(sub)

    for route in routes:
        if hasattr(route, "dependant"):
            walk(route.dependant)
        if hasattr(route, "original_router"):  # FastAPI's include_router() wrapper
            replaced += replace_dependency(route.original_router.routes, old, new)
        elif hasattr(route, "routes"):
            replaced += replace_dependency(route.routes, old, new)
    return replaced


# -- timeout without a task ------------------------------------------------------------------


async def answer_with_timeout(
    request: Request, route: str, language: str | None, work: Any
) -> Response:
    services = twilio_routes._services(request)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(twilio_routes.WEBHOOK_BUDGET_SECONDS):
            twiml = await work
        outcome = "ok"
    except Exception as exc:
        log.exception("webhook failed; answering with the apology", extra={"route": route})
        twilio_routes.FALLBACKS.labels(route=route, error=type(exc).__name__).inc()
        twiml = twilio_routes.fallback.apology(
            services.call_engine,
            language=language,
            now=services.clock.now(),
            base_url=services.settings.public_base,
        )
        outcome = "fallback"
    twilio_routes.WEBHOOKS.labels(route=route, outcome=outcome).inc()
    twilio_routes.WEBHOOK_SECONDS.labels(route=route).observe(time.perf_counter() - started)
    return Response(twiml, media_type=twilio_routes.XML)


# -- the app ---------------------------------------------------------------------------------


def build() -> Any:
    """The app of api/asgi.py with the variants of KCC_BENCH_VARIANT applied."""
    settings = Settings()
    if "nosocktimeout" in VARIANTS:
        services_module.make_redis = make_redis_without_socket_timeout
    configure_logging(settings.log_level)
    services = build_services(settings)
    calls = services.calls
    if "noping" in VARIANTS:
        services.db_engine.pool._pre_ping = False
    if "wal" in VARIANTS and services.db_engine.dialect.name == "sqlite":
        services.db_engine.dispose()
        sqlite_wal(services.db_engine)
    if "rtt" in VARIANTS:
        calls = services.calls = FewerRoundTrips(
            engine=calls.engine,
            store=calls.store,
            queue=calls.queue,
            clock=calls.clock,
            base_url=calls.base_url,
            flow_version=calls.flow_version,
            record_call=calls.record_call,
        )
    if "norecord" in VARIANTS:
        calls.record_call = None
    elif "batched" in VARIANTS:
        calls.record_call = BatchedRecorder(services.db_engine)
    if "cache" in VARIANTS:
        calls_module.render = cached_render
        twilio_routes.empty = lambda: EMPTY
    if "sig" in VARIANTS:
        services.validator = OneHmacValidator(settings.twilio_auth_token)
        twilio_signature.signed_url = scope_url
    if "timeout" in VARIANTS:
        twilio_routes._answer = answer_with_timeout
    log.warning("bench variant", extra={"variants": sorted(VARIANTS)})
    app = create_app(settings, services=services)
    if "form" in VARIANTS:
        new = form_from_body(app)
        replaced = replace_dependency(app.router.routes, twilio_signature.verified_form, new)
        # FastAPI builds the effective routes of an included router on first use, from the
        # endpoint's annotations: swap the callable inside the Depends marker as well.
        for marker in twilio_routes.TwilioForm.__metadata__:
            object.__setattr__(marker, "dependency", new)
        assert replaced, "no route depends on verified_form"
    return app


def make_redis_without_socket_timeout(url: str | None) -> Any:
    if url is None:
        return original_make_redis(url)
    return aioredis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        health_check_interval=30,
        client_name="kcc-ivr",
    )


def __getattr__(name: str) -> Any:
    """`app` is built on first use (`uvicorn bench.variants:app`), not on import."""
    if name == "app":
        globals()["app"] = built = build()
        return built
    raise AttributeError(name)
