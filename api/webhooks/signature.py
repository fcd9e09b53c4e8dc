"""Every /twilio/ request must carry a valid X-Twilio-Signature.

The URL is rebuilt from KCC_PUBLIC_URL, not from Host or X-Forwarded-* headers: behind a proxy
or load balancer those describe the hop, not the URL Twilio signed.
"""

from __future__ import annotations

import base64
import hmac
from urllib.parse import unquote_plus

from fastapi import HTTPException, status
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope
from twilio.request_validator import RequestValidator


def signed_url(public_base: str, scope: Scope) -> str:
    # What request.url.path and .query give, without building a URL object per request.
    path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    query = scope.get("query_string", b"").decode()
    return f"{public_base}{path}" + (f"?{query}" if query else "")


def parse_form(body: str) -> dict[str, str]:
    """application/x-www-form-urlencoded, as dict(parse_qsl(body, keep_blank_values=True))
    parses it (the last value of a repeated name wins), but unquoting only what is quoted."""
    params: dict[str, str] = {}
    for pair in body.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = _unquote_plus(name)
        if "%" in value or "+" in value:
            value = _unquote_plus(value)
        params[name] = value
    return params


# "%2B" -> "+": every escape of an ASCII character, in both cases of hex digit.
_ASCII_ESCAPES = {f"{i:02{case}}": chr(i) for i in range(128) for case in "xX"}


def _unquote_plus(text: str) -> str:
    """unquote_plus(text, errors="replace"), quicker for the escapes Twilio's forms are full of
    ("%2B31..." in every phone number): ASCII ones are looked up; anything else (UTF-8 escapes,
    a stray "%") is left to urllib."""
    parts = text.replace("+", " ").split("%")
    unquoted = [parts[0]]
    for part in parts[1:]:
        char = _ASCII_ESCAPES.get(part[:2])
        if char is None:
            return unquote_plus(text, errors="replace")
        unquoted.append(char)
        unquoted.append(part[2:])
    return "".join(unquoted)


async def verified_form(
    scope: Scope, receive: Receive, validator: RequestValidator, public_base: str, max_bytes: int
) -> dict[str, str]:
    """The POST parameters of a genuine Twilio request; 403 for anything else, and 413 for a
    body over `max_bytes`."""
    # Twilio posts application/x-www-form-urlencoded; parsing it directly is cheaper than the
    # multipart-capable form parser, and a webhook is on the caller's clock.
    params = parse_form((await _body(receive, max_bytes)).decode("utf-8", "replace"))
    signature = _header(scope, b"x-twilio-signature")
    url = signed_url(public_base, scope)
    if not signature or not _valid(validator, url, params, signature):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="invalid Twilio signature"
        )
    return params


async def _body(receive: Receive, max_bytes: int) -> bytes:
    """The whole body, read as request.body() reads it but without its stream wrapper (a webhook
    is read once, here), and refused once it grows over `max_bytes` (a chunked one too)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str:
    """One header's value ('' when absent), without building a Headers object per request."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return ""


def compute_signature(token: bytes, url: str, params: dict[str, str]) -> str:
    """RequestValidator.compute_signature for one value per name: HMAC-SHA1 over the URL and
    every name and value, sorted by name; without its per-parameter lookups."""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.digest(token, data.encode(), "sha1")).decode()


def _valid(validator: RequestValidator, url: str, params: dict[str, str], signature: str) -> bool:
    """One HMAC for the URL as configured; twilio's validate (which also tries the URL with and
    without a port) only when that does not match."""
    expected = compute_signature(validator.token, url, params)
    if hmac.compare_digest(expected.encode(), signature.encode()):
        return True
    return bool(validator.validate(url, params, signature))
