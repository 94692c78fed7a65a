"""Salted, slow hashes of customer PINs: the only form a PIN is ever kept in.

A 4-8 digit PIN has at most 10^8 values, so a fast hash of it is as good as the PIN
itself to anyone holding the table. scrypt (``hashlib.scrypt``, memory-hard) with a
random 16-byte salt per PIN makes each guess cost ~16 MB and tens of milliseconds.
The stored text names its algorithm and parameters, so they can be raised later and
old hashes still verify; PBKDF2 hashes (``pbkdf2_sha256$...``) verify too, for
systems whose OpenSSL lacks scrypt. The database layer and the in-memory services
both use these two functions, so a PIN is checked the same way everywhere.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

__all__ = ["hash_pin", "verify_pin", "pbkdf2_hash_pin", "SCRYPT_N", "SCRYPT_R", "SCRYPT_P"]

SCRYPT_N = 2 ** 14   # CPU/memory cost: 16 MB with r=8
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_PBKDF2_ITERATIONS = 600_000
_MAX_HASH_TEXT = 255  # the customers.pin_hash column


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * n * r + 1024 * 1024, dklen=_KEY_BYTES)


def hash_pin(pin: str) -> str:
    """``scrypt$<n>$<r>$<p>$<salt>$<key>`` (base64) for ``pin``; a new salt every call."""
    if not isinstance(pin, str):
        raise TypeError("a PIN is text")
    salt = os.urandom(_SALT_BYTES)
    key = _scrypt(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_pin(pin: str, stored: str | None) -> bool:
    """True when ``pin`` matches ``stored``; a malformed or unknown hash is simply False."""
    if not isinstance(pin, str) or not isinstance(stored, str) or len(stored) > _MAX_HASH_TEXT:
        return False
    parts = stored.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = (int(x) for x in parts[1:4])
            # Refuse absurd parameters from a tampered row instead of eating the server.
            if not (2 <= n <= 2 ** 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
                return False
            salt, expected = _unb64(parts[4]), _unb64(parts[5])
            actual = _scrypt(pin, salt, n, r, p)
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            iterations = int(parts[1])
            if not 1_000 <= iterations <= 10_000_000:
                return False
            salt, expected = _unb64(parts[2]), _unb64(parts[3])
            actual = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, iterations,
                                         dklen=len(expected) or _KEY_BYTES)
        else:
            return False
    except (ValueError, binascii.Error, OverflowError, MemoryError):
        return False
    return len(expected) > 0 and hmac.compare_digest(actual, expected)


def pbkdf2_hash_pin(pin: str, iterations: int = _PBKDF2_ITERATIONS) -> str:
    """The PBKDF2 form (for systems without scrypt); ``verify_pin`` accepts both."""
    salt = os.urandom(_SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, iterations, dklen=_KEY_BYTES)
    return f"pbkdf2_sha256${iterations}${_b64(salt)}${_b64(key)}"
