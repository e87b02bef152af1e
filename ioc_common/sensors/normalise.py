"""From (topic, bytes) to validated ``SensorReadingEvent``s and reasoned rejections.

The one place where payloads become events, shared by the edge agent's MQTT subscriber and central's
province-broker reader. Pure apart from its own small state (each sensor's last accepted time and its
VN_AQI hourly means): no I/O, no threads, no clock: the caller says when the message arrived.

Per message: size limit -> topic -> adapter (bytes -> raw readings) -> per reading: which sensor,
unit conversion, calibration, distance -> level, plausible range, time checks, alert levels, VN_AQI,
event. A payload may give events and rejections at once; one bad reading never hides the good ones,
and ``normalise`` never raises (an unexpected error becomes an ``internal_error`` rejection), so every
message is accounted for.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from event_contract.models import IDENTIFIER_PATTERN
from event_contract.sensors import METRICS, SensorReadingEvent
from ioc_common.dead_letter import DeadLetterCode
from ioc_common.sensors.adapters import parse_payload
from ioc_common.sensors.config import SensorConfig, check_sensors, kind_metrics
from ioc_common.sensors.readings import PayloadError, RawMetric, RawReading
from ioc_common.sensors.topics import matches, specificity
from ioc_common.sensors.units import UnitError, converter
from ioc_common.sensors.vn_aqi import VnAqiAccumulator

EVENT_ID_NAMESPACE: Final = uuid.UUID("6f1c2a4e-8d1b-5e0a-9c3f-2b7d4e6a8c10")
"""uuid5 namespace of sensor event ids: the same (agent, sensor, time) always gives the same id."""

EARLIEST_TIME: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
"""Readings dated before this come from a station whose clock was never set (1970 after a power loss)."""

ROUTE_CACHE_LIMIT: Final = 10_000
"""Distinct topics whose matching sensors are remembered; past this the cache starts over (it only saves time)."""

DECIMALS: Final = 6
"""Converted values are rounded to this many decimals: 412 cm is 4.12 m, not 4.1200000000000001 m."""

ALERT_LEVELS_FIELD: Final = "alert_levels_m"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


@dataclass(frozen=True)
class Rejection:
    """One refused reading or payload: a stable code, a reason naming the field, value and limit."""

    code: DeadLetterCode
    reason: str
    sensor_id: str | None
    """The configured sensor it concerns, when known."""


@dataclass(frozen=True)
class NormaliseResult:
    """What one message gave: never both empty."""

    events: tuple[SensorReadingEvent, ...]
    rejections: tuple[Rejection, ...]


@dataclass(frozen=True)
class _Route:
    """The sensors sharing one topic filter, and the names payloads may call them by."""

    topic_filter: str
    sensors: tuple[SensorConfig, ...]
    by_name: Mapping[str, SensorConfig]


@dataclass
class _Outcome:
    events: list[SensorReadingEvent] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def reject(self, code: DeadLetterCode, reason: str, sensor_id: str | None) -> None:
        self.rejections.append(Rejection(code, reason, sensor_id))


class _RecentTimes:
    """Accepted reading times of one sensor inside its reorder window, oldest first, at most ``LIMIT``."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._order: deque[dt.datetime] = deque()
        self._times: set[dt.datetime] = set()

    def __contains__(self, time: object) -> bool:
        return time in self._times

    def add(self, time: dt.datetime, newest: dt.datetime, window_s: float) -> None:
        self._order.append(time)
        self._times.add(time)
        horizon = newest - dt.timedelta(seconds=window_s)
        # Late readings make the deque only roughly ordered; pruning from the left is still bounded.
        while self._order and (self._order[0] < horizon or len(self._order) > self.LIMIT):
            self._times.discard(self._order.popleft())


def event_id_for(agent_id: str, sensor_id: str, time: dt.datetime) -> uuid.UUID:
    """The deterministic id of a reading: a re-delivered message maps to the same event, which central drops."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{agent_id}\x1f{sensor_id}\x1f{time.astimezone(dt.UTC).isoformat()}")


class SensorNormaliser:
    """Turns sensor messages into contract events for one agent (or one central reader) and its sensors."""

    def __init__(self, agent_id: str, sensors: Sequence[SensorConfig], *, max_payload_bytes: int = 65536) -> None:
        if not _IDENTIFIER.match(agent_id):
            raise ValueError(f"agent_id {agent_id!r} does not match {IDENTIFIER_PATTERN}")
        if max_payload_bytes < 1:
            raise ValueError(f"max_payload_bytes must be >= 1, got {max_payload_bytes}")
        check_sensors(sensors)
        self._agent_id = agent_id
        self._max_payload_bytes = max_payload_bytes
        self._sensors = {s.id: s for s in sensors}
        grouped: dict[str, list[SensorConfig]] = {}
        for sensor in sensors:
            grouped.setdefault(sensor.topic, []).append(sensor)
        routes = [_Route(topic, tuple(group), _names(group)) for topic, group in grouped.items()]
        self._topics = tuple(grouped)
        self._routes = sorted(routes, key=lambda r: specificity(r.topic_filter))
        self._route_cache: dict[str, _Route | None] = {}
        self._last: dict[str, dt.datetime] = {}
        # Accepted times within each sensor's reorder window (newest minus reorder_window_s): a late reading
        # whose time is here is a duplicate, one that is not is taken.
        self._recent: dict[str, _RecentTimes] = {}
        self._aqi: dict[str, VnAqiAccumulator] = {s.id: VnAqiAccumulator() for s in sensors if s.kind == "environment"}
        self._with_alert_levels = ALERT_LEVELS_FIELD in SensorReadingEvent.model_fields

    @property
    def topics(self) -> tuple[str, ...]:
        """The distinct topic filters to subscribe to, in config order."""
        return self._topics

    def last_times(self) -> dict[str, dt.datetime]:
        """Each sensor's last accepted reading time (UTC), to persist across restarts."""
        return dict(self._last)

    def restore_last_times(self, times: Mapping[str, dt.datetime]) -> None:
        """Take back persisted last times (unknown sensors are ignored; a later time already known is kept)."""
        for sensor_id, time in times.items():
            if time.tzinfo is None or time.utcoffset() is None:
                raise ValueError(f"last time of {sensor_id!r} must carry a timezone, got {time!r}")
            if sensor_id in self._sensors:
                known = self._last.get(sensor_id)
                utc = time.astimezone(dt.UTC)
                self._last[sensor_id] = utc if known is None else max(known, utc)

    def normalise(self, topic: str, payload: bytes, received_at: dt.datetime) -> NormaliseResult:
        """Events and rejections of one message; never raises."""
        try:
            outcome = self._normalise(topic, payload, received_at)
        except Exception as error:  # every message must be accounted for, whatever broke
            reason = f"{type(error).__name__}: {error}"[:500]
            return NormaliseResult((), (Rejection("internal_error", reason, None),))
        if not outcome.events and not outcome.rejections:
            outcome.reject("bad_shape", "the payload holds no reading (everything in it is ignored)", None)
        return NormaliseResult(tuple(outcome.events), tuple(outcome.rejections))

    def _normalise(self, topic: str, payload: bytes, received_at: dt.datetime) -> _Outcome:
        if received_at.tzinfo is None or received_at.utcoffset() is None:
            raise ValueError(f"received_at must carry a timezone, got {received_at!r}")
        outcome = _Outcome()
        if len(payload) > self._max_payload_bytes:
            outcome.reject("too_large", f"payload of {len(payload)} bytes exceeds {self._max_payload_bytes}", None)
            return outcome
        route = self._route(topic)
        if route is None:
            outcome.reject("unknown_topic", f"no sensor is configured for topic {topic[:200]!r}", None)
            return outcome
        only = route.sensors[0].id if len(route.sensors) == 1 else None
        try:
            parsed = parse_payload(route.sensors[0].format, payload, received_at)
        except PayloadError as error:
            outcome.reject(error.code, error.reason, only)
            return outcome
        for problem in parsed.problems:
            named = route.by_name.get(problem.sensor_id) if problem.sensor_id is not None else None
            outcome.reject(problem.code, problem.reason, named.id if named is not None else only)
        for reading in parsed.readings:
            self._reading(route, reading, received_at.astimezone(dt.UTC), outcome)
        return outcome

    def _route(self, topic: str) -> _Route | None:
        if topic in self._route_cache:
            return self._route_cache[topic]
        found = next((r for r in self._routes if matches(r.topic_filter, topic)), None)
        if len(self._route_cache) >= ROUTE_CACHE_LIMIT:
            self._route_cache.clear()
        self._route_cache[topic] = found
        return found

    def _reading(self, route: _Route, reading: RawReading, received_at: dt.datetime, outcome: _Outcome) -> None:
        prefix = f"{reading.where}: " if reading.where else ""
        sensor = _sensor_of(route, reading, prefix, outcome)
        if sensor is None:
            return
        if reading.kind is not None and reading.kind != sensor.kind:
            outcome.reject(
                "bad_shape", f"{prefix}a {reading.kind} payload for {sensor.kind} sensor {sensor.id}", sensor.id
            )
            return
        values = self._values(sensor, reading, prefix, outcome)
        if not values:
            return
        try:
            time = reading.time.astimezone(dt.UTC)
        except (OverflowError, ValueError):  # year 1 at +07:00 is year 0 in UTC
            reason = f"{prefix}time {reading.time.isoformat()} cannot be expressed in UTC"
            outcome.reject("bad_time", reason, sensor.id)
            return
        if not self._time_ok(sensor, time, received_at, prefix, outcome):
            return
        extra: dict[str, Any] = {}
        if sensor.kind == "water_level" and self._with_alert_levels:
            levels = sensor.alert_levels_m or _checked_levels(reading.alert_levels_m, sensor.id, prefix, outcome)
            if levels is not None:
                extra[ALERT_LEVELS_FIELD] = levels
        accumulator = self._aqi.get(sensor.id)
        if accumulator is not None:
            accumulator.add(time, values)
            if "vn_aqi" not in values:
                aqi = accumulator.aqi_at(time)
                if aqi is not None:
                    values["vn_aqi"] = float(aqi.aqi)
        try:
            event = SensorReadingEvent(
                event_id=event_id_for(self._agent_id, sensor.id, time),
                agent_id=self._agent_id,
                source_id=sensor.id,
                time=time,
                sensor_kind=sensor.kind,
                values=values,
                **extra,
            )
        except ValidationError as error:
            outcome.reject("impossible_value", f"{prefix}{_first_error(error)}", sensor.id)
            return
        last = self._last.get(sensor.id)
        self._last[sensor.id] = time if last is None else max(last, time)
        if sensor.reorder_window_s > 0:
            self._recent.setdefault(sensor.id, _RecentTimes()).add(time, self._last[sensor.id], sensor.reorder_window_s)
        outcome.events.append(event)

    def _values(self, sensor: SensorConfig, reading: RawReading, prefix: str, outcome: _Outcome) -> dict[str, float]:
        """Converted, calibrated, range-checked values; each bad one is refused alone."""
        allowed = kind_metrics(sensor.kind)
        converted: dict[RawMetric, float] = {}
        for metric, raw in reading.values.items():
            if metric not in allowed:
                outcome.reject(
                    "bad_shape", f"{prefix}{raw.field}: a {sensor.kind} sensor does not report {metric}", sensor.id
                )
                continue
            try:
                value = converter(metric, raw.unit)(raw.value)
            except UnitError as error:
                outcome.reject("bad_shape", f"{prefix}{raw.field}: {error}", sensor.id)
                continue
            calibration = sensor.calibration.get(metric)
            calibrated = value if calibration is None else calibration.apply(value)
            converted[metric] = round(calibrated, DECIMALS)
        values: dict[str, float] = {}
        for metric, value in converted.items():
            raw = reading.values[metric]
            unit = "m" if metric == "distance" else METRICS[metric].unit
            shown = f"{raw.field} {value:g} {unit}"
            if metric == "distance":
                level = _level_from_distance(sensor, value, "water_level_m" in converted, f"{prefix}{shown}", outcome)
                if level is not None:
                    values["water_level_m"] = level
                continue
            problem = _out_of_range(metric, value, shown)
            if problem:
                outcome.reject("impossible_value", f"{prefix}{problem}", sensor.id)
            else:
                values[metric] = value
        return values

    def _time_ok(
        self, sensor: SensorConfig, time: dt.datetime, received_at: dt.datetime, prefix: str, outcome: _Outcome
    ) -> bool:
        stamp = time.isoformat().replace("+00:00", "Z")
        if time < EARLIEST_TIME:
            outcome.reject(
                "bad_time", f"{prefix}time {stamp} is before 2000: the station's clock is not set", sensor.id
            )
            return False
        ahead = (time - received_at).total_seconds()
        if ahead > sensor.max_future_s:
            outcome.reject(
                "future_time",
                f"{prefix}time {stamp} is {ahead:.0f} s after the message arrived; "
                f"the limit is {sensor.max_future_s:g} s",
                sensor.id,
            )
            return False
        return self._order_ok(sensor, time, stamp, prefix, outcome)

    def _order_ok(self, sensor: SensorConfig, time: dt.datetime, stamp: str, prefix: str, outcome: _Outcome) -> bool:
        """Later than the newest accepted reading, or late within the reorder window and not seen before."""
        last = self._last.get(sensor.id)
        if last is None:
            return True
        after = (time - last).total_seconds()
        last_stamp = last.isoformat().replace("+00:00", "Z")
        if after < 0:
            recent = self._recent.get(sensor.id)
            if recent is not None and time in recent:
                outcome.reject("duplicate_time", f"{prefix}time {stamp} was already accepted", sensor.id)
                return False
            if -after <= sensor.reorder_window_s:
                return True  # late, within the reorder window, and new: taken
            window = f" by more than reorder_window_s {sensor.reorder_window_s:g} s" if sensor.reorder_window_s else ""
            outcome.reject(
                "out_of_order",
                f"{prefix}time {stamp} is before the last accepted reading at {last_stamp}{window}",
                sensor.id,
            )
            return False
        if after == 0 or after < sensor.min_interval_s:
            limit = f" (min_interval_s {sensor.min_interval_s:g})" if after else ""
            outcome.reject(
                "duplicate_time",
                f"{prefix}time {stamp} is {after:g} s after the last accepted reading at {last_stamp}{limit}",
                sensor.id,
            )
            return False
        return True


def _names(group: Sequence[SensorConfig]) -> dict[str, SensorConfig]:
    names: dict[str, SensorConfig] = {}
    for sensor in group:
        names.setdefault(sensor.id, sensor)
        if sensor.payload_id is not None:
            names[sensor.payload_id] = sensor
    return names


def _sensor_of(route: _Route, reading: RawReading, prefix: str, outcome: _Outcome) -> SensorConfig | None:
    if reading.sensor_id is not None:
        sensor = route.by_name.get(reading.sensor_id)
        if sensor is None:
            shown = reading.sensor_id if len(reading.sensor_id) <= 80 else reading.sensor_id[:77] + "..."
            names = sorted(route.by_name)
            known = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            outcome.reject(
                "unknown_sensor",
                f"{prefix}sensor {shown!r} is not configured for topic {route.topic_filter!r} (configured: {known})",
                None,
            )
        return sensor
    if len(route.sensors) == 1:
        return route.sensors[0]
    ids = ", ".join(s.id for s in route.sensors)
    outcome.reject("unknown_sensor", f"{prefix}the payload names no sensor and its topic carries {ids}", None)
    return None


def _out_of_range(metric: str, value: float, shown: str) -> str | None:
    spec = METRICS[metric]
    if value < spec.low:
        return f"{shown} is below the possible {spec.low:g} {spec.unit}"
    if value > spec.high:
        return f"{shown} is above the possible {spec.high:g} {spec.unit}"
    return None


def _level_from_distance(
    sensor: SensorConfig, distance: float, has_level: bool, shown: str, outcome: _Outcome
) -> float | None:
    if sensor.sensor_elevation_m is None:
        outcome.reject(
            "bad_shape", f"{shown}: a distance needs sensor_elevation_m in sensor {sensor.id}'s config", sensor.id
        )
        return None
    if has_level:
        outcome.reject("bad_shape", f"{shown}: the reading has both a level and a distance", sensor.id)
        return None
    if distance < 0:
        outcome.reject("impossible_value", f"{shown} is below the possible 0 m", sensor.id)
        return None
    level = round(sensor.sensor_elevation_m - distance, DECIMALS)
    problem = _out_of_range("water_level_m", level, f"{shown} gives level {level:g} m, which")
    if problem:
        outcome.reject("impossible_value", problem, sensor.id)
        return None
    return level


def _checked_levels(
    levels: tuple[float, float, float] | None, sensor_id: str, prefix: str, outcome: _Outcome
) -> tuple[float, float, float] | None:
    """The station's own alert levels if they make sense; else refused (the reading itself still counts)."""
    if levels is None:
        return None
    spec = METRICS["water_level_m"]
    if spec.low <= levels[0] < levels[1] < levels[2] <= spec.high:
        return levels
    outcome.reject(
        "impossible_value",
        f"{prefix}alert_levels_m {list(levels)} must ascend within {spec.low:g}..{spec.high:g} m",
        sensor_id,
    )
    return None


def _first_error(error: ValidationError) -> str:
    detail = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in detail["loc"])
    return f"{where}: {detail['msg']}" if where else detail["msg"]
