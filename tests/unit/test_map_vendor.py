"""``/vendor/{package}/{file}``: only the listed npm files, 404 for others, 503 saying what to run without them."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from central_ingest.web import vendor
from central_ingest.web.vendor import FILES, NOT_INSTALLED, vendor_file


def fake_modules(root: Path) -> None:
    for relative, _ in FILES.values():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"/* {relative} */".encode())


def test_listed_files_are_served_with_etag_and_revalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_modules(tmp_path)
    monkeypatch.setattr(vendor, "NODE_MODULES", tmp_path)
    app = FastAPI()
    app.include_router(vendor.router)
    with TestClient(app) as client:
        js = client.get("/vendor/leaflet/leaflet.js")
        assert js.status_code == 200
        assert js.text == "/* leaflet/dist/leaflet.js */"
        assert js.headers["content-type"].startswith("text/javascript")
        assert js.headers["x-content-type-options"] == "nosniff"
        again = client.get("/vendor/leaflet/leaflet.js", headers={"If-None-Match": js.headers["etag"]})
        assert again.status_code == 304
        image = client.get("/vendor/leaflet/images/layers.png")
        assert (image.status_code, image.headers["content-type"]) == (200, "image/png")
        css = client.get("/vendor/leaflet.markercluster/MarkerCluster.Default.css")
        assert css.headers["content-type"].startswith("text/css")
        for path in (
            "/vendor/leaflet/leaflet-src.js",  # present in the package, not listed
            "/vendor/leaflet/%2E%2E/dist/leaflet.js",  # a path, not a listed name
            "/vendor/axe-core/axe.min.js",  # a test-only package
            "/vendor/leaflet/dist/leaflet.js",
        ):
            assert client.get(path).status_code == 404, path


def test_missing_node_modules_is_a_503_that_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(HTTPException) as raised:
        vendor_file("leaflet", "leaflet.js", root=tmp_path / "node_modules")
    assert raised.value.status_code == 503
    assert raised.value.detail == NOT_INSTALLED
    assert "./run setup" in NOT_INSTALLED


def test_every_listed_file_exists_after_setup() -> None:
    """The allow-list matches the locked packages (``./run setup`` installs them; the test gate runs it)."""
    missing = [relative for relative, _ in FILES.values() if not (vendor.NODE_MODULES / relative).is_file()]
    assert not missing, f"run ./run setup (npm ci in central_ingest/web/vendor); missing: {missing}"
