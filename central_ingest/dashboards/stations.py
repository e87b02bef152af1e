"""Sensor stations with their metrics, latest values and the alert levels the rules judge them by.

Levels come from the enabled ``sensor_threshold`` rules exactly as the engine picks them
(``SensorThresholdRule.levels_for``: levels listed for the station in the rule, else, with
``use_station_levels``, the báo động 1/2/3 the station itself reported, else the rule's), so the page draws
the lines the alerts are raised at. ``level`` is the highest level the latest value is at or past; the
alert itself also needs ``min_duration_s`` and honours ``hysteresis`` (the alerts page shows the alert).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from central_ingest.access.scope import Source, source_condition
from central_ingest.alerts.evaluate import level_reached
from central_ingest.alerts.messages import METRIC_NAMES, level_labels
from central_ingest.alerts.rules import AlertRulesConfig, Level, SensorRateRule, SensorThresholdRule, SourceRef
from event_contract import METRICS

Conn = psycopg.AsyncConnection[Any]
MAX_STATIONS = 2000
"""Most stations listed (a province has hundreds); bounds the answer."""


def level_json(level: Level) -> dict[str, Any]:
    label_vi, label_en = level_labels(level.name, level.label_vi, level.label_en)
    return {
        "name": level.name,
        "value": float(level.value),
        "severity": level.severity,
        "label_vi": label_vi,
        "label_en": label_en,
    }


def reached(levels: Iterable[Level], value: float | None, direction: str) -> Level | None:
    """The most severe level ``value`` is at or past (levels are ordered least to most severe), as the engine sees."""
    return None if value is None else level_reached(tuple(levels), value, above=direction == "above")


def thresholds_for(
    config: AlertRulesConfig,
    source: SourceRef,
    *,
    sensor_kind: str,
    metric: str,
    reported: tuple[float, float, float] | None,
    latest: float | None,
) -> list[dict[str, Any]]:
    """Each enabled rule watching this station's metric, with the levels it uses and the level reached."""
    found: list[dict[str, Any]] = []
    for rule in config.rules:
        if not rule.enabled or not isinstance(rule, SensorThresholdRule | SensorRateRule) or rule.metric != metric:
            continue
        if not rule.selects(source.agent_id, source.source_id, sensor_kind):
            continue
        if isinstance(rule, SensorRateRule):
            found.append({"rule_id": rule.id, "kind": rule.kind, "rise": float(rule.rise), "window_s": rule.window_s})
            continue
        station_reported = reported if rule.listed_levels(source.agent_id, source.source_id) is None else None
        levels = rule.levels_for(source.agent_id, source.source_id, station_reported)
        level = reached(levels, latest, rule.direction)
        found.append(
            {
                "rule_id": rule.id,
                "kind": rule.kind,
                "direction": rule.direction,
                "hysteresis": float(rule.hysteresis),
                "min_duration_s": rule.min_duration_s,
                "levels": [level_json(item) for item in levels],
                "level": None if level is None else level_json(level),
            }
        )
    return found


_LATEST = sql.SQL(
    "SELECT agent_id, source_id, sensor_kind, metric, last(value, time), max(time) FROM sensor_readings"
    " WHERE time >= %s AND {scope} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 4"
)
_SITES = sql.SQL(
    "SELECT agent_id, id, name, province, district, commune FROM camera_sites WHERE kind = 'sensor' AND {scope}"
)


async def list_stations(
    conn: Conn, config: AlertRulesConfig, visible: frozenset[Source] | None, since: dt.datetime
) -> list[dict[str, Any]]:
    """Stations that reported since ``since`` or are registered as sensor sites, in the caller's scope."""
    scope, scope_params = source_condition(visible, "agent_id", "source_id")
    cursor = await conn.execute(_LATEST.format(scope=scope), [since, *scope_params])
    readings = await cursor.fetchall()
    site_scope, site_params = source_condition(visible, "agent_id", "id")
    cursor = await conn.execute(_SITES.format(scope=site_scope), list(site_params))
    sites = {(str(row[0]), str(row[1])): row[2:] for row in await cursor.fetchall()}
    cursor = await conn.execute(b"SELECT agent_id, source_id, alert_levels_m FROM sensor_stations")
    reported = {
        (str(a), str(s)): (float(v[0]), float(v[1]), float(v[2]))
        for a, s, v in await cursor.fetchall()
        if v is not None and len(v) == 3
    }
    stations: dict[Source, dict[str, Any]] = {}
    for agent, source, kind, metric, value, time in readings:
        key = (str(agent), str(source))
        station = stations.setdefault(key, _station(key, str(kind), sites.get(key)))
        station["metrics"].append(
            _metric(config, key, kind=str(kind), metric=str(metric), value=value, time=time, reported=reported.get(key))
        )
    for key, site in sites.items():
        stations.setdefault(key, _station(key, None, site))
    return [stations[key] for key in sorted(stations)[:MAX_STATIONS]]


def _station(key: Source, sensor_kind: str | None, site: tuple[Any, ...] | None) -> dict[str, Any]:
    name, province, district, commune = site if site is not None else (None, None, None, None)
    return {
        "agent_id": key[0],
        "source_id": key[1],
        "sensor_kind": sensor_kind,
        "name": name,
        "province": province,
        "district": district,
        "commune": commune,
        "metrics": [],
    }


def _metric(
    config: AlertRulesConfig,
    key: Source,
    *,
    kind: str,
    metric: str,
    value: float,
    time: dt.datetime,
    reported: tuple[float, float, float] | None,
) -> dict[str, Any]:
    spec = METRICS.get(metric)
    name_vi, name_en = METRIC_NAMES.get(metric, (metric, metric))
    source = SourceRef(agent_id=key[0], source_id=key[1])
    return {
        "metric": metric,
        "name_vi": name_vi,
        "name_en": name_en,
        "unit": "" if spec is None else spec.unit,
        "last_value": value,
        "last_time": time.isoformat(),
        "thresholds": thresholds_for(config, source, sensor_kind=kind, metric=metric, reported=reported, latest=value),
    }
