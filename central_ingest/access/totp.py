"""TOTP second factor (RFC 6238 over RFC 4226 HOTP): SHA-1, 30 s steps, 6 digits.

These are the parameters every authenticator app supports. ``verify_totp`` accepts the current
step and one step either side (clock drift of phone and server), and only a step later than
the last one accepted for the user, so an observed code cannot be replayed, not even within
its own 30 seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from typing import Literal
from urllib.parse import quote, urlencode

STEP_S = 30
DIGITS = 6
WINDOW_STEPS = 1
SECRET_BYTES = 20
"""160 bits: RFC 4226's recommended length for HMAC-SHA-1."""

Algorithm = Literal["sha1", "sha256", "sha512"]


def generate_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def secret_base32(secret: bytes) -> str:
    """The secret as authenticator apps take it typed in: base32 without padding."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def time_step(unix_time: float, step_s: int = STEP_S) -> int:
    return int(unix_time // step_s)


def hotp(secret: bytes, counter: int, digits: int = DIGITS, algorithm: Algorithm = "sha1") -> str:
    """RFC 4226 HOTP value of ``counter`` (dynamic truncation), zero-padded to ``digits``."""
    digest = hmac.new(secret, struct.pack(">Q", counter), getattr(hashlib, algorithm)).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(secret: bytes, unix_time: float, digits: int = DIGITS, algorithm: Algorithm = "sha1") -> str:
    """RFC 6238 code at ``unix_time`` (T0 = 0, 30 s steps)."""
    return hotp(secret, time_step(unix_time), digits, algorithm)


def verify_totp(secret: bytes, code: str, unix_time: float, last_step: int | None) -> int | None:
    """The step ``code`` is valid for (now +-1 step, later than ``last_step``), or None.

    The caller stores the returned step as the user's new ``last_step`` in the same transaction
    (conditionally, so two concurrent sign-ins with one code cannot both pass).
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now_step = time_step(unix_time)
    for step in range(now_step - WINDOW_STEPS, now_step + WINDOW_STEPS + 1):
        if step < 0 or (last_step is not None and step <= last_step):
            continue
        if hmac.compare_digest(hotp(secret, step), code):
            return step
    return None


def otpauth_uri(secret: bytes, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app imports (as text or a QR code)."""
    label = quote(f"{issuer}:{account}", safe=":@")
    query = urlencode(
        {"secret": secret_base32(secret), "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP_S}
    )
    return f"otpauth://totp/{label}?{query}"
