"""Interval counter: crossings of one line -> one ``CountIntervalEvent`` per wall-clock interval.

Rules:

- Intervals are aligned to the wall clock: an interval starts at
  ``floor(epoch_seconds / interval_s) * interval_s`` (UTC), so every agent's 60 s intervals start
  on the minute and central can add them up across cameras. The event's ``time`` is the start.
- Every interval from the first one the counter saw (its first crossing, or the first
  ``close_until``) is reported, EMPTY ones included: a quiet road reports zeros, so central can tell
  quiet from dead. The first and the flushed last interval may cover only part of their length.
- Grace: ``close_until(now)`` closes an interval only once ``now >= end + grace_s``, so a crossing
  that reaches the counter a little after its interval ended (detection latency, a clock that
  is not the source clock) is still counted in its own interval.
- Late crossings, for an interval already emitted, are DROPPED and counted in ``late_crossings``:
  an interval is reported once and never corrected (events are immutable and idempotent at central).
- Gaps: call ``close_until`` with the frame time as frames arrive. If one call would emit a run
  of more than ``max_gap_s`` worth of intervals (no frames for that long: a stalled stream, a clock
  jump), only the intervals holding crossings are emitted and
  the empty ones are skipped (counted in ``skipped_empty_intervals``): zeros for a time nobody was
  watching would claim a quiet road. Callers should ``flush`` when a stream stops; the counter then
  starts afresh at the next crossing or ``close_until``, never before the flushed intervals, so
  each interval start is reported at most once per counter (one ``event_id`` per interval).

Time is passed in (``now``), never read from a clock; event ids are UUIDv7 stamped with the
interval start, so the analytics core reads no clock at all.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.analytics.lines import Crossing
from event_contract import VEHICLE_CLASSES, CountBucket, CountIntervalEvent, Direction, VehicleClass, new_event_id
from event_contract.models import IDENTIFIER_PATTERN

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = 1_000_000
_DIRECTIONS: tuple[Direction, ...] = ("in", "out")
_BucketKey = tuple[VehicleClass, Direction]


class IntervalConfig(BaseModel):
    """How crossings are summed into interval events."""

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
        description="Longest run of intervals emitted with zeros at once; longer runs are a gap, not a quiet road.",
    )


def _epoch_us(timestamp: dt.datetime) -> int:
    if timestamp.tzinfo is None:
        raise ValueError("interval counter timestamps must be timezone-aware (UTC)")
    return (timestamp - _EPOCH) // dt.timedelta(microseconds=1)


class IntervalCounter:
    """Sums one line's crossings into aligned intervals. One per (source, line); not thread-safe."""

    def __init__(
        self,
        agent_id: str,
        source_id: str,
        line_id: str,
        interval_s: int = 60,
        *,
        grace_s: float = 2.0,
        max_gap_s: float = 3600.0,
    ) -> None:
        for name, value in (("agent_id", agent_id), ("source_id", source_id), ("line_id", line_id)):
            if not re.fullmatch(IDENTIFIER_PATTERN, value):
                raise ValueError(f"{name} {value!r} is not a valid identifier ({IDENTIFIER_PATTERN})")
        self._config = IntervalConfig(interval_s=interval_s, grace_s=grace_s, max_gap_s=max_gap_s)
        self._agent_id = agent_id
        self._source_id = source_id
        self._line_id = line_id
        self._step_us = self._config.interval_s * _US
        self._grace_us = round(self._config.grace_s * _US)
        self._counts: dict[int, Counter[_BucketKey]] = {}
        self._cursor_us: int | None = None
        """Start of the oldest interval not yet emitted; None until the counter has seen any time."""
        self._floor_us: int | None = None
        """Start of the oldest interval never emitted: crossings before it are late (each start is reported once)."""
        self._late_crossings = 0
        self._skipped_empty_intervals = 0

    @classmethod
    def from_config(cls, agent_id: str, source_id: str, line_id: str, config: IntervalConfig) -> IntervalCounter:
        return cls(agent_id, source_id, line_id, config.interval_s, grace_s=config.grace_s, max_gap_s=config.max_gap_s)

    @property
    def config(self) -> IntervalConfig:
        return self._config

    @property
    def late_crossings(self) -> int:
        """Crossings dropped because their interval was already emitted."""
        return self._late_crossings

    @property
    def skipped_empty_intervals(self) -> int:
        """Empty intervals not reported because they fell in a gap longer than max_gap_s."""
        return self._skipped_empty_intervals

    def add(self, crossing: Crossing) -> None:
        if crossing.line_id != self._line_id:
            raise ValueError(f"crossing of line {crossing.line_id!r} given to the counter of line {self._line_id!r}")
        if crossing.vehicle_class not in VEHICLE_CLASSES:
            raise ValueError(
                f"vehicle class {crossing.vehicle_class!r} is not in the taxonomy {VEHICLE_CLASSES}: "
                "map detector labels onto it before tracking"
            )
        start = self._align(_epoch_us(crossing.timestamp))
        if self._floor_us is not None and start < self._floor_us:
            self._late_crossings += 1
            return
        if self._cursor_us is None or start < self._cursor_us:
            # Nothing from start on was emitted, so the oldest open interval may move earlier.
            self._cursor_us = start
        key: _BucketKey = (crossing.vehicle_class, crossing.direction)
        self._counts.setdefault(start, Counter())[key] += 1

    def close_until(self, now: dt.datetime) -> tuple[CountIntervalEvent, ...]:
        """Events for every interval that ended at least ``grace_s`` before ``now``, oldest first."""
        now_us = _epoch_us(now)
        if self._cursor_us is None:
            start = self._align(now_us)
            self._cursor_us = start if self._floor_us is None else max(start, self._floor_us)
            return ()
        # Last interval start s with s + step + grace <= now.
        last = self._align(now_us - self._grace_us - self._step_us)
        return self._emit_through(last)

    def flush(self, now: dt.datetime | None = None) -> tuple[CountIntervalEvent, ...]:
        """Emit every interval still open (through the one holding ``now``, if given) and start afresh."""
        if self._cursor_us is None:
            return ()
        last = max(self._cursor_us, *self._counts) if self._counts else self._cursor_us
        if now is not None:
            last = max(last, self._align(_epoch_us(now)))
        events = self._emit_through(last)
        self._cursor_us = None
        return events

    def _align(self, epoch_us: int) -> int:
        return epoch_us // self._step_us * self._step_us

    def _emit_through(self, last_start_us: int) -> tuple[CountIntervalEvent, ...]:
        assert self._cursor_us is not None
        if last_start_us < self._cursor_us:
            return ()
        starts = range(self._cursor_us, last_start_us + self._step_us, self._step_us)
        if (last_start_us + self._step_us - self._cursor_us) > self._config.max_gap_s * _US:
            kept = [s for s in starts if s in self._counts]
            self._skipped_empty_intervals += len(starts) - len(kept)
            starts_to_emit: list[int] | range = kept
        else:
            starts_to_emit = starts
        events = tuple(self._event(start, self._counts.pop(start, Counter())) for start in starts_to_emit)
        self._cursor_us = last_start_us + self._step_us
        self._floor_us = self._cursor_us
        return events

    def _event(self, start_us: int, counts: Counter[_BucketKey]) -> CountIntervalEvent:
        buckets = tuple(
            CountBucket(vehicle_class=vehicle_class, direction=direction, count=counts[(vehicle_class, direction)])
            for vehicle_class in VEHICLE_CLASSES
            for direction in _DIRECTIONS
            if counts[(vehicle_class, direction)] > 0
        )
        return CountIntervalEvent(
            event_id=new_event_id(unix_ms=start_us // 1000),
            agent_id=self._agent_id,
            source_id=self._source_id,
            time=_EPOCH + dt.timedelta(microseconds=start_us),
            line_id=self._line_id,
            interval_s=self._config.interval_s,
            counts=buckets,
        )
