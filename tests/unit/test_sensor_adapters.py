"""Adapters on bytes alone: each payload shape gives raw readings (units untouched) or says what is wrong."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from ioc_common.sensors.adapters import CsvFormat, FlatJsonFormat, IocV1Format, SenmlFormat, TimeSpec, parse_payload
from ioc_common.sensors.adapters.times import parse_time
from ioc_common.sensors.adapters.values import BadValueError
from ioc_common.sensors.readings import Parsed, PayloadError

RECEIVED = dt.datetime(2026, 11, 26, 3, 5, tzinfo=dt.UTC)
HCM = dt.timezone(dt.timedelta(hours=7))


def parse(fmt: IocV1Format | SenmlFormat | FlatJsonFormat | CsvFormat, payload: bytes | str) -> Parsed:
    data = payload.encode() if isinstance(payload, str) else payload
    return parse_payload(fmt, data, RECEIVED)


def refused(fmt: IocV1Format | SenmlFormat | FlatJsonFormat | CsvFormat, payload: bytes | str) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        parse(fmt, payload)
    return caught.value


# --- ioc_v1 ---------------------------------------------------------------------------------------

IOC = IocV1Format()
WATER = {
    "schema": "ioc.water_level/1",
    "sensor_id": "tram-kim-long",
    "time": "2026-11-26T03:00:00Z",
    "level": 412,
    "unit": "cm",
    "alert_levels_m": [3.0, 4.0, 5.0],
}


def test_ioc_v1_water_level() -> None:
    (reading,) = parse(IOC, json.dumps(WATER)).readings
    assert reading.sensor_id == "tram-kim-long"
    assert reading.kind == "water_level"
    assert reading.time == dt.datetime(2026, 11, 26, 3, tzinfo=dt.UTC)
    assert reading.values["water_level_m"].value == 412
    assert reading.values["water_level_m"].unit == "cm"
    assert reading.alert_levels_m == (3.0, 4.0, 5.0)


def test_ioc_v1_distance_and_offset_times() -> None:
    payload = {"schema": "ioc.water_level/1", "time": "2026-11-26T10:00:00+07:00", "distance": 5.1}
    (reading,) = parse(IOC, json.dumps(payload)).readings
    assert reading.sensor_id is None
    assert set(reading.values) == {"distance"}
    assert reading.time == dt.datetime(2026, 11, 26, 3, tzinfo=dt.UTC)


def test_ioc_v1_forest_fire_booleans_and_fractions() -> None:
    payload = {"schema": "ioc.forest_fire/1", "time": "2026-04-12T07:30:00Z", "smoke": True, "flame": 0.25}
    (reading,) = parse(IOC, json.dumps(payload)).readings
    assert reading.kind == "forest_fire"
    assert (reading.values["smoke"].value, reading.values["smoke"].unit) == (1.0, "bool")
    assert (reading.values["flame"].value, reading.values["flame"].unit) == (0.25, "1")


def test_ioc_v1_environment_pollutants_keep_their_units() -> None:
    payload = {
        "schema": "ioc.environment/1",
        "time": "2026-11-26T03:00:00Z",
        "pollutants": {"no2": {"value": 21, "unit": "ppb"}, "pm2_5": {"value": 35.2, "unit": "ug/m3"}},
        "noise_dba": 61.0,
    }
    (reading,) = parse(IOC, json.dumps(payload)).readings
    assert reading.values["no2"].unit == "ppb"
    assert reading.values["no2"].field == "pollutants.no2"
    assert reading.values["noise_db"].unit == "dBA"


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"level": "4.12"}, "wrong_type", "level"),
        ({"level": True}, "wrong_type", "level"),
        ({"time": "2026-11-26T03:00:00"}, "bad_time", "timezone"),
        ({"time": "yesterday"}, "bad_time", "time"),
        ({"time": None}, "bad_time", "time"),
        ({"schema": "ioc.water_level/9"}, "bad_shape", "ioc.water_level/9"),
        ({"schema": None}, "bad_shape", "schema"),
        ({"colour": "blue"}, "bad_shape", "colour"),
        ({"distance": 1.0}, "bad_shape", "exactly one of level and distance"),
        ({"alert_levels_m": [1, 2]}, "bad_shape", "alert_levels_m"),
    ],
)
def test_ioc_v1_refusals_name_the_field(change: dict[str, object], code: str, words: str) -> None:
    payload = {**WATER, **change}
    if change.get("schema") is None and "schema" in change:
        del payload["schema"]
    if "time" in change and change["time"] is None:
        del payload["time"]
    error = refused(IOC, json.dumps(payload))
    assert error.code == code
    assert words in error.reason


@pytest.mark.parametrize(
    ("payload", "code"), [(b"not json", "not_json"), (b"\xff\xfe\x00", "not_json"), (b"[1, 2]", "bad_shape")]
)
def test_ioc_v1_not_an_object(payload: bytes, code: str) -> None:
    assert refused(IOC, payload).code == code


def test_ioc_v1_nan_is_not_a_number() -> None:
    text = json.dumps(WATER).replace("412", "NaN")
    assert refused(IOC, text).code == "wrong_type"


def test_ioc_v1_empty_readings_are_refused() -> None:
    payload = {"schema": "ioc.forest_fire/1", "time": "2026-04-12T07:30:00Z"}
    assert refused(IOC, json.dumps(payload)).code == "bad_shape"


# --- senml ----------------------------------------------------------------------------------------

SENML = SenmlFormat(names={"dist": "distance", "t": "temperature_c"}, ignore=("bat",))
T0 = 1_795_662_000  # 2026-11-26T03:00:00Z


def test_senml_base_fields_carry_forward_and_records_group_by_station_and_time() -> None:
    pack = [
        {"bn": "cau-truong-tien:", "bt": T0, "bu": "cm", "n": "dist", "v": 512},
        {"n": "t", "u": "Cel", "v": 23.4},
        {"n": "bat", "u": "V", "v": 3.6},
        {"n": "dist", "t": 600, "v": 510},
    ]
    parsed = parse(SENML, json.dumps(pack))
    assert parsed.problems == ()
    first, second = parsed.readings
    assert first.sensor_id == "cau-truong-tien"
    assert first.time == dt.datetime.fromtimestamp(T0, dt.UTC)
    assert {m: (v.value, v.unit) for m, v in first.values.items()} == {
        "distance": (512, "cm"),
        "temperature_c": (23.4, "Cel"),
    }
    assert second.time == first.time + dt.timedelta(seconds=600)
    assert second.values["distance"].value == 510


def test_senml_relative_times_count_from_arrival_and_base_value_adds() -> None:
    pack = [{"bn": "st/", "bv": 4.0, "n": "water_level_m", "u": "m", "v": 0.12, "t": -60}]
    (reading,) = parse(SenmlFormat(), json.dumps(pack)).readings
    assert reading.time == RECEIVED - dt.timedelta(seconds=60)
    assert reading.values["water_level_m"].value == pytest.approx(4.12)
    assert reading.sensor_id == "st"


def test_senml_boolean_values() -> None:
    pack = [{"n": "smoke", "vb": True, "t": 0}, {"n": "flame", "vb": False}]
    (reading,) = parse(SenmlFormat(station_in_name=False), json.dumps(pack)).readings
    assert reading.sensor_id is None
    assert {m: v.value for m, v in reading.values.items()} == {"smoke": 1.0, "flame": 0.0}
    assert reading.values["smoke"].unit == "bool"


def test_senml_bad_records_are_refused_alone() -> None:
    pack = [
        {"bn": "st:", "bt": T0, "n": "water_level_m", "u": "m", "v": 4.1},
        {"n": "humidity", "v": 3},
        {"n": "temperature_c", "vs": "warm"},
        {"n": "temperature_c", "v": "20"},
        {"n": "water_level_m", "u": "m", "v": 4.2},
        {"n": "temperature_c", "u": "Cel", "v": 20, "t_": 1},
        17,
    ]
    parsed = parse(SenmlFormat(), json.dumps(pack))
    assert len(parsed.readings) == 1
    assert [p.code for p in parsed.problems] == [
        "bad_shape",  # humidity: not a metric, not mapped
        "wrong_type",  # vs
        "wrong_type",  # "20"
        "bad_shape",  # water_level_m repeated at the same time
        "bad_shape",  # must-understand field
        "bad_shape",  # not an object
    ]
    assert "record 2" in parsed.problems[0].reason
    assert parsed.problems[0].sensor_id == "st"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{}", "bad_shape"),
        (b"[]", "bad_shape"),
        (b"nope", "not_json"),
        (b'[{"bt": "now", "n": "x", "v": 1}]', "wrong_type"),
        (b'[{"bn": 5, "n": "x", "v": 1}]', "wrong_type"),
        (b"[" + b"{}," * 1000 + b"{}]", "bad_shape"),
    ],
)
def test_senml_whole_pack_refusals(payload: bytes, code: str) -> None:
    assert refused(SenmlFormat(), payload).code == code


def test_senml_times_out_of_range_are_bad_time() -> None:
    parsed = parse(SenmlFormat(), json.dumps([{"n": "pm10", "v": 1, "bt": 1e300}]))
    assert [p.code for p in parsed.problems] == ["bad_time"]


# --- flat_json ------------------------------------------------------------------------------------

AQ = FlatJsonFormat(
    time_field="ts",
    time_format="epoch_ms",
    sensor_id_field="device",
    fields={
        "pm2_5": {"path": "data.pm25", "unit": "ug/m3"},
        "no2": {"path": "data.no2", "unit": "ppb"},
        "temperature_c": {"path": "env.0.t", "unit": "degC"},
    },
)


def test_flat_json_air_quality_box() -> None:
    payload = {"device": "AQ-0042", "ts": T0 * 1000, "data": {"pm25": 41.7, "no2": "18.4"}, "env": [{"t": 25.1}]}
    (reading,) = parse(AQ, json.dumps(payload)).readings
    assert reading.sensor_id == "AQ-0042"
    assert reading.time == dt.datetime.fromtimestamp(T0, dt.UTC)
    assert {m: (v.value, v.unit) for m, v in reading.values.items()} == {
        "pm2_5": (41.7, "ug/m3"),
        "no2": (18.4, "ppb"),
        "temperature_c": (25.1, "degC"),
    }


def test_flat_json_missing_fields_are_not_measured_and_bad_values_refused_alone() -> None:
    payload = {"device": 42, "ts": T0 * 1000, "data": {"pm25": None, "no2": "n/a"}, "env": [{"t": 25.1}]}
    parsed = parse(AQ, json.dumps(payload))
    (reading,) = parsed.readings
    assert reading.sensor_id == "42"
    assert set(reading.values) == {"temperature_c"}
    assert [(p.code, p.sensor_id) for p in parsed.problems] == [("wrong_type", "42")]
    assert "data.no2" in parsed.problems[0].reason
    assert "n/a" in parsed.problems[0].reason


def test_flat_json_array_holds_several_readings() -> None:
    items = [
        {"device": "AQ-1", "ts": T0 * 1000, "data": {"pm25": 10}},
        {"device": "AQ-1", "ts": "later", "data": {"pm25": 11}},
        {"device": "AQ-1", "ts": (T0 + 60) * 1000, "data": {}},
        "junk",
        {"ts": T0 * 1000, "data": {"pm25": 12}},
    ]
    parsed = parse(AQ, json.dumps(items))
    assert len(parsed.readings) == 1
    assert [p.code for p in parsed.problems] == ["bad_time", "bad_shape", "bad_shape", "bad_shape"]
    assert parsed.problems[0].reason.startswith("item 2: ")


@pytest.mark.parametrize(("payload", "code"), [(b"[]", "bad_shape"), (b"{", "not_json"), (b"NaN", "not_json")])
def test_flat_json_whole_payload_refusals(payload: bytes, code: str) -> None:
    assert refused(AQ, payload).code == code


def test_flat_json_config_checks_paths_and_formats() -> None:
    with pytest.raises(ValidationError, match="dotted"):
        FlatJsonFormat(fields={"pm10": {"path": "data..x", "unit": "ug/m3"}})
    with pytest.raises(ValidationError, match="strptime"):
        FlatJsonFormat(time_format="dd/mm/yyyy", fields={"pm10": {"path": "x", "unit": "ug/m3"}})
    with pytest.raises(ValidationError, match="IANA"):
        FlatJsonFormat(timezone="Mars/Olympus", fields={"pm10": {"path": "x", "unit": "ug/m3"}})
    with pytest.raises(ValidationError):
        FlatJsonFormat(fields={})


# --- csv ------------------------------------------------------------------------------------------

LOGGER = CsvFormat(
    columns=("station", "time", "water_level_m"),
    sensor_id_column="station",
    units={"water_level_m": "cm"},
    time_format="%d/%m/%Y %H:%M",
)


def test_csv_hydromet_logger_local_time_in_cm() -> None:
    parsed = parse(LOGGER, "KIMLONG,26/11/2026 10:00,412\r\n\r\nKIMLONG,26/11/2026 10:10,415\n")
    assert parsed.problems == ()
    first, second = parsed.readings
    assert first.sensor_id == "KIMLONG"
    assert first.time == dt.datetime(2026, 11, 26, 10, tzinfo=HCM)
    assert first.time.astimezone(dt.UTC) == dt.datetime(2026, 11, 26, 3, tzinfo=dt.UTC)
    assert (first.values["water_level_m"].value, first.values["water_level_m"].unit) == (412, "cm")
    assert second.where == "line 3"


def test_csv_bad_lines_are_refused_alone() -> None:
    text = "\n".join(
        [
            "KIMLONG,26/11/2026 10:00,412",
            "KIMLONG,26/11/2026 10:10",
            "KIMLONG,26-11-2026,412",
            "KIMLONG,26/11/2026 10:20,abc",
            ",26/11/2026 10:30,412",
            'KIMLONG,"26/11/2026 10:40,412',
            "KIMLONG,26/11/2026 10:50,",
        ]
    )
    parsed = parse(LOGGER, text)
    assert len(parsed.readings) == 1
    assert [p.code for p in parsed.problems] == [
        "bad_shape",
        "bad_time",
        "wrong_type",
        "bad_shape",
        "not_csv",
        "bad_shape",
    ]
    assert parsed.problems[0].reason.startswith("line 2: 2 columns, expected 3")
    assert parsed.problems[2].sensor_id == "KIMLONG"


def test_csv_header_skipped_decimal_comma_and_skipped_columns() -> None:
    fmt = CsvFormat(
        delimiter=";",
        decimal_comma=True,
        header=True,
        columns=("time", "-", "pm2_5", "temperature_c"),
        units={"pm2_5": "ug/m3", "temperature_c": "degC"},
    )
    (reading,) = parse(fmt, "thoi_gian;pin;bui;nhiet\n2026-11-26T10:00:00+07:00;3,6;35,2;24,5").readings
    assert reading.sensor_id is None
    assert {m: v.value for m, v in reading.values.items()} == {"pm2_5": 35.2, "temperature_c": 24.5}


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"\xff\xfe", "not_csv"), (b"a\x00b", "not_csv"), (b"\n\n", "not_csv"), (b"x" * 0, "not_csv")],
)
def test_csv_whole_payload_refusals(payload: bytes, code: str) -> None:
    assert refused(LOGGER, payload).code == code


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"columns": ("time", "pm25")}, "not metrics"),
        ({"columns": ("time", "time", "water_level_m")}, "exactly once"),
        ({"units": {}}, "give units"),
        ({"columns": ("time", "water_level_m")}, "sensor_id_column"),
        ({"delimiter": ",", "decimal_comma": True}, "delimiter"),
    ],
)
def test_csv_config_checks(change: dict[str, object], words: str) -> None:
    settings: dict[str, object] = {
        "columns": ("station", "time", "water_level_m"),
        "sensor_id_column": "station",
        "units": {"water_level_m": "cm"},
    }
    with pytest.raises(ValidationError, match=words):
        CsvFormat.model_validate({**settings, **change})


# --- times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        ("2026-11-26T03:00:00Z", "iso8601", dt.datetime(2026, 11, 26, 3, tzinfo=dt.UTC)),
        ("2026-11-26 10:00:00", "iso8601", dt.datetime(2026, 11, 26, 3, tzinfo=dt.UTC)),  # naive: Asia/Ho_Chi_Minh
        (T0, "epoch_s", dt.datetime(2026, 11, 26, 3, tzinfo=dt.UTC)),
        (str(T0), "epoch_s", dt.datetime(2026, 11, 26, 3, tzinfo=dt.UTC)),
        (T0 * 1000 + 500, "epoch_ms", dt.datetime(2026, 11, 26, 3, 0, 0, 500_000, tzinfo=dt.UTC)),
        ("26/11/2026 10:00 +0000", "%d/%m/%Y %H:%M %z", dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC)),
    ],
)
def test_time_formats(value: object, fmt: str, expected: dt.datetime) -> None:
    assert parse_time(value, TimeSpec(time_format=fmt), "t") == expected


def test_naive_times_use_the_configured_zone() -> None:
    spec = TimeSpec(time_format="%Y%m%d%H%M", timezone="UTC")
    assert parse_time("202611261000", spec, "t") == dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "fmt"),
    [(True, "epoch_s"), ("abc", "epoch_ms"), (-5, "epoch_s"), (1e20, "epoch_s"), (12, "iso8601"), ("x", "%H")],
)
def test_bad_times_name_field_and_value(value: object, fmt: str) -> None:
    with pytest.raises(BadValueError) as caught:
        parse_time(value, TimeSpec(time_format=fmt), "ts")
    assert caught.value.code == "bad_time"
    assert "ts" in caught.value.reason
