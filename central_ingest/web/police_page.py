"""``GET /police``: the vehicle-pass search page for police officers (Vietnamese first, English second).

The page is three static files (HTML, CSS, JS) shipped in the package and served from here, plus the
shared browser code of ``/common/static/ioc.js`` (``static_assets``): no CDN and no build step, because the
operations centre's network may have no internet. The page itself holds no data; it logs in and calls the
audited API (``/api/v1/plates/search``, ``/api/v1/plates/evidence``), so these routes need no authentication.
A strict Content-Security-Policy allows only this origin's script and style, and images from this origin
(the evidence thumbnails arrive as blobs).
"""

from __future__ import annotations

from central_ingest.web.static_assets import StaticAssets, page_router, security_headers

SECURITY_HEADERS = security_headers()
PAGE = StaticAssets(
    "police",
    {
        "index.html": "text/html; charset=utf-8",
        "police.css": "text/css; charset=utf-8",
        "police.js": "text/javascript; charset=utf-8",
    },
    SECURITY_HEADERS,
)
"""Every file the page may load; nothing else under the folder is served (no path from the client)."""
router = page_router("/police", PAGE, "police page")
