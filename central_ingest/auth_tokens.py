"""Agent bearer tokens: made here, shown once, stored only as a SHA-256.

A token is 32 random bytes (256 bits) encoded urlsafe. With that much entropy a
slow password hash buys nothing: nobody can guess a preimage of a fast hash
either, so SHA-256 is the right tool and keeps each request cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32
BEARER_PREFIX = "bearer "


def generate_token() -> str:
    """A fresh random token (43 urlsafe characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> bytes:
    """The 32-byte SHA-256 that the database keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_matches(token: str, stored_sha256: bytes) -> bool:
    """Compare in constant time, so response timing says nothing about the stored hash."""
    return hmac.compare_digest(hash_token(token), stored_sha256)


def bearer_token(authorization_header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when absent or malformed."""
    if authorization_header is None or authorization_header[: len(BEARER_PREFIX)].lower() != BEARER_PREFIX:
        return None
    token = authorization_header[len(BEARER_PREFIX) :].strip()
    # Tokens we issue are short; anything huge is not one of ours and is not worth hashing.
    if not token or len(token) > 256:
        return None
    return token
