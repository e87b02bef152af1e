"""The map's state rules (``mapview.states``): live / stalled / down / unknown from what was last heard, and the
alert level a sensor's latest reading is at."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central_ingest.alerts.rules import Level, SensorThresholdRule, SourceRef, StationLevels
from central_ingest.mapview.states import (
    CAMERA,
    MAP_STATES,
    NORMAL,
    SENSOR,
    LastHeard,
    sensor_level,
    source_state,
)

NOW = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


def state_of(heard: LastHeard) -> tuple[str, str]:
    verdict = source_state(heard, NOW, CAMERA)
    return verdict.state, verdict.reason


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        (LastHeard(), ("unknown", "never_heard")),
        (LastHeard(event_time=ago(seconds=30)), ("live", "recent_event")),
        (LastHeard(event_time=ago(minutes=2)), ("live", "recent_event")),  # the 2 min bound is inclusive
        (LastHeard(event_time=ago(minutes=2, seconds=1)), ("stalled", "quiet")),
        (LastHeard(event_time=ago(minutes=10)), ("stalled", "quiet")),
        (LastHeard(event_time=ago(minutes=10, seconds=1)), ("down", "silent")),
        (LastHeard(health_time=ago(seconds=20), health_state="live", fps=12.5), ("live", "healthy")),
        (LastHeard(health_time=ago(seconds=20), health_state="live", fps=0.0), ("stalled", "no_frames")),
        (LastHeard(health_time=ago(seconds=20), health_state="stalled"), ("stalled", "health_stalled")),
        (LastHeard(health_time=ago(seconds=20), health_state="connecting"), ("stalled", "health_stalled")),
        (LastHeard(health_time=ago(seconds=20), health_state="starting"), ("stalled", "health_stalled")),
        (LastHeard(health_time=ago(seconds=20), health_state="down"), ("down", "health_down")),
        (LastHeard(health_time=ago(seconds=20), health_state="stopped"), ("down", "health_down")),
        # the camera's own word wins over the zero-coverage count intervals the agent keeps sending
        (
            LastHeard(event_time=ago(seconds=5), health_time=ago(seconds=40), health_state="down"),
            ("down", "health_down"),
        ),
        # an old "live" health event does not decide: a fresh event does, else nothing lately
        (
            LastHeard(event_time=ago(seconds=30), health_time=ago(minutes=5), health_state="live"),
            ("live", "recent_event"),
        ),
        (LastHeard(health_time=ago(minutes=5), health_state="live", fps=10.0), ("stalled", "quiet")),
        # a health event older than down_after says nothing any more; the recent event does
        (
            LastHeard(event_time=ago(seconds=10), health_time=ago(minutes=30), health_state="down"),
            ("live", "recent_event"),
        ),
        (LastHeard(health_time=ago(minutes=11), health_state="live", fps=10.0), ("down", "silent")),
        # clock skew: a time in the future counts as now
        (LastHeard(event_time=NOW + dt.timedelta(minutes=3)), ("live", "recent_event")),
    ],
)
def test_camera_states(heard: LastHeard, expected: tuple[str, str]) -> None:
    assert state_of(heard) == expected


def test_details_are_bilingual_and_carry_the_reason() -> None:
    verdict = source_state(
        LastHeard(health_time=ago(seconds=20), health_state="down", health_reason="rtsp timeout"), NOW, CAMERA
    )
    assert verdict.detail_vi.startswith("Agent báo")
    assert "rtsp timeout" in verdict.detail_vi
    assert "rtsp timeout" in verdict.detail_en
    silent = source_state(LastHeard(event_time=ago(minutes=42)), NOW, CAMERA)
    assert (silent.detail_vi, silent.detail_en) == ("Không nhận được dữ liệu 42 phút", "Nothing received for 42 min")


def test_sensors_have_wider_windows() -> None:
    assert source_state(LastHeard(event_time=ago(minutes=12)), NOW, SENSOR).state == "live"
    assert source_state(LastHeard(event_time=ago(minutes=30)), NOW, SENSOR).state == "stalled"
    assert source_state(LastHeard(event_time=ago(minutes=61)), NOW, SENSOR).state == "down"


times = st.one_of(st.none(), st.integers(min_value=-600, max_value=86_400).map(lambda s: ago(seconds=s)))


@given(
    event=times,
    health=times,
    health_state=st.sampled_from(["starting", "connecting", "live", "stalled", "down", "stopped", "bogus"]),
    fps=st.one_of(st.none(), st.floats(min_value=0, max_value=60)),
)
def test_every_input_has_one_known_state(
    event: dt.datetime | None, health: dt.datetime | None, health_state: str, fps: float | None
) -> None:
    heard = LastHeard(event_time=event, health_time=health, health_state=health_state, fps=fps)
    verdict = source_state(heard, NOW, CAMERA)
    assert verdict.state in MAP_STATES
    assert verdict.detail_vi
    assert verdict.detail_en
    newest = max((t for t in (event, health) if t is not None), default=None)
    if newest is None:
        assert verdict.state == "unknown"
    elif NOW - newest > CAMERA.down_after:
        assert verdict.state == "down"
    elif verdict.state == "live":  # live needs fresh news
        assert NOW - newest <= CAMERA.live_within


WATER = SensorThresholdRule(
    id="water",
    sensor_kind="water_level",
    metric="water_level_m",
    levels=(
        Level(name="bao_dong_1", value=Decimal("3.0"), severity="notice"),
        Level(name="bao_dong_2", value=Decimal("4.0"), severity="warning"),
        Level(name="bao_dong_3", value=Decimal("5.0"), severity="critical"),
    ),
    use_station_levels=True,
)


def test_sensor_level_picks_the_highest_level_reached() -> None:
    assert sensor_level([WATER], "a", "wl", "water_level", {"water_level_m": 2.99}) == NORMAL
    at_two = sensor_level([WATER], "a", "wl", "water_level", {"water_level_m": 4.0})
    assert (at_two.level, at_two.severity, at_two.threshold, at_two.rule_id) == ("bao_dong_2", "warning", 4.0, "water")
    assert at_two.label_vi == "báo động 2"
    assert sensor_level([WATER], "a", "wl", "water_level", {"water_level_m": 7.5}).level == "bao_dong_3"


def test_a_reading_exactly_at_a_decimal_level_reaches_it_as_the_alert_engine_sees() -> None:
    # 3.3 as a float is 3.2999999999999998...: compared as a binary fraction it would stay below a 3.3 level
    # that the alert engine (which reads the float as the decimal it was written as) says is reached.
    decimal_level = WATER.model_copy(
        update={"levels": (Level(name="bao_dong_1", value=Decimal("3.3"), severity="notice"),)}
    )
    assert sensor_level([decimal_level], "a", "wl", "water_level", {"water_level_m": 3.3}).level == "bao_dong_1"


def test_sensor_level_uses_the_station_levels_when_the_rule_says_so() -> None:
    verdict = sensor_level([WATER], "a", "wl", "water_level", {"water_level_m": 2.1}, reported_levels=(1.5, 2.0, 2.5))
    assert (verdict.level, verdict.threshold) == ("bao_dong_2", 2.0)
    listed = WATER.model_copy(
        update={
            "station_levels": (
                StationLevels(agent_id="a", source_id="wl", levels=(Level(name="x", value=Decimal(9)),)),
            )
        }
    )
    assert sensor_level([listed], "a", "wl", "water_level", {"water_level_m": 8.0}, reported_levels=(1, 2, 3)) == NORMAL


def test_sensor_level_below_rules_disabled_rules_and_selection() -> None:
    humidity = SensorThresholdRule(
        id="dry",
        sensors=(SourceRef(agent_id="a", source_id="f1"),),
        metric="humidity_pct",
        direction="below",
        levels=(Level(name="kho", value=Decimal(40)), Level(name="rat_kho", value=Decimal(25), severity="critical")),
    )
    assert sensor_level([humidity], "a", "f1", "forest_fire", {"humidity_pct": 30}).level == "kho"
    assert sensor_level([humidity], "a", "f1", "forest_fire", {"humidity_pct": 20}).level == "rat_kho"
    assert sensor_level([humidity], "a", "other", "forest_fire", {"humidity_pct": 20}) == NORMAL
    assert (
        sensor_level([humidity.model_copy(update={"enabled": False})], "a", "f1", None, {"humidity_pct": 1}) == NORMAL
    )
    assert sensor_level([WATER], "a", "wl", "water_level", {"temperature_c": 30}) == NORMAL


def test_sensor_level_most_severe_rule_wins() -> None:
    notice_only = WATER.model_copy(
        update={"id": "low", "use_station_levels": False, "levels": (Level(name="chu_y", value=Decimal(1)),) * 1}
    )
    both = sensor_level([notice_only, WATER], "a", "wl", "water_level", {"water_level_m": 5.5})
    assert (both.rule_id, both.level) == ("water", "bao_dong_3")
