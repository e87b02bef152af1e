"""Request bodies: size limits on the wire and after gzip, damaged and unsupported encodings."""

from __future__ import annotations

import gzip
import os
from collections.abc import AsyncIterator

import anyio
import pytest

from central_ingest.ingest.body import BodyError, check_declared_length, decode_content, read_limited

LIMIT = 64 * 1024


def _status(call: object) -> int:
    assert callable(call)
    with pytest.raises(BodyError) as caught:
        call()
    return caught.value.status_code


def test_identity_passes_through() -> None:
    assert decode_content(b'{"a": 1}', None, LIMIT) == b'{"a": 1}'
    assert decode_content(b"x", "identity", LIMIT) == b"x"


def test_gzip_round_trip_up_to_the_exact_limit() -> None:
    payload = os.urandom(LIMIT)
    assert decode_content(gzip.compress(payload), "gzip", LIMIT) == payload
    assert decode_content(gzip.compress(b"abc"), " GZIP ", LIMIT) == b"abc"


def test_gzip_bomb_is_refused_by_decompressed_size() -> None:
    bomb = gzip.compress(b"\0" * (LIMIT * 100))
    assert len(bomb) < LIMIT  # small on the wire: only the decompressed limit catches it
    assert _status(lambda: decode_content(bomb, "gzip", LIMIT)) == 413


def test_damaged_gzip_is_a_bad_request() -> None:
    whole = gzip.compress(b"x" * 1000)
    assert _status(lambda: decode_content(whole[: len(whole) // 2], "gzip", LIMIT)) == 400
    assert _status(lambda: decode_content(b"not gzip at all", "gzip", LIMIT)) == 400
    assert _status(lambda: decode_content(whole + b"junk", "gzip", LIMIT)) == 400


def test_other_encodings_are_unsupported() -> None:
    assert _status(lambda: decode_content(b"x", "br", LIMIT)) == 415
    assert _status(lambda: decode_content(b"x", "gzip, br", LIMIT)) == 415


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    check_declared_length(None, LIMIT)
    check_declared_length(str(LIMIT), LIMIT)
    assert _status(lambda: check_declared_length(str(LIMIT + 1), LIMIT)) == 413
    assert _status(lambda: check_declared_length("lots", LIMIT)) == 400


async def _chunks(sizes: list[int]) -> AsyncIterator[bytes]:
    for size in sizes:
        yield b"x" * size


def test_streamed_body_is_cut_off_past_the_limit() -> None:
    assert anyio.run(read_limited, _chunks([LIMIT // 2, LIMIT // 2]), LIMIT) == b"x" * LIMIT
    with pytest.raises(BodyError) as caught:
        anyio.run(read_limited, _chunks([LIMIT // 2, LIMIT // 2, 1]), LIMIT)
    assert caught.value.status_code == 413
