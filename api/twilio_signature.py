"""Every /twilio/ request must carry a valid X-Twilio-Signature.

The URL is rebuilt from KCC_PUBLIC_URL, not from Host or X-Forwarded-* headers: behind a proxy
or load balancer those describe the hop, not the URL Twilio signed.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from twilio.request_validator import RequestValidator


def signed_url(public_base: str, request: Request) -> str:
    query = request.url.query
    return f"{public_base}{request.url.path}" + (f"?{query}" if query else "")


async def verified_form(request: Request) -> dict[str, str]:
    """The POST parameters of a genuine Twilio request; 403 for anything else."""
    services = request.app.state.services
    validator: RequestValidator = services.validator
    form = await request.form()
    params = {key: str(value) for key, value in form.multi_items()}
    signature = request.headers.get("X-Twilio-Signature", "")
    url = signed_url(services.settings.public_base, request)
    if not signature or not validator.validate(url, params, signature):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="invalid Twilio signature"
        )
    return params
