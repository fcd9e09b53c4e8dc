"""Personal data in Redis is sealed (encrypted and authenticated) with a key from KCC_SECRET_KEY.

Call sessions and queue entries hold the caller's number and, once verified, the application
number. Redis is shared infrastructure: its dumps, MONITOR output and replicas should not reveal
them. Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography` does the sealing.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SealBroken(Exception):
    """A sealed value could not be opened (another secret key, or tampered with)."""


class Sealer:
    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(b"kcc-ivr redis seal\x00" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            raise SealBroken("a sealed value in Redis could not be opened") from exc


class Pseudonymizer:
    """Stable keyed hashes of numbers, for Redis key names that must not contain the number."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"kcc-ivr pseudonym\x00" + secret.encode()).digest()

    def __call__(self, value: str) -> str:
        return hashlib.blake2b(value.encode(), key=self._key, digest_size=16).hexdigest()
