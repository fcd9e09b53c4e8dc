"""Sealed values in Redis: AES-256-GCM now, Fernet values from before still open."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from cryptography.fernet import Fernet

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
