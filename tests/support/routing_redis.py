"""The router's parts for the tests of routing in the real Redis (tests/test_routing.py,
tests/test_presence.py): the products, the callback URLs it gives Twilio, a waiting call."""

from __future__ import annotations

from datetime import UTC, datetime

from routing.entry import QueueEntry
from routing.queue import CallQueue

PRODUCTS = ["vog_np", "vog_rp", "gva", "general"]


class Urls:
    def connect(self, offer_id: str) -> str:
        return f"https://ivr.example.nl/twilio/connect?offer={offer_id}"

    def adviser_status(self, offer_id: str) -> str:
        return f"https://ivr.example.nl/twilio/adviser-status?offer={offer_id}"

    def transfer_status(self, call_sid: str) -> str:
        return f"https://ivr.example.nl/twilio/transfer-status?call={call_sid}"


async def waiting_call(
    queue: CallQueue, sid: str, product: str = "vog_np", priority: int = 0
) -> None:
    entry = QueueEntry(
        call_sid=sid,
        caller="+31612345678",
        language="nl",
        product=product,
        theme="status",
        priority=priority,
        verification="unverified",
        path=[],
        queued_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
    )
    assert await queue.enqueue(entry)
