"""``GET /sensors``: sensor stations (water level, forest fire, air quality) with their alert levels drawn.

Static files shipped in the package, like every page: the shell signs in, the script reads
``/api/v1/dashboards/sensors/stations`` (stations, units, the levels the rules judge them by) and
``/api/v1/sensors/readings?bucket=...`` (the series), which check role and area scope on every request, so
these routes need no authentication. ``?station=agent/source`` preselects a station (links from the map and
the alerts). Strict Content-Security-Policy (this origin only).
"""

from __future__ import annotations

from central_ingest.web.static_assets import StaticAssets, page_router, security_headers

PAGE = StaticAssets(
    "sensors",
    {
        "index.html": "text/html; charset=utf-8",
        "sensors.css": "text/css; charset=utf-8",
        "sensors.js": "text/javascript; charset=utf-8",
    },
    security_headers(),
)
"""Every file the page may load; nothing else under the folder is served (no path from the client)."""
router = page_router("/sensors", PAGE, "sensors page")
