"""The Twilio edge: one ASGI dispatcher for every webhook under /twilio/.

The app (api/web/app.py) hands it every request whose path starts with /twilio/, before
FastAPI's middleware: the webhooks are on the caller's clock and need none of it. What those
layers would guarantee is kept here: a body is capped at MAX_WEBHOOK_BYTES whether its length is
declared or not, and an unexpected error still answers TwiML (the last resort), never a 500.
Each webhook is registered once, in api/webhooks/handlers.py; a known path answers only POST
(405 otherwise) and an unknown one 404.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from api.services import Services
from api.webhooks.signature import is_signed, parse_form, signed_url
from ivr.fallback import last_resort
from routing.keys import CALL_SID

log = logging.getLogger(__name__)

PREFIX = "/twilio"
# Twilio's webhook forms are a few kilobytes; the signature is checked only after the body is
# read, so an unsigned client must not get to make us buffer more than this.
MAX_WEBHOOK_BYTES = 64 * 1024
Params = dict[str, str]
XML = b"application/xml"
TEXT = b"text/plain; charset=utf-8"


@dataclass(slots=True)
class Delivery:
    """One webhook delivery as its handler sees it."""

    services: Services
    query: Params  # the query string's parameters (seq, lang, offer...)
    form: Params  # the POST parameters, signature checked


Handler = Callable[[Delivery], Awaitable[str]]  # answers TwiML


class Answer(NamedTuple):
    """What a webhook answers (a named tuple: a frozen dataclass costs every webhook more)."""

    status: int
    body: bytes
    content_type: bytes = TEXT


class TooLarge(Exception):
    """The body grew over MAX_WEBHOOK_BYTES while it was read."""


class WebhookDispatcher:
    """Answers Twilio's webhooks: path -> handler, signature checked, TwiML whatever happens."""

    def __init__(self, handlers: Mapping[str, Handler], services: Services) -> None:
        self._handlers = {f"{PREFIX}{path}": handler for path, handler in handlers.items()}
        self._services = services

    @property
    def paths(self) -> list[str]:
        return sorted(self._handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._answer(scope, receive)
        except ClientDisconnect:  # gone before its request was read: nobody to answer
            log.info("webhook client went away", extra={"path": scope["path"]})
            return
        except Exception:
            log.exception("unhandled error", extra={"path": scope["path"]})
            answer = Answer(200, last_resort().encode(), XML)
        headers = [
            (b"content-type", answer.content_type),
            (b"content-length", b"%d" % len(answer.body)),
        ]
        if answer.status == 405:
            headers.append((b"allow", b"POST"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _answer(self, scope: Scope, receive: Receive) -> Answer:
        handler = self._handlers.get(scope["path"])
        if handler is None:
            return Answer(404, b"no such webhook")
        if scope["method"] != "POST":
            return Answer(405, b"webhooks answer POST only")
        if _declared_length(scope) > MAX_WEBHOOK_BYTES:  # not Twilio: never buffered
            return Answer(413, b"too large")
        try:
            body = await _body(receive)
        except TooLarge:
            return Answer(413, b"too large")
        services = self._services
        form = parse_form(body.decode("utf-8", "replace"))
        url = signed_url(services.settings.public_base, scope)
        if not is_signed(services.validator, url, form, scope):
            return Answer(403, b"invalid Twilio signature")
        # Parsed leniently (the last of a repeated name wins): a bad query string must still
        # get TwiML, never a 422.
        query = parse_form(scope["query_string"].decode("latin-1"))
        if not _call_ids_fit(form, query):
            return Answer(400, b"not a CallSid")
        return Answer(200, (await handler(Delivery(services, query, form))).encode(), XML)


def _call_ids_fit(form: Params, query: Params) -> bool:
    """The CallSids a delivery names go into Redis key names: only Twilio's alphabet (no ':'
    that could make one call's key another's). Absent is left to the handler."""
    return all(
        not sid or CALL_SID.fullmatch(sid) for sid in (form.get("CallSid"), query.get("call"))
    )


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else MAX_WEBHOOK_BYTES + 1
    return 0  # chunked: counted while it is read


async def _body(receive: Receive) -> bytes:
    """The whole body, refused once it grows over MAX_WEBHOOK_BYTES (a chunked one too)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise TooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
