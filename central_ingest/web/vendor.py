"""``GET /vendor/{package}/{file}``: the pages' front-end libraries, served by central itself (no CDN).

The libraries come from the npm registry through ``central_ingest/web/vendor/package-lock.json`` (``./run setup``
runs ``npm ci`` there), so an operations centre without internet still gets the map. Only the files listed in
``FILES`` are served: the client names a (package, file) pair, never a path, so nothing else under
``node_modules`` can be read. Without ``node_modules`` (setup not run) the answer is a 503 that says what to
run, rather than a page that breaks without a word.

Answers carry an ETag (the content's SHA-256) and ``Cache-Control: no-cache``: browsers keep the files and
revalidate them, so an upgraded library reaches every user at once without downloading it on every page load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException
from fastapi.responses import Response

NODE_MODULES = Path(__file__).resolve().parent / "vendor" / "node_modules"
NOT_INSTALLED = (
    "Thư viện giao diện chưa được cài đặt: chạy ./run setup trên máy chủ. / "
    "The pages' front-end libraries are not installed: run ./run setup on the server."
)
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
PNG = "image/png"
FILES: dict[tuple[str, str], tuple[str, str]] = {
    ("leaflet", "leaflet.js"): ("leaflet/dist/leaflet.js", JS),
    ("leaflet", "leaflet.css"): ("leaflet/dist/leaflet.css", CSS),
    ("leaflet", "images/layers.png"): ("leaflet/dist/images/layers.png", PNG),
    ("leaflet", "images/layers-2x.png"): ("leaflet/dist/images/layers-2x.png", PNG),
    ("leaflet", "images/marker-icon.png"): ("leaflet/dist/images/marker-icon.png", PNG),
    ("leaflet", "images/marker-icon-2x.png"): ("leaflet/dist/images/marker-icon-2x.png", PNG),
    ("leaflet", "images/marker-shadow.png"): ("leaflet/dist/images/marker-shadow.png", PNG),
    ("leaflet.markercluster", "leaflet.markercluster.js"): (
        "leaflet.markercluster/dist/leaflet.markercluster.js",
        JS,
    ),
    ("leaflet.markercluster", "MarkerCluster.css"): ("leaflet.markercluster/dist/MarkerCluster.css", CSS),
    ("leaflet.markercluster", "MarkerCluster.Default.css"): (
        "leaflet.markercluster/dist/MarkerCluster.Default.css",
        CSS,
    ),
}
"""(package, file in the URL) -> (path under node_modules, media type): everything this route may serve."""
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True, slots=True)
class VendorFile:
    body: bytes
    etag: str


@lru_cache(maxsize=len(FILES) * 2)  # each file, plus a replaced version until it falls out
def _read(path: str, _mtime_ns: int, _size: int) -> VendorFile:
    body = Path(path).read_bytes()
    return VendorFile(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def vendor_file(package: str, name: str, root: Path | None = None) -> tuple[VendorFile, str]:
    """The listed file and its media type; HTTP 404 for an unlisted one, 503 when the libraries are not installed."""
    listed = FILES.get((package, name))
    if listed is None:
        raise HTTPException(404, "no such file")
    relative, media_type = listed
    path = (NODE_MODULES if root is None else root) / relative
    try:
        stat = path.stat()
        return _read(str(path), stat.st_mtime_ns, stat.st_size), media_type
    except OSError:
        raise HTTPException(503, NOT_INSTALLED) from None


router = APIRouter(tags=["pages"])


@router.get("/vendor/{package}/{name:path}", include_in_schema=False)
async def vendor_asset(package: str, name: str, if_none_match: Annotated[str | None, Header()] = None) -> Response:
    found, media_type = vendor_file(package, name)
    headers = {**HEADERS, "ETag": found.etag}
    if if_none_match is not None and found.etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=media_type, headers=headers)
