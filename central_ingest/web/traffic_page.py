"""``GET /traffic``: the traffic dashboard (Vietnamese first, English second).

Counts per junction camera over time by class and direction, peak hours, violations per junction against the
trailing average of its "vi phạm tăng" rule (30 daily periods, a month, by default) with the rule's +X% line
(+20% as the province asked), and the CSV export of the counts. Static files shipped in the package
(HTML, CSS, JS, plus the shared ``/common/static/`` shell): no CDN, no build step. The page holds no data: the
shell signs in and the script calls the query and dashboard APIs, which check role and area scope on every
request, so these routes need no authentication. Charts are SVG drawn from text values only; the strict
Content-Security-Policy of every page applies (this origin only).
"""

from __future__ import annotations

from central_ingest.web.static_assets import StaticAssets, page_router, security_headers

PAGE = StaticAssets(
    "traffic",
    {
        "index.html": "text/html; charset=utf-8",
        "traffic.css": "text/css; charset=utf-8",
        "traffic.js": "text/javascript; charset=utf-8",
    },
    security_headers(),
)
"""Every file the page may load; nothing else under the folder is served (no path from the client)."""
router = page_router("/traffic", PAGE, "traffic page")
