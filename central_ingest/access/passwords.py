"""Password hashes: scrypt with a per-user salt, its parameters written into the hash.

Format (one text column)::

    scrypt$ln=17,r=8,p=1$<salt, base64 no padding>$<32-byte key, base64 no padding>

Keeping ``ln`` (log2 of N), ``r`` and ``p`` with each hash lets the cost be raised later: old hashes
still verify with their own parameters, and ``needs_rehash`` tells the sign-in to store a new
hash made with the current ones. scrypt is in the standard library (``hashlib.scrypt``) and is
memory-hard, which is what makes a stolen table expensive to crack on GPUs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

SALT_BYTES = 16
KEY_BYTES = 32
MAX_PASSWORD_CHARS = 1024
"""Longer inputs are refused before hashing (no work amplification)."""
_FORMAT = re.compile(r"^scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$")


class PasswordError(ValueError):
    """A password that cannot be used (too short, too long), or a stored hash that is not ours."""


@dataclass(frozen=True, slots=True)
class KdfParams:
    log2_n: int = 17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not (10 <= self.log2_n <= 22 and 1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise PasswordError(f"scrypt parameters out of range: ln={self.log2_n} r={self.r} p={self.p}")

    @property
    def max_memory(self) -> int:
        """Memory limit for hashlib (its default, 32 MiB, is below OWASP's N=2**17)."""
        return 2 * 128 * self.r * ((1 << self.log2_n) + self.p) + 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _derive(password: str, salt: bytes, params: KdfParams) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=1 << params.log2_n,
        r=params.r,
        p=params.p,
        maxmem=params.max_memory,
        dklen=KEY_BYTES,
    )


def check_password_policy(password: str, min_chars: int) -> None:
    """Raise ``PasswordError`` for a password too short or too long to accept."""
    if len(password) < min_chars:
        raise PasswordError(f"password must have at least {min_chars} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordError(f"password must have at most {MAX_PASSWORD_CHARS} characters")


def hash_password(password: str, params: KdfParams) -> str:
    """A new hash of ``password`` with a fresh random salt (slow on purpose: run it off the event loop)."""
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordError(f"password must have at most {MAX_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, params)
    return f"scrypt$ln={params.log2_n},r={params.r},p={params.p}${_b64(salt)}${_b64(key)}"


def parse_hash(stored: str) -> tuple[KdfParams, bytes, bytes]:
    """(parameters, salt, key) of a stored hash; ``PasswordError`` when it is not one of ours."""
    match = _FORMAT.fullmatch(stored)
    if match is None:
        raise PasswordError("stored password hash is not in the scrypt$ln=..,r=..,p=..$salt$key form")
    try:
        salt, key = _unb64(match[4]), _unb64(match[5])
    except (binascii.Error, ValueError) as error:
        raise PasswordError("stored password hash has bad base64") from error
    return KdfParams(int(match[1]), int(match[2]), int(match[3])), salt, key


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` gives ``stored``; compared in constant time. False for over-long input."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    params, salt, key = parse_hash(stored)
    return hmac.compare_digest(_derive(password, salt, params), key)


def needs_rehash(stored: str, params: KdfParams) -> bool:
    """True when ``stored`` was made with other parameters than ``params`` (e.g. a lower cost)."""
    try:
        current, _, key = parse_hash(stored)
    except PasswordError:
        return True
    return current != params or len(key) != KEY_BYTES


def dummy_hash(params: KdfParams) -> str:
    """A hash of a random password, checked for unknown usernames so they take as long as known ones."""
    return hash_password(secrets.token_urlsafe(16), params)
