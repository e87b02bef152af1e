"""``GET /live``: the operators' video wall, Vietnamese first (static files shipped in the package, no CDN).

The page holds no data: it signs in through the shared shell, lists the cameras of the caller's area
(``GET /api/v1/live/cameras``) and opens one WebSocket per tile to central's live proxy
(``/api/v1/live/{agent}/{camera}/ws``), which checks the session, role and area of every stream; so these
routes need no authentication. Frames arrive as JPEG bytes with the agent's detections in a header and are
drawn on a canvas (``createImageBitmap``), never loaded as images from elsewhere, so the page keeps the strict
policy of every other page: ``img-src 'self' blob:`` and ``connect-src 'self'``, which in CSP Level 3 browsers
(Chromium included; the browser test checks it) also allows ``ws:``/``wss:`` to this same host and port.
"""

from __future__ import annotations

from central_ingest.web.static_assets import StaticAssets, page_router, security_headers

PAGE = StaticAssets(
    "live",
    {
        "index.html": "text/html; charset=utf-8",
        "live.css": "text/css; charset=utf-8",
        "live.js": "text/javascript; charset=utf-8",
    },
    security_headers(),
)
"""Every file the page may load; nothing else under the folder is served (no path from the client)."""
router = page_router("/live", PAGE, "live view page")
