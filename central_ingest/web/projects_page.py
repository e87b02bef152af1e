"""``GET /projects``: construction progress for project management units (PMUs), Vietnamese first.

Static files shipped in the package (HTML, CSS, JS, plus the shared ``/common/static/ioc.js``): no CDN, no
build step. The page holds no data; it signs in and calls the projects API (plans, progress, timelapse,
activity, cameras, confirmation), which checks the session and role of every request, so these routes
need no authentication.

Content-Security-Policy: the same strict policy as every other page (only this origin's script, style, images
and requests). The live view of the project's cameras streams through central's live proxy over a same-origin
WebSocket (``/api/v1/live/{agent}/{camera}/ws``, which checks the session and the area) and is drawn on a canvas
by the shared tiles of ``/live`` (``common/live_tile.js``), so no picture is ever loaded from an agent's address
and ``img-src`` needs nothing beyond ``'self' blob:``.
"""

from __future__ import annotations

from central_ingest.web.static_assets import StaticAssets, page_router, security_headers

SECURITY_HEADERS = security_headers()
PAGE = StaticAssets(
    "projects",
    {
        "index.html": "text/html; charset=utf-8",
        "projects.css": "text/css; charset=utf-8",
        "projects.js": "text/javascript; charset=utf-8",
    },
    SECURITY_HEADERS,
)
"""Every file the page may load; nothing else under the folder is served (no path from the client)."""
router = page_router("/projects", PAGE, "projects page")
