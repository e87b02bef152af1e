"""The map's tile settings and the map page's Content-Security-Policy (img-src: the tile origin only)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from central_ingest.mapview.config import check_tile_url, tile_origin
from central_ingest.settings import Settings
from central_ingest.web.map_page import page_img_src


def test_tile_origin() -> None:
    assert tile_origin("https://tiles.ioc.example.vn/{z}/{x}/{y}.png") == "https://tiles.ioc.example.vn"
    assert tile_origin("http://10.0.0.5:8080/osm/{z}/{x}/{y}.png") == "http://10.0.0.5:8080"
    assert tile_origin("https://{s}.tiles.example.vn/{z}/{x}/{y}.png") == "https://*.tiles.example.vn"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://tiles.example.vn/{z}/{x}/{y}.png", "http:// or https://"),
        ("https://tiles.example.vn/{z}/{x}.png", "must contain {y}"),
        ("https://user@tiles.example.vn/{z}/{x}/{y}.png", "plain host"),
        ("https://tiles.example.vn; script-src */{z}/{x}/{y}", "plain host"),
        ("https://tiles.example.vn/{z}/{x}/{y}.png' x", "quotes"),
    ],
)
def test_bad_tile_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_tile_url(url)


def test_settings_defaults_and_csp() -> None:
    plain = Settings()
    assert (plain.map_tile_url, plain.map_boundaries_path, plain.map_zoom) == (None, None, 13)
    assert page_img_src(plain) == "'self' blob:"
    tiled = Settings(map_tile_url="https://tiles.ioc.example.vn/{z}/{x}/{y}.png")
    assert page_img_src(tiled) == "'self' blob: data: https://tiles.ioc.example.vn"
    with pytest.raises(ValidationError, match="map_tile_url must contain"):
        Settings(map_tile_url="https://tiles.ioc.example.vn/tile.png")
    with pytest.raises(ValidationError):
        Settings(map_center_lat=91)
