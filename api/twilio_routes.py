"""The Twilio contract: webhooks that answer TwiML, whatever happens behind them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.metrics import FALLBACKS, WEBHOOK_SECONDS, WEBHOOKS
from api.services import Services
from api.twilio_signature import verified_form
from ivr import fallback
from ivr.twiml import empty

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

TwilioForm = Annotated[dict[str, str], Depends(verified_form)]
XML = "application/xml"
# Twilio waits 15 s for an answer; stop well before, so the caller hears our apology instead.
WEBHOOK_BUDGET_SECONDS = 8.0


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _answer(
    request: Request,
    route: str,
    language: str | None,
    work: Awaitable[str],
    otherwise: Callable[[], str] | None = None,
) -> Response:
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
                services.call_engine,
                language=language,
                now=services.clock.now(),
                base_url=services.settings.public_base,
            )
        outcome = "fallback"
    WEBHOOKS.labels(route=route, outcome=outcome).inc()
    WEBHOOK_SECONDS.labels(route=route).observe(time.perf_counter() - started)
    return Response(twiml, media_type=XML)


@router.post("/voice")
async def incoming_call(request: Request, form: TwilioForm) -> Response:
    calls = _services(request).calls
    work = calls.incoming(form.get("CallSid", ""), form.get("From", ""))
    return await _answer(request, "voice", None, work)


@router.post("/step")
async def step(
    request: Request,
    form: TwilioForm,
    seq: str = "",
    lang: str | None = None,
    event: str | None = None,
) -> Response:
    calls = _services(request).calls
    # Parsed here, leniently: a bad query string must still get TwiML, never a 422.
    step_number = int(seq) if seq.isdigit() else -1
    work = calls.step(
        form.get("CallSid", ""), step_number, form.get("Digits"), timed_out=event == "timeout"
    )
    return await _answer(request, "step", lang, work)


@router.post("/wait")
async def wait(request: Request, form: TwilioForm, lang: str | None = None) -> Response:
    calls = _services(request).calls
    position = form.get("QueuePosition", "")
    twilio_position = int(position) if position.isdigit() else None
    work = calls.wait(form.get("CallSid", ""), lang or "", twilio_position)
    engine = _services(request).call_engine
    return await _answer(
        request,
        "wait",
        lang,
        work,
        lambda: fallback.hold_on(engine, twilio_position=twilio_position, language=lang),
    )


@router.post("/queue-result")
async def queue_result(request: Request, form: TwilioForm, lang: str | None = None) -> Response:
    calls = _services(request).calls
    result = form.get("QueueResult", "")
    work = calls.queue_result(form.get("CallSid", ""), lang or "", result)
    if result in ("bridged", "hangup", "redirected"):
        return await _answer(
            request, "queue-result", lang, work, lambda: fallback.after_queue(result)
        )
    return await _answer(request, "queue-result", lang, work)


@router.post("/status")
async def call_status(request: Request, form: TwilioForm) -> Response:
    calls = _services(request).calls
    try:
        await calls.status(form.get("CallSid", ""), form.get("CallStatus", ""))
    except Exception:
        # Nothing to say to a caller here; the TTLs clean up what could not be removed now.
        log.exception("status callback failed", extra={"route": "status"})
    return Response(empty(), media_type=XML)


@router.post("/connect")
async def connect(request: Request, form: TwilioForm, offer: str = "") -> Response:
    """Routing moved the caller here (REST redirect): ring the adviser."""
    calls = _services(request).calls
    work = calls.connect(form.get("CallSid", ""), offer)
    return await _answer(request, "connect", None, work)


@router.post("/offer-answered")
async def offer_answered(request: Request, form: TwilioForm, offer: str = "") -> Response:
    """Status callback of the adviser's leg: answered means the two are connected."""
    calls = _services(request).calls
    try:
        if form.get("CallStatus", "") in ("in-progress", "answered"):
            await calls.offer_answered(offer)
    except Exception:
        log.exception("offer-answered callback failed", extra={"route": "offer-answered"})
    return Response(empty(), media_type=XML)


@router.post("/dial-result")
async def dial_result(
    request: Request,
    form: TwilioForm,
    offer: str = "",
    lang: str | None = None,
) -> Response:
    """The <Dial> to the adviser ended: after a conversation, goodbye; else back in line."""
    calls = _services(request).calls
    work = calls.dial_result(form.get("CallSid", ""), offer, form.get("DialCallStatus", ""))
    return await _answer(request, "dial-result", lang, work)


@router.post("/callback-choice")
async def callback_choice(request: Request, form: TwilioForm, lang: str | None = None) -> Response:
    """The caller's key in the waitUrl's callback offer."""
    calls = _services(request).calls
    wait_url = f"{_services(request).settings.public_base}/twilio/wait?lang={lang or ''}"
    work = calls.callback_choice(form.get("CallSid", ""), lang or "", form.get("Digits"))
    return await _answer(request, "callback-choice", lang, work, lambda: fallback.to_wait(wait_url))
