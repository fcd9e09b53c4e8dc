"""The Twilio edge: one ASGI dispatcher for every webhook under /twilio/, the signature check,
and the handlers that always answer TwiML."""
