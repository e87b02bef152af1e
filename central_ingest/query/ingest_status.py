"""``GET /api/v1/ingest/agents`` and ``GET /api/v1/ingest/dead-letters``: what ingest refused, and from whom.

Operators, technicians and admins only; a user scoped to some communes sees the agents with a site there
(and their dead letters), an agent it names outside them answers 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from central_ingest.access.dependencies import require_role
from central_ingest.access.principal import Principal
from central_ingest.access.scope import NOT_IN_AREA, visible_sources
from central_ingest.query.export import row_as_json
from central_ingest.query.routes import HEALTH_ROLES, IdFilter
from central_ingest.state import AppState, get_app_state
from central_ingest.store.ingest_status import DeadLetterFilters, agent_totals, dead_letters, visible_agents

router = APIRouter(prefix="/api/v1/ingest")
HealthReader = Annotated[Principal, Depends(require_role(*HEALTH_ROLES))]


@router.get(
    "/agents",
    summary="Every agent's ingest totals: batches, events stored, duplicates, refused; last batch and refusal",
)
async def get_agents(principal: HealthReader, app: Annotated[AppState, Depends(get_app_state)]) -> list[dict[str, Any]]:
    async with app.pool.connection() as conn:
        agents = visible_agents(await visible_sources(conn, principal.scope))
        return [row_as_json(row) for row in await agent_totals(conn, agents)]


@router.get(
    "/dead-letters",
    summary="Refused events and payloads, newest first, with the reason (payloads themselves are not served)",
    description='Answer: `{"items": [...], "next_before_id": int | null}`; pass `next_before_id` as `before_id` '
    "for the next page. `position` is the event's index in its batch (null: the whole payload was refused).",
)
async def get_dead_letters(
    *,
    principal: HealthReader,
    app: Annotated[AppState, Depends(get_app_state)],
    agent_id: IdFilter = None,
    channel: Literal["http", "mqtt"] | None = None,
    before_id: Annotated[int | None, Query(ge=1, description="Only dead letters older than this id.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most items per page.")] = 100,
) -> dict[str, Any]:
    async with app.pool.connection() as conn:
        agents = visible_agents(await visible_sources(conn, principal.scope))
        if agents is not None and agent_id is not None and agent_id not in agents:
            raise HTTPException(404, NOT_IN_AREA)
        rows, next_before = await dead_letters(conn, DeadLetterFilters(agent_id, channel, before_id), limit, agents)
    return {"items": [row_as_json(row) for row in rows], "next_before_id": next_before}
