"""``GET /``: the overview every signed-in user lands on, Vietnamese first.

A page shell like the others (``IOC.shell``): it holds no data and reads the same APIs the other pages do
(open alerts, cameras and stations by state, vehicle totals of the last 24 h), so a user sees only what
their roles and area allow; a section whose API refuses the role is simply left out. Before issue 9 this
was a server-rendered table of every camera's totals, readable without signing in.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from central_ingest.web.static_assets import StaticAssets, security_headers

PAGE = StaticAssets(
    "overview",
    {
        "index.html": "text/html; charset=utf-8",
        "overview.css": "text/css; charset=utf-8",
        "overview.js": "text/javascript; charset=utf-8",
    },
    security_headers(),
)
router = APIRouter(tags=["overview page"])


@router.get("/", include_in_schema=False)
async def overview() -> Response:
    return PAGE.response("index.html")


@router.get("/overview/static/{name}", include_in_schema=False)
async def overview_asset(name: str) -> Response:
    if name == "index.html":  # the page itself is served at / only
        raise HTTPException(404, "no such file")
    return PAGE.response(name)
