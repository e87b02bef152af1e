"""Fuzzing the normaliser: random bytes, random JSON and mutated valid payloads of every adapter.

Whatever arrives, ``normalise`` returns (never raises) and accounts for the message: at least one event
or rejection, every rejection with a known code and a reason, every event a validated contract event.
(The 100,000-message fuzz through a real broker lives with the subscriber's tests.)
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, get_args

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from event_contract import SensorReadingEvent
from ioc_common.dead_letter import DeadLetterCode
from ioc_common.sensors.config import SensorConfig
from ioc_common.sensors.normalise import NormaliseResult, SensorNormaliser

CODES = set(get_args(DeadLetterCode))
T0 = 1_795_662_000  # 2026-11-26T03:00:00Z
FUZZ = settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

SENSORS = [
    SensorConfig.model_validate(s)
    for s in (
        {"id": "wl", "kind": "water_level", "topic": "ioc/wl", "sensor_elevation_m": 9.5},
        {"id": "fire", "kind": "forest_fire", "topic": "ioc/fire"},
        {"id": "env", "kind": "environment", "topic": "ioc/env"},
        {
            "id": "bridge",
            "kind": "water_level",
            "topic": "senml/+",
            "sensor_elevation_m": 9.5,
            "format": {"type": "senml", "names": {"dist": "distance"}, "ignore": ["bat"]},
        },
        {
            "id": "aq",
            "kind": "environment",
            "topic": "vendor/aq",
            "payload_id": "AQ-1",
            "format": {
                "type": "flat_json",
                "time_field": "ts",
                "time_format": "epoch_ms",
                "sensor_id_field": "device",
                "fields": {"pm2_5": {"path": "data.pm25", "unit": "ug/m3"}, "no2": {"path": "data.no2", "unit": "ppb"}},
            },
        },
        {
            "id": "logger",
            "kind": "water_level",
            "topic": "loggers/#",
            "payload_id": "KIMLONG",
            "format": {
                "type": "csv",
                "columns": ["station", "time", "water_level_m"],
                "sensor_id_column": "station",
                "units": {"water_level_m": "cm"},
                "time_format": "%d/%m/%Y %H:%M",
            },
        },
    )
]

VALID: dict[str, Any] = {
    "ioc/wl": {"schema": "ioc.water_level/1", "time": "2026-11-26T03:00:00Z", "level": 4.12, "unit": "m"},
    "ioc/fire": {"schema": "ioc.forest_fire/1", "time": "2026-11-26T03:00:00Z", "smoke": True, "temperature_c": 31},
    "ioc/env": {
        "schema": "ioc.environment/1",
        "time": "2026-11-26T03:00:00Z",
        "pollutants": {"pm2_5": {"value": 35.2, "unit": "ug/m3"}, "co": {"value": 0.9, "unit": "ppm"}},
        "noise_dba": 61,
    },
    "senml/bridge": [{"bn": "bridge:", "bt": T0, "bu": "cm", "n": "dist", "v": 512}, {"n": "bat", "v": 3.6}],
    "vendor/aq": {"device": "AQ-1", "ts": T0 * 1000, "data": {"pm25": 41.7, "no2": 18.4}},
}
CSV_TOPIC = "loggers/hue"
CSV_VALID = "KIMLONG,26/11/2026 10:00,412\nKIMLONG,26/11/2026 10:10,415"
TOPICS = [*VALID, CSV_TOPIC, "unknown/topic"]

EDGE_STRINGS = [
    "0001-01-01T00:00:00+07:00",  # turns into year 0 in UTC
    "9999-12-31T23:59:59-07:00",  # turns into year 10000 in UTC
    "2026-11-26T03:00:00Z",
    "2026-11-26T03:00:00",
    "1970-01-01T00:00:00Z",
    "4.12",
    "NaN",
    "1e400",
    "ppb",
    "cm",
    "AQ-1",
]
"""Strings that sit on the edges of what the adapters parse (times near datetime's limits, numeric text)."""

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(EDGE_STRINGS),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
arrivals = st.datetimes(
    min_value=dt.datetime(1999, 1, 1),  # noqa: DTZ001 -- hypothesis takes naive bounds, timezones= makes them aware
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
) | st.just(dt.datetime(2026, 11, 26, 3, 5, tzinfo=dt.UTC))


def accounted(topic: str, payload: bytes, received_at: dt.datetime) -> NormaliseResult:
    result = SensorNormaliser("fuzz-agent", SENSORS).normalise(topic, payload, received_at)
    assert result.events or result.rejections
    for rejection in result.rejections:
        assert rejection.code in CODES
        assert rejection.reason
        assert rejection.code != "internal_error", rejection.reason  # a crash would be a bug, even if caught
    for event in result.events:
        assert isinstance(event, SensorReadingEvent)
        SensorReadingEvent.model_validate(event.model_dump())
    return result


def test_the_valid_seeds_are_valid() -> None:
    received = dt.datetime(2026, 11, 26, 3, 5, tzinfo=dt.UTC)
    for topic, payload in VALID.items():
        assert accounted(topic, json.dumps(payload).encode(), received).rejections == ()
    assert accounted(CSV_TOPIC, CSV_VALID.encode(), received).rejections == ()


@FUZZ
@given(topic=st.sampled_from(TOPICS), payload=st.binary(max_size=300), received_at=arrivals)
def test_random_bytes(topic: str, payload: bytes, received_at: dt.datetime) -> None:
    accounted(topic, payload, received_at)


@FUZZ
@given(topic=st.sampled_from(TOPICS), value=json_values, received_at=arrivals)
def test_random_json(topic: str, value: object, received_at: dt.datetime) -> None:
    accounted(topic, json.dumps(value).encode(), received_at)


def mutate(document: Any, draw: st.DrawFn) -> Any:
    """Replace, delete or add one thing somewhere in a JSON document."""
    if isinstance(document, dict) and document and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(document)))
        action = draw(st.sampled_from(["replace", "delete", "descend", "add"]))
        copy = dict(document)
        if action == "replace":
            copy[key] = draw(json_values)
        elif action == "delete":
            del copy[key]
        elif action == "descend":
            copy[key] = mutate(copy[key], draw)
        else:
            copy[draw(st.text(max_size=8))] = draw(json_values)
        return copy
    if isinstance(document, list) and document and draw(st.booleans()):
        index = draw(st.integers(0, len(document) - 1))
        copy_list = list(document)
        copy_list[index] = mutate(copy_list[index], draw)
        return copy_list
    return draw(json_values) if draw(st.booleans()) else document


@st.composite
def mutated_json(draw: st.DrawFn) -> tuple[str, bytes]:
    topic = draw(st.sampled_from(sorted(VALID)))
    document = VALID[topic]
    for _ in range(draw(st.integers(1, 3))):
        document = mutate(document, draw)
    return topic, json.dumps(document).encode()


@FUZZ
@given(case=mutated_json(), received_at=arrivals)
def test_mutated_json_payloads(case: tuple[str, bytes], received_at: dt.datetime) -> None:
    accounted(*case, received_at)


@st.composite
def mutated_bytes(draw: st.DrawFn) -> tuple[str, bytes]:
    topic = draw(st.sampled_from([*sorted(VALID), CSV_TOPIC]))
    data = bytearray(CSV_VALID.encode() if topic == CSV_TOPIC else json.dumps(VALID[topic]).encode())
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or not data:
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del data[max(0, position - 1) : position + draw(st.integers(0, 3))]
        else:
            data[min(position, len(data) - 1)] ^= draw(st.integers(1, 255))
    return topic, bytes(data)


@FUZZ
@given(case=mutated_bytes(), received_at=arrivals)
def test_mutated_bytes_of_every_adapter(case: tuple[str, bytes], received_at: dt.datetime) -> None:
    accounted(*case, received_at)


csv_cells = st.one_of(
    st.sampled_from(["KIMLONG", "PHUOC", "", "26/11/2026 10:00", "31/02/2026 10:00", "412", "-1e9", "nan", '"']),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=10),
)


@FUZZ
@given(
    lines=st.lists(st.lists(csv_cells, min_size=0, max_size=5), min_size=0, max_size=6),
    separator=st.sampled_from(["\n", "\r\n", "\r"]),
    received_at=arrivals,
)
def test_random_csv_lines(lines: list[list[str]], separator: str, received_at: dt.datetime) -> None:
    text = separator.join(",".join(cells) for cells in lines)
    accounted(CSV_TOPIC, text.encode("utf-8", "surrogatepass"), received_at)


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


@FUZZ
@given(time=st.datetimes(timezones=offsets), received_at=arrivals)
@example(time=dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=7))), received_at=dt.datetime.now(dt.UTC))
@example(time=dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-7))), received_at=dt.datetime.now(dt.UTC))
def test_any_time_a_payload_can_carry(time: dt.datetime, received_at: dt.datetime) -> None:
    # datetime's whole range with any offset: converting to UTC may leave it (year 0 or 10000).
    payload = {**VALID["ioc/wl"], "time": time.isoformat()}
    accounted("ioc/wl", json.dumps(payload).encode(), received_at)
    line = f"KIMLONG,{time.strftime('%d/%m/%Y %H:%M')},412"
    accounted(CSV_TOPIC, line.encode(), received_at)
