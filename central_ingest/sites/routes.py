"""``GET /api/v1/sites``: every registered camera and sensor site, for any logged-in user's maps.

Site positions are not personal data, but they are the centre's inventory, so the route needs a
session (any role) rather than being public, and a user scoped to some communes sees only their sites.
The agents' own addresses (``preview_url``, ``live_url``) are left out: browsers never reach an agent (the
live view goes through central's proxy), and they would tell any user where the edge machines listen.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from central_ingest.access.dependencies import require_signed_in
from central_ingest.access.principal import Principal
from central_ingest.sites.store import list_sites
from central_ingest.state import AppState, get_app_state

router = APIRouter(prefix="/api/v1/sites", tags=["sites"])
AGENT_ADDRESSES = frozenset({"preview_url", "live_url"})
"""Registry fields only central's server code uses (the live proxy): never in the answer."""


@router.get("", summary="Camera and sensor sites with coordinates in the caller's area (any logged-in user)")
async def get_sites(
    principal: Annotated[Principal, Depends(require_signed_in)],
    app: Annotated[AppState, Depends(get_app_state)],
) -> list[dict[str, Any]]:
    async with app.pool.connection() as conn:
        sites = await list_sites(conn, principal.scope)
    return [{key: value for key, value in site.items() if key not in AGENT_ADDRESSES} for site in sites]
