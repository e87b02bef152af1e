"""``GET /api/v1/ingest/agents`` and ``GET /api/v1/ingest/dead-letters``: what ingest refused, and from whom."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from central_ingest.query.export import row_as_json
from central_ingest.query.routes import IdFilter
from central_ingest.state import AppState, get_app_state
from central_ingest.store.ingest_status import DeadLetterFilters, agent_totals, dead_letters

router = APIRouter(prefix="/api/v1/ingest")


@router.get(
    "/agents",
    summary="Every agent's ingest totals: batches, events stored, duplicates, refused; last batch and refusal",
)
async def get_agents(app: Annotated[AppState, Depends(get_app_state)]) -> list[dict[str, Any]]:
    async with app.pool.connection() as conn:
        return [row_as_json(row) for row in await agent_totals(conn)]


@router.get(
    "/dead-letters",
    summary="Refused events and payloads, newest first, with the reason (payloads themselves are not served)",
    description='Answer: `{"items": [...], "next_before_id": int | null}`; pass `next_before_id` as `before_id` '
    "for the next page. `position` is the event's index in its batch (null: the whole payload was refused).",
)
async def get_dead_letters(
    app: Annotated[AppState, Depends(get_app_state)],
    agent_id: IdFilter = None,
    channel: Literal["http", "mqtt"] | None = None,
    before_id: Annotated[int | None, Query(ge=1, description="Only dead letters older than this id.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most items per page.")] = 100,
) -> dict[str, Any]:
    async with app.pool.connection() as conn:
        rows, next_before = await dead_letters(conn, DeadLetterFilters(agent_id, channel, before_id), limit)
    return {"items": [row_as_json(row) for row in rows], "next_before_id": next_before}
