"""The Twilio contract: each webhook, registered once, answers TwiML whatever happens behind it.

`WEBHOOKS` maps each path under /twilio/ to its handler; api/webhooks/dispatcher.py serves
them. A handler gets one `Delivery` (services, query, signed form) and runs its work within the
webhook budget: on any error, or when the budget is over, the caller hears an apology.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

import anyio.to_thread
from prometheus_client import Counter, Histogram
from sqlalchemy import Engine

from api.accounts import staff_devices
from api.database.engine import session_scope
from api.webhooks.dispatcher import Delivery, Handler
from api.webhooks.metrics import FALLBACKS, WEBHOOK_SECONDS, WEBHOOKS
from ivr import fallback, outbound
from ivr.twiml import CallUrls, back_to_hold, empty, speak_and_hang_up

log = logging.getLogger(__name__)

# Every webhook's path under /twilio/ and its handler; filled once by @webhook below.
HANDLERS: dict[str, Handler] = {}


def webhook(path: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if path in HANDLERS:
            raise ValueError(f"webhook {path} is registered twice")
        HANDLERS[path] = handler
        return handler

    return register


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
        # Twilio waits 15 s for an answer; past the budget the caller hears our apology.
        async with asyncio.timeout(services.webhook_budget_seconds):
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
async def incoming_call(hook: Delivery) -> str:
    calls = hook.services.calls
    work = calls.incoming(hook.form.get("CallSid", ""), hook.form.get("From", ""))
    return await _answer(hook, "voice", None, work)


@webhook("/fallback")
async def number_fallback(hook: Delivery) -> str:
    """The number's fallback URL: Twilio's request to the voice URL failed (an error, a timeout,
    no instance answering). Answered from memory alone (the flow loaded at start-up, the
    clock): Redis and the database may be why the voice URL failed."""
    form = hook.form
    log.warning(
        "the voice URL failed; answering the number's fallback",
        extra={"error_code": form.get("ErrorCode", ""), "error_url": form.get("ErrorUrl", "")},
    )
    services = hook.services
    FALLBACKS.labels(route="fallback", error="voice_url_failed").inc()
    _answered("fallback", "fallback").inc()
    return fallback.number_fallback(
        services.flows.current.engine,
        now=services.clock.now(),
        base_url=services.settings.public_base,
    )


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
    context = hook.query.get("ctx", "")  # the caller's sealed entry (ivr/twiml.py CallUrls)
    work = calls.wait(hook.form.get("CallSid", ""), lang or "", twilio_position, context)
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
    work = calls.connect(hook.form.get("CallSid", ""), offer, hook.form.get("To", ""))
    return await _answer(hook, "connect", None, work)


@webhook("/conference-events")
async def conference_events(hook: Delivery) -> str:
    """The conversation's conference statusCallback (joins only: ivr/twiml.py)."""
    form = hook.form
    try:
        await hook.services.calls.conference_event(
            hook.query.get("offer", ""),
            form.get("StatusCallbackEvent", ""),
            conference_sid=form.get("ConferenceSid", ""),
            name=form.get("FriendlyName", ""),
            call_sid=form.get("CallSid", ""),
            label=form.get("ParticipantLabel", ""),
        )
    except Exception:
        log.exception("conference event failed", extra={"route": "conference-events"})
    return empty()


@webhook("/adviser-status")
async def adviser_status(hook: Delivery) -> str:
    """Participant status callback of the adviser's leg: answered, or not (no-answer, busy,
    failed), or hung up after the conversation."""
    offer = hook.query.get("offer", "")
    try:
        await hook.services.calls.adviser_status(offer, hook.form.get("CallStatus", ""))
    except Exception:
        log.exception("adviser status callback failed", extra={"route": "adviser-status"})
    return empty()


@webhook("/transfer-status")
async def transfer_status(hook: Delivery) -> str:
    """Participant status callback of a transfer's target leg: answered (the whisper, then the
    consult or the hand-over), not answered, busy, failed, or hung up."""
    call_sid = hook.query.get("call", "")
    try:
        await hook.services.calls.transfer_status(call_sid, hook.form.get("CallStatus", ""))
    except Exception:
        log.exception("transfer status callback failed", extra={"route": "transfer-status"})
    return empty()


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
    """The caller left the conversation's conference (<Dial> action): after a conversation,
    goodbye; else back in line."""
    offer = hook.query.get("offer", "")
    lang = hook.query.get("lang") or None
    calls = hook.services.calls
    work = calls.dial_result(
        hook.form.get("CallSid", ""),
        offer,
        hook.form.get("DialCallStatus", ""),
        hook.form.get("CallStatus", "in-progress"),
    )
    return await _answer(hook, "dial-result", lang, work)


@webhook("/survey")
async def survey(hook: Delivery) -> str:
    """The caller's answer to the survey after a conversation (the <Gather> action, or its
    <Redirect> on silence). If anything fails the call ends quietly: the conversation is over."""
    lang = hook.query.get("lang") or None
    attempt = hook.query.get("try", "")
    digits = None if hook.query.get("event") == "timeout" else hook.form.get("Digits")
    work = hook.services.calls.survey_answer(
        hook.form.get("CallSid", ""),
        lang or "",
        int(attempt) if attempt.isdigit() else 1,
        digits,
    )
    return await _answer(hook, "survey", lang, work, lambda: speak_and_hang_up([]))


@webhook("/callback-choice")
async def callback_choice(hook: Delivery) -> str:
    """The caller's key in the waitUrl's callback offer."""
    lang = hook.query.get("lang") or None
    calls = hook.services.calls
    context = hook.query.get("ctx", "")
    urls = CallUrls(hook.services.settings.public_base, lang or "", context=context)
    work = calls.callback_choice(
        hook.form.get("CallSid", ""), lang or "", hook.form.get("Digits"), context
    )
    return await _answer(hook, "callback-choice", lang, work, lambda: back_to_hold(urls))


# -- the browser phone: calls it places (the TwiML App's voice URL) -----------------------------


def _staff_devices(engine: Engine) -> frozenset[str]:
    with session_scope(engine) as session:
        return staff_devices(session)


async def _place_outbound(hook: Delivery) -> str:
    services = hook.services
    devices = await anyio.to_thread.run_sync(_staff_devices, services.db_engine)
    decision = outbound.decide(
        caller=hook.form.get("From", ""),
        to=hook.form.get("To", "").strip(),
        staff_devices=devices,
        caller_id=services.settings.caller_id,
        allowed_prefixes=tuple(services.settings.outbound_prefixes.split(",")),
    )
    if isinstance(decision, outbound.Refusal):
        log.warning("outbound call refused", extra={"route": "outbound", "reason": decision})
        return outbound.refused(decision)
    return decision


@webhook("/outbound")
async def place_outbound(hook: Delivery) -> str:
    """A staff member's browser phone places a call (device.connect): to a number or a colleague."""
    work = _place_outbound(hook)
    return await _answer(
        hook, "outbound", None, work, lambda: outbound.refused(outbound.Refusal.FAILED)
    )


@webhook("/department-whisper")
async def department_whisper(hook: Delivery) -> str:
    """A department answered a transfer (`<Number url=...>`): tell it what comes, then Twilio
    bridges the call. On any failure it hears nothing and is put through all the same."""
    department = hook.query.get("department", "")
    call_sid = hook.query.get("call", "")
    services = hook.services
    departments = services.flows.current.departments

    async def work() -> str:
        whisper = await services.whispers.get(call_sid) if call_sid else None
        return departments.whisper_twiml(department, whisper)

    return await _answer(hook, "department-whisper", None, work(), empty)


@webhook("/monitor-status")
async def monitor_status(hook: Delivery) -> str:
    """Participant status callback of a supervisor's leg (routing/monitoring.py): answered, not
    answered (the page says so), or hung up."""
    query, form = hook.query, hook.form
    try:
        await hook.services.monitors.leg_status(
            query.get("call", ""),
            query.get("supervisor", ""),
            query.get("session", ""),
            form.get("CallSid", ""),
            form.get("CallStatus", ""),
        )
    except Exception:
        log.exception("monitor status callback failed", extra={"route": "monitor-status"})
    return empty()
