"""Rows of ``sources`` -> the JSON the map and the health page read (pure: ``now`` and the rules are passed in).

Every state comes from ``states.source_state``; every sensor level from ``states.sensor_level``. Times are
ISO 8601 strings (UTC), as FastAPI would write them, so a page needs no other format.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from central_ingest.access.scope import Source, site_area_path
from central_ingest.alerts.messages import METRIC_NAMES
from central_ingest.alerts.rules import SensorThresholdRule
from central_ingest.mapview.states import CAMERA, SENSOR, LastHeard, sensor_level, source_state
from event_contract import METRICS

PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    "water_level": ("water_level_m",),
    "forest_fire": ("fire_danger_level", "flame", "smoke", "temperature_c"),
    "environment": ("vn_aqi", "pm2_5", "pm10"),
}
"""The value a sensor's marker shows when no rule puts it at a level (then the rule's metric is shown)."""
UNITS = {"degC": "°C", "ug/m3": "µg/m³", "1": "", "index": "", "level": ""}
"""Display units of the contract's metric units (others are shown as they are)."""


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def _newest(*times: dt.datetime | None) -> dt.datetime | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def heard_of(row: Mapping[str, Any]) -> LastHeard:
    return LastHeard(
        event_time=row.get("last_event_time"),
        health_time=row.get("health_time"),
        health_state=row.get("health_state"),
        health_reason=row.get("health_reason") or "",
        fps=None if row.get("fps") is None else float(row["fps"]),
    )


def live_link(agent_id: str, camera_id: str) -> str:
    return f"/live?grid=1&cameras={quote(agent_id, safe='')}/{quote(camera_id, safe='')}"


def sensors_link(agent_id: str, sensor_id: str) -> str:
    return f"/sensors?station={quote(agent_id, safe='')}/{quote(sensor_id, safe='')}"


def _reading(metric: str, value: float, time: dt.datetime | None) -> dict[str, Any]:
    spec = METRICS.get(metric)
    unit = "" if spec is None else UNITS.get(spec.unit, spec.unit)
    name_vi, name_en = METRIC_NAMES.get(metric, (metric, metric))
    return {"metric": metric, "value": value, "unit": unit, "name_vi": name_vi, "name_en": name_en, "time": iso(time)}


def sensor_detail(
    source: Source,
    reading: Mapping[str, Any] | None,
    rules: Sequence[SensorThresholdRule],
    reported_levels: tuple[float, ...] | None,
) -> dict[str, Any]:
    """The sensor part of a map site: the shown value, its level, and every latest reading."""
    agent_id, sensor_id = source
    values: dict[str, tuple[float, dt.datetime]] = {} if reading is None else dict(reading["values"])
    kind = None if reading is None else reading["sensor_kind"]
    reported = (
        (reported_levels[0], reported_levels[1], reported_levels[2])
        if reported_levels is not None and len(reported_levels) == 3
        else None
    )
    level = sensor_level(
        rules, agent_id, sensor_id, kind, {m: v for m, (v, _) in values.items()}, reported_levels=reported
    )
    preferred = [level.metric] if level.metric else list(PRIMARY_METRICS.get(kind or "", ()))
    shown = next((m for m in preferred if m in values), min(values) if values else None)
    main = None if shown is None else _reading(shown, values[shown][0], values[shown][1])
    return {
        "sensor_kind": kind,
        "reading": main,
        "readings": [_reading(m, v, t) for m, (v, t) in sorted(values.items())],
        "level": level.level,
        "level_label_vi": level.label_vi,
        "level_label_en": level.label_en,
        "severity": level.severity,
        "threshold": level.threshold,
        "rule_id": level.rule_id,
        "link": sensors_link(agent_id, sensor_id),
    }


def map_site(
    row: Mapping[str, Any],
    now: dt.datetime,
    rules: Sequence[SensorThresholdRule] = (),
    reading: Mapping[str, Any] | None = None,
    reported_levels: tuple[float, ...] | None = None,
) -> dict[str, Any]:
    """One registered site as the map shows it: place, state with its reason in words, and the kind's detail."""
    kind = row["kind"] or "camera"
    heard = heard_of(row)
    verdict = source_state(heard, now, SENSOR if kind == "sensor" else CAMERA)
    detail: dict[str, Any] = {
        "reason": verdict.reason,
        "text_vi": verdict.detail_vi,
        "text_en": verdict.detail_en,
        "last_heard": iso(_newest(heard.event_time, heard.health_time)),
        "last_event_time": iso(heard.event_time),
        "health_time": iso(heard.health_time),
        "health_state": heard.health_state,
    }
    if kind == "camera":
        detail.update(fps=heard.fps, link=live_link(row["agent_id"], row["source_id"]))
    site: dict[str, Any] = {
        "agent_id": row["agent_id"],
        "id": row["source_id"],
        "kind": kind,
        "name": row["name"],
        "lat": row["lat"],
        "lon": row["lon"],
        "area": row.get("area"),
        "province": row.get("province"),
        "district": row.get("district"),
        "commune": row.get("commune"),
        "area_path": site_area_path(row.get("province"), row.get("district"), row.get("commune")),
        "state": verdict.state,
        "detail": detail,
    }
    if kind == "sensor":
        site["sensor"] = sensor_detail((row["agent_id"], row["source_id"]), reading, rules, reported_levels)
    return site


def _stale(time: dt.datetime | None, now: dt.datetime) -> bool:
    """A figure is stale when its health event is older than the live window of cameras (or missing)."""
    return time is None or now - time > CAMERA.live_within


def health_source(row: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """One camera or sensor of an agent on the health page."""
    families = row.get("families") or []
    kind = row.get("kind") or ("sensor" if "sensor_readings" in families else "camera")
    heard = heard_of(row)
    verdict = source_state(heard, now, SENSOR if kind == "sensor" else CAMERA)
    return {
        "id": row["source_id"],
        "kind": kind,
        "name": row.get("name"),
        "registered": row.get("name") is not None,
        "area_path": site_area_path(row.get("province"), row.get("district"), row.get("commune")),
        "state": verdict.state,
        "reason": verdict.reason,
        "detail_vi": verdict.detail_vi,
        "detail_en": verdict.detail_en,
        "health_state": heard.health_state,
        "uptime_s": row.get("uptime_s"),
        "fps": heard.fps,
        "frames_dropped": row.get("frames_dropped"),
        "last_event_time": iso(heard.event_time),
        "health_time": iso(heard.health_time),
        "stale": _stale(heard.health_time, now),
    }


def _delivery(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    keys = ("spool_events", "spool_bytes", "oldest_pending", "dropped_events", "memory_held", "dead_letters")
    return {key: value.get(key) for key in (*keys, "state", "reason")}


def health_agents(
    agents: Iterable[Mapping[str, Any]], sources: Iterable[Mapping[str, Any]], now: dt.datetime
) -> list[dict[str, Any]]:
    """Every agent (from ``agents``, plus any agent only ``sources`` name) with its sources under it."""
    by_agent: dict[str, list[dict[str, Any]]] = {}
    newest_event: dict[str, dt.datetime | None] = {}
    for row in sources:
        agent_id = row["agent_id"]
        by_agent.setdefault(agent_id, []).append(health_source(row, now))
        newest_event[agent_id] = _newest(newest_event.get(agent_id), row.get("last_event_time"))
    agent_info = {row["agent_id"]: row for row in agents}
    answer = []
    for agent_id in sorted(set(agent_info) | set(by_agent)):
        info = agent_info.get(agent_id, {})
        heard = LastHeard(
            event_time=_newest(newest_event.get(agent_id), info.get("last_batch_at")),
            health_time=info.get("health_time"),
            health_state=info.get("health_state"),
            health_reason=info.get("health_reason") or "",
        )
        verdict = source_state(heard, now, CAMERA)
        answer.append(
            {
                "agent_id": agent_id,
                "known": bool(info),
                "revoked": bool(info.get("revoked")),
                "state": verdict.state,
                "reason": verdict.reason,
                "detail_vi": verdict.detail_vi,
                "detail_en": verdict.detail_en,
                "health_state": heard.health_state,
                "uptime_s": info.get("uptime_s"),
                "health_time": iso(heard.health_time),
                "stale": _stale(heard.health_time, now),
                "delivery": _delivery(info.get("delivery")),
                "last_event_time": iso(newest_event.get(agent_id)),
                "last_batch_at": iso(info.get("last_batch_at")),
                "events_stored": info.get("events_stored") or 0,
                "events_refused": info.get("events_rejected") or 0,
                "sources": by_agent.get(agent_id, []),
            }
        )
    return answer
