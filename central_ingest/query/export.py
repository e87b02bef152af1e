"""Streamed CSV and JSON answers: rows become text as the database hands them out, never all at once.

A row source is an async iterator of dicts (a server-side cursor, see
``store.family_queries.stream_rows``); ``csv_chunks`` and ``json_chunks`` turn it into text
pieces of about ``CHUNK_ROWS`` rows each, and ``export_response`` wraps them in a
``StreamingResponse`` with a download file name. Values: times in ISO 8601 with their offset,
UUIDs as text, ``None`` as an empty CSV field or JSON ``null``, lists and objects (evidence)
as JSON text in CSV.

Validation happens before the response starts (the route raises 422 then); an error while
streaming can only cut the body short, which the client sees as an incomplete download.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

from fastapi.responses import StreamingResponse

ExportFormat = Literal["csv", "json"]
CHUNK_ROWS = 500
MEDIA_TYPES: dict[ExportFormat, str] = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def json_value(value: Any) -> Any:
    """A value JSON can carry."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(json_value(value))


def row_as_json(row: dict[str, Any]) -> dict[str, Any]:
    return {key: json_value(value) for key, value in row.items()}


async def csv_chunks(columns: Sequence[str], rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """A header line, then the rows, in text pieces of ``CHUNK_ROWS`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    pending = 0
    async for row in rows:
        writer.writerow([csv_value(row.get(column)) for column in columns])
        pending += 1
        if pending >= CHUNK_ROWS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue()


async def json_chunks(columns: Sequence[str], rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """A JSON array of objects with ``columns`` as keys, in text pieces of ``CHUNK_ROWS`` rows."""
    parts: list[str] = ["["]
    first = True
    async for row in rows:
        item = json.dumps({column: json_value(row.get(column)) for column in columns}, ensure_ascii=False)
        parts.append(item if first else "," + item)
        first = False
        if len(parts) >= CHUNK_ROWS:
            yield "".join(parts)
            parts = []
    parts.append("]")
    yield "".join(parts)


def export_response(
    export_format: ExportFormat,
    columns: Sequence[str],
    rows: Callable[[], AsyncIterator[dict[str, Any]]],
    filename_stem: str,
) -> StreamingResponse:
    """A download of ``rows()`` (called when the body starts) as CSV or a JSON array."""
    chunks = csv_chunks if export_format == "csv" else json_chunks
    return StreamingResponse(
        chunks(columns, rows()),
        media_type=MEDIA_TYPES[export_format],
        headers={"Content-Disposition": f'attachment; filename="{filename_stem}.{export_format}"'},
    )


def filename_stem(prefix: str, start: dt.datetime, end: dt.datetime) -> str:
    """``counts_20250501T0000Z_20250502T0000Z``: safe in a header and on every file system."""
    return f"{prefix}_{start.astimezone(dt.UTC):%Y%m%dT%H%MZ}_{end.astimezone(dt.UTC):%Y%m%dT%H%MZ}"
