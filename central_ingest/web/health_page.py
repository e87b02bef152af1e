"""``GET /health``: every agent with its cameras and sensors (uptime, fps, frames dropped, spool backlog, last
event and batch times) for operators, technicians and admins.

Static files in the package with the strict policy of every page (only this origin). The page holds no data:
it reads ``/api/v1/health/agents``, which checks the session, the role and the area scope of every request.
"""

from __future__ import annotations

from central_ingest.web.static_assets import StaticAssets, page_router, security_headers

PAGE = StaticAssets(
    "health",
    {
        "index.html": "text/html; charset=utf-8",
        "health.css": "text/css; charset=utf-8",
        "health.js": "text/javascript; charset=utf-8",
    },
    security_headers(),
)
"""Every file the page may load; nothing else under the folder is served (no path from the client)."""
router = page_router("/health", PAGE, "agent health page")
