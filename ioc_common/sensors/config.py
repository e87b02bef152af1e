"""Per-sensor configuration: which topic, which payload adapter, calibration, alert levels, time rules.

The edge agent's site config holds a ``sensors:`` list of these; central's direct province-broker
reader uses the same model. ``check_sensors`` validates a whole list (unique ids, consistent topics)
so both sides refuse the same mistakes at start, not at the first message.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from event_contract.models import FiniteFloat, Identifier
from event_contract.sensors import KIND_METRICS, METRICS, SensorKind
from ioc_common.sensors.adapters import AdapterFormat, CsvFormat, FlatJsonFormat, IocV1Format, SenmlFormat
from ioc_common.sensors.calibration import Calibration
from ioc_common.sensors.readings import RawMetric
from ioc_common.sensors.topics import check_filter
from ioc_common.sensors.units import UnitError, converter

WATER_LEVEL = METRICS["water_level_m"]


def kind_metrics(kind: SensorKind) -> frozenset[str]:
    """The raw metrics a station of ``kind`` may send: the contract's, plus ``distance`` for water level."""
    allowed = KIND_METRICS[kind]
    return allowed | {"distance"} if kind == "water_level" else allowed


class SensorConfig(BaseModel):
    """One field sensor (station) read over MQTT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier = Field(description="Stable sensor id, sent in events as source_id (e.g. tram-kim-long).")
    kind: SensorKind = Field(description="water_level | forest_fire | environment.")
    topic: str = Field(
        description="MQTT topic or filter (+ one level, # the rest) its messages arrive on; several sensors may "
        "share one when their payloads name the station."
    )
    name: str = Field(default="", max_length=200, description="Display name, e.g. 'Trạm Kim Long - sông Hương'.")
    payload_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The id the station uses for itself in payloads (a logger's code such as KIMLONG, a SenML "
        "base name); null: payloads name it by `id` (or do not name it at all).",
    )
    format: AdapterFormat = Field(
        default_factory=IocV1Format,
        description="Payload adapter, picked by `type`: ioc_v1 (default, our JSON) | senml | flat_json | csv.",
    )
    calibration: dict[RawMetric, Calibration] = Field(
        default_factory=dict,
        description="Metric -> {scale: 1.0, offset: 0.0}, applied after unit conversion: si = raw_si*scale+offset. "
        "For a distance sensor, calibrate `distance`.",
    )
    alert_levels_m: tuple[FiniteFloat, FiniteFloat, FiniteFloat] | None = Field(
        default=None,
        description="Water level only: báo động 1/2/3 in m above the datum, ascending; sent with each reading "
        "(the station's own levels are used when this is null and the payload has them).",
    )
    datum: str = Field(
        default="", max_length=100, description="Water level only: the height datum levels refer to, e.g. 'Hòn Dấu'."
    )
    sensor_elevation_m: FiniteFloat | None = Field(
        default=None,
        ge=WATER_LEVEL.low,
        le=WATER_LEVEL.high,
        description="Water level only: height of an ultrasonic/radar sensor above the datum, for sensors that send "
        "`distance` (sensor down to the water): level = sensor_elevation_m - distance. null: no distance readings.",
    )
    silent_after_s: float = Field(
        default=900.0,
        gt=0,
        le=7 * 86_400,
        description="No accepted reading for this long: the sensor is reported silent.",
    )
    max_future_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="Readings dated more than this ahead of the receive time are refused.",
    )
    min_interval_s: float = Field(
        default=0.0,
        ge=0,
        le=86_400,
        description="A reading must be dated at least this long after the previous accepted one (0: just later); "
        "earlier is refused as out_of_order, equal or too close as duplicate_time.",
    )
    reorder_window_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="A reading up to this much older than the newest accepted one is still taken when its time "
        "was not seen before (a station or broker re-sending its backlog after a reconnect may interleave it "
        "with new readings); older is refused as out_of_order, a time already accepted as duplicate_time. "
        "0: strictly increasing times only.",
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return check_filter(value)

    @model_validator(mode="after")
    def _consistent(self) -> SensorConfig:
        if self.kind != "water_level":
            water_only = ("alert_levels_m", "sensor_elevation_m", "datum")
            set_here = [name for name in water_only if getattr(self, name) not in (None, "")]
            if set_here:
                raise ValueError(f"sensor {self.id!r}: {', '.join(set_here)} apply to water_level sensors only")
        levels = self.alert_levels_m
        if levels is not None and not (WATER_LEVEL.low <= levels[0] < levels[1] < levels[2] <= WATER_LEVEL.high):
            raise ValueError(f"sensor {self.id!r}: alert_levels_m {list(levels)} must ascend within -100..1000 m")
        mapped = _format_metrics(self.format)
        wrong = (set(self.calibration) | set(mapped)) - kind_metrics(self.kind)
        if wrong:
            raise ValueError(f"sensor {self.id!r}: a {self.kind} station does not report {sorted(wrong)}")
        for metric, unit in mapped.items():
            try:
                if unit is not None:
                    converter(metric, unit)
            except UnitError as error:
                raise ValueError(f"sensor {self.id!r}: {error}") from None
        if ("distance" in self.calibration or "distance" in mapped) and self.sensor_elevation_m is None:
            raise ValueError(f"sensor {self.id!r}: distance readings need sensor_elevation_m")
        return self


def _format_metrics(fmt: IocV1Format | SenmlFormat | FlatJsonFormat | CsvFormat) -> dict[RawMetric, str | None]:
    """The metrics a format's config names, with their configured unit (None: the payload gives it)."""
    if isinstance(fmt, FlatJsonFormat):
        return {metric: spec.unit for metric, spec in fmt.fields.items()}
    if isinstance(fmt, CsvFormat):
        return dict(fmt.units)
    if isinstance(fmt, SenmlFormat):
        return dict.fromkeys(fmt.names.values())
    return {}


def check_sensors(sensors: Sequence[SensorConfig]) -> None:
    """Refuse a sensor list the normaliser could not route unambiguously; raises ValueError naming the sensors.

    - ids are unique, and so are the names payloads may use (id and payload_id) among sensors sharing a topic;
    - sensors with the same topic filter share one payload format (one message is parsed one way).
    """
    ids = [s.id for s in sensors]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"sensor ids used twice: {twice}")
    by_topic: dict[str, list[SensorConfig]] = {}
    for sensor in sensors:
        by_topic.setdefault(sensor.topic, []).append(sensor)
    for topic, group in by_topic.items():
        formats = {s.format.model_dump_json() for s in group}
        if len(formats) > 1:
            raise ValueError(f"sensors {[s.id for s in group]} share topic {topic!r} but not their format")
        owners: dict[str, str] = {}
        for sensor in group:
            for name in {sensor.id, sensor.payload_id or sensor.id}:
                if owners.setdefault(name, sensor.id) != sensor.id:
                    raise ValueError(
                        f"sensors {owners[name]!r} and {sensor.id!r} on topic {topic!r} are both called {name!r} "
                        "in payloads: give them distinct payload ids"
                    )
