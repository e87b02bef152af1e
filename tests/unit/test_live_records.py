"""The live record framing (ioc_common.live_records): round trips through any chunking, and clear errors."""

from __future__ import annotations

import itertools
import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioc_common.live_records import LiveRecordError, RecordDecoder, decode_records, encode_record

HEADER = {"type": "frame", "camera_id": "cam-1", "sequence": 7, "label": "Vượt đèn đỏ"}
JPEG = b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9"


def test_one_record_is_length_prefixed_json_and_jpeg() -> None:
    record = encode_record(HEADER, JPEG)
    (header_length,) = struct.unpack(">I", record[:4])
    assert json.loads(record[4 : 4 + header_length].decode("utf-8")) == HEADER
    (jpeg_length,) = struct.unpack(">I", record[4 + header_length : 8 + header_length])
    assert record[8 + header_length :] == JPEG
    assert jpeg_length == len(JPEG)


def test_decoder_gives_header_jpeg_and_the_exact_bytes() -> None:
    data = encode_record(HEADER, JPEG) + encode_record({"type": "keepalive", "sequence": 7})
    first, second = RecordDecoder().feed(data)
    assert (first.header, first.jpeg, first.keepalive) == (HEADER, JPEG, False)
    assert first.raw == encode_record(HEADER, JPEG)
    assert (second.header["type"], second.jpeg, second.keepalive) == ("keepalive", b"", True)


@given(
    headers=st.lists(
        st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=20)), max_size=4),
        min_size=1,
        max_size=5,
    ),
    jpegs=st.lists(st.binary(max_size=300), min_size=5, max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_any_chunking_gives_the_same_records(
    headers: list[dict[str, object]], jpegs: list[bytes], cuts: list[int]
) -> None:
    records = [encode_record(header, jpeg) for header, jpeg in zip(headers, jpegs, strict=False)]
    stream = b"".join(records)
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    decoded = decode_records(chunks)
    assert [r.raw for r in decoded] == records
    assert [r.header for r in decoded] == headers


def test_byte_by_byte_keeps_only_the_partial_record() -> None:
    record = encode_record(HEADER, JPEG)
    decoder = RecordDecoder()
    for index, byte in enumerate(record[:-1]):
        assert decoder.feed(bytes([byte])) == []
        assert decoder.pending_bytes == index + 1
    [done] = decoder.feed(record[-1:])
    assert done.jpeg == JPEG
    assert decoder.pending_bytes == 0
    assert decoder.records == 1


def test_oversized_header_length_is_refused_before_reading_it() -> None:
    decoder = RecordDecoder(max_header_bytes=1024)
    with pytest.raises(LiveRecordError, match=r"header length 5000 outside 2\.\.1024"):
        decoder.feed(struct.pack(">I", 5000))


def test_oversized_jpeg_length_is_refused_before_reading_it() -> None:
    head = json.dumps(HEADER).encode()
    data = struct.pack(">I", len(head)) + head + struct.pack(">I", 10_000_000)
    with pytest.raises(LiveRecordError, match="JPEG length 10000000 above the bound of 8388608"):
        RecordDecoder().feed(data)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"\xff\xfe{}", "not UTF-8 JSON"),
        (b"{not json", "not UTF-8 JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
    ],
)
def test_bad_headers_say_what_is_wrong(header: bytes, message: str) -> None:
    data = struct.pack(">I", len(header)) + header + struct.pack(">I", 0)
    with pytest.raises(LiveRecordError, match=message):
        RecordDecoder().feed(data)


def test_a_stream_cut_inside_a_record_is_an_error() -> None:
    record = encode_record(HEADER, JPEG)
    with pytest.raises(LiveRecordError, match="stream ended inside a record"):
        decode_records([record, record[:10]])


def test_a_garbage_stream_is_refused() -> None:
    with pytest.raises(LiveRecordError, match="not a live record stream"):
        RecordDecoder().feed(b"--ioc-frame\r\nContent-Type: image/jpeg\r\n")
