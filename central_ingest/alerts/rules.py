"""The alert rules file (YAML): camera groups (junctions) and the rules, validated by pydantic.

Every knob has a default and a description, unknown keys are errors, and ``load_rules`` reports
a bad file as ``ioc_common.yaml_files.ConfigError`` pointing at FILE:LINE:COL. Thresholds are ``Decimal``
so that the comparisons in ``evaluate`` can be exact (a configured 20.1 is 201/10, not a float
that is a hair above or below it).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from central_ingest.alerts.notice import Severity
from event_contract import SensorKind, SensorMetric
from event_contract.models import IDENTIFIER_PATTERN
from ioc_common.yaml_files import load_model

RuleId = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, description="Unique id of the rule.")]
Id = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
Period = Literal["1d", "1h"]
PERIOD_SECONDS: dict[str, int] = {"1d": 86_400, "1h": 3_600}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceRef(_Model):
    """One camera or sensor: the agent that reads it and its id within that agent."""

    agent_id: Id = Field(description="The edge agent's id.")
    source_id: Id = Field(description="The camera's or sensor's id within the agent.")

    @property
    def key(self) -> str:
        return f"{self.agent_id}/{self.source_id}"


class Junction(_Model):
    """A camera group whose violations are counted together (a junction, a road section)."""

    id: Id = Field(description="Junction id, used in alert subjects (junction:<id>).")
    name_vi: str = Field(default="", description="Vietnamese name shown in messages; default: the id.")
    name_en: str = Field(default="", description="English name shown in messages; default: name_vi or the id.")
    cameras: tuple[SourceRef, ...] = Field(default=(), description="The cameras that watch the junction.")


class _RuleBase(_Model):
    id: RuleId
    enabled: bool = Field(default=True, description="A disabled rule is neither evaluated nor listed as active.")
    severity: Severity = Field(default="warning", description="Severity of the alerts this rule opens.")


class ViolationIncreaseRule(_RuleBase):
    """Vi phạm tăng 20%: a junction's violations this period exceed the trailing average by more than X%."""

    kind: Literal["violation_increase"] = "violation_increase"
    junctions: tuple[Id, ...] | Literal["all"] = Field(default="all", description="Junction ids, or all.")
    categories: tuple[Literal["violation", "incident"], ...] = Field(
        default=("violation", "incident"),
        min_length=1,
        description="violations.category values counted: violation (offences), incident (accidents, stops...).",
    )
    period: Period = Field(default="1d", description="Period length, aligned to local midnight of the timezone.")
    window_periods: int = Field(default=30, ge=1, le=400, description="Baseline: this many periods before.")
    threshold_pct: Decimal = Field(default=Decimal(20), ge=0, le=10_000, description="Fires above +X% (exclusive).")
    min_coverage: Decimal = Field(
        default=Decimal("0.8"), ge=0, le=1, description="A period with less analysed coverage is left out."
    )
    min_baseline_periods: int = Field(default=7, ge=1, description="Fewer good periods: insufficient baseline.")
    min_count: int = Field(default=5, ge=0, description="Never fire on fewer violations than this in the period.")


class ProgressBehindRule(_RuleBase):
    """Chậm tiến độ 10%: actual % complete more than X points behind the approved plan on the same date."""

    kind: Literal["progress_behind"] = "progress_behind"
    projects: tuple[Id, ...] | Literal["all"] = Field(default="all", description="Project ids, or all planned.")
    threshold_points: Decimal = Field(default=Decimal(10), ge=0, le=100, description="Fires above X points.")
    critical_packages: dict[str, tuple[Id, ...]] = Field(
        default_factory=dict, description="Per project, work packages checked too (the whole project always is)."
    )
    min_confidence: Decimal = Field(
        default=Decimal("0.5"), ge=0, le=1, description="Less confident estimates raise a needs-confirmation notice."
    )


class Level(_Model):
    """One graded level of a threshold, e.g. báo động 2 at 4.5 m."""

    name: Id = Field(description="Level id, e.g. bao_dong_2, kem, fire.")
    value: Decimal = Field(description="The level in the metric's unit; reached when value >= it (above).")
    severity: Severity = Field(default="warning", description="Severity of an alert at this level.")
    label_vi: str = Field(default="", description="Vietnamese label; default from the name (bao_dong_2: báo động 2).")
    label_en: str = Field(default="", description="English label; default from the name.")


class StationLevels(_Model):
    """Levels of one station, replacing the rule's levels for it (each hydrological station has its own)."""

    agent_id: Id = Field(description="The edge agent's id.")
    source_id: Id = Field(description="The sensor's id.")
    levels: tuple[Level, ...] = Field(min_length=1, description="Ordered from least to most severe.")


class _SensorRule(_RuleBase):
    sensors: tuple[SourceRef, ...] | None = Field(default=None, description="Listed sensors; null: sensor_kind.")
    sensor_kind: SensorKind | None = Field(default=None, description="Every sensor of this kind (when no list).")
    metric: SensorMetric = Field(description="The metric compared (event_contract.sensors METRICS).")
    active_within_s: int = Field(
        default=86_400, gt=0, description="With sensor_kind: sensors that reported within this long are subjects."
    )

    @model_validator(mode="after")
    def _one_selector(self) -> _SensorRule:
        if (self.sensors is None) == (self.sensor_kind is None):
            raise ValueError("give exactly one of sensors (a list) or sensor_kind (all of a kind)")
        return self

    def selects(self, agent_id: str, source_id: str, sensor_kind: str) -> bool:
        if self.sensors is not None:
            return any(s.agent_id == agent_id and s.source_id == source_id for s in self.sensors)
        return sensor_kind == self.sensor_kind


def _ordered(levels: tuple[Level, ...], direction: str) -> None:
    values = [level.value for level in levels]
    wanted = sorted(values) if direction == "above" else sorted(values, reverse=True)
    if values != wanted or len(set(values)) != len(values):
        raise ValueError(f"levels must be strictly {'increasing' if direction == 'above' else 'decreasing'}")
    if len({level.name for level in levels}) != len(levels):
        raise ValueError("level names must be unique")


class SensorThresholdRule(_SensorRule):
    """A metric beyond graded levels for min_duration_s, cleared past level - hysteresis for as long."""

    kind: Literal["sensor_threshold"] = "sensor_threshold"
    direction: Literal["above", "below"] = Field(default="above", description="above: value >= level fires.")
    levels: tuple[Level, ...] = Field(min_length=1, description="Ordered from least to most severe.")
    station_levels: tuple[StationLevels, ...] = Field(default=(), description="Per-station level overrides.")
    use_station_levels: bool = Field(
        default=False,
        description="water_level_m only: a station that reports its own báo động 1/2/3 (alert_levels_m, kept in "
        "sensor_stations) is judged by those, under this rule's three level names and severities; "
        "station_levels listed here still win.",
    )
    hysteresis: Decimal = Field(default=Decimal(0), ge=0, description="Clearing needs value past level -/+ this.")
    min_duration_s: float = Field(default=0, ge=0, le=86_400, description="Breach (and clear) must last this long.")

    @model_validator(mode="after")
    def _levels_ordered(self) -> SensorThresholdRule:
        _ordered(self.levels, self.direction)
        for station in self.station_levels:
            _ordered(station.levels, self.direction)
        if self.use_station_levels and (
            self.metric != "water_level_m" or self.direction != "above" or len(self.levels) != 3
        ):
            raise ValueError(
                "use_station_levels needs metric water_level_m, direction above and three levels "
                "(báo động 1/2/3) whose names and severities the station's values take"
            )
        return self

    def listed_levels(self, agent_id: str, source_id: str) -> tuple[Level, ...] | None:
        """This station's levels written in the rule, if any."""
        for station in self.station_levels:
            if station.agent_id == agent_id and station.source_id == source_id:
                return station.levels
        return None

    def levels_for(
        self, agent_id: str, source_id: str, reported: tuple[float, float, float] | None = None
    ) -> tuple[Level, ...]:
        """Listed station levels, else (with use_station_levels) the ones the station ``reported``, else the rule's."""
        listed = self.listed_levels(agent_id, source_id)
        if listed is not None:
            return listed
        if self.use_station_levels and reported is not None:
            return tuple(
                level.model_copy(update={"value": Decimal(str(value))})
                for level, value in zip(self.levels, reported, strict=True)
            )
        return self.levels


class SensorRateRule(_SensorRule):
    """A metric rising at least ``rise`` within ``window_s`` (e.g. temperature +8 degC in 5 min: fire)."""

    kind: Literal["sensor_rate"] = "sensor_rate"
    metric: SensorMetric = Field(default="temperature_c", description="The metric whose rise is measured.")
    rise: Decimal = Field(default=Decimal(8), gt=0, description="Fires when latest - lowest in window >= rise.")
    window_s: int = Field(default=300, gt=0, le=86_400, description="The window the rise is measured over.")
    hysteresis: Decimal = Field(default=Decimal(0), ge=0, description="Clears when the rise < rise - hysteresis.")
    level_name: Id = Field(default="rate_of_rise", description="Level id given to the alert.")


class SourceSilentRule(_RuleBase):
    """A camera or sensor that sent no event of any family for longer than silent_after_s."""

    kind: Literal["source_silent"] = "source_silent"
    silent_after_s: int = Field(default=600, gt=0, description="Silence longer than this fires (event time).")
    sources: tuple[SourceRef, ...] | None = Field(default=None, description="Listed sources; null: all recent.")
    seen_within_days: int = Field(default=7, gt=0, description="With no list: sources heard from this recently.")


Rule = Annotated[
    ViolationIncreaseRule | ProgressBehindRule | SensorThresholdRule | SensorRateRule | SourceSilentRule,
    Field(discriminator="kind"),
]


class AlertRulesConfig(_Model):
    """The whole rules file."""

    junctions: tuple[Junction, ...] = Field(default=(), description="Camera groups for violation_increase.")
    rules: tuple[Rule, ...] = Field(default=(), description="The rules; each id unique.")

    @model_validator(mode="after")
    def _unique_and_known(self) -> AlertRulesConfig:
        rule_ids = [rule.id for rule in self.rules]
        if len(set(rule_ids)) != len(rule_ids):
            raise ValueError(f"rule ids must be unique: {sorted(i for i in rule_ids if rule_ids.count(i) > 1)}")
        junction_ids = {junction.id for junction in self.junctions}
        if len(junction_ids) != len(self.junctions):
            raise ValueError("junction ids must be unique")
        for rule in self.rules:
            if isinstance(rule, ViolationIncreaseRule) and rule.junctions != "all":
                unknown = sorted(set(rule.junctions) - junction_ids)
                if unknown:
                    raise ValueError(f"rule {rule.id!r} names unknown junctions {unknown}")
        return self

    def rule(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def progress_rule_for(self, project_id: str) -> ProgressBehindRule | None:
        """The first enabled progress_behind rule watching ``project_id`` (its threshold is the one the
        project pages draw), or None when no rule watches it."""
        return next(
            (
                rule
                for rule in self.rules
                if isinstance(rule, ProgressBehindRule)
                and rule.enabled
                and (rule.projects == "all" or project_id in rule.projects)
            ),
            None,
        )

    def junctions_of(self, rule: ViolationIncreaseRule) -> tuple[Junction, ...]:
        if rule.junctions == "all":
            return self.junctions
        return tuple(j for j in self.junctions if j.id in rule.junctions)


def load_rules(path: Path | str) -> AlertRulesConfig:
    """Read and validate a rules file; raises ``ioc_common.yaml_files.ConfigError`` at FILE:LINE:COL."""
    return load_model(path, AlertRulesConfig)
