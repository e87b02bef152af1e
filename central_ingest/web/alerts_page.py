"""``GET /alerts``: the operators' alert page (live feed, acknowledge/resolve, history), Vietnamese first.

Three static files (HTML, CSS, JS) shipped in the package plus the shared shell of ``/common/static/``
(sign-in, header, ``IOC.api``): no CDN, no build step, because the operations centre's network may have
no internet. The page holds no data: it reads ``/api/v1/alerts`` (list, one alert), listens to
``/api/v1/alerts/stream`` (server-sent events) and posts acknowledge/resolve; those routes check the
session, role and area of every request, so these routes need no authentication.

Content-Security-Policy: the strict policy of every page (this origin's script, style, requests and
images). The alert sound is generated in the page (WebAudio), so no ``media-src`` is needed; evidence
images are read from this origin's API; links to evidence elsewhere are plain links, which the policy
does not restrict.
"""

from __future__ import annotations

from central_ingest.web.static_assets import StaticAssets, page_router, security_headers

SECURITY_HEADERS = security_headers()
PAGE = StaticAssets(
    "alerts",
    {
        "index.html": "text/html; charset=utf-8",
        "alerts.css": "text/css; charset=utf-8",
        "alerts.js": "text/javascript; charset=utf-8",
    },
    SECURITY_HEADERS,
)
"""Every file the page may load; nothing else under the folder is served (no path from the client)."""
router = page_router("/alerts", PAGE, "alerts page")
