"""The Twilio contract: webhooks that answer TwiML, whatever happens behind them."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request
from fastapi.responses import Response
from prometheus_client import Counter, Histogram
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.metrics import FALLBACKS, WEBHOOK_SECONDS, WEBHOOKS
from api.services import Services
from api.twilio_signature import parse_form, verified_form
from ivr import fallback
from ivr.fallback import last_resort
from ivr.twiml import CallUrls, back_to_hold, empty

log = logging.getLogger(__name__)
Form = dict[str, str]
Handler = Callable[[Request, Form], Awaitable[str]]  # answers TwiML
# What a webhook answers: status, body, content type.
Answer = tuple[int, bytes, bytes]
XML = "application/xml"
_XML = XML.encode()
_TEXT = b"text/plain; charset=utf-8"
# Twilio's webhook forms are a few kilobytes; the signature is checked only after the body is
# read, so an unsigned client must not get to make us buffer more than this.
MAX_WEBHOOK_BYTES = 64 * 1024
# Plain Starlette routes: a webhook needs no dependency injection or request models. They are
# what the router serves when the shortcut below does not apply (another method: 405).
routes: list[Route] = []
_handlers: dict[str, Handler] = {}


def webhook(path: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            status, body, content_type = await _serve(handler, request)
            return Response(body, status_code=status, media_type=content_type.decode())

        routes.append(Route(f"/twilio{path}", endpoint, methods=["POST"]))
        _handlers[f"/twilio{path}"] = handler
        return handler

    return register


async def _serve(handler: Handler, request: Request) -> Answer:
    try:
        form = await verified_form(request, MAX_WEBHOOK_BYTES)
    except HTTPException as exc:
        return exc.status_code, str(exc.detail).encode(), _TEXT
    return 200, (await handler(request, form)).encode(), _XML


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else MAX_WEBHOOK_BYTES + 1
    return 0  # chunked: counted while it is read


async def answer_webhook(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer a POST to a webhook straight away, before any of the app's middleware; False
    when `scope` is not one (the app then serves it as usual).

    Each layer between the server and a route (the error, telemetry and body-limit middleware,
    each wrapping `send`, the router matching every route in turn, the request/response
    wrappers) costs every webhook, on the caller's clock, and the webhooks need none of them.
    What those layers guarantee is kept here: an unexpected error still gets the last-resort
    TwiML, and a body is capped at MAX_WEBHOOK_BYTES whether its length is declared or not.
    """
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return False
    handler = _handlers.get(scope["path"])
    if handler is None:
        return False
    scope["app"] = app
    answer: Answer
    if _declared_length(scope) > MAX_WEBHOOK_BYTES:  # not Twilio: never buffered
        answer = 413, b"too large", _TEXT
    else:
        try:
            answer = await _serve(handler, Request(scope, receive, send))
        except Exception:
            log.exception("unhandled error", extra={"path": scope["path"]})
            answer = 200, last_resort().encode(), _XML
    status, body, content_type = answer
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return True


# Twilio waits 15 s for an answer; stop well before, so the caller hears our apology instead.
WEBHOOK_BUDGET_SECONDS = 8.0


# A metric's labelled child, looked up once per label set: `labels()` is not free per webhook.
@functools.cache
def _answered(route: str, outcome: str) -> Counter:
    return WEBHOOKS.labels(route=route, outcome=outcome)


@functools.cache
def _answer_seconds(route: str) -> Histogram:
    return WEBHOOK_SECONDS.labels(route=route)


def _query(request: Request) -> dict[str, str]:
    """The query string's parameters (seq, lang, offer...), parsed once per request, and more
    cheaply than Starlette's QueryParams (same meaning: the last of a repeated name wins)."""
    scope = request.scope
    query: dict[str, str] | None = scope.get("kcc.query")
    if query is None:
        query = scope["kcc.query"] = parse_form(scope["query_string"].decode("latin-1"))
    return query


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _answer(
    request: Request,
    route: str,
    language: str | None,
    work: Awaitable[str],
    otherwise: Callable[[], str] | None = None,
) -> str:
    """Run `work`; if it fails or is too slow, answer `otherwise` (default: the apology)."""
    services = _services(request)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(WEBHOOK_BUDGET_SECONDS):
            twiml = await work
        outcome = "ok"
    except Exception as exc:
        log.exception("webhook failed; answering with the fallback", extra={"route": route})
        FALLBACKS.labels(route=route, error=type(exc).__name__).inc()
        if otherwise is not None:
            twiml = otherwise()
        else:
            twiml = fallback.apology(
                services.flows.current.engine,
                language=language,
                now=services.clock.now(),
                base_url=services.settings.public_base,
            )
        outcome = "fallback"
    _answered(route, outcome).inc()
    _answer_seconds(route).observe(time.perf_counter() - started)
    return twiml


@webhook("/voice")
async def incoming_call(request: Request, form: Form) -> str:
    calls = _services(request).calls
    work = calls.incoming(form.get("CallSid", ""), form.get("From", ""))
    return await _answer(request, "voice", None, work)


@webhook("/step")
async def step(request: Request, form: Form) -> str:
    seq = _query(request).get("seq", "")
    lang = _query(request).get("lang") or None
    event = _query(request).get("event")
    calls = _services(request).calls
    # Parsed here, leniently: a bad query string must still get TwiML, never a 422.
    step_number = int(seq) if seq.isdigit() else -1
    work = calls.step(
        form.get("CallSid", ""), step_number, form.get("Digits"), timed_out=event == "timeout"
    )
    return await _answer(request, "step", lang, work)


@webhook("/wait")
async def wait(request: Request, form: Form) -> str:
    lang = _query(request).get("lang") or None
    calls = _services(request).calls
    position = form.get("QueuePosition", "")
    twilio_position = int(position) if position.isdigit() else None
    work = calls.wait(form.get("CallSid", ""), lang or "", twilio_position)
    engine = _services(request).flows.current.engine
    return await _answer(
        request,
        "wait",
        lang,
        work,
        lambda: fallback.hold_on(engine, twilio_position=twilio_position, language=lang),
    )


@webhook("/queue-result")
async def queue_result(request: Request, form: Form) -> str:
    lang = _query(request).get("lang") or None
    calls = _services(request).calls
    result = form.get("QueueResult", "")
    work = calls.queue_result(form.get("CallSid", ""), lang or "", result)
    if result in ("bridged", "hangup", "redirected"):
        return await _answer(
            request, "queue-result", lang, work, lambda: fallback.after_queue(result)
        )
    return await _answer(request, "queue-result", lang, work)


@webhook("/status")
async def call_status(request: Request, form: Form) -> str:
    calls = _services(request).calls
    try:
        await calls.status(form.get("CallSid", ""), form.get("CallStatus", ""))
    except Exception:
        # Nothing to say to a caller here; the TTLs clean up what could not be removed now.
        log.exception("status callback failed", extra={"route": "status"})
    return empty()


@webhook("/connect")
async def connect(request: Request, form: Form) -> str:
    """Routing moved the caller here (REST redirect): ring the adviser."""
    offer = _query(request).get("offer", "")
    calls = _services(request).calls
    work = calls.connect(form.get("CallSid", ""), offer)
    return await _answer(request, "connect", None, work)


@webhook("/offer-answered")
async def offer_answered(request: Request, form: Form) -> str:
    """Status callback of the adviser's leg: answered means the two are connected."""
    offer = _query(request).get("offer", "")
    calls = _services(request).calls
    try:
        if form.get("CallStatus", "") in ("in-progress", "answered"):
            await calls.offer_answered(offer)
    except Exception:
        log.exception("offer-answered callback failed", extra={"route": "offer-answered"})
    return empty()


@webhook("/dial-result")
async def dial_result(request: Request, form: Form) -> str:
    """The <Dial> to the adviser ended: after a conversation, goodbye; else back in line."""
    offer = _query(request).get("offer", "")
    lang = _query(request).get("lang") or None
    calls = _services(request).calls
    work = calls.dial_result(form.get("CallSid", ""), offer, form.get("DialCallStatus", ""))
    return await _answer(request, "dial-result", lang, work)


@webhook("/callback-choice")
async def callback_choice(request: Request, form: Form) -> str:
    """The caller's key in the waitUrl's callback offer."""
    lang = _query(request).get("lang") or None
    calls = _services(request).calls
    urls = CallUrls(_services(request).settings.public_base, lang or "")
    work = calls.callback_choice(form.get("CallSid", ""), lang or "", form.get("Digits"))
    return await _answer(request, "callback-choice", lang, work, lambda: back_to_hold(urls))
