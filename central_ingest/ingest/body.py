"""Read a request body within a size limit and undo ``Content-Encoding: gzip``.

The limit applies twice: to the bytes on the wire and to the decompressed bytes,
so a small gzip "bomb" cannot expand into gigabytes in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator


class BodyError(Exception):
    """The body cannot be accepted; ``status_code`` is the HTTP answer to give."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def check_declared_length(content_length: str | None, limit: int) -> None:
    """Refuse early, before reading, when the client already says the body is too large."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise BodyError(400, f"Content-Length {content_length!r} is not a number") from None
    if declared > limit:
        raise BodyError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """Collect the body, stopping as soon as it passes ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def decode_content(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as the client meant it: gunzipped when so encoded, never larger than ``limit``."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise BodyError(415, f"Content-Encoding {content_encoding!r} is not supported; use gzip or none")
    return gunzip_limited(raw, limit)


def gunzip_limited(raw: bytes, limit: int) -> bytes:
    """Decompress one gzip member, refusing output beyond ``limit`` bytes and damaged input."""
    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        # Asking for one byte more than allowed tells "exactly at the limit" from "over it".
        data = decompressor.decompress(raw, limit + 1)
    except zlib.error as error:
        raise BodyError(400, f"gzip body is corrupt: {error}") from None
    if len(data) > limit:
        raise BodyError(413, f"decompressed body exceeds the limit of {limit} bytes")
    if not decompressor.eof:
        raise BodyError(400, "gzip body is truncated")
    if decompressor.unused_data:
        raise BodyError(400, "unexpected bytes after the gzip stream (send one gzip member)")
    return data
