"""The demo without Twilio: the caller's side of a call follows what the desk does.

`GET /demo/calls/{call_sid}/events` streams one call's events (routing/events.py, `CallEvent`)
to the terminal phone (`kcc call --hold --url ...`). Only in the demo with simulated telephony;
signed like a webhook: `X-Twilio-Signature` over the URL with the Twilio auth token, which the
terminal phone holds to sign its webhooks anyway. The events carry names and reasons only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.web.deps import ServicesDep
from api.web.errors import Forbidden, NotFound
from api.web.refusals import SEND_TIMEOUT_SECONDS
from routing import keys
from routing.events import RESYNC

router = APIRouter(prefix="/demo", tags=["demo"], include_in_schema=False)
LISTENING = "listening"  # the first event: from here on no event of the call is missed


@router.get("/calls/{call_sid}/events")
async def call_events(
    request: Request,
    call_sid: Annotated[str, Path(pattern=f"^{keys.CALL_SID.pattern}$")],
    services: ServicesDep,
    signature: Annotated[str, Header(alias="X-Twilio-Signature")] = "",
) -> EventSourceResponse:
    if not services.simulated_telephony:
        raise NotFound("demo_only", "only in the demo without Twilio")
    url = f"{services.settings.public_base}/demo/calls/{call_sid}/events"
    if not signature or not services.validator.validate(url, {}, signature):
        raise Forbidden("bad_signature", "the request is not signed for this call")

    async def stream() -> AsyncIterator[ServerSentEvent]:
        events = services.router.events.listen_call(call_sid)
        try:
            await anext(events)
            yield ServerSentEvent(event=LISTENING, data="{}")
            async for event, data in events:
                if await request.is_disconnected():
                    break
                if event and event != RESYNC:  # the terminal phone has no state to read again
                    yield ServerSentEvent(event=event, data=json.dumps(data))
        finally:
            await events.aclose()

    return EventSourceResponse(stream(), ping=15, send_timeout=SEND_TIMEOUT_SECONDS)
