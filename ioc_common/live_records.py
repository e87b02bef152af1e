"""Framing of the live record stream (``application/x-ioc-live``): the edge agent writes it, central relays it.

One record is ``u32 big-endian header length | header (UTF-8 JSON object) | u32 big-endian JPEG length |
JPEG bytes``; a JPEG length of 0 marks a keepalive. The framing is a few lines on purpose: the edge agent
encodes, central's live proxy decodes only to find record boundaries (it relays each record's exact
bytes, ``LiveRecord.raw``), the browser parses the same bytes from a WebSocket message, and the latency
benchmark reads them too. Lengths are bounded (``max_header_bytes``, ``max_jpeg_bytes``): a corrupt or
hostile stream raises ``LiveRecordError`` with what was wrong instead of making a reader allocate gigabytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CONTENT_TYPE = "application/x-ioc-live"
"""The HTTP content type of a live record stream."""

MAX_HEADER_BYTES = 256 * 1024
"""Default bound of one header: a frame with hundreds of boxes and 64 lines stays far below it."""

MAX_JPEG_BYTES = 8 * 1024 * 1024
"""Default bound of one picture: a 4K JPEG at high quality is ~2 MiB."""

_LENGTH = struct.Struct(">I")


class LiveRecordError(ValueError):
    """The bytes are not a valid live record stream (bad length, bad JSON, truncated); framing is lost."""


@dataclass(frozen=True, slots=True)
class LiveRecord:
    """One decoded record, with its exact bytes for relaying unchanged."""

    header: dict[str, Any]
    raw: bytes
    """The whole record as it came: both length prefixes, the header and the JPEG."""
    jpeg_offset: int

    @property
    def jpeg(self) -> bytes:
        """The picture (empty for a keepalive)."""
        return self.raw[self.jpeg_offset :]

    @property
    def keepalive(self) -> bool:
        return self.jpeg_offset == len(self.raw)


def encode_record(header: Mapping[str, Any], jpeg: bytes = b"") -> bytes:
    """One record: ``header`` as compact UTF-8 JSON and ``jpeg`` (empty: a keepalive)."""
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return b"".join((_LENGTH.pack(len(head)), head, _LENGTH.pack(len(jpeg)), jpeg))


class RecordDecoder:
    """Turns byte chunks of any size into records; keeps at most one partial record between calls.

    After a ``LiveRecordError`` the stream's framing is lost: the caller drops the connection (and counts
    it), it does not keep feeding the same decoder.
    """

    def __init__(self, *, max_header_bytes: int = MAX_HEADER_BYTES, max_jpeg_bytes: int = MAX_JPEG_BYTES) -> None:
        if max_header_bytes < 2 or max_jpeg_bytes < 0:
            raise ValueError("max_header_bytes must be >= 2 and max_jpeg_bytes >= 0")
        self.max_header_bytes = max_header_bytes
        self.max_jpeg_bytes = max_jpeg_bytes
        self._buffer = bytearray()
        self.records = 0
        """Records decoded so far."""

    @property
    def pending_bytes(self) -> int:
        """Bytes of a record not complete yet."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[LiveRecord]:
        """The records completed by ``chunk`` (often none or one); ``LiveRecordError`` on bad framing."""
        self._buffer += chunk
        records: list[LiveRecord] = []
        while True:
            record = self._next()
            if record is None:
                return records
            records.append(record)

    def finish(self) -> None:
        """The stream ended: ``LiveRecordError`` if it stopped inside a record."""
        if self._buffer:
            raise LiveRecordError(f"stream ended inside a record ({len(self._buffer)} bytes of it received)")

    def _next(self) -> LiveRecord | None:
        buffer = self._buffer
        if len(buffer) < _LENGTH.size:
            return None
        (header_length,) = _LENGTH.unpack_from(buffer, 0)
        if not 2 <= header_length <= self.max_header_bytes:
            raise LiveRecordError(
                f"header length {header_length} outside 2..{self.max_header_bytes} bytes: not a live record stream"
            )
        jpeg_at = _LENGTH.size + header_length + _LENGTH.size
        if len(buffer) < jpeg_at:
            return None
        (jpeg_length,) = _LENGTH.unpack_from(buffer, jpeg_at - _LENGTH.size)
        if jpeg_length > self.max_jpeg_bytes:
            raise LiveRecordError(f"JPEG length {jpeg_length} above the bound of {self.max_jpeg_bytes} bytes")
        end = jpeg_at + jpeg_length
        if len(buffer) < end:
            return None
        raw = bytes(buffer[:end])
        del buffer[:end]
        header = parse_header(raw[_LENGTH.size : _LENGTH.size + header_length])
        self.records += 1
        return LiveRecord(header, raw, jpeg_at)


def parse_header(data: bytes) -> dict[str, Any]:
    """A record header: a JSON object; ``LiveRecordError`` saying why not otherwise."""
    try:
        header = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LiveRecordError(f"record header is not UTF-8 JSON: {error}") from error
    if not isinstance(header, dict):
        raise LiveRecordError(f"record header must be a JSON object, got {type(header).__name__}")
    return header


def decode_records(chunks: Iterable[bytes], **bounds: int) -> list[LiveRecord]:
    """Every record of a complete stream given as chunks (tests, files); ``LiveRecordError`` if it is cut short."""
    decoder = RecordDecoder(**bounds)
    records = [record for chunk in chunks for record in decoder.feed(chunk)]
    decoder.finish()
    return records
