"""A waiting call as routing and the adviser see it. Never holds a date of birth."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class QueueEntry(BaseModel):
    call_sid: str
    caller: str
    language: str
    product: str
    theme: str
    priority: int = 0
    verification: str
    # Only when verification == "verified":
    application_number: str | None = None
    application_product: str | None = None
    application_status: str | None = None
    application_status_date: date | None = None
    path: list[str]
    queued_at: datetime
    callback: bool = False  # the caller hung up to be called back; the entry keeps its place
    flow_version: str | None = None  # the flow version the call started on (its prompts)
    # A call transferred by an adviser (to a colleague or a queue): who, and their note. The
    # receiving adviser's screen-pop shows them; only that adviser receives the entry.
    transferred_by: str | None = None
    transfer_note: str | None = None
