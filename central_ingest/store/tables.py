"""Where each event kind's rows go: the hypertables, their columns and COPY types, and row builders.

One ``TableSpec`` per target table. A *root* table holds one row per event and its unique key
(event_id, time) decides whether the event is new; a *child* table (the buckets of a count
interval, the classes of a zone interval) is written only for events whose root row was new,
so a duplicate never adds them twice. ``sensor_readings`` holds one row per metric: it is a
root whose new events are counted by distinct event_id.

Plates never reach a row in clear: ``stage_rows`` seals them with the plate vault (``plates.vault``),
and raises ``PlateVaultMissingError`` for a plate-bearing event when there is none (ingest refuses such
events before they get here: ``plates.intake``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from central_ingest.plates.vault import PlateVault, plate_aad
from event_contract import (
    ActivityGroup,
    CongestionEvent,
    CountIntervalEvent,
    Event,
    HealthEvent,
    IntervalQuality,
    PlatePassEvent,
    ProgressEvent,
    SensorReadingEvent,
    SiteActivityEvent,
    ViolationEvent,
    ZoneIntervalEvent,
)
from event_contract.evidence import EvidenceRef

Row = tuple[Any, ...]


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, str], ...]
    """(column, PostgreSQL type) in COPY order."""
    parent: str | None = None
    """For a child table: the root table whose new rows decide which child rows are written."""
    events_by_distinct_id: bool = False
    """A root with several rows per event: new events = distinct event ids inserted."""

    @property
    def staging(self) -> str:
        # The version suffix (_v5: the schema 1.5 columns) keeps a pooled connection of an older version from
        # reusing an old shape.
        return f"staging_{self.name}_v5"

    @property
    def column_list(self) -> str:
        return ", ".join(name for name, _ in self.columns)

    @property
    def types(self) -> list[str]:
        return [kind for _, kind in self.columns]


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    pairs = (item.split() for item in spec.split(","))
    return tuple((name, kind) for name, kind in pairs)


HEAD = "time timestamptz, event_id uuid, agent_id text, source_id text"
QUALITY = (
    "expected_s float8, analysed_s float8, frames_analysed int8, frames_dropped int8, downtime_s float8, "
    "detector_backend text, coverage float8"
)

COUNT_INTERVALS = TableSpec(
    "count_intervals", _cols(f"{HEAD}, line_id text, interval_s int4, schema_version text, {QUALITY}")
)
LINE_COUNTS = TableSpec(
    "line_counts",
    _cols(f"{HEAD}, line_id text, interval_s int4, vehicle_class text, direction text, count int4"),
    parent="count_intervals",
)
ZONE_INTERVALS = TableSpec(
    "zone_intervals",
    _cols(
        f"{HEAD}, zone_id text, interval_s int4, entries int4, exits int4, occupancy_mean float8, occupancy_max int4, "
        "dwell_mean_s float8, dwell_max_s float8, dwell_p95_s float8, dwell_longest_inside_s float8, "
        f"{QUALITY}, schema_version text"
    ),
)
ZONE_CLASS_COUNTS = TableSpec(
    "zone_class_counts",
    _cols(
        f"{HEAD}, zone_id text, interval_s int4, vehicle_class text, entries int4, exits int4, "
        "occupancy_mean float8, occupancy_max int4"
    ),
    parent="zone_intervals",
)
HEALTH = TableSpec(
    "health",
    _cols(
        f"{HEAD}, state text, reason text, frames_decoded int8, frames_processed int8, frames_dropped int8, "
        "fps float8, uptime_s float8, schema_version text, delivery jsonb"
    ),
)
VIOLATIONS = TableSpec(
    "violations",
    _cols(
        f"{HEAD}, violation_type text, category text, track_id int8, vehicle_class text, line_id text, "
        "zone_id text, plate_key_id text, plate_ct bytea, plate_confidence float4, duration_s float8, "
        "evidence jsonb, schema_version text, rule_id text, started_at timestamptz, signal_state text, "
        "related_track_ids int8[], plate_colour text"
    ),
)
PLATE_PASSES = TableSpec(
    "plate_passes",
    _cols(
        f"{HEAD}, plate_key_id text, plate_ct bytea, plate_bidx bytea, plate_index_key text, plate_grams int4[], "
        "plate_confidence float4, track_id int8, vehicle_class text, direction text, line_id text, "
        "vehicle_colour text, plate_colour text, evidence jsonb, schema_version text, plate_layout text, "
        "format_valid bool, reads int4"
    ),
)
CONGESTION = TableSpec(
    "congestion",
    _cols(
        f"{HEAD}, zone_id text, level text, previous_level text, window_s float8, vehicles int4, "
        "queue_length_ratio float8, occupancy float8, speed_ratio float8, schema_version text"
    ),
)
PROGRESS = TableSpec(
    "progress",
    _cols(
        f"{HEAD}, project_id text, package_id text, percent_complete float8, method text, confidence float8, "
        "confirmed bool, note text, evidence jsonb, schema_version text, raw_percent float8, frames_used int4, "
        "frames_rejected int4, quality float8"
    ),
)
SITE_ACTIVITY = TableSpec(
    "site_activity",
    _cols(
        f"{HEAD}, project_id text, zone_id text, start timestamptz, frames int4, covered_s float8, "
        "activity_index float8, active_s float8, mean_workers float8, mean_machines float8, mean_trucks float8, "
        "peak_workers int4, peak_machines int4, peak_trucks int4, schema_version text"
    ),
)
SENSOR_READINGS = TableSpec(
    "sensor_readings",
    _cols(f"{HEAD}, sensor_kind text, metric text, value float8, schema_version text"),
    events_by_distinct_id=True,
)

TABLES: tuple[TableSpec, ...] = (
    COUNT_INTERVALS,
    LINE_COUNTS,
    ZONE_INTERVALS,
    ZONE_CLASS_COUNTS,
    HEALTH,
    VIOLATIONS,
    PLATE_PASSES,
    PROGRESS,
    SENSOR_READINGS,
    CONGESTION,
    SITE_ACTIVITY,
)
ROOT_TABLES: tuple[TableSpec, ...] = tuple(t for t in TABLES if t.parent is None)

FAMILY_OF_KIND: dict[str, str] = {
    "count_interval": "count_intervals",
    "zone_interval": "zone_intervals",
    "health": "health",
    "violation": "violations",
    "plate_pass": "plate_passes",
    "progress": "progress",
    "sensor_reading": "sensor_readings",
    "congestion": "congestion",
    "site_activity": "site_activity",
}
"""The root table of each event kind (also the ``family`` of ``source_last_seen``)."""


@dataclass(frozen=True)
class StagedRows:
    """The rows of one batch per table name; built without touching the database."""

    rows: dict[str, list[Row]] = field(default_factory=dict)

    def of(self, table: TableSpec) -> list[Row]:
        return self.rows.get(table.name, [])


def _quality(quality: IntervalQuality | None) -> Row:
    if quality is None:
        return (None,) * 7
    return (
        quality.expected_s,
        quality.analysed_s,
        quality.frames_analysed,
        quality.frames_dropped,
        quality.downtime_s,
        quality.detector_backend,
        quality.coverage,
    )


def _evidence(evidence: tuple[EvidenceRef, ...]) -> list[dict[str, Any]]:
    return [ref.model_dump(mode="json", exclude_none=True) for ref in evidence]


class PlateVaultMissingError(RuntimeError):
    """A plate-bearing event reached the writer without a plate vault: it would have been stored in clear."""


def has_plate(event: Event) -> bool:
    """Whether storing ``event`` needs the plate vault."""
    return isinstance(event, PlatePassEvent) or (isinstance(event, ViolationEvent) and event.plate is not None)


def _vault_for(event: Event, vault: PlateVault | None) -> PlateVault:
    if vault is None:
        raise PlateVaultMissingError(
            f"event {event.event_id} ({event.kind}) carries a plate and no plate keyring is configured; "
            "refuse it before storing (plates.intake.refuse_unsealable)"
        )
    return vault


def _violation_row(head: Row, event: ViolationEvent, vault: PlateVault | None) -> Row:
    key_id: str | None = None
    ciphertext: bytes | None = None
    if event.plate is not None:
        sealed = _vault_for(event, vault).seal(event.plate, aad=plate_aad(event.agent_id, event.event_id))
        key_id, ciphertext = sealed.key_id, sealed.ciphertext
    return (
        *head,
        event.violation_type,
        event.category,
        event.track_id,
        event.vehicle_class,
        event.line_id,
        event.zone_id,
        key_id,
        ciphertext,
        event.plate_confidence,
        event.duration_s,
        _evidence(event.evidence),
        event.schema_version,
        event.rule_id,
        event.started_at,
        event.signal_state,
        list(event.related_track_ids),
        event.plate_colour,
    )


def _plate_pass_row(head: Row, event: PlatePassEvent, vault: PlateVault | None) -> Row:
    sealed = _vault_for(event, vault).seal(event.plate, aad=plate_aad(event.agent_id, event.event_id))
    return (
        *head,
        sealed.key_id,
        sealed.ciphertext,
        sealed.blind_index,
        sealed.index_key_id,
        list(sealed.tokens),
        event.plate_confidence,
        event.track_id,
        event.vehicle_class,
        event.direction,
        event.line_id,
        event.vehicle_colour,
        event.plate_colour,
        _evidence(event.evidence),
        event.schema_version,
        event.plate_layout,
        event.format_valid,
        event.reads,
    )


def _congestion_row(head: Row, event: CongestionEvent) -> Row:
    return (
        *head,
        event.zone_id,
        event.level,
        event.previous_level,
        event.window_s,
        event.vehicles,
        event.queue_length_ratio,
        event.occupancy,
        event.speed_ratio,
        event.schema_version,
    )


ACTIVITY_GROUPS: tuple[ActivityGroup, ...] = ("worker", "machine", "truck")
"""The contract's activity groups, in the column order of ``site_activity`` (mean_*, then peak_*)."""


def _site_activity_row(head: Row, event: SiteActivityEvent) -> Row:
    return (
        *head,
        event.project_id,
        event.zone_id,
        event.start,
        event.frames,
        event.covered_s,
        event.activity_index,
        event.active_s,
        *(event.mean_present.get(group) for group in ACTIVITY_GROUPS),
        *(event.peak_present.get(group) for group in ACTIVITY_GROUPS),
        event.schema_version,
    )


def stage_rows(events: Sequence[Event], vault: PlateVault | None = None) -> StagedRows:
    """Rows for the staging tables, plates sealed; an event_id seen earlier in the same batch is skipped."""
    rows: dict[str, list[Row]] = {table.name: [] for table in TABLES}
    seen: set[object] = set()
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        head = (event.time, event.event_id, event.agent_id, event.source_id)
        if isinstance(event, CountIntervalEvent):
            line = (*head, event.line_id, event.interval_s)
            rows["count_intervals"].append((*line, event.schema_version, *_quality(event.quality)))
            rows["line_counts"].extend((*line, b.vehicle_class, b.direction, b.count) for b in event.counts)
        elif isinstance(event, ZoneIntervalEvent):
            zone = (*head, event.zone_id, event.interval_s)
            rows["zone_intervals"].append(
                (
                    *zone,
                    event.entries,
                    event.exits,
                    event.occupancy_mean,
                    event.occupancy_max,
                    event.dwell_mean_s,
                    event.dwell_max_s,
                    event.dwell_p95_s,
                    event.dwell_longest_inside_s,
                    *_quality(event.quality),
                    event.schema_version,
                )
            )
            rows["zone_class_counts"].extend(
                (*zone, c.vehicle_class, c.entries, c.exits, c.occupancy_mean, c.occupancy_max) for c in event.classes
            )
        elif isinstance(event, HealthEvent):
            rows["health"].append(
                (
                    *head,
                    event.state,
                    event.reason,
                    event.frames_decoded,
                    event.frames_processed,
                    event.frames_dropped,
                    event.fps,
                    event.uptime_s,
                    event.schema_version,
                    event.delivery.model_dump(mode="json") if event.delivery is not None else None,
                )
            )
        elif isinstance(event, ViolationEvent):
            rows["violations"].append(_violation_row(head, event, vault))
        elif isinstance(event, PlatePassEvent):
            rows["plate_passes"].append(_plate_pass_row(head, event, vault))
        elif isinstance(event, CongestionEvent):
            rows["congestion"].append(_congestion_row(head, event))
        elif isinstance(event, ProgressEvent):
            rows["progress"].append(
                (
                    *head,
                    event.project_id,
                    event.package_id or "",
                    event.percent_complete,
                    event.method,
                    event.confidence,
                    event.confirmed,
                    event.note,
                    _evidence(event.evidence),
                    event.schema_version,
                    event.raw_percent,
                    event.frames_used,
                    event.frames_rejected,
                    event.quality,
                )
            )
        elif isinstance(event, SiteActivityEvent):
            rows["site_activity"].append(_site_activity_row(head, event))
        elif isinstance(event, SensorReadingEvent):
            kind, version = event.sensor_kind, event.schema_version
            rows["sensor_readings"].extend((*head, kind, m, v, version) for m, v in event.values.items())
    return StagedRows(rows)
