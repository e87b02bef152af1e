"""Our own documented sensor payloads (adapter ``ioc_v1``), one versioned schema per sensor kind.

A station we program ourselves (or a gateway we write) sends one JSON object per reading, named by
its ``schema`` field: ``ioc.water_level/1``, ``ioc.forest_fire/1``, ``ioc.environment/1``. The version
after the slash grows only when an older reader could not parse the new shape; new optional fields
are not a new version. Values are checked for type here and for plausibility by the normaliser (so an
impossible value is dead-lettered as ``impossible_value``, not as a shape error). docs/sensors.md
shows an example of each; a test parses those examples.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from event_contract.models import FiniteFloat

Pollutant = Literal["pm2_5", "pm10", "co", "no2", "so2", "o3"]


class _Payload(BaseModel):
    """Fields every ioc_v1 payload has. Strict: ``"4.12"`` is not a number and unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    sensor_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The station's id (its configured id or payload_id); omitted when the topic names the station.",
    )
    time: AwareDatetime = Field(description="When it measured: ISO 8601 with a UTC offset ('Z' or '+07:00').")


class WaterLevelV1(_Payload):
    """``ioc.water_level/1``: the water level above the station's datum, or the distance down to the water."""

    schema_id: Literal["ioc.water_level/1"] = Field(alias="schema")
    level: FiniteFloat | None = Field(default=None, description="Water level above the datum, in ``unit``.")
    distance: FiniteFloat | None = Field(
        default=None,
        description="Distance from the sensor down to the water, in ``unit`` (ultrasonic/radar sensors); the "
        "sensor's configured sensor_elevation_m turns it into a level. Give level or distance, not both.",
    )
    unit: str = Field(default="m", max_length=16, description="Length unit of level and distance: m, cm, mm, ft.")
    alert_levels_m: tuple[FiniteFloat, FiniteFloat, FiniteFloat] | None = Field(
        default=None, description="The station's báo động 1/2/3 levels in metres above the datum, ascending."
    )
    temperature_c: FiniteFloat | None = Field(default=None, description="Water or air temperature, degC.")

    @model_validator(mode="after")
    def _level_or_distance(self) -> WaterLevelV1:
        if (self.level is None) == (self.distance is None):
            raise ValueError("give exactly one of level and distance")
        return self


class ForestFireV1(_Payload):
    """``ioc.forest_fire/1``: a forest-fire watch station (detectors, weather, the danger level it reports)."""

    schema_id: Literal["ioc.forest_fire/1"] = Field(alias="schema")
    smoke: bool | FiniteFloat | None = Field(default=None, description="Smoke detector: true/false or 0..1.")
    flame: bool | FiniteFloat | None = Field(default=None, description="Flame detector: true/false or 0..1.")
    temperature_c: FiniteFloat | None = Field(default=None, description="Air temperature, degC.")
    humidity_pct: FiniteFloat | None = Field(default=None, description="Relative humidity, %.")
    fire_danger_level: int | None = Field(
        default=None, description="Fire danger level (cấp dự báo cháy rừng) I..V as 1..5, when the station computes it."
    )

    @model_validator(mode="after")
    def _measures_something(self) -> ForestFireV1:
        values = (self.smoke, self.flame, self.temperature_c, self.humidity_pct, self.fire_danger_level)
        if all(v is None for v in values):
            raise ValueError("give at least one of smoke, flame, temperature_c, humidity_pct, fire_danger_level")
        return self


class Concentration(BaseModel):
    """One pollutant's value with its unit."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    value: FiniteFloat = Field(description="The measured concentration (hourly or shorter mean), in ``unit``.")
    unit: str = Field(max_length=16, description="ug/m3, mg/m3, ppm or ppb (ppm/ppb only for gases).")


class EnvironmentV1(_Payload):
    """``ioc.environment/1``: an air-quality and noise station; vn_aqi when the station computes it."""

    schema_id: Literal["ioc.environment/1"] = Field(alias="schema")
    pollutants: dict[Pollutant, Concentration] = Field(
        default_factory=dict, description="pm2_5, pm10, co, no2, so2, o3: each a value with its unit."
    )
    temperature_c: FiniteFloat | None = Field(default=None, description="Air temperature, degC.")
    humidity_pct: FiniteFloat | None = Field(default=None, description="Relative humidity, %.")
    noise_dba: FiniteFloat | None = Field(default=None, description="Sound level, dBA.")
    vn_aqi: FiniteFloat | None = Field(
        default=None, description="The station's own hourly VN_AQI; when absent the normaliser computes it."
    )

    @model_validator(mode="after")
    def _measures_something(self) -> EnvironmentV1:
        extra = (self.temperature_c, self.humidity_pct, self.noise_dba, self.vn_aqi)
        if not self.pollutants and all(v is None for v in extra):
            raise ValueError("give at least one pollutant or one of temperature_c, humidity_pct, noise_dba, vn_aqi")
        return self


IocV1Payload = Annotated[WaterLevelV1 | ForestFireV1 | EnvironmentV1, Field(discriminator="schema_id")]
"""Any ioc_v1 payload, told apart by its ``schema`` field."""

IOC_V1_SCHEMAS: tuple[str, ...] = ("ioc.water_level/1", "ioc.forest_fire/1", "ioc.environment/1")

IOC_V1: TypeAdapter[WaterLevelV1 | ForestFireV1 | EnvironmentV1] = TypeAdapter(IocV1Payload)
"""Validates raw JSON bytes straight into a payload model (pydantic-core parses and checks in one pass)."""
