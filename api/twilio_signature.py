"""Every /twilio/ request must carry a valid X-Twilio-Signature.

The URL is rebuilt from KCC_PUBLIC_URL, not from Host or X-Forwarded-* headers: behind a proxy
or load balancer those describe the hop, not the URL Twilio signed.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request, status
from twilio.request_validator import RequestValidator


def signed_url(public_base: str, request: Request) -> str:
    query = request.url.query
    return f"{public_base}{request.url.path}" + (f"?{query}" if query else "")


async def verified_form(request: Request) -> dict[str, str]:
    """The POST parameters of a genuine Twilio request; 403 for anything else."""
    services = request.app.state.services
    validator: RequestValidator = services.validator
    # Twilio posts application/x-www-form-urlencoded; parsing it directly is cheaper than the
    # multipart-capable form parser, and a webhook is on the caller's clock.
    params = dict(
        parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    )
    signature = request.headers.get("X-Twilio-Signature", "")
    url = signed_url(services.settings.public_base, request)
    if not signature or not _valid(validator, url, params, signature):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="invalid Twilio signature"
        )
    return params


def _valid(validator: RequestValidator, url: str, params: dict[str, str], signature: str) -> bool:
    """One HMAC for the URL as configured; twilio's validate (which also tries the URL with and
    without a port) only when that does not match."""
    expected = validator.compute_signature(url, params)
    if hmac.compare_digest(expected.encode(), signature.encode()):
        return True
    return bool(validator.validate(url, params, signature))
