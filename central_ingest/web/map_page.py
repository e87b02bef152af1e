"""``GET /map``: every camera and sensor at its coordinates with its live state (any signed-in role).

Static files in the package plus Leaflet and markercluster from ``/vendor`` (npm, served by central: no CDN).
The page holds no data: it signs in through the shared shell and reads ``/api/v1/map/*``, which checks the
session and the area scope of every request, so these routes need no authentication.

Content-Security-Policy: the strict policy of every page, except that ``img-src`` adds the origin of the
configured tile server (``map_tile_url``) and ``data:`` (Leaflet cancels a tile it no longer needs by pointing
it at an embedded empty GIF; an image cannot run code); without a tile URL the page keeps the strict
policy and draws a plain background with the boundaries. The header is built per request from the settings
(only ``index.html`` needs it: a CSP applies to the document that loads the files).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response

from central_ingest.mapview.config import tile_origin
from central_ingest.settings import Settings
from central_ingest.state import AppState, get_app_state
from central_ingest.web.static_assets import STRICT_IMG_SRC, StaticAssets, security_headers

MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "map.css": "text/css; charset=utf-8",
    "map.js": "text/javascript; charset=utf-8",
}
"""Every file the page may load; nothing else under the folder is served (no path from the client)."""
ASSETS = StaticAssets("map", MEDIA_TYPES, security_headers())


def page_img_src(settings: Settings) -> str:
    """``img-src`` of the page: this origin and blobs, plus the tile server's origin (and Leaflet's ``data:`` blank
    tile) when one is configured."""
    if settings.map_tile_url is None:
        return STRICT_IMG_SRC
    return f"{STRICT_IMG_SRC} data: {tile_origin(settings.map_tile_url)}"


router = APIRouter(tags=["map page"])


@router.get("/map", include_in_schema=False)
async def map_page(app: Annotated[AppState, Depends(get_app_state)]) -> Response:
    return StaticAssets("map", MEDIA_TYPES, security_headers(page_img_src(app.settings))).response("index.html")


@router.get("/map/static/{name}", include_in_schema=False)
async def map_asset(name: str) -> Response:
    if name == "index.html":
        raise HTTPException(404, "no such file")
    return ASSETS.response(name)
