"""The baselines for bench/webhooks.py: bare FastAPI endpoints that answer constant TwiML.

- POST /twilio/voice reads the form body as the Twilio webhooks do, so both sides of the
  whole-call comparison parse a form;
- POST /twilio/floor does not even read it: the stack's own limit (uvicorn, Starlette, FastAPI
  routing and a response), what the new-call webhook is compared against.

Neither checks a signature or touches a store.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Response><Say language="nl-NL" voice="Polly.Lotte">'
    "Welkom bij Justis, de screeningsautoriteit.</Say></Response>"
)

app = FastAPI(title="bench-bare", docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/twilio/voice")
async def voice(request: Request) -> Response:
    form = await request.form()
    if not form.get("CallSid"):
        return Response("missing CallSid", status_code=400)
    return Response(TWIML, media_type="application/xml")


@app.post("/twilio/floor")
async def floor() -> Response:
    return Response(TWIML, media_type="application/xml")


@app.get("/healthz")
async def health() -> dict[str, str]:
    return {"status": "ok"}
