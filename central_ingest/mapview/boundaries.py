"""The administrative boundaries file of the map: a GeoJSON FeatureCollection, checked before it is served.

The map draws these polygons when no tile server is configured (and over the tiles when one is). The file is
read from the operator's configuration, so it is validated with an error that names the file and the feature
(``features[3].properties.level: ...``) and bounded in size: a browser must be able to draw it, and a wrong
path (a whole OSM extract) must fail at start, not on every page load.

Each feature: geometry ``Polygon`` or ``MultiPolygon`` (WGS 84 ``[lon, lat]``, closed rings of at least four
positions), properties ``name`` (text) and ``level`` (``province``, ``district`` or ``commune``). Other
properties are kept.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

MAX_BYTES = 8 * 1024 * 1024
"""Largest boundaries file: a province's communes simplified for screen use are well under 2 MiB."""
MAX_FEATURES = 5_000
MAX_POSITIONS = 500_000
"""All positions of all features: beyond this a browser draws the layer too slowly to be useful."""
LEVELS = ("province", "district", "commune")
MAX_NAME_CHARS = 200


class BoundariesError(ValueError):
    """The boundaries file is missing, too large, or not a FeatureCollection of named administrative areas."""


@dataclass(frozen=True, slots=True)
class Boundaries:
    """A validated boundaries file: its features and the compact JSON served to the map."""

    path: Path
    features: int
    positions: int
    body: bytes


def _position(value: Any, where: str) -> None:
    if not (isinstance(value, list) and len(value) in (2, 3)):
        raise BoundariesError(f"{where}: a position is [longitude, latitude]")
    if not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in value):
        raise BoundariesError(f"{where}: coordinates must be finite numbers")
    lon, lat = value[0], value[1]
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise BoundariesError(f"{where}: [{lon}, {lat}] is not a WGS 84 [longitude, latitude] position")


def _polygon(rings: Any, where: str) -> int:
    """Checks one polygon (a list of closed rings); returns its number of positions."""
    if not (isinstance(rings, list) and rings):
        raise BoundariesError(f"{where}: a polygon is a non-empty list of rings")
    count = 0
    for r, ring in enumerate(rings):
        if not (isinstance(ring, list) and len(ring) >= 4):
            raise BoundariesError(f"{where}[{r}]: a ring has at least 4 positions")
        for p, position in enumerate(ring):
            _position(position, f"{where}[{r}][{p}]")
        if ring[0][:2] != ring[-1][:2]:
            raise BoundariesError(f"{where}[{r}]: a ring must end where it starts (closed)")
        count += len(ring)
    return count


def _geometry(geometry: Any, where: str) -> int:
    if not isinstance(geometry, dict):
        raise BoundariesError(f"{where}: missing geometry")
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        return _polygon(coordinates, f"{where}.coordinates")
    if kind == "MultiPolygon":
        if not (isinstance(coordinates, list) and coordinates):
            raise BoundariesError(f"{where}.coordinates: a MultiPolygon is a non-empty list of polygons")
        return sum(_polygon(polygon, f"{where}.coordinates[{i}]") for i, polygon in enumerate(coordinates))
    raise BoundariesError(f"{where}.type: {kind!r}; administrative areas are Polygon or MultiPolygon")


def _properties(properties: Any, where: str) -> None:
    if not isinstance(properties, dict):
        raise BoundariesError(f"{where}: properties with name and level are required")
    name = properties.get("name")
    if not (isinstance(name, str) and name.strip() and len(name) <= MAX_NAME_CHARS):
        raise BoundariesError(f"{where}.name: a non-empty text of at most {MAX_NAME_CHARS} characters is required")
    if properties.get("level") not in LEVELS:
        raise BoundariesError(f"{where}.level: {properties.get('level')!r}; must be one of {', '.join(LEVELS)}")


def validate_geojson(document: Any) -> tuple[int, int]:
    """Checks a parsed document; returns (features, positions). ``BoundariesError`` names the first problem."""
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise BoundariesError("the file must be a GeoJSON FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list):
        raise BoundariesError("features: a list of Feature objects is required")
    if len(features) > MAX_FEATURES:
        raise BoundariesError(f"features: {len(features)} features; at most {MAX_FEATURES}")
    positions = 0
    for index, feature in enumerate(features):
        where = f"features[{index}]"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise BoundariesError(f"{where}: must be a GeoJSON Feature")
        _properties(feature.get("properties"), f"{where}.properties")
        positions += _geometry(feature.get("geometry"), f"{where}.geometry")
        if positions > MAX_POSITIONS:
            raise BoundariesError(f"{where}: more than {MAX_POSITIONS} positions in all; simplify the boundaries")
    return len(features), positions


def load_boundaries(path: Path | str) -> Boundaries:
    """Read, bound and validate the file; ``BoundariesError`` starting with the file's path otherwise."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise BoundariesError(f"{size} bytes; at most {MAX_BYTES} (simplify the boundaries)")
        document = json.loads(path.read_bytes())
        features, positions = validate_geojson(document)
    except OSError as error:
        raise BoundariesError(f"{path}: cannot read the boundaries file ({error.strerror or error})") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BoundariesError(f"{path}: not valid JSON ({error})") from error
    except BoundariesError as error:
        raise BoundariesError(f"{path}: {error}") from None
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return Boundaries(path=path, features=features, positions=positions, body=body)


@lru_cache(maxsize=4)  # a few versions of one file; old ones fall out
def _cached(path: str, _mtime_ns: int, _size: int) -> Boundaries:
    return load_boundaries(path)


def current_boundaries(path: Path) -> Boundaries:
    """The file as it is now, read again only when it changed (a replaced file is served without a restart)."""
    try:
        stat = os.stat(path)
    except OSError as error:
        raise BoundariesError(f"{path}: cannot read the boundaries file ({error.strerror or error})") from error
    return _cached(str(path), stat.st_mtime_ns, stat.st_size)
