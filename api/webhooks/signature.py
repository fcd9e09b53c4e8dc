"""Every /twilio/ request must carry a valid X-Twilio-Signature (twilio's RequestValidator).

The URL is rebuilt from KCC_PUBLIC_URL, not from Host or X-Forwarded-* headers: behind a proxy
or load balancer those describe the hop, not the URL Twilio signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import unquote_to_bytes

from starlette.types import Scope
from twilio.request_validator import RequestValidator


def signed_url(public_base: str, scope: Scope) -> str:
    """The URL Twilio signed: the public base, the path and the query string as sent."""
    path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    query = scope.get("query_string", b"").decode()
    return f"{public_base}{path}" + (f"?{query}" if query else "")


def parse_form(body: str) -> dict[str, str]:
    """application/x-www-form-urlencoded, as dict(parse_qsl(body, keep_blank_values=True))
    gives it (the last value of a repeated name wins).

    Only a name or value that holds an escape or a "+" is unquoted: most of Twilio's values
    (SIDs, statuses) hold none, and unquoting every piece as parse_qsl does cost a few % of a
    webhook's throughput (docs/BENCHMARKS.md, issue 11)."""
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


def _unquote_plus(text: str) -> str:
    """urllib's unquote_plus, by the primitive it is made of: its `unquote` splits the text
    into ASCII runs with a regular expression and unquotes each run on its own, which tripled
    the cost of every phone number (+31...) in a form; this unquotes the whole text at once.
    The same for any text without lone surrogates, as a body decoded with "replace" is (tested
    against parse_qsl)."""
    return unquote_to_bytes(text.replace("+", " ")).decode("utf-8", "replace")


def header(scope: Scope, name: bytes) -> str:
    """One header's value ('' when absent)."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return ""


def is_signed(validator: RequestValidator, url: str, params: dict[str, str], scope: Scope) -> bool:
    """Whether the request's X-Twilio-Signature is Twilio's for this URL and these parameters.

    One HMAC over the URL as configured first: that is what Twilio signs. Only when it does not
    match does twilio's `validate` decide (it also tries the URL with and without its port), as
    it always computes both, which took a quarter of a webhook's time (docs/architecture.md)."""
    signature = header(scope, b"x-twilio-signature")
    if not signature:
        return False
    if hmac.compare_digest(compute_signature(validator.token, url, params), signature.encode()):
        return True
    return bool(validator.validate(url, params, signature))


def compute_signature(token: bytes, url: str, params: dict[str, str]) -> bytes:
    """RequestValidator.compute_signature for one value per name: HMAC-SHA1 over the URL and
    every name and value, sorted by name, in base64."""
    data = url + "".join(name + params[name] for name in sorted(params))
    # Not the one-shot `hmac.digest`: it lets go of the GIL around OpenSSL, and the event loop
    # then waits for a worker thread (the database's) to hand it back, up to 5 ms per webhook.
    return base64.b64encode(hmac.new(token, data.encode(), hashlib.sha1).digest())
