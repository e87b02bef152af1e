"""What the edge-delivery benchmark's phases share: the agent's events, a stopwatch, medians, where files live.

The events are what a camera site with field sensors produces, per 10 events: 7 count intervals
(one line, a minute, 4 class/direction buckets) and 3 water-level readings with the station's alert
levels. Times are recent and unique per event (central's clock sanity refuses old ones), and every
call makes new event ids, so a run never sends central an event it already has.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from event_contract import CountBucket, CountIntervalEvent, Event, SensorReadingEvent, VehicleClass

T = TypeVar("T")

COUNT_INTERVALS_PER_10 = 7
"""Count intervals per 10 events; the other 3 are water-level readings."""
BUCKET_CLASSES: tuple[VehicleClass, ...] = ("motorbike", "car")


def recent_t0() -> dt.datetime:
    """Two hours ago: recent enough for central's clock sanity, with room for 10 ms between events."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)


def make_event(agent_id: str, index: int, t0: dt.datetime) -> Event:
    """The ``index``-th event of an agent's stream: a count interval or a water-level reading."""
    time_ = t0 + dt.timedelta(milliseconds=10 * index)
    slot = index % 10
    if slot < COUNT_INTERVALS_PER_10:
        return CountIntervalEvent(
            agent_id=agent_id,
            source_id=f"cam-{index % 4}",
            line_id=f"line-{slot % 2}",
            time=time_,
            interval_s=60,
            counts=tuple(
                CountBucket(vehicle_class=cls, direction=direction, count=1 + index % 7)
                for cls in BUCKET_CLASSES
                for direction in ("in", "out")
            ),
        )
    return SensorReadingEvent(
        agent_id=agent_id,
        source_id=f"wl-{index % 5}",
        time=time_,
        sensor_kind="water_level",
        values={"water_level_m": round(2.0 + (index % 300) / 100, 2)},
        alert_levels_m=(4.5, 5.5, 6.5),
    )


def make_events(agent_id: str, count: int, t0: dt.datetime) -> list[Event]:
    return [make_event(agent_id, index, t0) for index in range(count)]


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def settled_heap() -> Iterator[None]:
    """Collect garbage, then keep everything alive now out of the collector's sight for the block.

    The benchmark builds its events (tens of thousands of pydantic objects) before timing; an agent
    never holds them all at once. Without this, every full collection in the timed block walks them,
    and the way that allocates more (the spool's) pays for the harness's list. ``gc.freeze`` hides
    them from the collector; everything allocated inside the block is collected as usual.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _full_collections() -> int:
    return int(gc.get_stats()[-1]["collections"])


@dataclass
class Stopwatch:
    """Wall and process CPU time (and full garbage collections) over one or several ``running()`` blocks.

    CPU is ``time.process_time``: every thread of THIS process (the agent's side), not central,
    PostgreSQL, mosquitto or the publishers, which run in their own processes on the same cores.
    """

    seconds: float = 0.0
    cpu_s: float = 0.0
    full_collections: int = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        wall, cpu, collections = time.perf_counter(), time.process_time(), _full_collections()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - wall
            self.cpu_s += time.process_time() - cpu
            self.full_collections += _full_collections() - collections

    def rate(self, events: int, unit: str = "events") -> dict[str, Any]:
        """``{unit, seconds, <unit>_per_s, cpu_us_per_<singular>}`` for ``events`` handled in the timed blocks."""
        one = unit.removesuffix("s")
        return {
            unit: events,
            "seconds": round(self.seconds, 3),
            f"{unit}_per_s": round(events / self.seconds) if self.seconds > 0 else None,
            f"cpu_us_per_{one}": round(1e6 * self.cpu_s / events, 1) if events else None,
            "gc_full_collections": self.full_collections,
        }


class CallTimes:
    """Wall time spent in named calls, for a breakdown beside the totals (a perf_counter pair per call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    @contextlib.contextmanager
    def timing(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
                self.calls[name] = self.calls.get(name, 0) + 1

    def merge(self, other: CallTimes) -> None:
        for name, seconds in other.seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + other.calls[name]

    def per_call_ms(self) -> dict[str, dict[str, float]]:
        """``{name: {calls, ms_per_call, total_s}}``."""
        return {
            name: {
                "calls": self.calls[name],
                "ms_per_call": round(1000 * seconds / self.calls[name], 3),
                "total_s": round(seconds, 3),
            }
            for name, seconds in sorted(self.seconds.items())
        }


def median(values: Sequence[float], digits: int = 1) -> float:
    return round(float(statistics.median(values)), digits)


def percent_more(value: float, baseline: float) -> float:
    """How much larger ``value`` is than ``baseline``, in percent (negative: smaller)."""
    return round(100.0 * (value / baseline - 1.0), 1)


def filesystem_of(path: Path) -> str:
    """``"<type> on <device>"`` of the mount holding ``path`` (from /proc/mounts), so the JSON says which disk."""
    target = path.resolve()
    best: tuple[int, str] = (-1, "unknown")
    try:
        lines = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        device, mount, fstype = parts[0], parts[1], parts[2]
        if (target == Path(mount) or Path(mount) in target.parents) and len(mount) > best[0]:
            best = (len(mount), f"{fstype} on {device}")
    return best[1]
