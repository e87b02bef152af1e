"""Field sensor readings (schema 1.2): water level, forest fire and environment stations, in SI-style units.

The edge normalises each vendor's payload to these metrics and units (see the sensors issue);
central stores one row per metric. A value outside its plausible range is refused here, so a
broken probe (a water level of -500 m) never reaches the alert rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, model_validator

from event_contract.models import EventBase, FiniteFloat, require_schema

SensorKind = Literal["water_level", "forest_fire", "environment"]
SensorMetric = Literal[
    "water_level_m",
    "smoke",
    "flame",
    "temperature_c",
    "humidity_pct",
    "fire_danger_level",
    "pm2_5",
    "pm10",
    "co",
    "no2",
    "so2",
    "o3",
    "noise_db",
    "vn_aqi",
]


@dataclass(frozen=True)
class MetricSpec:
    unit: str
    low: float
    high: float
    meaning: str


METRICS: dict[str, MetricSpec] = {
    "water_level_m": MetricSpec("m", -100.0, 1000.0, "water level above the station's datum"),
    "smoke": MetricSpec("1", 0.0, 1.0, "smoke detected: 0..1 (a detector's alarm is 1)"),
    "flame": MetricSpec("1", 0.0, 1.0, "flame detected: 0..1 (a detector's alarm is 1)"),
    "temperature_c": MetricSpec("degC", -50.0, 200.0, "air temperature"),
    "humidity_pct": MetricSpec("%", 0.0, 100.0, "relative humidity"),
    "fire_danger_level": MetricSpec("level", 1.0, 5.0, "forest fire danger level I..V as the station reports it"),
    "pm2_5": MetricSpec("ug/m3", 0.0, 2000.0, "PM2.5 mass concentration"),
    "pm10": MetricSpec("ug/m3", 0.0, 3000.0, "PM10 mass concentration"),
    "co": MetricSpec("ug/m3", 0.0, 200_000.0, "carbon monoxide"),
    "no2": MetricSpec("ug/m3", 0.0, 10_000.0, "nitrogen dioxide"),
    "so2": MetricSpec("ug/m3", 0.0, 10_000.0, "sulphur dioxide"),
    "o3": MetricSpec("ug/m3", 0.0, 10_000.0, "ozone"),
    "noise_db": MetricSpec("dBA", 0.0, 160.0, "sound level"),
    "vn_aqi": MetricSpec("index", 0.0, 500.0, "Vietnamese AQI (Decision 1459/QD-TCMT)"),
}
"""Unit and plausible range of every metric; values outside are impossible readings, not alarms."""

KIND_METRICS: dict[str, frozenset[str]] = {
    "water_level": frozenset({"water_level_m", "temperature_c"}),
    "forest_fire": frozenset({"smoke", "flame", "temperature_c", "humidity_pct", "fire_danger_level"}),
    "environment": frozenset(
        {"pm2_5", "pm10", "co", "no2", "so2", "o3", "temperature_c", "humidity_pct", "noise_db", "vn_aqi"}
    ),
}
"""Which metrics each kind of station may report."""

SensorValues = Annotated[dict[SensorMetric, FiniteFloat], Field(min_length=1, max_length=len(METRICS))]


class SensorReadingEvent(EventBase):
    """What one station measured at ``time``; ``source_id`` is the sensor's configured id."""

    kind: Literal["sensor_reading"] = "sensor_reading"
    sensor_kind: SensorKind
    values: SensorValues = Field(description="Metric -> value in the metric's unit (see METRICS).")
    alert_levels_m: tuple[FiniteFloat, FiniteFloat, FiniteFloat] | None = Field(
        default=None,
        description="A water-level station's own alert levels báo động 1/2/3 in m above its datum, ascending "
        "(schema 1.3 on); central's rules may use them instead of fixed levels.",
    )

    @model_validator(mode="after")
    def _plausible(self) -> SensorReadingEvent:
        require_schema(self.schema_version, "1.2", "sensor_reading")
        allowed = KIND_METRICS[self.sensor_kind]
        for metric, value in self.values.items():
            if metric not in allowed:
                raise ValueError(f"a {self.sensor_kind} station does not report {metric!r}")
            spec = METRICS[metric]
            if not spec.low <= value <= spec.high:
                raise ValueError(
                    f"{metric} = {value} {spec.unit} is outside the possible range {spec.low}..{spec.high}"
                )
        if self.alert_levels_m is not None:
            require_schema(self.schema_version, "1.3", "sensor_reading.alert_levels_m")
            if self.sensor_kind != "water_level":
                raise ValueError("alert_levels_m belongs to water_level stations only")
            low, high = METRICS["water_level_m"].low, METRICS["water_level_m"].high
            first, second, third = self.alert_levels_m
            if not (low <= first < second < third <= high):
                raise ValueError(
                    f"alert_levels_m {list(self.alert_levels_m)} must be strictly ascending within {low}..{high}"
                )
        return self
