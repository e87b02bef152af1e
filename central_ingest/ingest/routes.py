"""``POST /api/v1/events``: authenticate the agent, read and validate its batch, store it.

Order of checks: token (401) -> body size/encoding (413/415/400) -> batch
validation (422) -> batch belongs to the token's agent (403) -> store. Nothing of
a batch is stored unless all of it is valid. Parsing runs in a worker thread so a
large batch does not stall other requests.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from central_ingest.auth_tokens import bearer_token
from central_ingest.ingest.batch import InvalidBatchError, parse_batch
from central_ingest.ingest.body import BodyError, check_declared_length, decode_content, read_limited
from central_ingest.state import AppState, get_app_state
from central_ingest.store.agents import find_active_agent
from central_ingest.store.writer import store_events
from event_contract import BatchAck, EventBatch

router = APIRouter()

ERROR_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "Body unreadable (damaged gzip, bad Content-Length)."},
    401: {"description": "Missing, unknown or revoked token."},
    403: {"description": "The batch's agent_id is not the token's agent."},
    413: {"description": "Body larger than max_body_bytes (on the wire or decompressed)."},
    415: {"description": "Content-Encoding other than gzip."},
    422: {"description": "Invalid batch; `detail` lists each error as `field.path: message`."},
    503: {"description": "Database unavailable; retry later."},
}


def _error(status_code: int, detail: str, **extra: object) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="ioc-central"'} if status_code == 401 else None
    return JSONResponse({"detail": detail, **extra}, status_code=status_code, headers=headers)


def _decode_and_parse(raw: bytes, content_encoding: str | None, max_body_bytes: int, max_events: int) -> EventBatch:
    return parse_batch(decode_content(raw, content_encoding, max_body_bytes), max_events)


@router.post(
    "/api/v1/events",
    response_model=BatchAck,
    responses=ERROR_RESPONSES,
    summary="Ingest a batch of events from an agent",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "An EventBatch as JSON (schemas/event_batch.schema.json); may be sent with "
            "Content-Encoding: gzip.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def post_events(request: Request, app: Annotated[AppState, Depends(get_app_state)]) -> BatchAck | JSONResponse:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        return _error(401, "send Authorization: Bearer <agent token>")
    async with app.pool.connection() as conn:
        agent_id = await find_active_agent(conn, token)
    if agent_id is None:
        return _error(401, "unknown or revoked agent token")

    limit = app.settings.max_body_bytes
    try:
        check_declared_length(request.headers.get("content-length"), limit)
        raw = await read_limited(request.stream(), limit)
        batch = await anyio.to_thread.run_sync(
            _decode_and_parse, raw, request.headers.get("content-encoding"), limit, app.settings.max_batch_events
        )
    except BodyError as error:
        return _error(error.status_code, error.message)
    except InvalidBatchError as error:
        return _error(422, str(error), errors=[{"path": e.path, "message": e.message} for e in error.errors])

    if batch.agent_id != agent_id:
        return _error(403, f"this token belongs to agent {agent_id!r}, not to {batch.agent_id!r}")
    async with app.pool.connection() as conn:
        result = await store_events(conn, batch.events)
    return BatchAck(received=len(batch.events), stored=result.stored, duplicates=result.duplicates)
