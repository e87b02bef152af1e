"""TOTP (RFC 6238) against the RFC's own test vectors, and the replay and window rules."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from central_ingest.access.totp import (
    Algorithm,
    generate_secret,
    hotp,
    otpauth_uri,
    secret_base32,
    totp,
    verify_totp,
)

SEEDS: dict[Algorithm, bytes] = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
# RFC 6238 Appendix B (8 digits).
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("unix_time", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc6238_vectors(unix_time: int, sha1: str, sha256: str, sha512: str) -> None:
    expected: dict[Algorithm, str] = {"sha1": sha1, "sha256": sha256, "sha512": sha512}
    for algorithm, code in expected.items():
        assert totp(SEEDS[algorithm], unix_time, digits=8, algorithm=algorithm) == code


def test_rfc4226_hotp_vectors() -> None:
    # RFC 4226 Appendix D, the first counters.
    expected = ["755224", "287082", "359152", "969429", "338314", "254676"]
    assert [hotp(SEEDS["sha1"], counter) for counter in range(6)] == expected


def test_six_digit_codes_are_the_last_six_of_the_eight() -> None:
    assert totp(SEEDS["sha1"], 59) == "287082"


def test_window_is_one_step_either_side() -> None:
    secret = SEEDS["sha1"]
    now = 1_700_000_015.0
    step = int(now // 30)
    for offset in (-1, 0, 1):
        assert verify_totp(secret, totp(secret, now + 30 * offset), now, None) == step + offset
    for offset in (-2, 2):
        assert verify_totp(secret, totp(secret, now + 30 * offset), now, None) is None


def test_a_code_is_good_once() -> None:
    secret = generate_secret()
    now = 1_700_000_015.0
    code = totp(secret, now)
    step = verify_totp(secret, code, now, None)
    assert step is not None
    assert verify_totp(secret, code, now, step) is None  # replay within its own 30 s
    assert verify_totp(secret, totp(secret, now - 30), now, step) is None  # an older step too
    assert verify_totp(secret, totp(secret, now + 30), now + 30, step) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes_fail(code: str) -> None:
    assert verify_totp(SEEDS["sha1"], code, 59.0, None) is None


def test_spaces_in_a_typed_code_are_ignored() -> None:
    code = totp(SEEDS["sha1"], 59)
    assert verify_totp(SEEDS["sha1"], f"{code[:3]} {code[3:]}", 59.0, None) == 1


def test_otpauth_uri_carries_the_secret_and_parameters() -> None:
    secret = generate_secret()
    uri = urlsplit(otpauth_uri(secret, "officer.an", "IOC Huế"))
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == "/IOC Huế:officer.an"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret_base32(secret)]
    assert (query["algorithm"], query["digits"], query["period"]) == (["SHA1"], ["6"], ["30"])
    assert len(secret) == 20
