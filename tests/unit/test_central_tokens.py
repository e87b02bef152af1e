"""Agent tokens: random, stored only as SHA-256, parsed from the Authorization header."""

from __future__ import annotations

import hashlib

from central_ingest.auth_tokens import bearer_token, generate_token, hash_token, token_matches


def test_tokens_are_long_random_and_urlsafe() -> None:
    tokens = {generate_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert len(token) == 43  # 32 bytes, base64url without padding
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_hash_is_sha256_of_the_token() -> None:
    token = generate_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).digest()
    assert len(hash_token(token)) == 32
    assert token.encode() not in hash_token(token)


def test_token_matches_only_its_own_hash() -> None:
    token, other = generate_token(), generate_token()
    assert token_matches(token, hash_token(token))
    assert not token_matches(other, hash_token(token))
    assert not token_matches(token, b"")


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc  ") == "abc"
    assert bearer_token(None) is None
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token("Bearer " + "a" * 1000) is None
