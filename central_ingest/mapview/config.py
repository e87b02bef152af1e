"""Checks of the map's settings (``Settings.map_*``), applied when the settings are read, i.e. at start.

The tile URL decides the map page's Content-Security-Policy (``img-src`` gets exactly the tile server's origin),
so it must be a plain ``http(s)://host[:port]/...{z}...{x}...{y}...`` template; a leading ``{s}.`` subdomain
placeholder becomes the CSP wildcard ``*.``. The boundaries file is read and validated here so that a wrong
file stops the service with the file's path and the faulty feature instead of a blank map later.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from central_ingest.mapview.boundaries import load_boundaries

_HOST = re.compile(r"^(\{s\}\.)?[A-Za-z0-9.-]+(:\d{1,5})?$")


def tile_origin(url: str) -> str:
    """The CSP source of a tile URL template: ``https://tiles.example.vn`` or ``https://*.tiles.example.vn``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.replace('{s}.', '*.', 1)}"


def check_tile_url(url: str) -> str:
    """``url`` when it is a usable tile template; ValueError saying what is wrong otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("map_tile_url must start with http:// or https://")
    if not _HOST.match(parts.netloc):
        raise ValueError("map_tile_url: the host must be a plain host[:port] (a leading {s}. is allowed)")
    missing = [p for p in ("{z}", "{x}", "{y}") if p not in url]
    if missing:
        raise ValueError(
            f"map_tile_url must contain {', '.join(missing)} (e.g. https://tiles.example.vn/{{z}}/{{x}}/{{y}}.png)"
        )
    if any(c in url for c in "\"' \\"):
        raise ValueError("map_tile_url must not contain quotes, spaces or backslashes")
    return url


def check_boundaries_path(path: Path) -> Path:
    """``path`` when it holds a valid boundaries file (``mapview.boundaries``); BoundariesError otherwise."""
    load_boundaries(path)
    return path


TileUrl = Annotated[str, AfterValidator(check_tile_url)]
BoundariesPath = Annotated[Path, AfterValidator(check_boundaries_path)]
