"""Personal data in Redis is sealed (encrypted and authenticated) with a key from KCC_SECRET_KEY.

Call sessions and queue entries hold the caller's number and, once verified, the application
number. Redis is shared infrastructure: its dumps, MONITOR output and replicas should not reveal
them. AES-256-GCM from `cryptography` does the sealing: a random 96-bit nonce per value, and
the tag authenticates it. Values sealed before with Fernet (AES-128-CBC + HMAC-SHA256; a call or
a queue entry that was in Redis during an upgrade) are still opened: the two formats cannot be
confused, a GCM value starts with "2." and a Fernet token has no dot. Fernet cost several times
as much per value, on every webhook.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flows.errors import KccError

_GCM = "2."  # the format marker of an AES-GCM value
_NONCE = 12


class SealBroken(KccError):
    """A sealed value could not be opened (another secret key, or tampered with)."""

    code = "seal_broken"


class Sealer:
    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(b"kcc-ivr redis seal\x00" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))  # opens values sealed before
        gcm_key = hashlib.sha256(b"kcc-ivr redis seal aes-256-gcm\x00" + secret.encode()).digest()
        self._gcm = AESGCM(gcm_key)

    def seal(self, text: str) -> str:
        # OpenSSL's generator, not os.urandom: the getrandom call lets go of the GIL, and the
        # event loop then waits for a busy worker thread (the database's) to hand it back, up to
        # the switch interval, twice per webhook. Both are cryptographically strong.
        nonce = ssl.RAND_bytes(_NONCE)
        sealed = nonce + self._gcm.encrypt(nonce, text.encode(), None)
        # The standard alphabet, straight from binascii (no translation pass): a sealed value
        # only ever lives in Redis, and `open` reads both alphabets (values sealed before).
        return _GCM + binascii.b2a_base64(sealed, newline=False).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            if sealed.startswith(_GCM):
                raw = base64.urlsafe_b64decode(sealed[len(_GCM) :])  # '-_' and '+/' alike
                return self._gcm.decrypt(raw[:_NONCE], raw[_NONCE:], None).decode()
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidTag, InvalidToken, ValueError, binascii.Error) as exc:
            raise SealBroken("a sealed value in Redis could not be opened") from exc


class Pseudonymizer:
    """Stable keyed hashes of numbers, for Redis key names that must not contain the number."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"kcc-ivr pseudonym\x00" + secret.encode()).digest()

    def __call__(self, value: str) -> str:
        return hashlib.blake2b(value.encode(), key=self._key, digest_size=16).hexdigest()
