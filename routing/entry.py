"""A waiting call as routing and the adviser see it. Never holds a date of birth."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class QueueEntry(BaseModel):
    call_sid: str
    caller: str
    language: str
    product: str
    theme: str
    priority: int = 0
    verification: str
    application_number: str | None = None  # only when verification == "verified"
    path: list[str]
    queued_at: datetime
