"""The Twilio contract: webhooks that answer TwiML, whatever happens behind them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
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
    request: Request, route: str, language: str | None, work: Awaitable[str]
) -> Response:
    services = _services(request)
    started = time.perf_counter()
    try:
        twiml = await asyncio.wait_for(work, timeout=WEBHOOK_BUDGET_SECONDS)
        outcome = "ok"
    except Exception as exc:
        log.exception("webhook failed; answering with the apology", extra={"route": route})
        FALLBACKS.labels(route=route, error=type(exc).__name__).inc()
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
    seq: Annotated[int, Query(ge=0)],
    lang: Annotated[str | None, Query(max_length=8)] = None,
    event: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    calls = _services(request).calls
    work = calls.step(
        form.get("CallSid", ""), seq, form.get("Digits"), timed_out=event == "timeout"
    )
    return await _answer(request, "step", lang, work)


@router.post("/wait")
async def wait(
    request: Request, form: TwilioForm, lang: Annotated[str | None, Query(max_length=8)] = None
) -> Response:
    calls = _services(request).calls
    position = form.get("QueuePosition", "")
    twilio_position = int(position) if position.isdigit() else None
    work = calls.wait(form.get("CallSid", ""), lang or "", twilio_position)
    return await _answer(request, "wait", lang, work)


@router.post("/queue-result")
async def queue_result(
    request: Request, form: TwilioForm, lang: Annotated[str | None, Query(max_length=8)] = None
) -> Response:
    calls = _services(request).calls
    work = calls.queue_result(form.get("CallSid", ""), lang or "", form.get("QueueResult", ""))
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
