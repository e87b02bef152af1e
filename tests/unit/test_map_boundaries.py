"""The boundaries file of the map (``mapview.boundaries``) and the map settings that read it at start."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from central_ingest.mapview import boundaries
from central_ingest.mapview.boundaries import BoundariesError, current_boundaries, load_boundaries, validate_geojson
from central_ingest.settings import Settings

DEMO = Path(__file__).resolve().parents[2] / "configs" / "boundaries.demo.geojson"
SQUARE = [[[107.5, 16.4], [107.6, 16.4], [107.6, 16.5], [107.5, 16.5], [107.5, 16.4]]]


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def feature(name: str = "Phường Phú Hội", level: str = "commune", geometry: Any = None) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"name": name, "level": level},
        "geometry": geometry if geometry is not None else {"type": "Polygon", "coordinates": SQUARE},
    }


def test_the_demo_file_is_valid_and_marked_illustrative() -> None:
    loaded = load_boundaries(DEMO)
    assert loaded.features >= 4
    document = json.loads(loaded.body)
    assert "ILLUSTRATIVE" in document["note"]
    assert {f["properties"]["level"] for f in document["features"]} == {"province", "commune"}
    assert all(f["properties"]["illustrative"] for f in document["features"])


def test_polygons_and_multipolygons_are_counted() -> None:
    multi = feature(geometry={"type": "MultiPolygon", "coordinates": [SQUARE, SQUARE]})
    assert validate_geojson(collection(feature(), multi)) == (2, 15)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(type="Feature"), "must be a GeoJSON FeatureCollection"),
        (lambda d: d.update(features={}), "features: a list"),
        (lambda d: d["features"][0].update(type="Geometry"), "features[0]: must be a GeoJSON Feature"),
        (lambda d: d["features"][0]["properties"].pop("name"), "features[0].properties.name"),
        (lambda d: d["features"][0]["properties"].update(level="ward"), "features[0].properties.level: 'ward'"),
        (lambda d: d["features"][0].update(geometry=None), "features[0].geometry: missing geometry"),
        (lambda d: d["features"][0]["geometry"].update(type="Point"), "Polygon or MultiPolygon"),
        (lambda d: d["features"][0]["geometry"]["coordinates"][0].pop(), "a ring must end where it starts"),
        (lambda d: d["features"][0]["geometry"]["coordinates"][0].__setitem__(1, [16.4, 200]), "WGS 84"),
        (lambda d: d["features"][0]["geometry"]["coordinates"][0].__setitem__(1, ["x", 1]), "finite numbers"),
        (lambda d: d["features"][0]["geometry"].update(coordinates=[[[1, 2], [1, 2], [1, 2]]]), "at least 4"),
    ],
)
def test_bad_documents_name_the_feature(mutate: Any, message: str) -> None:
    document = copy.deepcopy(collection(feature()))
    mutate(document)
    with pytest.raises(BoundariesError) as raised:
        validate_geojson(document)
    assert message in str(raised.value)


def test_file_errors_start_with_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "none.geojson"
    with pytest.raises(BoundariesError, match=r"none\.geojson: cannot read"):
        load_boundaries(missing)
    broken = tmp_path / "broken.geojson"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(BoundariesError, match=r"broken\.geojson: not valid JSON"):
        load_boundaries(broken)
    wrong = tmp_path / "wrong.geojson"
    wrong.write_text(json.dumps(collection(feature(level="ward"))), encoding="utf-8")
    with pytest.raises(BoundariesError, match=r"wrong\.geojson: features\[0\]\.properties\.level"):
        load_boundaries(wrong)


def test_size_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.geojson"
    path.write_text(json.dumps(collection(feature(), feature())), encoding="utf-8")
    monkeypatch.setattr(boundaries, "MAX_BYTES", path.stat().st_size - 1)
    with pytest.raises(BoundariesError, match="bytes; at most"):
        load_boundaries(path)
    monkeypatch.setattr(boundaries, "MAX_BYTES", 1 << 20)
    monkeypatch.setattr(boundaries, "MAX_FEATURES", 1)
    with pytest.raises(BoundariesError, match="2 features; at most 1"):
        load_boundaries(path)
    monkeypatch.setattr(boundaries, "MAX_FEATURES", 10)
    monkeypatch.setattr(boundaries, "MAX_POSITIONS", 6)
    with pytest.raises(BoundariesError, match=r"features\[1\]: more than 6 positions"):
        load_boundaries(path)


def test_a_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "areas.geojson"
    path.write_text(json.dumps(collection(feature("A"))), encoding="utf-8")
    assert json.loads(current_boundaries(path).body)["features"][0]["properties"]["name"] == "A"
    path.write_text(json.dumps(collection(feature("Bee"), feature("C"))), encoding="utf-8")
    assert current_boundaries(path).features == 2


def test_settings_refuse_a_bad_boundaries_file_at_start(tmp_path: Path) -> None:
    assert Settings(map_boundaries_path=DEMO).map_boundaries_path == DEMO
    wrong = tmp_path / "wrong.geojson"
    wrong.write_text(json.dumps({"type": "FeatureCollection", "features": [feature(name="")]}), encoding="utf-8")
    with pytest.raises(ValidationError, match=r"wrong\.geojson: features\[0\]\.properties\.name"):
        Settings(map_boundaries_path=wrong)
