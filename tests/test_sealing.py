"""Sealed values in Redis: AES-256-GCM now, Fernet values from before still open."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from fakeredis import FakeAsyncRedis

from routing.entry import QueueEntry
from routing.queue import CallQueue
from routing.sealing import SealBroken, Sealer

SECRET = "a-test-secret-that-is-long-enough-0123456789"
TEXT = '{"caller": "+31612345678", "application_number": "1234567"}'


def test_a_sealed_value_opens_and_hides_the_text() -> None:
    sealer = Sealer(SECRET)
    sealed = sealer.seal(TEXT)
    assert sealed.startswith("2.")
    assert "31612345678" not in sealed and "1234567" not in sealed
    assert sealer.open(sealed) == TEXT
    assert sealer.seal(TEXT) != sealed  # a fresh nonce every time


def test_values_sealed_with_fernet_before_still_open() -> None:
    key = hashlib.sha256(b"kcc-ivr redis seal\x00" + SECRET.encode()).digest()
    before = Fernet(base64.urlsafe_b64encode(key)).encrypt(TEXT.encode()).decode()
    assert "." not in before  # so it can never be taken for a GCM value
    assert Sealer(SECRET).open(before) == TEXT


def test_values_sealed_in_the_url_safe_alphabet_before_still_open() -> None:
    """Sealed values were written with '-' and '_' where they now have '+' and '/'."""
    sealer = Sealer(SECRET)
    sealed = next(s for s in (sealer.seal(TEXT) for _ in range(200)) if "+" in s or "/" in s)
    before = sealed.translate(str.maketrans("+/", "-_"))
    assert before != sealed
    assert sealer.open(before) == TEXT
    assert sealer.open(sealed) == TEXT


@pytest.mark.parametrize(
    "spoil",
    [
        lambda s: s[:-4] + ("AAAA" if not s.endswith("AAAA") else "BBBB"),  # tag changed
        lambda s: s[:12],  # cut short
        lambda s: "2.",
        lambda s: "2.!!not base64!!",
        lambda s: "plain text",
        lambda s: "",
    ],
)
def test_a_tampered_value_does_not_open(spoil: Callable[[str], str]) -> None:
    sealer = Sealer(SECRET)
    with pytest.raises(SealBroken):
        sealer.open(spoil(sealer.seal(TEXT)))


def test_another_secret_does_not_open_it() -> None:
    sealed = Sealer(SECRET).seal(TEXT)
    with pytest.raises(SealBroken):
        Sealer(SECRET + "x").open(sealed)


def test_a_waiturl_carries_the_callers_context_without_the_advisers_transfer_note() -> None:
    """The waitUrl's copy of a queue entry (for a Redis loss) leaves out a transfer's note: up
    to 2,000 characters of the adviser's, which would make the URL long; the rest comes back."""
    queue = CallQueue(FakeAsyncRedis(decode_responses=True), Sealer("k" * 40))
    entry = QueueEntry(
        call_sid="CA" + "1" * 32,
        caller="+31612345678",
        language="nl",
        product="vog_np",
        theme="status",
        verification="skipped",
        path=["main", "vog_np"],
        queued_at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        transferred_by="ann",
        transfer_note="é" * 2000,
    )
    carried = queue.carried(entry)
    assert len(carried) < 1000
    back = queue.open_carried(carried, entry.call_sid)
    assert back == entry.model_copy(update={"transferred_by": None, "transfer_note": None})
    assert queue.open_carried(carried, "CA" + "2" * 32) is None  # another call's URL: not theirs
