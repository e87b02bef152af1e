"""``/api/v1/dashboards/...`` on the real app and TimescaleDB: the junction numbers are the rule's own (checked
against the alert engine's evaluation of the same data and against hand-computed values), peak hours, sensor
stations with the levels the rules use, roles, and area scope (a commune user sees only its junctions,
cameras and stations; asking for others answers 404)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient

from central_ingest.access.roles import Role
from central_ingest.alerts import runners
from central_ingest.alerts.messages import Subject
from central_ingest.alerts.rules import AlertRulesConfig, ViolationIncreaseRule
from central_ingest.app import create_app
from central_ingest.settings import Settings
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.writer import store_events
from event_contract import (
    CountBucket,
    CountIntervalEvent,
    Event,
    IntervalQuality,
    SensorReadingEvent,
    ViolationEvent,
)
from tests.api_sessions import API_PASSWORD, open_users

pytestmark = pytest.mark.integration

TZ = "Asia/Ho_Chi_Minh"
END = dt.datetime(2025, 5, 31, 5, 0, tzinfo=dt.UTC)  # 12:00 local
TODAY = dt.datetime(2025, 5, 30, 17, 0, tzinfo=dt.UTC)  # local midnight of END's day
DAY = dt.timedelta(days=1)
AGENT = "hue-agent-9"
PASSWORD = API_PASSWORD
PHU_HOI, KIM_LONG = "Phú Hội", "Kim Long"
SITES = {  # id -> (kind, commune)
    "cam-a1": ("camera", PHU_HOI),
    "cam-a2": ("camera", PHU_HOI),
    "cam-b1": ("camera", KIM_LONG),
    "tram-1": ("sensor", PHU_HOI),
    "tram-2": ("sensor", KIM_LONG),
}
USERS: dict[str, tuple[Role, list[str] | None]] = {
    "op.tinh": ("operator", None),
    "op.phuhoi": ("operator", ["Huế/Phú Hội"]),
    "cs.giao": ("police", None),
    "bql.duan": ("project_unit", None),
}
JUNCTION_A_COUNTS = {0: 7, 1: 4, 2: 5, 3: 3, 4: 4, 5: 4, 6: 6, 7: 2}
"""Violations at junction A per local day before END's (0 = END's day); older days: 3 + day % 3."""
LOW_COVERAGE_DAY = 4
SHOWN = 10
RULES: dict[str, Any] = {
    "junctions": [
        {"id": "nga-tu-a", "name_vi": "Ngã tư A", "name_en": "Junction A",
         "cameras": [{"agent_id": AGENT, "source_id": "cam-a1"}, {"agent_id": AGENT, "source_id": "cam-a2"}]},
        {"id": "nga-tu-b", "name_vi": "Ngã tư B",
         "cameras": [{"agent_id": AGENT, "source_id": "cam-b1"}, {"agent_id": AGENT, "source_id": "cam-a1"}]},
    ],
    "rules": [
        {"id": "vi-pham-tang", "kind": "violation_increase", "window_periods": 7, "min_baseline_periods": 3,
         "min_count": 2, "threshold_pct": 20},
        {"id": "muc-nuoc", "kind": "sensor_threshold", "sensor_kind": "water_level", "metric": "water_level_m",
         "use_station_levels": True,
         "levels": [{"name": "bao_dong_1", "value": 10}, {"name": "bao_dong_2", "value": 11, "severity": "warning"},
                    {"name": "bao_dong_3", "value": 12, "severity": "critical"}],
         "station_levels": [{"agent_id": AGENT, "source_id": "tram-2",
                             "levels": [{"name": "bao_dong_1", "value": 1.5}, {"name": "bao_dong_2", "value": 2.5},
                                        {"name": "bao_dong_3", "value": 3.5}]}]},
    ],
}  # fmt: skip


def junction_a_count(day: int) -> int:
    return JUNCTION_A_COUNTS.get(day, 3 + day % 3)


@dataclass
class World:
    settings: Settings
    config: AlertRulesConfig
    sessions: dict[str, str] = field(default_factory=dict)

    def bearer(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sessions[username]}"}


def quality(analysed_s: float, length: float) -> IntervalQuality:
    return IntervalQuality(
        expected_s=length,
        analysed_s=analysed_s,
        frames_analysed=int(analysed_s),
        frames_dropped=0,
        downtime_s=length - analysed_s,
        detector_backend="motion",
        coverage=analysed_s / length,
    )


def traffic_events() -> list[Event]:
    """Junction A's violations and daily coverage (a half-watched day 4 on cam-a2); cam-b1's hourly counts."""
    events: list[Event] = []
    track = 0
    for day in range(SHOWN + 7):
        start = TODAY - day * DAY
        for i in range(junction_a_count(day)):
            track += 1
            camera = "cam-a1" if i % 2 == 0 else "cam-a2"
            events.append(
                ViolationEvent(
                    agent_id=AGENT,
                    source_id=camera,
                    time=start + dt.timedelta(hours=10, minutes=i),
                    violation_type="red_light",
                    category="violation",
                    track_id=track,
                )
            )
        for camera in ("cam-a1", "cam-a2"):
            analysed = 43_200.0 if (day, camera) == (LOW_COVERAGE_DAY, "cam-a2") else 86_400.0
            events.append(
                CountIntervalEvent(
                    agent_id=AGENT,
                    source_id=camera,
                    time=start,
                    line_id="l1",
                    interval_s=86_400,
                    quality=quality(analysed, 86_400.0),
                )
            )
    for day, hour, counts in (
        (1, 7, (("car", "in", 10), ("motorbike", "out", 5))),
        (1, 17, (("motorbike", "in", 20),)),
        (2, 7, (("car", "in", 4),)),
    ):
        events.append(
            CountIntervalEvent(
                agent_id=AGENT,
                source_id="cam-b1",
                time=TODAY - day * DAY + dt.timedelta(hours=hour),
                line_id="l1",
                interval_s=3600,
                quality=quality(3600.0, 3600.0),
                counts=tuple(CountBucket(vehicle_class=c, direction=d, count=n) for c, d, n in counts),
            )
        )
    return events


def sensor_events(now: dt.datetime) -> list[Event]:
    readings: list[Event] = [
        SensorReadingEvent(
            agent_id=AGENT,
            source_id="tram-1",
            time=now - dt.timedelta(minutes=m),
            sensor_kind="water_level",
            values={"water_level_m": value},
            alert_levels_m=(3.0, 4.0, 5.0),
        )
        for m, value in ((20, 3.6), (10, 4.2))
    ]
    return [
        *readings,
        SensorReadingEvent(
            agent_id=AGENT,
            source_id="tram-2",
            time=now - dt.timedelta(minutes=5),
            sensor_kind="water_level",
            values={"water_level_m": 1.0},
        ),
    ]


async def _populate(dsn: str, world: World) -> None:
    now = dt.datetime.now(dt.UTC)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await store_events(conn, [*traffic_events(), *sensor_events(now)])
        world.sessions.update(await open_users(conn, USERS))


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    apply_migrations(pg_dsn)
    rules_path = tmp_path_factory.mktemp("dashboards") / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(RULES, allow_unicode=True), encoding="utf-8")
    settings = Settings(
        database_url=pg_dsn,
        pool_max_size=4,
        maintenance_enabled=False,
        migrate_on_start=False,
        timezone=TZ,
        alert_rules_path=rules_path,
        alert_evaluate_every_s=3600.0,
    )
    with psycopg.connect(pg_dsn) as conn:
        import_sites(
            conn,
            [
                SiteConfig(id=i, agent_id=AGENT, kind=k, name=f"Điểm {i}", lat=16.46, lon=107.59)
                for i, (k, _) in SITES.items()
            ],
        )
        for site_id, (_, commune) in SITES.items():
            conn.execute(
                "UPDATE camera_sites SET province = 'Huế', commune = %s WHERE agent_id = %s AND id = %s",
                (commune, AGENT, site_id),
            )
    world = World(settings, AlertRulesConfig.model_validate(RULES))
    asyncio.run(_populate(pg_dsn, world))
    return world


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings), base_url="https://testserver") as test_client:
        yield test_client


def get(client: TestClient, world: World, user: str, path: str, **params: Any) -> Any:
    answer = client.get(path, params=params, headers=world.bearer(user))
    assert answer.status_code == 200, answer.text
    return answer.json()


def rule_findings(dsn: str, config: AlertRulesConfig, junction: str, times: list[dt.datetime]) -> list[Any]:
    """What the alert engine's own code finds for the junction at each time."""
    rule = config.rule("vi-pham-tang")
    assert isinstance(rule, ViolationIncreaseRule)

    async def main() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            subject = Subject(f"junction:{junction}")
            return [await runners.find(conn, config, rule, subject, open_rank=0, now=t, tz=TZ) for t in times]

    return asyncio.run(main())


def test_junction_periods_are_what_the_rule_sees(client: TestClient, world: World, pg_dsn: str) -> None:
    body = get(client, world, "op.tinh", "/api/v1/dashboards/traffic/junctions", end=END.isoformat(), periods=SHOWN)
    assert body["timezone"] == TZ
    items = {item["junction_id"]: item for item in body["items"]}
    assert set(items) == {"nga-tu-a", "nga-tu-b"}
    junction = items["nga-tu-a"]
    assert junction["name_vi"] == "Ngã tư A"
    assert junction["rule"]["id"] == "vi-pham-tang"
    assert junction["rule"]["threshold_pct"] == 20.0
    periods = junction["periods"]
    assert len(periods) == SHOWN
    # Oldest first, one local day each, the last holding END.
    starts = [dt.datetime.fromisoformat(p["start"]) for p in periods]
    assert starts == [TODAY - (SHOWN - 1 - k) * DAY for k in range(SHOWN)]
    assert [p["count"] for p in periods] == [junction_a_count(SHOWN - 1 - k) for k in range(SHOWN)]
    # Hand-computed today: the 7 days before minus the half-watched day 4 average 24 / 6 = 4; the line is 4.8.
    today = periods[-1]
    assert (today["baseline"], today["threshold"], today["good_periods"]) == (4.0, 4.8, 6)
    assert today["above_threshold"] is True
    assert (today["state"], today["status"]) == ("breach", "breach")
    assert periods[-1 - LOW_COVERAGE_DAY]["coverage"] == 0.75
    # Every period equals the engine's evaluation while that period was running.
    times = [min(END, dt.datetime.fromisoformat(p["end"]) - dt.timedelta(seconds=1)) for p in periods]
    for period, finding in zip(periods, rule_findings(pg_dsn, world.config, "nga-tu-a", times), strict=True):
        assert period["count"] == finding.value
        assert period["baseline"] == (None if finding.baseline is None else float(finding.baseline))
        assert period["threshold"] == (None if finding.threshold is None else float(finding.threshold))
        assert (period["state"], period["status"]) == (finding.state, finding.status)
        expected_above = finding.threshold is not None and period["count"] > finding.threshold
        assert period["above_threshold"] == expected_above
    assert any(not p["above_threshold"] for p in periods)  # the check above sees both cases


def test_peak_hours(client: TestClient, world: World) -> None:
    url = "/api/v1/dashboards/traffic/peak-hours"
    span = {"start": (TODAY - 3 * DAY).isoformat(), "end": END.isoformat()}
    body = get(client, world, "cs.giao", url, agent_id=AGENT, source_id="cam-b1", **span)
    hours = {row["hour"]: row for row in body["items"]}
    assert sorted(hours) == list(range(24))
    assert (hours[7]["count"], hours[7]["days"], hours[7]["mean"]) == (19, 2, 9.5)
    assert (hours[17]["count"], hours[17]["days"]) == (20, 1)
    assert (hours[12]["count"], hours[12]["days"], hours[12]["mean"]) == (0, 0, None)
    assert body["busiest_hour"] == 17
    cars = get(client, world, "cs.giao", url, agent_id=AGENT, source_id="cam-b1", vehicle_class="car", **span)
    assert [cars["items"][7]["count"], cars["items"][17]["count"]] == [14, 0]
    inbound = get(client, world, "cs.giao", url, junction_id="nga-tu-b", direction="in", **span)
    assert [inbound["items"][7]["count"], inbound["items"][17]["count"]] == [14, 20]
    everything = get(client, world, "op.tinh", url, **span)
    assert everything["items"][7]["count"] == 19
    half = client.get(url, params={"source_id": "cam-b1"}, headers=world.bearer("op.tinh"))
    assert half.status_code == 422
    assert "agent_id" in half.json()["detail"]


def test_stations_carry_the_levels_the_rules_use(client: TestClient, world: World) -> None:
    body = get(client, world, "op.tinh", "/api/v1/dashboards/sensors/stations")
    stations = {s["source_id"]: s for s in body["items"]}
    assert set(stations) == {"tram-1", "tram-2"}
    tram1 = stations["tram-1"]
    assert (tram1["sensor_kind"], tram1["name"], tram1["commune"]) == ("water_level", "Điểm tram-1", PHU_HOI)
    [metric] = tram1["metrics"]
    assert (metric["metric"], metric["unit"], metric["last_value"], metric["name_vi"]) == (
        "water_level_m",
        "m",
        4.2,
        "Mực nước",
    )
    [threshold] = metric["thresholds"]
    # use_station_levels: the station's own báo động 1/2/3 under the rule's names and severities.
    assert [(lv["name"], lv["value"], lv["severity"]) for lv in threshold["levels"]] == [
        ("bao_dong_1", 3.0, "warning"), ("bao_dong_2", 4.0, "warning"), ("bao_dong_3", 5.0, "critical")
    ]  # fmt: skip
    assert (threshold["level"]["name"], threshold["level"]["label_vi"]) == ("bao_dong_2", "báo động 2")
    [tram2_threshold] = stations["tram-2"]["metrics"][0]["thresholds"]
    assert [lv["value"] for lv in tram2_threshold["levels"]] == [1.5, 2.5, 3.5]  # listed in the rule: they win
    assert tram2_threshold["level"] is None
    one = get(client, world, "op.tinh", "/api/v1/dashboards/sensors/stations", agent_id=AGENT, source_id="tram-2")
    assert [s["source_id"] for s in one["items"]] == ["tram-2"]


def test_roles(client: TestClient, world: World) -> None:
    junctions, stations = "/api/v1/dashboards/traffic/junctions", "/api/v1/dashboards/sensors/stations"
    assert client.get(junctions).status_code == 401
    assert client.get(junctions, headers=world.bearer("bql.duan")).status_code == 403
    assert client.get(junctions, headers=world.bearer("cs.giao")).status_code == 200
    assert client.get(stations, headers=world.bearer("cs.giao")).status_code == 403
    assert client.get("/api/v1/dashboards/traffic/peak-hours", headers=world.bearer("bql.duan")).status_code == 403


def test_a_commune_user_sees_only_its_area(client: TestClient, world: World) -> None:
    user, headers = "op.phuhoi", world.bearer("op.phuhoi")
    body = get(client, world, user, "/api/v1/dashboards/traffic/junctions", end=END.isoformat(), periods=3)
    # Junction B adds up cam-b1 (Kim Long): hidden although cam-a1 is in the user's commune.
    assert [item["junction_id"] for item in body["items"]] == ["nga-tu-a"]
    params = {"junction_id": "nga-tu-b", "end": END.isoformat()}
    assert client.get("/api/v1/dashboards/traffic/junctions", params=params, headers=headers).status_code == 404
    peak = "/api/v1/dashboards/traffic/peak-hours"
    span = {"start": (TODAY - 3 * DAY).isoformat(), "end": END.isoformat()}
    assert (
        client.get(peak, params={"agent_id": AGENT, "source_id": "cam-b1", **span}, headers=headers).status_code == 404
    )
    assert client.get(peak, params={"junction_id": "nga-tu-b", **span}, headers=headers).status_code == 404
    assert get(client, world, user, peak, **span)["items"][7]["count"] == 0  # cam-b1's crossings are not added
    stations = get(client, world, user, "/api/v1/dashboards/sensors/stations")
    assert [s["source_id"] for s in stations["items"]] == ["tram-1"]
    hidden = {"agent_id": AGENT, "source_id": "tram-2"}
    assert client.get("/api/v1/dashboards/sensors/stations", params=hidden, headers=headers).status_code == 404
