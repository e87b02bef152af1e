"""``GET /police``: the vehicle-pass search page for police officers (Vietnamese first, English second).

The page is three static files (HTML, CSS, JS) shipped in the package and served from here: no CDN
and no build step, because the operations centre's network may have no internet. The page itself
holds no data; it logs in and calls the audited API (``/api/v1/plates/search``, ``/api/v1/plates/evidence``),
so these routes need no authentication. A strict Content-Security-Policy allows only this origin's
script and style, and images from this origin (the evidence thumbnails arrive as blobs).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

router = APIRouter(tags=["police page"])

STATIC_PACKAGE = "central_ingest.web"
STATIC_DIR = ("static", "police")
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "police.css": "text/css; charset=utf-8",
    "police.js": "text/javascript; charset=utf-8",
}
"""Every file the page may load; nothing else under the folder is served (no path from the client)."""

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is small; not caching it means a fixed bug reaches every officer at once.
    "Cache-Control": "no-cache",
}


@cache
def _asset(name: str) -> bytes:
    return resources.files(STATIC_PACKAGE).joinpath(*STATIC_DIR, name).read_bytes()


def _serve(name: str) -> Response:
    return Response(_asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get("/police", include_in_schema=False)
async def police_page() -> Response:
    return _serve("index.html")


@router.get("/police/static/{name}", include_in_schema=False)
async def police_asset(name: str) -> Response:
    if name not in ASSETS or name == "index.html":
        raise HTTPException(404, "no such file")
    return _serve(name)
