"""Serving the pages' static files (HTML, CSS, JS shipped in the package) with their security headers.

Every page of central is a few static files with no CDN and no build step (the operations centre's
network may have no internet). Each page names the files it may load, so no path from the client ever
reaches the file system, and answers them with a strict Content-Security-Policy. The browser code the
pages share (sign-in, CSRF header, safe DOM helpers) lives in ``static/common`` and is served here under
``/common/static/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

STATIC_PACKAGE = "central_ingest.web"
STRICT_IMG_SRC = "'self' blob:"
"""Images from this origin, and blobs the page made from this origin's answers."""


def security_headers(img_src: str = STRICT_IMG_SRC) -> dict[str, str]:
    """The headers of every page file: only this origin's script, style and requests; ``img-src`` as given."""
    return {
        "Content-Security-Policy": f"default-src 'none'; script-src 'self'; style-src 'self'; img-src {img_src}; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # The pages are small; not caching them means a fixed bug reaches every user at once.
        "Cache-Control": "no-cache",
    }


@cache
def _read(folder: str, name: str) -> bytes:
    return resources.files(STATIC_PACKAGE).joinpath("static", folder, name).read_bytes()


class StaticAssets:
    """The files of one folder under ``static/`` that a page may load, with their media types."""

    def __init__(self, folder: str, media_types: Mapping[str, str], headers: Mapping[str, str]) -> None:
        self.folder = folder
        self.media_types = dict(media_types)
        self.headers = dict(headers)

    def response(self, name: str) -> Response:
        """The file ``name``; 404 for any name the page did not list (no path from the client is opened)."""
        if name not in self.media_types:
            raise HTTPException(404, "no such file")
        return Response(_read(self.folder, name), media_type=self.media_types[name], headers=self.headers)


def page_router(path: str, assets: StaticAssets, tag: str) -> APIRouter:
    """``GET path`` (the page's ``index.html``) and ``GET path/static/{name}`` (its other listed files)."""
    router = APIRouter(tags=[tag])

    async def page() -> Response:
        return assets.response("index.html")

    async def asset(name: str) -> Response:
        if name == "index.html":
            raise HTTPException(404, "no such file")
        return assets.response(name)

    router.add_api_route(path, page, methods=["GET"], include_in_schema=False)
    router.add_api_route(f"{path}/static/{{name}}", asset, methods=["GET"], include_in_schema=False)
    return router


COMMON = StaticAssets(
    "common",
    {
        "ioc.js": "text/javascript; charset=utf-8",
        "ioc.css": "text/css; charset=utf-8",
        "live_tile.js": "text/javascript; charset=utf-8",
    },
    security_headers(),
)
router = APIRouter(tags=["pages"])


@router.get("/common/static/{name}", include_in_schema=False)
async def common_asset(name: str) -> Response:
    return COMMON.response(name)
