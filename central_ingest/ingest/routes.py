"""``POST /api/v1/events``: authenticate the agent, read and validate its batch, store it.

Order of checks: token (401) -> body size/encoding (413/415/400) -> batch envelope
(422) -> batch belongs to the token's agent (403) -> each event on its own. Good events
are stored, bad ones refused one by one (see ``pipeline``); the answer lists both. Parsing
runs in a worker thread so a large batch does not stall other requests.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from central_ingest.auth_tokens import bearer_token
from central_ingest.ingest.batch import InvalidBatchError
from central_ingest.ingest.body import BodyError, check_declared_length, decode_content, read_limited
from central_ingest.ingest.pipeline import AgentMismatchError
from central_ingest.plates.evidence_requests import ACK_FEATURES_HEADER, EVIDENCE_WANTED_FEATURE
from central_ingest.state import AppState, get_app_state
from central_ingest.store.agents import find_active_agent
from event_contract import BatchAck

router = APIRouter()

ERROR_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "Body unreadable (damaged gzip, bad Content-Length)."},
    401: {"description": "Missing, unknown or revoked token."},
    403: {"description": "The batch's agent_id is not the token's agent (kept as a dead letter)."},
    413: {"description": "Body larger than max_body_bytes (on the wire or decompressed)."},
    415: {"description": "Content-Encoding other than gzip."},
    422: {"description": "Invalid batch envelope; `detail` lists each error as `field.path: message`."},
    503: {"description": "Database unavailable; retry later."},
}


def _error(status_code: int, detail: str, **extra: object) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="ioc-central"'} if status_code == 401 else None
    return JSONResponse({"detail": detail, **extra}, status_code=status_code, headers=headers)


@router.post(
    "/api/v1/events",
    response_model=BatchAck,
    responses=ERROR_RESPONSES,
    summary="Ingest a batch of events from an agent",
    description="Good events are stored (once: a re-sent event counts as a duplicate); each bad event is refused "
    "alone with its reason (`rejections`), kept in the dead-letter table and counted for the agent. Never resend "
    "refused events: they cannot succeed. An agent that sends `X-IOC-Ack-Features: evidence_wanted` gets, when "
    "officers asked for keyframes it holds, their digests in `evidence_wanted` (upload them).",
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
    agent_id = await _authenticated_agent(request, app)
    if isinstance(agent_id, JSONResponse):
        return agent_id
    try:
        data = await _read_body(request, app, agent_id)
        return await app.ingestor.ingest(
            data, agent_id=agent_id, channel="http", want_evidence=_wants_evidence(request)
        )
    except BodyError as error:
        return _error(error.status_code, error.message)
    except InvalidBatchError as error:
        return _error(422, str(error), errors=[{"path": e.path, "message": e.message} for e in error.errors])
    except AgentMismatchError as error:
        return _error(403, str(error))


def _wants_evidence(request: Request) -> bool:
    """The agent reads ``BatchAck.evidence_wanted`` (``X-IOC-Ack-Features: evidence_wanted``); older agents
    refuse unknown ack fields, so they never get it."""
    features = request.headers.get(ACK_FEATURES_HEADER, "")
    return EVIDENCE_WANTED_FEATURE in {part.strip().lower() for part in features.split(",")}


async def _authenticated_agent(request: Request, app: AppState) -> str | JSONResponse:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        return _error(401, "send Authorization: Bearer <agent token>")
    async with app.pool.connection() as conn:
        agent_id = await find_active_agent(conn, token)
    return agent_id if agent_id is not None else _error(401, "unknown or revoked agent token")


async def _read_body(request: Request, app: AppState, agent_id: str) -> bytes:
    """The decoded body; a body that arrived whole but cannot be decoded is kept as a dead letter."""
    limit = app.settings.max_body_bytes
    check_declared_length(request.headers.get("content-length"), limit)
    raw = await read_limited(request.stream(), limit)
    try:
        return decode_content(raw, request.headers.get("content-encoding"), limit)
    except BodyError as error:
        await app.ingestor.refuse_unreadable(raw, agent_id, "http", error.message)
        raise
