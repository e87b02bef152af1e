"""Interval aggregates of one camera: counts per line, zone statistics and data quality per interval.

One ``IntervalAggregator`` per camera and interval length (``intervals_s: [60, 900]`` gives two).
Rules:

- Intervals are aligned to the wall clock: an interval starts at
  ``floor(epoch_seconds / interval_s) * interval_s`` (UTC), so every agent's 60 s intervals start
  on the minute and central can add them up across cameras. An event's ``time`` is the start.
- Every interval from the first one the aggregator saw (its first crossing, coverage or zone
  observation, or the first ``close_until``) is reported, EMPTY ones included, for every line and
  zone: a quiet road reports zeros with its coverage, so central can tell quiet from dead.
- Each event carries ``IntervalQuality`` (see ``analytics.coverage`` for the definitions): the
  seconds analysed and down, the frames analysed and dropped, the detector backend, and
  ``coverage = analysed_s / interval_s``. An interval nobody watched reads coverage 0 (and,
  when the reader said so, its downtime), never a silent zero count.
- Grace: ``close_until(now)`` closes an interval only once ``now >= end + grace_s + close_delay_s``,
  so data that reaches the aggregator a little after its interval ended (detection latency, a
  zone exit decided ``exit_grace_s`` after the last sighting) still lands in its own interval.
- Late data, for an interval already emitted, is DROPPED and counted (``late_crossings``,
  ``late_zone_events``, ``late_coverage_s``): an interval is reported once and never corrected
  (events are immutable and idempotent at central).
- Gaps: if one call would emit a run of more than ``max_gap_s`` worth of intervals (a clock jump),
  only the intervals holding any data are emitted and the empty ones are skipped (counted in
  ``skipped_empty_intervals``). A dead camera is not a gap: its ticks record downtime, so each of
  its intervals holds data and is reported.
- ``flush`` (stream stopped, agent stopping) emits every open interval and starts afresh, never
  before the flushed intervals, so each interval start is reported at most once per aggregator.

Time is passed in, never read from a clock; event ids are UUIDv7 stamped with the interval start.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.analytics.coverage import CoverageUpdate
from edge_agent.analytics.epoch import US, epoch_us, from_epoch_us
from edge_agent.analytics.lines import Crossing
from edge_agent.analytics.zones import ZoneObservation
from event_contract import (
    VEHICLE_CLASSES,
    CountBucket,
    CountIntervalEvent,
    Direction,
    IntervalQuality,
    VehicleClass,
    ZoneClassStats,
    ZoneIntervalEvent,
    new_event_id,
)
from event_contract.models import IDENTIFIER_PATTERN

_DIRECTIONS: tuple[Direction, ...] = ("in", "out")
_BucketKey = tuple[VehicleClass, Direction]
IntervalEvent = CountIntervalEvent | ZoneIntervalEvent


class IntervalConfig(BaseModel):
    """How one interval length is closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: int = Field(
        default=60, gt=0, le=86_400, description="Interval length in seconds; intervals align to the UTC clock."
    )
    grace_s: float = Field(
        default=2.0, ge=0.0, description="Seconds after an interval's end before close_until emits it."
    )
    max_gap_s: float = Field(
        default=3600.0,
        gt=0.0,
        description="Longest run of intervals emitted at once with nothing in them; longer runs are a clock "
        "jump, and only intervals holding data are emitted.",
    )


@dataclass(slots=True)
class _ZoneSlot:
    entries: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    dwells: list[float] = field(default_factory=list)
    frames: int = 0
    occupancy_sum: Counter[str] = field(default_factory=Counter)
    occupancy_max: Counter[str] = field(default_factory=Counter)
    total_sum: int = 0
    total_max: int = 0
    longest_inside: tuple[int, float | None] | None = None
    """(time in µs, value) of the latest observation in the interval."""


@dataclass(slots=True)
class _Slot:
    """Everything gathered for one interval start."""

    counts: dict[str, Counter[_BucketKey]] = field(default_factory=dict)
    zones: dict[str, _ZoneSlot] = field(default_factory=dict)
    analysed_us: int = 0
    downtime_us: int = 0
    frames_analysed: int = 0
    frames_dropped: int = 0


class IntervalAggregator:
    """One camera's interval events of one length. Not thread-safe."""

    def __init__(
        self,
        agent_id: str,
        source_id: str,
        config: IntervalConfig,
        *,
        line_ids: Sequence[str],
        zone_ids: Sequence[str] = (),
        detector_backend: str,
        close_delay_s: float = 0.0,
    ) -> None:
        for name, value in (("agent_id", agent_id), ("source_id", source_id), *(("line id", v) for v in line_ids)):
            if not re.fullmatch(IDENTIFIER_PATTERN, value):
                raise ValueError(f"{name} {value!r} is not a valid identifier ({IDENTIFIER_PATTERN})")
        for zone_id in zone_ids:
            if not re.fullmatch(IDENTIFIER_PATTERN, zone_id):
                raise ValueError(f"zone id {zone_id!r} is not a valid identifier ({IDENTIFIER_PATTERN})")
        if close_delay_s < 0:
            raise ValueError(f"close_delay_s must not be negative, got {close_delay_s}")
        self._config = config
        self._agent_id = agent_id
        self._source_id = source_id
        self._line_ids = tuple(line_ids)
        self._zone_ids = tuple(zone_ids)
        self._backend = detector_backend
        self._step_us = config.interval_s * US
        self._hold_us = round((config.grace_s + close_delay_s) * US)
        self._slots: dict[int, _Slot] = {}
        self._cursor_us: int | None = None
        """Start of the oldest interval not yet emitted; None until the aggregator has seen any time."""
        self._floor_us: int | None = None
        """Start of the oldest interval never emitted: data before it is late (each start is reported once)."""
        self._late_crossings = 0
        self._late_zone_events = 0
        self._late_coverage_us = 0
        self._skipped_empty_intervals = 0

    @property
    def config(self) -> IntervalConfig:
        return self._config

    @property
    def late_crossings(self) -> int:
        """Crossings dropped because their interval was already emitted."""
        return self._late_crossings

    @property
    def late_zone_events(self) -> int:
        """Zone entries, exits and occupancy samples dropped because their interval was already emitted."""
        return self._late_zone_events

    @property
    def late_coverage_s(self) -> float:
        """Analysed or down seconds that fell in intervals already emitted."""
        return self._late_coverage_us / US

    @property
    def skipped_empty_intervals(self) -> int:
        """Empty intervals not reported because they fell in a gap longer than max_gap_s."""
        return self._skipped_empty_intervals

    # -- input -----------------------------------------------------------------------------------

    def add_crossing(self, crossing: Crossing) -> None:
        if crossing.line_id not in self._line_ids:
            raise ValueError(f"crossing of line {crossing.line_id!r}, which is not one of {self._line_ids}")
        vehicle_class = _vehicle_class(crossing.vehicle_class)
        slot = self._slot_at(epoch_us(crossing.timestamp))
        if slot is None:
            self._late_crossings += 1
            return
        slot.counts.setdefault(crossing.line_id, Counter())[(vehicle_class, crossing.direction)] += 1

    def add_coverage(self, update: CoverageUpdate) -> None:
        if update.frames_analysed or update.frames_dropped:
            slot = self._slot_at(epoch_us(update.at))
            if slot is not None:
                slot.frames_analysed += update.frames_analysed
                slot.frames_dropped += update.frames_dropped
        for span in update.spans:
            start = span.start_us
            while start < span.end_us:
                end = min(span.end_us, self._align(start) + self._step_us)
                slot = self._slot_at(start)
                if slot is None:
                    self._late_coverage_us += end - start
                elif span.kind == "analysed":
                    slot.analysed_us += end - start
                else:
                    slot.downtime_us += end - start
                start = end

    def add_zone(self, observation: ZoneObservation) -> None:
        if observation.zone_id not in self._zone_ids:
            raise ValueError(f"observation of zone {observation.zone_id!r}, which is not one of {self._zone_ids}")
        for entry in observation.entries:
            zone = self._zone_slot(observation.zone_id, entry.timestamp)
            if zone is not None:
                zone.entries[_vehicle_class(entry.vehicle_class)] += 1
        for exit_ in observation.exits:
            zone = self._zone_slot(observation.zone_id, exit_.exited)
            if zone is not None:
                zone.exits[_vehicle_class(exit_.vehicle_class)] += 1
                zone.dwells.append(exit_.dwell_s)
        if observation.occupancy is not None:
            zone = self._zone_slot(observation.zone_id, observation.timestamp)
            if zone is not None:
                zone.frames += 1
                total = 0
                for vehicle_class, n in observation.occupancy:
                    key = _vehicle_class(vehicle_class)
                    zone.occupancy_sum[key] += n
                    zone.occupancy_max[key] = max(zone.occupancy_max[key], n)
                    total += n
                zone.total_sum += total
                zone.total_max = max(zone.total_max, total)
                at_us = epoch_us(observation.timestamp)
                if zone.longest_inside is None or at_us >= zone.longest_inside[0]:
                    zone.longest_inside = (at_us, observation.longest_inside_s)

    # -- output ----------------------------------------------------------------------------------

    def close_until(self, now: dt.datetime) -> tuple[IntervalEvent, ...]:
        """Events of every interval that ended at least ``grace_s + close_delay_s`` before ``now``, oldest first."""
        now_us = epoch_us(now)
        if self._cursor_us is None:
            start = self._align(now_us)
            self._cursor_us = start if self._floor_us is None else max(start, self._floor_us)
            return ()
        # Last interval start s with s + step + hold <= now.
        last = self._align(now_us - self._hold_us - self._step_us)
        return self._emit_through(last)

    def flush(self, now: dt.datetime | None = None) -> tuple[IntervalEvent, ...]:
        """Emit every interval still open (through the one holding ``now``, if given) and start afresh."""
        if self._cursor_us is None:
            return ()
        last = max(self._cursor_us, *self._slots) if self._slots else self._cursor_us
        if now is not None:
            last = max(last, self._align(epoch_us(now)))
        events = self._emit_through(last)
        self._cursor_us = None
        return events

    # -- internals -------------------------------------------------------------------------------

    def _align(self, value_us: int) -> int:
        return value_us // self._step_us * self._step_us

    def _slot_at(self, at_us: int) -> _Slot | None:
        """The slot of the interval holding ``at_us``, or None when that interval was already emitted."""
        start = self._align(at_us)
        if self._floor_us is not None and start < self._floor_us:
            return None
        if self._cursor_us is None or start < self._cursor_us:
            # Nothing from start on was emitted, so the oldest open interval may move earlier.
            self._cursor_us = start
        return self._slots.setdefault(start, _Slot())

    def _zone_slot(self, zone_id: str, at: dt.datetime) -> _ZoneSlot | None:
        slot = self._slot_at(epoch_us(at))
        if slot is None:
            self._late_zone_events += 1
            return None
        return slot.zones.setdefault(zone_id, _ZoneSlot())

    def _emit_through(self, last_start_us: int) -> tuple[IntervalEvent, ...]:
        assert self._cursor_us is not None
        if last_start_us < self._cursor_us:
            return ()
        starts: Sequence[int] = range(self._cursor_us, last_start_us + self._step_us, self._step_us)
        if (last_start_us + self._step_us - self._cursor_us) > self._config.max_gap_s * US:
            kept = [s for s in starts if s in self._slots]
            self._skipped_empty_intervals += len(starts) - len(kept)
            starts = kept
        events: list[IntervalEvent] = []
        for start in starts:
            events.extend(self._events(start, self._slots.pop(start, _Slot())))
        self._cursor_us = last_start_us + self._step_us
        self._floor_us = self._cursor_us
        return tuple(events)

    def _events(self, start_us: int, slot: _Slot) -> list[IntervalEvent]:
        quality = self._quality(slot)
        time = from_epoch_us(start_us)
        events: list[IntervalEvent] = []
        for line_id in self._line_ids:
            counts = slot.counts.get(line_id, Counter())
            buckets = tuple(
                CountBucket(vehicle_class=vehicle_class, direction=direction, count=counts[(vehicle_class, direction)])
                for vehicle_class in VEHICLE_CLASSES
                for direction in _DIRECTIONS
                if counts[(vehicle_class, direction)] > 0
            )
            events.append(
                CountIntervalEvent(
                    event_id=new_event_id(unix_ms=start_us // 1000),
                    agent_id=self._agent_id,
                    source_id=self._source_id,
                    time=time,
                    line_id=line_id,
                    interval_s=self._config.interval_s,
                    counts=buckets,
                    quality=quality,
                )
            )
        for zone_id in self._zone_ids:
            events.append(self._zone_event(start_us, zone_id, slot.zones.get(zone_id, _ZoneSlot()), quality))
        return events

    def _quality(self, slot: _Slot) -> IntervalQuality:
        expected_s = float(self._config.interval_s)
        analysed_s = round(min(slot.analysed_us, self._step_us) / US, 3)
        downtime_s = round(min(slot.downtime_us, self._step_us - min(slot.analysed_us, self._step_us)) / US, 3)
        return IntervalQuality(
            expected_s=expected_s,
            analysed_s=analysed_s,
            frames_analysed=slot.frames_analysed,
            frames_dropped=slot.frames_dropped,
            downtime_s=downtime_s,
            detector_backend=self._backend,
            coverage=round(analysed_s / expected_s, 6),
        )

    def _zone_event(self, start_us: int, zone_id: str, zone: _ZoneSlot, quality: IntervalQuality) -> ZoneIntervalEvent:
        dwells = sorted(zone.dwells)
        seen = set(zone.entries) | set(zone.exits) | {c for c, n in zone.occupancy_max.items() if n > 0}
        classes = tuple(
            ZoneClassStats(
                vehicle_class=vehicle_class,
                entries=zone.entries[vehicle_class],
                exits=zone.exits[vehicle_class],
                occupancy_mean=round(zone.occupancy_sum[vehicle_class] / zone.frames, 3) if zone.frames else None,
                occupancy_max=zone.occupancy_max[vehicle_class] if zone.frames else None,
            )
            for vehicle_class in VEHICLE_CLASSES
            if vehicle_class in seen
        )
        longest_inside = zone.longest_inside[1] if zone.longest_inside is not None else None
        return ZoneIntervalEvent(
            event_id=new_event_id(unix_ms=start_us // 1000),
            agent_id=self._agent_id,
            source_id=self._source_id,
            time=from_epoch_us(start_us),
            zone_id=zone_id,
            interval_s=self._config.interval_s,
            entries=sum(zone.entries.values()),
            exits=sum(zone.exits.values()),
            occupancy_mean=round(zone.total_sum / zone.frames, 3) if zone.frames else None,
            occupancy_max=zone.total_max if zone.frames else None,
            dwell_mean_s=round(sum(dwells) / len(dwells), 3) if dwells else None,
            dwell_max_s=round(dwells[-1], 3) if dwells else None,
            dwell_p95_s=round(_nearest_rank(dwells, 0.95), 3) if dwells else None,
            dwell_longest_inside_s=None if longest_inside is None else round(longest_inside, 3),
            classes=classes,
            quality=quality,
        )


def _vehicle_class(name: str) -> VehicleClass:
    for vehicle_class in VEHICLE_CLASSES:
        if vehicle_class == name:
            return vehicle_class
    raise ValueError(
        f"vehicle class {name!r} is not in the taxonomy {VEHICLE_CLASSES}: map detector labels onto it before tracking"
    )


def _nearest_rank(sorted_values: Sequence[float], fraction: float) -> float:
    """The smallest value with at least ``fraction`` of the values at or below it (an observed value)."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]
