"""``GET /projects``: construction progress for project management units (PMUs), Vietnamese first.

Static files shipped in the package (HTML, CSS, JS, plus the shared ``/common/static/ioc.js``): no CDN, no
build step. The page holds no data; it signs in and calls the projects API (plans, progress, timelapse,
activity, cameras, confirmation), which checks the session and role of every request, so these routes
need no authentication.

Content-Security-Policy: the same strict policy as ``/police`` (only this origin's script, style and
requests) except for ``img-src``. The live view grid shows each camera's MJPEG preview straight from the
edge agent (``preview_url`` of the site registry: an address on the province's network that only the
operators' browsers reach, on any host and port), so ``img-src`` also allows ``http:`` and ``https:``.
Why this and not the alternatives:

- Central proxying the streams would put every meeting's video through central and make it open
  connections to addresses taken from the registry; it proxies nothing.
- Listing the registered preview origins in the header would need a database read to serve a static
  file, and would show unauthenticated visitors the internal camera addresses.
- An image cannot run code: script, style and ``connect-src`` stay this origin only, and the page never
  builds HTML from data (text only), so the wider ``img-src`` lets the page show pictures from elsewhere
  but not read them or send anything else. Only this page gets it; ``/police`` keeps ``'self' blob:``.

A browser on an https central blocks ``http:`` previews as mixed content; the page then shows the
placeholder text instead (the previews should be served over https there).
"""

from __future__ import annotations

from central_ingest.web.static_assets import STRICT_IMG_SRC, StaticAssets, page_router, security_headers

LIVE_VIEW_IMG_SRC = f"{STRICT_IMG_SRC} http: https:"
"""This origin and blobs (keyframes, photo previews), plus the cameras' MJPEG previews anywhere."""
SECURITY_HEADERS = security_headers(LIVE_VIEW_IMG_SRC)
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
