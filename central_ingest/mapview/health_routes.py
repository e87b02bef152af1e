"""``GET /api/v1/health/agents``: every agent with its cameras and sensors (operator, technician, admin).

Scoped like every other API: an agent is listed when one of its sites is in the caller's area, and only those
sites are listed under it. Unrestricted users also see sources heard from but missing from the sites registry
(a camera someone forgot to register is exactly what a technician must notice).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from central_ingest.access.dependencies import require_role
from central_ingest.access.principal import Principal
from central_ingest.access.scope import visible_sources
from central_ingest.mapview.sources import agent_rows, source_rows
from central_ingest.mapview.views import health_agents
from central_ingest.query.routes import HEALTH_ROLES
from central_ingest.state import AppState, get_app_state
from central_ingest.store.ingest_status import visible_agents

router = APIRouter(prefix="/api/v1/health", tags=["health"])


@router.get("/agents", summary="Agents with uptime, spool backlog, last batch; their cameras and sensors")
async def get_health_agents(
    principal: Annotated[Principal, Depends(require_role(*HEALTH_ROLES))],
    app: Annotated[AppState, Depends(get_app_state)],
) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    async with app.pool.connection() as conn:
        visible = await visible_sources(conn, principal.scope)
        sources = await source_rows(conn, visible, now, include_unregistered=visible is None)
        names = visible_agents(visible)  # the same rule as /api/v1/ingest/agents: an agent of a visible site
        agents = await agent_rows(conn, names, now) if names is None or names else []
    return health_agents(agents, sources, now)
