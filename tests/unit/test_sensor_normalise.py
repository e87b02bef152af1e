"""The normaliser: payload -> events and rejections, sensors resolved, units, calibration, times, ids, VN_AQI."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from event_contract import SCHEMA_VERSION, SensorReadingEvent
from ioc_common.sensors import normalise as normalise_module
from ioc_common.sensors.config import SensorConfig
from ioc_common.sensors.normalise import NormaliseResult, SensorNormaliser, event_id_for

T0 = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
ARRIVED = T0 + dt.timedelta(minutes=1)
HAS_ALERT_LEVELS = "alert_levels_m" in SensorReadingEvent.model_fields


def stamp(time: dt.datetime) -> str:
    return time.isoformat().replace("+00:00", "Z")


def water(time: dt.datetime = T0, **fields: Any) -> bytes:
    payload = {"schema": "ioc.water_level/1", "time": stamp(time), "level": 4.12, **fields}
    return json.dumps(payload).encode()


def environment(time: dt.datetime, pollutants: dict[str, float], **fields: Any) -> bytes:
    payload = {
        "schema": "ioc.environment/1",
        "time": stamp(time),
        "pollutants": {name: {"value": value, "unit": "ug/m3"} for name, value in pollutants.items()},
        **fields,
    }
    return json.dumps(payload).encode()


def config(sensor_id: str = "tram-kim-long", kind: str = "water_level", **settings: Any) -> SensorConfig:
    return SensorConfig.model_validate({"id": sensor_id, "kind": kind, "topic": f"st/{sensor_id}", **settings})


def one(result: NormaliseResult) -> SensorReadingEvent:
    assert result.rejections == ()
    (event,) = result.events
    return event


def codes(result: NormaliseResult) -> list[str]:
    return [r.code for r in result.rejections]


def test_a_water_level_reading_becomes_a_validated_event() -> None:
    normaliser = SensorNormaliser("hue-01", [config(datum="Hòn Dấu")])
    event = one(normaliser.normalise("st/tram-kim-long", water(sensor_id="tram-kim-long"), ARRIVED))
    assert isinstance(event, SensorReadingEvent)
    assert (event.agent_id, event.source_id, event.sensor_kind) == ("hue-01", "tram-kim-long", "water_level")
    assert event.time == T0
    assert event.values == {"water_level_m": 4.12}
    assert event.schema_version == SCHEMA_VERSION
    assert normaliser.last_times() == {"tram-kim-long": T0}


def test_event_ids_are_deterministic_per_agent_sensor_and_time() -> None:
    first = one(SensorNormaliser("hue-01", [config()]).normalise("st/tram-kim-long", water(), ARRIVED))
    again = one(SensorNormaliser("hue-01", [config()]).normalise("st/tram-kim-long", water(level=5.0), ARRIVED))
    other_agent = one(SensorNormaliser("hue-02", [config()]).normalise("st/tram-kim-long", water(), ARRIVED))
    assert first.event_id == again.event_id == event_id_for("hue-01", "tram-kim-long", T0)
    assert other_agent.event_id != first.event_id
    assert event_id_for("hue-01", "tram-kim-long", T0 + dt.timedelta(microseconds=1)) != first.event_id
    local = T0.astimezone(dt.timezone(dt.timedelta(hours=7)))
    assert event_id_for("hue-01", "tram-kim-long", local) == first.event_id


def test_impossible_level_is_refused_with_field_value_and_limit() -> None:
    normaliser = SensorNormaliser("hue-01", [config()])
    result = normaliser.normalise("st/tram-kim-long", water(level=-500.0), ARRIVED)
    assert result.events == ()
    (rejection,) = result.rejections
    assert rejection.code == "impossible_value"
    assert rejection.reason == "level -500 m is below the possible -100 m"
    assert rejection.sensor_id == "tram-kim-long"
    assert normaliser.last_times() == {}


def test_units_are_converted_then_calibrated() -> None:
    sensor = config(calibration={"water_level_m": {"scale": 1.01, "offset": -0.02}})
    normaliser = SensorNormaliser("hue-01", [sensor])
    event = one(normaliser.normalise("st/tram-kim-long", water(level=412, unit="cm"), ARRIVED))
    assert event.values["water_level_m"] == pytest.approx(4.12 * 1.01 - 0.02)


def test_unknown_unit_in_a_payload_is_refused_naming_it() -> None:
    result = SensorNormaliser("hue-01", [config()]).normalise("st/tram-kim-long", water(unit="furlong"), ARRIVED)
    assert codes(result) == ["bad_shape"]
    assert "'furlong'" in result.rejections[0].reason
    assert "m, cm, mm, ft" in result.rejections[0].reason


def test_distance_sensors_report_the_level_below_their_elevation() -> None:
    normaliser = SensorNormaliser("hue-01", [config(sensor_elevation_m=9.5)])
    payload = json.dumps({"schema": "ioc.water_level/1", "time": stamp(T0), "distance": 512, "unit": "cm"})
    event = one(normaliser.normalise("st/tram-kim-long", payload.encode(), ARRIVED))
    assert event.values == {"water_level_m": pytest.approx(4.38)}


@pytest.mark.parametrize(
    ("elevation", "distance", "code", "words"),
    [
        (None, 5.0, "bad_shape", "sensor_elevation_m"),
        (9.5, -1.0, "impossible_value", "below the possible 0 m"),
        (9.5, 200.0, "impossible_value", "gives level -190.5 m"),
    ],
)
def test_bad_distances(elevation: float | None, distance: float, code: str, words: str) -> None:
    normaliser = SensorNormaliser("hue-01", [config(sensor_elevation_m=elevation)])
    payload = json.dumps({"schema": "ioc.water_level/1", "time": stamp(T0), "distance": distance})
    result = normaliser.normalise("st/tram-kim-long", payload.encode(), ARRIVED)
    assert result.events == ()
    assert codes(result) == [code]
    assert words in result.rejections[0].reason


@pytest.mark.skipif(not HAS_ALERT_LEVELS, reason="the contract has no alert_levels_m before schema 1.3")
def test_alert_levels_come_from_config_else_from_the_payload() -> None:
    configured = SensorNormaliser("hue-01", [config(alert_levels_m=[3, 4, 5])])
    event = one(configured.normalise("st/tram-kim-long", water(alert_levels_m=[1.0, 2.0, 3.0]), ARRIVED))
    assert event.alert_levels_m == (3.0, 4.0, 5.0)
    from_station = SensorNormaliser("hue-01", [config()])
    event = one(from_station.normalise("st/tram-kim-long", water(alert_levels_m=[1.0, 2.0, 3.0]), ARRIVED))
    assert event.alert_levels_m == (1.0, 2.0, 3.0)
    none = one(SensorNormaliser("hue-01", [config()]).normalise("st/tram-kim-long", water(), ARRIVED))
    assert none.alert_levels_m is None


@pytest.mark.skipif(not HAS_ALERT_LEVELS, reason="the contract has no alert_levels_m before schema 1.3")
def test_station_alert_levels_that_do_not_ascend_are_refused_but_the_level_is_kept() -> None:
    normaliser = SensorNormaliser("hue-01", [config()])
    result = normaliser.normalise("st/tram-kim-long", water(alert_levels_m=[5.0, 4.0, 3.0]), ARRIVED)
    assert codes(result) == ["impossible_value"]
    assert "alert_levels_m [5.0, 4.0, 3.0]" in result.rejections[0].reason
    (event,) = result.events
    assert event.alert_levels_m is None
    assert event.values == {"water_level_m": 4.12}


def test_topics_are_distinct_filters_in_config_order() -> None:
    sensors = [config("a", topic="loggers/+"), config("b", topic="loggers/+"), config("c", topic="st/c")]
    assert SensorNormaliser("hue-01", sensors).topics == ("loggers/+", "st/c")


def test_unknown_topic_and_too_large() -> None:
    normaliser = SensorNormaliser("hue-01", [config()], max_payload_bytes=100)
    assert codes(normaliser.normalise("st/elsewhere", water(), ARRIVED)) == ["unknown_topic"]
    result = normaliser.normalise("st/tram-kim-long", b" " * 101, ARRIVED)
    assert codes(result) == ["too_large"]
    assert "101 bytes exceeds 100" in result.rejections[0].reason


def test_shared_topic_resolves_the_station_by_id_or_payload_id() -> None:
    sensors = [
        config("tram-kim-long", topic="loggers/+", payload_id="KIMLONG"),
        config("tram-phu-oc", topic="loggers/+"),
    ]
    normaliser = SensorNormaliser("hue-01", sensors)
    by_code = one(normaliser.normalise("loggers/x", water(sensor_id="KIMLONG"), ARRIVED))
    by_id = one(normaliser.normalise("loggers/x", water(sensor_id="tram-phu-oc"), ARRIVED))
    assert (by_code.source_id, by_id.source_id) == ("tram-kim-long", "tram-phu-oc")
    unknown = normaliser.normalise("loggers/x", water(T0 + dt.timedelta(seconds=1), sensor_id="HUONGTHUY"), ARRIVED)
    assert codes(unknown) == ["unknown_sensor"]
    assert "'HUONGTHUY' is not configured for topic 'loggers/+'" in unknown.rejections[0].reason
    anonymous = normaliser.normalise("loggers/x", water(T0 + dt.timedelta(seconds=2)), ARRIVED)
    assert codes(anonymous) == ["unknown_sensor"]
    assert "names no sensor" in anonymous.rejections[0].reason


def test_a_payload_may_not_name_a_sensor_of_another_topic() -> None:
    sensors = [config("a"), config("b")]
    result = SensorNormaliser("hue-01", sensors).normalise("st/a", water(sensor_id="b"), ARRIVED)
    assert codes(result) == ["unknown_sensor"]


def test_the_most_specific_filter_wins() -> None:
    sensors = [config("any", topic="st/#"), config("kim", topic="st/kim")]
    normaliser = SensorNormaliser("hue-01", sensors)
    assert one(normaliser.normalise("st/kim", water(), ARRIVED)).source_id == "kim"
    assert one(normaliser.normalise("st/other", water(), ARRIVED)).source_id == "any"


def test_a_payload_of_another_kind_is_refused() -> None:
    normaliser = SensorNormaliser("hue-01", [config("fire", kind="forest_fire")])
    result = normaliser.normalise("st/fire", water(), ARRIVED)
    assert codes(result) == ["bad_shape"]
    assert "water_level payload for forest_fire sensor fire" in result.rejections[0].reason


@pytest.mark.parametrize(
    ("offset_s", "code"),
    [(300, None), (301, "future_time"), (-86_400 * 365 * 40, "bad_time")],
)
def test_time_limits(offset_s: int, code: str | None) -> None:
    normaliser = SensorNormaliser("hue-01", [config()])
    result = normaliser.normalise("st/tram-kim-long", water(ARRIVED + dt.timedelta(seconds=offset_s)), ARRIVED)
    assert codes(result) == ([] if code is None else [code])


def test_duplicate_and_out_of_order_times() -> None:
    normaliser = SensorNormaliser("hue-01", [config(reorder_window_s=0)])
    assert one(normaliser.normalise("st/tram-kim-long", water(T0), ARRIVED))
    duplicate = normaliser.normalise("st/tram-kim-long", water(T0, level=4.2), ARRIVED)
    assert codes(duplicate) == ["duplicate_time"]
    assert "0 s after the last accepted reading at 2026-11-26T03:00:00Z" in duplicate.rejections[0].reason
    earlier = normaliser.normalise("st/tram-kim-long", water(T0 - dt.timedelta(seconds=1)), ARRIVED)
    assert codes(earlier) == ["out_of_order"]
    assert one(normaliser.normalise("st/tram-kim-long", water(T0 + dt.timedelta(seconds=1)), ARRIVED))


def test_a_backlog_interleaved_with_new_readings_is_taken_within_the_reorder_window() -> None:
    # After a reconnect a station may send a new reading before re-sending its backlog.
    normaliser = SensorNormaliser("hue-01", [config(reorder_window_s=300)])
    minute = dt.timedelta(minutes=1)
    assert one(normaliser.normalise("st/tram-kim-long", water(T0), ARRIVED))
    assert one(normaliser.normalise("st/tram-kim-long", water(T0 + 3 * minute), ARRIVED))
    for late in (T0 + minute, T0 + 2 * minute):  # the backlog, late but new
        assert one(normaliser.normalise("st/tram-kim-long", water(late), ARRIVED))
    again = normaliser.normalise("st/tram-kim-long", water(T0 + minute), ARRIVED)
    assert codes(again) == ["duplicate_time"]
    assert "was already accepted" in again.rejections[0].reason
    assert codes(normaliser.normalise("st/tram-kim-long", water(T0 + 3 * minute), ARRIVED)) == ["duplicate_time"]
    too_old = normaliser.normalise("st/tram-kim-long", water(T0 - 3 * minute), ARRIVED)
    assert codes(too_old) == ["out_of_order"]
    assert "by more than reorder_window_s 300 s" in too_old.rejections[0].reason
    assert normaliser.last_times() == {"tram-kim-long": T0 + 3 * minute}


def test_min_interval_refuses_readings_too_close_together() -> None:
    normaliser = SensorNormaliser("hue-01", [config(min_interval_s=60)])
    assert one(normaliser.normalise("st/tram-kim-long", water(T0), ARRIVED))
    close = normaliser.normalise("st/tram-kim-long", water(T0 + dt.timedelta(seconds=30)), ARRIVED)
    assert codes(close) == ["duplicate_time"]
    assert "min_interval_s 60" in close.rejections[0].reason
    assert one(normaliser.normalise("st/tram-kim-long", water(T0 + dt.timedelta(seconds=60)), ARRIVED))


def test_last_times_survive_a_restart() -> None:
    before = SensorNormaliser("hue-01", [config()])
    one(before.normalise("st/tram-kim-long", water(T0), ARRIVED))
    after = SensorNormaliser("hue-01", [config()])
    after.restore_last_times({**before.last_times(), "removed-sensor": T0})
    assert after.last_times() == {"tram-kim-long": T0}
    assert codes(after.normalise("st/tram-kim-long", water(T0), ARRIVED)) == ["duplicate_time"]
    after.restore_last_times({"tram-kim-long": T0 - dt.timedelta(hours=1)})  # never moves back
    assert after.last_times() == {"tram-kim-long": T0}
    with pytest.raises(ValueError, match="timezone"):
        after.restore_last_times({"tram-kim-long": dt.datetime(2026, 1, 1)})  # noqa: DTZ001


def test_one_bad_value_does_not_hide_the_others() -> None:
    normaliser = SensorNormaliser("hue-01", [config("qt", kind="environment")])
    result = normaliser.normalise("st/qt", environment(T0, {"pm2_5": 35.2, "o3": -5.0}), ARRIVED)
    assert codes(result) == ["impossible_value"]
    assert result.rejections[0].reason == "pollutants.o3 -5 ug/m3 is below the possible 0 ug/m3"
    (event,) = result.events
    assert event.values == {"pm2_5": 35.2}


def test_metrics_a_kind_does_not_report_are_refused_alone() -> None:
    senml = {"type": "senml"}
    normaliser = SensorNormaliser("hue-01", [config("wl", format=senml)])
    pack = [{"bn": "wl:", "bt": T0.timestamp(), "n": "water_level_m", "u": "m", "v": 4.1}, {"n": "pm10", "v": 3}]
    result = normaliser.normalise("st/wl", json.dumps(pack).encode(), ARRIVED)
    assert codes(result) == ["bad_shape"]
    assert "does not report pm10" in result.rejections[0].reason
    assert one(NormaliseResult(result.events, ())).values == {"water_level_m": 4.1}


def test_several_csv_lines_give_events_and_rejections() -> None:
    logger = {
        "type": "csv",
        "columns": ["station", "time", "water_level_m"],
        "sensor_id_column": "station",
        "units": {"water_level_m": "cm"},
        "time_format": "%d/%m/%Y %H:%M",
    }
    sensors = [
        config("tram-kim-long", topic="loggers/+", payload_id="KIMLONG", format=logger),
        config("tram-phu-oc", topic="loggers/+", payload_id="PHUOC", format=logger),
    ]
    normaliser = SensorNormaliser("hue-01", sensors)
    lines = [
        "KIMLONG,26/11/2026 10:00,412",
        "PHUOC,26/11/2026 10:00,230",
        "KIMLONG,26/11/2026 09:50,410",  # earlier than the accepted 10:00
        "KIMLONG,26/11/2026 10:10,-20000",  # -200 m
        "XYZ,26/11/2026 10:00,100",
        "KIMLONG,26/11/2026 10:20,x",
        "KIMLONG,26/11/2026 10:30,415",
    ]
    result = normaliser.normalise("loggers/hue", "\n".join(lines).encode(), T0 + dt.timedelta(hours=1))
    assert [(e.source_id, e.time, e.values["water_level_m"]) for e in result.events] == [
        ("tram-kim-long", T0, 4.12),
        ("tram-phu-oc", T0, 2.3),
        ("tram-kim-long", T0 + dt.timedelta(minutes=30), 4.15),
    ]
    assert sorted((r.code, r.sensor_id) for r in result.rejections) == [
        ("impossible_value", "tram-kim-long"),
        ("out_of_order", "tram-kim-long"),
        ("unknown_sensor", None),
        ("wrong_type", "tram-kim-long"),
    ]
    assert all(r.reason.startswith("line ") for r in result.rejections)


def test_vn_aqi_is_added_once_two_completed_hours_have_pm() -> None:
    normaliser = SensorNormaliser("hue-01", [config("qt", kind="environment")])

    def send(minutes: int, pm25: float, **fields: Any) -> SensorReadingEvent:
        time = T0 + dt.timedelta(minutes=minutes)
        return one(normaliser.normalise("st/qt", environment(time, {"pm2_5": pm25}, **fields), time))

    assert "vn_aqi" not in send(0, 40).values  # hour 03: in progress
    assert "vn_aqi" not in send(60, 30).values  # hour 03 done, but 1 of the 3 last hours is not enough
    w = 30 / 40
    nowcast = (30 + w * 40) / (1 + w)
    expected = int(50 / 25 * (nowcast - 25) + 50 + 0.5)  # PM2.5 between 25 and 50
    assert send(120, 100).values["vn_aqi"] == expected
    assert send(130, 100, vn_aqi=150.0).values["vn_aqi"] == 150.0  # the station's own is kept


def test_environment_without_pm_never_gets_vn_aqi() -> None:
    normaliser = SensorNormaliser("hue-01", [config("qt", kind="environment")])
    for hour in range(4):
        time = T0 + dt.timedelta(hours=hour)
        event = one(normaliser.normalise("st/qt", environment(time, {"co": 900.0}), time))
        assert "vn_aqi" not in event.values


def test_a_payload_with_nothing_in_it_is_still_accounted_for() -> None:
    normaliser = SensorNormaliser("hue-01", [config("wl", format={"type": "senml", "ignore": ["bat"]})])
    result = normaliser.normalise("st/wl", b'[{"n": "bat", "v": 3.6}]', ARRIVED)
    assert codes(result) == ["bad_shape"]
    assert "no reading" in result.rejections[0].reason


def test_it_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    normaliser = SensorNormaliser("hue-01", [config()])
    naive = normaliser.normalise("st/tram-kim-long", water(), dt.datetime(2026, 11, 26))  # noqa: DTZ001
    assert codes(naive) == ["internal_error"]
    assert "received_at" in naive.rejections[0].reason

    def broken(*_: object) -> None:
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(normalise_module, "parse_payload", broken)
    result = normaliser.normalise("st/tram-kim-long", water(), ARRIVED)
    assert codes(result) == ["internal_error"]
    assert "RuntimeError: adapter bug" in result.rejections[0].reason


def test_construction_refuses_bad_agent_ids_and_ambiguous_sensors() -> None:
    with pytest.raises(ValueError, match="agent_id"):
        SensorNormaliser("bad agent", [config()])
    with pytest.raises(ValueError, match="used twice"):
        SensorNormaliser("hue-01", [config(), config()])
    with pytest.raises(ValueError, match="max_payload_bytes"):
        SensorNormaliser("hue-01", [config()], max_payload_bytes=0)
