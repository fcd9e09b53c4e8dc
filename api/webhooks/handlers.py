"""The Twilio contract: webhooks that answer TwiML, whatever happens behind them."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request
from fastapi.responses import Response
from prometheus_client import Counter, Histogram
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.services import Services
from api.webhooks.metrics import FALLBACKS, WEBHOOK_SECONDS, WEBHOOKS
from api.webhooks.signature import parse_form, verified_form
from ivr import fallback
from ivr.fallback import last_resort
from ivr.twiml import CallUrls, back_to_hold, empty

log = logging.getLogger(__name__)
Params = dict[str, str]


@dataclass(slots=True)
class Delivery:
    """One webhook delivery as its handler sees it."""

    services: Services
    query: Params  # the query string's parameters (seq, lang, offer...)
    form: Params  # the POST parameters, signature checked


Handler = Callable[[Delivery], Awaitable[str]]  # answers TwiML
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
            services = request.app.state.services
            status, body, content_type = await _serve(
                handler, services, request.scope, request.receive
            )
            return Response(body, status_code=status, media_type=content_type.decode())

        routes.append(Route(f"/twilio{path}", endpoint, methods=["POST"]))
        _handlers[f"/twilio{path}"] = handler
        return handler

    return register


async def _serve(handler: Handler, services: Services, scope: Scope, receive: Receive) -> Answer:
    try:
        form = await verified_form(
            scope, receive, services.validator, services.settings.public_base, MAX_WEBHOOK_BYTES
        )
    except HTTPException as exc:
        return exc.status_code, str(exc.detail).encode(), _TEXT
    # Parsed here, leniently (the last of a repeated name wins): a bad query string must still
    # get TwiML, never a 422.
    query = parse_form(scope["query_string"].decode("latin-1"))
    return 200, (await handler(Delivery(services, query, form))).encode(), _XML


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else MAX_WEBHOOK_BYTES + 1
    return 0  # chunked: counted while it is read


async def answer_webhook(app: Starlette, scope: Scope, receive: Receive, send: Send) -> bool:
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
            answer = await _serve(handler, app.state.services, scope, receive)
        except ClientDisconnect:  # gone before its request was read: nobody to answer
            log.info("webhook client went away", extra={"path": scope["path"]})
            return True
        except Exception:
            log.exception("unhandled error", extra={"path": scope["path"]})
            answer = 200, last_resort().encode(), _XML
    status, body, content_type = answer
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return True


# A metric's labelled child, looked up once per label set: `labels()` is not free per webhook.
@functools.cache
def _answered(route: str, outcome: str) -> Counter:
    return WEBHOOKS.labels(route=route, outcome=outcome)


@functools.cache
def _answer_seconds(route: str) -> Histogram:
    return WEBHOOK_SECONDS.labels(route=route)


async def _answer(
    hook: Delivery,
    route: str,
    language: str | None,
    work: Awaitable[str],
    otherwise: Callable[[], str] | None = None,
) -> str:
    """Run `work`; if it fails or is too slow, answer `otherwise` (default: the apology)."""
    services = hook.services
    started = time.perf_counter()
    try:
        twiml = await services.webhook_deadlines.run(work)
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
async def incoming_call(hook: Delivery) -> str:
    calls = hook.services.calls
    work = calls.incoming(hook.form.get("CallSid", ""), hook.form.get("From", ""))
    return await _answer(hook, "voice", None, work)


@webhook("/step")
async def step(hook: Delivery) -> str:
    seq = hook.query.get("seq", "")
    lang = hook.query.get("lang") or None
    event = hook.query.get("event")
    calls = hook.services.calls
    step_number = int(seq) if seq.isdigit() else -1
    work = calls.step(
        hook.form.get("CallSid", ""),
        step_number,
        hook.form.get("Digits"),
        timed_out=event == "timeout",
    )
    return await _answer(hook, "step", lang, work)


@webhook("/wait")
async def wait(hook: Delivery) -> str:
    lang = hook.query.get("lang") or None
    calls = hook.services.calls
    position = hook.form.get("QueuePosition", "")
    twilio_position = int(position) if position.isdigit() else None
    work = calls.wait(hook.form.get("CallSid", ""), lang or "", twilio_position)
    engine = hook.services.flows.current.engine
    return await _answer(
        hook,
        "wait",
        lang,
        work,
        lambda: fallback.hold_on(engine, twilio_position=twilio_position, language=lang),
    )


@webhook("/queue-result")
async def queue_result(hook: Delivery) -> str:
    lang = hook.query.get("lang") or None
    calls = hook.services.calls
    result = hook.form.get("QueueResult", "")
    work = calls.queue_result(hook.form.get("CallSid", ""), lang or "", result)
    if result in ("bridged", "hangup", "redirected"):
        return await _answer(hook, "queue-result", lang, work, lambda: fallback.after_queue(result))
    return await _answer(hook, "queue-result", lang, work)


@webhook("/status")
async def call_status(hook: Delivery) -> str:
    calls = hook.services.calls
    try:
        await calls.status(hook.form.get("CallSid", ""), hook.form.get("CallStatus", ""))
    except Exception:
        # Nothing to say to a caller here; the TTLs clean up what could not be removed now.
        log.exception("status callback failed", extra={"route": "status"})
    return empty()


@webhook("/connect")
async def connect(hook: Delivery) -> str:
    """Routing moved the caller here (REST redirect): ring the adviser."""
    offer = hook.query.get("offer", "")
    calls = hook.services.calls
    work = calls.connect(hook.form.get("CallSid", ""), offer)
    return await _answer(hook, "connect", None, work)


@webhook("/offer-answered")
async def offer_answered(hook: Delivery) -> str:
    """Status callback of the adviser's leg: answered means the two are connected."""
    offer = hook.query.get("offer", "")
    calls = hook.services.calls
    try:
        if hook.form.get("CallStatus", "") in ("in-progress", "answered"):
            await calls.offer_answered(offer)
    except Exception:
        log.exception("offer-answered callback failed", extra={"route": "offer-answered"})
    return empty()


@webhook("/dial-result")
async def dial_result(hook: Delivery) -> str:
    """The <Dial> to the adviser ended: after a conversation, goodbye; else back in line."""
    offer = hook.query.get("offer", "")
    lang = hook.query.get("lang") or None
    calls = hook.services.calls
    work = calls.dial_result(
        hook.form.get("CallSid", ""), offer, hook.form.get("DialCallStatus", "")
    )
    return await _answer(hook, "dial-result", lang, work)


@webhook("/callback-choice")
async def callback_choice(hook: Delivery) -> str:
    """The caller's key in the waitUrl's callback offer."""
    lang = hook.query.get("lang") or None
    calls = hook.services.calls
    urls = CallUrls(hook.services.settings.public_base, lang or "")
    work = calls.callback_choice(hook.form.get("CallSid", ""), lang or "", hook.form.get("Digits"))
    return await _answer(hook, "callback-choice", lang, work, lambda: back_to_hold(urls))
