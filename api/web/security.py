"""What every answer of the app carries for the browser, and the bound on a request's body.

The pages load their scripts and styles from /static only (no inline script, no handlers, no
style attributes), so the Content-Security-Policy allows nothing else; the browser phone talks
to Twilio (its signalling and media over https/wss) and nothing else leaves the page. No page
may be framed (clickjacking), types are never sniffed, no address leaks to another site.

A request's body must arrive within `body_seconds` of the request: a client that sends its
headers and then trickles or stalls the body would otherwise hold a connection (and a
worker's memory) open for as long as it likes. Such a request is answered 408 and the app sees
the client as gone. Only the body is timed: once it is in, a response may stream for hours.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TWILIO = "https://*.twilio.com wss://*.twilio.com"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        f"connect-src 'self' {TWILIO}",
        "media-src 'self' https://*.twilio.com https://*.twiliocdn.com blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
STALLED = b"the request body did not arrive in time"


async def guarded(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    body_seconds: float,
    headers: bool = True,
) -> None:
    """Run `app` on one HTTP request: its body bounded in time, the answer with
    SECURITY_HEADERS (unless `headers` is False: Twilio's webhooks are no page)."""
    deadline = asyncio.get_running_loop().time() + body_seconds
    body_done = stalled = started = False

    async def receive_in_time() -> Message:
        nonlocal body_done, stalled
        if body_done:
            return await receive()  # waiting for a disconnect, as a stream does: no bound
        if stalled:
            return {"type": "http.disconnect"}
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            stalled = True
            if not started:
                await _answer_408(send)
            return {"type": "http.disconnect"}  # the app stops as for a client gone
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_done = True
        return message

    async def send_with_headers(message: Message) -> None:
        nonlocal started
        if stalled:
            return  # the 408 went out instead
        if message["type"] == "http.response.start":
            started = True
            if headers:
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
        await send(message)

    try:
        await app(scope, receive_in_time, send_with_headers)
    except Exception:
        if not stalled:
            raise  # a client that stalled is answered; what the app made of it is no error


async def _answer_408(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(STALLED)),
                (b"connection", b"close"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": STALLED})
