"""The alert engine against a real TimescaleDB: every rule kind around its threshold, lifecycle, dedup, latency.

Each test uses its own rule ids, junctions, agents and projects, so the tests share one
database per module without seeing each other's alerts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from uuid import uuid4

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.plans import PlanIn, PlanPointIn, save_plan
from central_ingest.alerts.rules import AlertRulesConfig
from central_ingest.alerts.service import AlertService
from central_ingest.alerts.store import TransitionNotAllowedError
from central_ingest.store.migrate import apply_migrations
from event_contract import HealthEvent, SensorReadingEvent

pytestmark = pytest.mark.integration

TZ = "Asia/Ho_Chi_Minh"
NOW = dt.datetime(2025, 5, 31, 5, 0, tzinfo=dt.UTC)  # 12:00 local; today began 2025-05-30T17:00Z
TODAY = dt.datetime(2025, 5, 30, 17, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
T = TypeVar("T")


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def engine_run(
    dsn: str, rules: dict[str, Any], body: Callable[[AlertService, list[AlertNotice], Clock], Awaitable[T]]
) -> T:
    """Run ``body`` with a fresh engine (own pool) whose clock starts at NOW."""

    async def main() -> T:
        async with AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False) as pool:
            notices: list[AlertNotice] = []
            clock = Clock(NOW)
            config = AlertRulesConfig.model_validate(rules)
            service = AlertService(pool, config, notices.append, TZ, 3600.0, clock)
            try:
                return await body(service, notices, clock)
            finally:
                await service.close()

    return asyncio.run(main())


def sql(dsn: str, statement: str, rows: list[tuple[Any, ...]] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        if rows is not None:
            conn.cursor().executemany(statement, rows)
            return []
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def add_violations(dsn: str, agent: str, camera: str, at: dt.datetime, n: int) -> None:
    sql(
        dsn,
        "INSERT INTO violations (time, event_id, agent_id, source_id, violation_type, category, track_id, "
        "schema_version, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s, '1.2', %s)",
        [
            (at + dt.timedelta(seconds=i), uuid4(), agent, camera, "red_light", "violation", i,
             f'[{{"kind": "keyframe", "uri": "k/{i}.jpg"}}]')
            for i in range(n)
        ],
    )  # fmt: skip


def add_interval(dsn: str, agent: str, camera: str, start: dt.datetime, *, seconds: int, analysed: float) -> None:
    """One count interval of ``seconds`` with ``analysed`` seconds really watched (quality columns filled)."""
    sql(
        dsn,
        "INSERT INTO count_intervals (time, event_id, agent_id, source_id, line_id, interval_s, schema_version, "
        "expected_s, analysed_s, frames_analysed, frames_dropped, downtime_s, detector_backend, coverage) "
        "VALUES (%s, %s, %s, %s, 'line-1', %s, '1.2', %s, %s, 0, 0, %s, 'cpu', %s)",
        [(start, uuid4(), agent, camera, seconds, seconds, analysed, seconds - analysed, analysed / seconds)],
    )


def violation_rules(rule_id: str, junction: str, agent: str) -> dict[str, Any]:
    return {
        "junctions": [
            {"id": junction, "name_vi": "Ngã tư Sở", "name_en": "Nga Tu So",
             "cameras": [{"agent_id": agent, "source_id": "cam-1"}]}
        ],
        "rules": [{"id": rule_id, "kind": "violation_increase"}],
    }  # fmt: skip


def seed_history(dsn: str, agent: str, days: Sequence[tuple[int, float | None]]) -> None:
    """Days before today, newest first: (violations, coverage; None: the camera sent no interval at all)."""
    for back, (count, coverage) in enumerate(days, start=1):
        start = TODAY - back * DAY
        add_violations(dsn, agent, "cam-1", start + dt.timedelta(hours=3), count)
        if coverage is not None:
            add_interval(dsn, agent, "cam-1", start, seconds=86_400, analysed=86_400 * coverage)


def state_of(dsn: str, rule_id: str) -> tuple[Any, ...]:
    rows = sql(dsn, f"SELECT status, detail, alert_id FROM alert_state WHERE rule_id = '{rule_id}'")
    assert len(rows) == 1
    return rows[0]


def test_violation_increase_fires_above_20_percent_not_at_it(dsn: str) -> None:
    agent = "agent-v1"
    seed_history(dsn, agent, [(10, 1.0)] * 30)
    add_violations(dsn, agent, "cam-1", TODAY + dt.timedelta(hours=1), 12)
    add_interval(dsn, agent, "cam-1", TODAY, seconds=43_200, analysed=43_200)

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        await service.evaluate_all()
        assert notices == []
        status, detail, _ = state_of(dsn, "vi-1")
        assert (status, detail["baseline"], detail["threshold"], detail["value"]) == ("ok", 10.0, 12.0, 12.0)

        add_violations(dsn, agent, "cam-1", TODAY + dt.timedelta(hours=2), 1)  # 13 = +30%
        await service.evaluate_all()
        [opened] = notices
        assert (opened.transition, opened.status, opened.rule_kind, opened.subject) == (
            "opened", "open", "violation_increase", "junction:nga-tu-so",
        )  # fmt: skip
        assert (opened.value, opened.baseline, opened.threshold, opened.window) == (13.0, 10.0, 12.0, "30x1d")
        assert opened.message_vi == (
            "Vi phạm tại nút giao Ngã tư Sở tăng 30,0% so với trung bình 30 ngày (13 so với 10,0; ngưỡng 20%)"
        )
        assert opened.message_en.startswith("Violations at Nga Tu So junction up 30.0%")
        assert opened.evidence[0] == "k/0.jpg"  # the newest violation's keyframe

        await service.evaluate_all()  # still in breach: no second alert, no second notice
        assert len(notices) == 1
        # The next day's evaluation ends the period: the alert resolves.
        clock.now = NOW + DAY
        await service.evaluate_all()
        assert [n.transition for n in notices] == ["opened", "resolved"]
        assert notices[1].alert_id == opened.alert_id
        assert service.stats()["alerts_opened"] == 1

    engine_run(dsn, violation_rules("vi-1", "nga-tu-so", agent), body)
    [(resolution,)] = sql(dsn, "SELECT resolution FROM alerts WHERE rule_id = 'vi-1'")
    assert resolution == "period_ended"


def test_low_coverage_days_do_not_lower_the_baseline(dsn: str) -> None:
    agent = "agent-v2"
    # 28 good days of 10, a half-covered day with 0, a day the camera sent nothing (downtime) with 0.
    seed_history(dsn, agent, [(10, 1.0)] * 10 + [(0, 0.5), (0, None)] + [(10, 1.0)] * 18)
    add_violations(dsn, agent, "cam-1", TODAY + dt.timedelta(hours=1), 12)  # > 280/30 = 9.33 * 1.2, = 10 * 1.2
    add_interval(dsn, agent, "cam-1", TODAY, seconds=43_200, analysed=43_200)

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        await service.evaluate_all()
        assert notices == []
        status, detail, alert_id = state_of(dsn, "vi-2")
        assert (status, detail["baseline"], detail["good_periods"], alert_id) == ("ok", 10.0, 28, None)

    engine_run(dsn, violation_rules("vi-2", "j2", agent), body)


def test_insufficient_baseline_and_low_current_coverage_are_visible(dsn: str) -> None:
    seed_history(dsn, "agent-v3", [(10, 1.0)] * 6 + [(10, 0.5)] * 24)
    add_violations(dsn, "agent-v3", "cam-1", TODAY + dt.timedelta(hours=1), 50)
    seed_history(dsn, "agent-v4", [(10, 1.0)] * 30)
    add_violations(dsn, "agent-v4", "cam-1", TODAY + dt.timedelta(hours=1), 5)
    add_interval(dsn, "agent-v4", "cam-1", TODAY, seconds=43_200, analysed=43_200 * 0.3)
    rules = {
        "junctions": [
            {"id": "j3", "cameras": [{"agent_id": "agent-v3", "source_id": "cam-1"}]},
            {"id": "j4", "cameras": [{"agent_id": "agent-v4", "source_id": "cam-1"}]},
        ],
        "rules": [{"id": "vi-3", "kind": "violation_increase"}],
    }

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> list[dict[str, Any]]:
        await service.evaluate_all()
        assert notices == []
        return await service.rules_status()

    [rule] = [r for r in engine_run(dsn, rules, body) if r["id"] == "vi-3"]
    by_subject = {s["subject"]: s for s in rule["subjects"]}
    assert by_subject["junction:j3"]["status"] == "insufficient_baseline"
    assert by_subject["junction:j3"]["detail"]["good_periods"] == 6
    assert by_subject["junction:j4"]["status"] == "undetermined_low_coverage"
    assert by_subject["junction:j4"]["detail"]["coverage"] == pytest.approx(0.3)


def test_progress_behind_fires_above_ten_points_and_resolves(dsn: str) -> None:
    async def plan(pool_dsn: str) -> None:
        async with await psycopg.AsyncConnection.connect(pool_dsn) as conn:
            points = [
                PlanPointIn(date=dt.date(2025, 5, 21), planned_pct=0),
                PlanPointIn(date=dt.date(2025, 5, 31), planned_pct=50),
                PlanPointIn(package_id="tru-cau", date=dt.date(2025, 5, 31), planned_pct=80),
            ]
            await save_plan(conn, "cau-1", PlanIn(points=tuple(points)), NOW)
            await save_plan(conn, "cau-2", PlanIn(points=(points[1],)), NOW)

    asyncio.run(plan(dsn))

    def progress(
        project: str, package: str, at: dt.datetime, pct: float, *, confirmed: bool, confidence: float
    ) -> None:
        sql(
            dsn,
            "INSERT INTO progress (time, event_id, agent_id, source_id, project_id, package_id, percent_complete, "
            "method, confidence, confirmed, schema_version) VALUES (%s, %s, 'agent-p', 'cam-p', %s, %s, %s, "
            "'camera_visual', %s, %s, '1.2')",
            [(at, uuid4(), project, package, pct, confidence, confirmed)],
        )

    progress("cau-1", "", NOW - dt.timedelta(hours=3), 40.0, confirmed=True, confidence=1.0)
    progress("cau-1", "tru-cau", NOW - dt.timedelta(hours=3), 75.0, confirmed=True, confidence=1.0)
    progress("cau-2", "", NOW - dt.timedelta(hours=3), 20.0, confirmed=False, confidence=0.4)
    rules = {
        "rules": [
            {"id": "pb-1", "kind": "progress_behind", "projects": ["cau-1", "cau-2"],
             "critical_packages": {"cau-1": ["tru-cau"]}}
        ]
    }  # fmt: skip

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        await service.evaluate_all()
        # cau-1 is exactly 10.0 behind (50 vs 40): nothing; cau-2 looks far behind on a weak estimate.
        [unsure] = notices
        assert (unsure.subject, unsure.rule_kind, unsure.level, unsure.severity) == (
            "project:cau-2", "progress_behind", "needs_confirmation", "notice",
        )  # fmt: skip
        assert unsure.message_vi.startswith("Cần xác nhận: ước tính cho thấy dự án cau-2 có thể chậm tiến độ 30,0")

        progress("cau-1", "", NOW - dt.timedelta(hours=2), 39.9, confirmed=True, confidence=1.0)
        # An unconfirmed later estimate of the same day does not beat the confirmed figure.
        progress("cau-1", "", NOW - dt.timedelta(hours=1), 60.0, confirmed=False, confidence=0.9)
        await service.evaluate_all()
        [behind] = notices[1:]
        assert (behind.subject, behind.level, behind.value, behind.baseline) == ("project:cau-1", "behind", 39.9, 50.0)
        assert behind.message_vi == (
            "Dự án cau-1 chậm tiến độ 10,1 điểm phần trăm: thực tế 39,9% (số liệu đã xác nhận) so với kế hoạch "
            "50,0% ngày 31/05/2025 (ngưỡng 10 điểm)"
        )
        progress("cau-1", "", NOW - dt.timedelta(minutes=30), 45.0, confirmed=True, confidence=1.0)
        await service.evaluate_all()
        assert [(n.subject, n.transition) for n in notices[2:]] == [("project:cau-1", "resolved")]
        assert notices[2].alert_id == behind.alert_id

    engine_run(dsn, rules, body)
    states = dict(sql(dsn, "SELECT subject, status FROM alert_state WHERE rule_id = 'pb-1'"))
    assert states == {"project:cau-1": "ok", "project:cau-1/tru-cau": "ok", "project:cau-2": "needs_confirmation"}


def add_readings(dsn: str, agent: str, source: str, metric: str, points: list[tuple[int, float]]) -> None:
    """Readings at NOW + seconds."""
    kind = "water_level" if metric == "water_level_m" else "forest_fire"
    sql(
        dsn,
        "INSERT INTO sensor_readings (time, event_id, agent_id, source_id, sensor_kind, metric, value, schema_version) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, '1.2')",
        [(NOW + dt.timedelta(seconds=s), uuid4(), agent, source, kind, metric, v) for s, v in points],
    )


WATER_RULES = {
    "rules": [
        {
            "id": "wl-1",
            "kind": "sensor_threshold",
            "sensor_kind": "water_level",
            "metric": "water_level_m",
            "levels": [
                {"name": "bao_dong_1", "value": 9.5, "severity": "notice"},
                {"name": "bao_dong_2", "value": 10.5},
                {"name": "bao_dong_3", "value": 11.5, "severity": "critical"},
            ],
            # This station has its own levels.
            "station_levels": [
                {
                    "agent_id": "agent-s1",
                    "source_id": "wl-1",
                    "levels": [
                        {"name": "bao_dong_1", "value": 3.3, "severity": "notice"},
                        {"name": "bao_dong_2", "value": 4.5},
                        {"name": "bao_dong_3", "value": 5.5, "severity": "critical"},
                    ],
                }
            ],
            "hysteresis": 0.2,
            "min_duration_s": 120,
        }
    ]
}


def test_water_level_min_duration_escalation_and_hysteresis(dsn: str) -> None:
    steps: list[tuple[list[tuple[int, float]], list[str]]] = [
        ([(0, 3.0), (60, 6.0)], []),  # a one-reading spike: pending, no alert
        ([(120, 3.0), (180, 3.3), (240, 3.4)], []),  # at/above 3.3 for 60 s only
        ([(300, 3.35)], ["opened:bao_dong_1"]),  # for 120 s
        ([(360, 4.6), (420, 4.6), (480, 4.7)], ["escalated:bao_dong_2"]),
        ([(540, 5.6), (600, 5.5), (660, 5.6)], ["escalated:bao_dong_3"]),
        ([(720, 5.4), (780, 5.31), (840, 5.4)], []),  # below 5.5 but not past 5.3: level 3 holds
        ([(900, 3.0), (960, 3.0)], []),  # past every level - hysteresis for 60 s only
        ([(1020, 3.0)], ["resolved:bao_dong_3"]),
    ]

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        seen = 0
        for readings, expected in steps:
            add_readings(dsn, "agent-s1", "wl-1", "water_level_m", readings)
            clock.now = NOW + dt.timedelta(seconds=readings[-1][0] + 5)
            await service.evaluate_all()
            assert [f"{n.transition}:{n.level}" for n in notices[seen:]] == expected, readings
            seen = len(notices)
            if readings[-1][0] == 60:
                assert state_of(dsn, "wl-1")[0] == "pending"
        assert len({n.alert_id for n in notices}) == 1
        assert notices[0].message_vi == "Mực nước tại cảm biến agent-s1/wl-1 là 3,35 m, đạt mức báo động 1 (3,3 m)"
        assert [n.severity for n in notices] == ["notice", "warning", "critical", "critical"]

    engine_run(dsn, WATER_RULES, body)
    assert sql(dsn, "SELECT count(*), min(status) FROM alerts WHERE rule_id = 'wl-1'") == [(1, "resolved")]
    transitions = sql(
        dsn,
        "SELECT t.transition FROM alert_transitions t JOIN alerts a USING (alert_id) WHERE a.rule_id = 'wl-1' "
        "ORDER BY t.id",
    )
    assert [t for (t,) in transitions] == ["opened", "escalated", "escalated", "resolved"]


def test_temperature_rate_of_rise(dsn: str) -> None:
    rules = {
        "rules": [
            {"id": "rate-1", "kind": "sensor_rate", "sensors": [{"agent_id": "agent-f", "source_id": "f1"}], "rise": 8}
        ]
    }

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        add_readings(dsn, "agent-f", "f1", "temperature_c", [(0, 30.0), (120, 34.0), (240, 37.9)])
        await service.evaluate_all()
        assert notices == []
        add_readings(dsn, "agent-f", "f1", "temperature_c", [(290, 38.0)])
        await service.evaluate_all()
        [fire] = notices
        assert (fire.value, fire.threshold, fire.level, fire.window) == (8.0, 8.0, "rate_of_rise", "300s")
        add_readings(dsn, "agent-f", "f1", "temperature_c", [(700, 38.5)])
        await service.evaluate_all()
        assert [n.transition for n in notices] == ["opened", "resolved"]

    engine_run(dsn, rules, body)


def test_silent_source_fires_and_resolves_when_it_speaks(dsn: str) -> None:
    def seen(seconds_ago: int) -> None:
        at = NOW - dt.timedelta(seconds=seconds_ago)
        sql(
            dsn,
            "INSERT INTO source_last_seen VALUES ('agent-q', 'cam-9', 'count_interval', %s, %s) "
            "ON CONFLICT (agent_id, source_id, family) DO UPDATE SET last_event_time = excluded.last_event_time",
            [(at, at)],
        )

    seen(600)
    rules = {"rules": [{"id": "silent-1", "kind": "source_silent", "silent_after_s": 600}]}

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        await service.evaluate_all()
        assert notices == []  # exactly 600 s is not longer than 600 s
        clock.now = NOW + dt.timedelta(seconds=1)
        await service.evaluate_all()
        [silent] = notices
        assert (silent.subject, silent.value) == ("source:agent-q/cam-9", 601.0)
        assert silent.message_vi == "Camera mất tín hiệu: agent-q/cam-9 không gửi dữ liệu 10 phút (ngưỡng 10 phút)"
        # The source speaks again; the engine's task picks the event up without waiting for a full pass.
        task = asyncio.create_task(service.run())
        await wait_for(lambda: service.stats()["full_passes"] == 3)  # the task's first full pass
        seen(0)
        event = HealthEvent(agent_id="agent-q", source_id="cam-9", time=NOW, state="live", frames_decoded=1, fps=1.0)
        service.notify_ingested([event])
        await wait_for(lambda: len(notices) == 2)
        assert notices[1].transition == "resolved"
        await service.close()
        await task

    engine_run(dsn, rules, body)


def test_a_station_reporting_its_own_levels_is_judged_by_them(dsn: str) -> None:
    # tram-own reported báo động 1/2/3 = 3/4/5 m (kept in sensor_stations); tram-none reported none.
    sql(
        dsn,
        "INSERT INTO sensor_stations (agent_id, source_id, sensor_kind, alert_levels_m, levels_time) "
        "VALUES (%s, %s, 'water_level', %s, %s)",
        [("agent-own", "tram-own", [3.0, 4.0, 5.0], NOW)],
    )
    for source in ("tram-own", "tram-none"):
        add_readings(dsn, "agent-own", source, "water_level_m", [(0, 4.2), (60, 4.3)])
    rule = dict(WATER_RULES["rules"][0]) | {"id": "wl-own", "use_station_levels": True, "min_duration_s": 0}

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        clock.now = NOW + dt.timedelta(seconds=65)
        await service.evaluate_all()
        [notice] = notices  # tram-none stays under the rule's own 9.5 m
        assert (notice.subject, notice.level) == ("sensor:agent-own/tram-own", "bao_dong_2")
        assert notice.message_vi == "Mực nước tại cảm biến agent-own/tram-own là 4,3 m, đạt mức báo động 2 (4 m)"

    engine_run(dsn, {"rules": [rule]}, body)


def test_a_silent_sensor_is_called_a_sensor(dsn: str) -> None:
    at = NOW - dt.timedelta(seconds=1200)
    # The writer records families by root table; a sensor also sends health events ("down" when silent).
    sql(
        dsn,
        "INSERT INTO source_last_seen VALUES ('agent-s', 'tram-9', %s, %s, %s)",
        [("sensor_readings", at, at), ("health", at, at)],
    )
    rules = {"rules": [{"id": "silent-s", "kind": "source_silent", "silent_after_s": 600}]}

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        await service.evaluate_all()
        [silent] = notices
        assert silent.message_vi == "Cảm biến mất tín hiệu: agent-s/tram-9 không gửi dữ liệu 20 phút (ngưỡng 10 phút)"
        assert silent.message_en.startswith("Sensor silent: agent-s/tram-9 sent nothing for 20 min")
        await service.close()

    engine_run(dsn, rules, body)


async def wait_for(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    async with asyncio.timeout(deadline_s):
        while not condition():
            await asyncio.sleep(0.01)


def test_notified_reading_raises_its_alert_promptly(dsn: str) -> None:
    rules = {
        "rules": [
            {"id": "smoke-1", "kind": "sensor_threshold", "sensor_kind": "forest_fire", "metric": "smoke",
             "levels": [{"name": "fire", "value": 1, "severity": "critical"}]}
        ]
    }  # fmt: skip

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        task = asyncio.create_task(service.run())
        await wait_for(lambda: service.stats()["full_passes"] == 1)
        at = NOW + dt.timedelta(seconds=30)
        event = SensorReadingEvent(
            agent_id="agent-fire", source_id="s1", time=at, sensor_kind="forest_fire", values={"smoke": 1.0}
        )
        add_readings(dsn, "agent-fire", "s1", "smoke", [(30, 1.0)])
        service.notify_ingested([event] * 50)
        assert service.stats()["pending"] == 1  # coalesced: one subject to evaluate
        await wait_for(lambda: len(notices) == 1)
        assert (notices[0].level, notices[0].severity, notices[0].subject) == (
            "fire",
            "critical",
            "sensor:agent-fire/s1",
        )
        assert notices[0].message_en == "Smoke at sensor agent-fire/s1 is 1, at fire (1)"
        await service.close()
        await task

    engine_run(dsn, rules, body)


def test_full_pending_set_drops_counts_and_forces_a_full_pass(dsn: str) -> None:
    rules = {"rules": [{"id": "smoke-2", "kind": "sensor_threshold", "sensor_kind": "forest_fire", "metric": "smoke",
                        "levels": [{"name": "fire", "value": 1}]}]}  # fmt: skip

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        service._max_pending = 2  # a tiny bound, to show the drop policy
        events = [
            SensorReadingEvent(
                agent_id="agent-drop", source_id=f"s{i}", time=NOW, sensor_kind="forest_fire", values={"smoke": 1.0}
            )
            for i in range(5)
        ]  # fmt: skip
        add_readings(dsn, "agent-drop", "s0", "smoke", [(0, 1.0)])
        service.notify_ingested(events)
        assert (service.stats()["notifications_dropped"], service.stats()["pending"]) == (3, 2)
        task = asyncio.create_task(service.run())
        await wait_for(lambda: service.stats()["full_passes"] >= 1 and service.stats()["pending"] == 0)
        await service.close()
        await task
        assert [n.subject for n in notices if n.subject.startswith("sensor:agent-drop/")] == ["sensor:agent-drop/s0"]

    engine_run(dsn, rules, body)


def test_lifecycle_latch_and_two_engines_open_one_alert(dsn: str) -> None:
    rules = {"rules": [{"id": "fl-1", "kind": "sensor_threshold", "metric": "flame",
                        "sensors": [{"agent_id": "agent-l", "source_id": "f1"}],
                        "levels": [{"name": "fire", "value": 1, "severity": "critical"}]}]}  # fmt: skip
    add_readings(dsn, "agent-l", "f1", "flame", [(-10, 0.0)])

    async def body(service: AlertService, notices: list[AlertNotice], clock: Clock) -> None:
        await service.evaluate_all()  # the subject's state row exists: only its lock can serialise the engines
        add_readings(dsn, "agent-l", "f1", "flame", [(0, 1.0)])
        async with AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False) as other_pool:
            other_notices: list[AlertNotice] = []
            config = AlertRulesConfig.model_validate(rules)
            other = AlertService(other_pool, config, other_notices.append, TZ, 3600.0, clock)
            await asyncio.gather(service.evaluate_all(), other.evaluate_all(), service.evaluate_all())
        assert len(notices) + len(other_notices) == 1
        opened = (notices + other_notices)[0]
        assert sql(dsn, "SELECT count(*) FROM alerts WHERE rule_id = 'fl-1'") == [(1,)]

        acked = await service.acknowledge(opened.alert_id, "trực ban A", "đã gọi kiểm lâm")
        assert (acked.transition, acked.status) == ("acknowledged", "acknowledged")
        assert acked.message_vi.startswith("[Đã tiếp nhận] Lửa tại cảm biến agent-l/f1")
        with pytest.raises(TransitionNotAllowedError):
            await service.acknowledge(opened.alert_id, "trực ban A", "")
        resolved = await service.resolve(opened.alert_id, "trực ban B", "đã dập tắt")
        assert (resolved.transition, resolved.status) == ("resolved", "resolved")
        with pytest.raises(TransitionNotAllowedError, match="resolved"):
            await service.resolve(opened.alert_id, "trực ban B", "")
        # Resolved by hand while the flame reading still holds: no reopening...
        await service.evaluate_all()
        assert [n.transition for n in notices if n.rule_id == "fl-1"][-1] == "resolved"
        # ...until the condition has cleared once.
        add_readings(dsn, "agent-l", "f1", "flame", [(60, 0.0)])
        clock.now = NOW + dt.timedelta(seconds=61)
        await service.evaluate_all()
        add_readings(dsn, "agent-l", "f1", "flame", [(120, 1.0)])
        clock.now = NOW + dt.timedelta(seconds=121)
        await service.evaluate_all()
        assert notices[-1].transition == "opened"
        assert notices[-1].alert_id != opened.alert_id

    engine_run(dsn, rules, body)
    history = sql(
        dsn,
        "SELECT transition, by_whom, comment FROM alert_transitions t JOIN alerts a USING (alert_id) "
        "WHERE a.rule_id = 'fl-1' ORDER BY t.id",
    )
    assert history[:3] == [
        ("opened", None, None),
        ("acknowledged", "trực ban A", "đã gọi kiểm lâm"),
        ("resolved", "trực ban B", "đã dập tắt"),
    ]
