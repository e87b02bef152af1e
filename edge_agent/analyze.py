"""Offline analysis of a recorded clip with a camera's settings (``edge-agent analyze``).

The clip runs through the same ``CameraPipeline`` as a live camera, but every frame is analysed
(``queue_policy: block``, no pacing). The result is the pipeline's final counters and every
event it produced; ``summarise`` turns them into counts per line, direction and class,
``format_table`` into text for a technician, ``write_events_jsonl`` into one contract event per line.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.analytics.lines import LineConfig
from edge_agent.config import CameraConfig
from edge_agent.perception.detector import Detector
from edge_agent.perception.detectors import build_detector
from edge_agent.perception.motion_gate import MotionGateStats, build_motion_gate
from edge_agent.pipeline import CameraPipeline, FrameObserver, PipelineStats
from event_contract import CountIntervalEvent, Event, ZoneIntervalEvent


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    stats: PipelineStats
    events: tuple[Event, ...]
    motion_gate: MotionGateStats | None = None
    """The motion gate's counters, when the camera has the gate on."""
    """Every event the pipeline produced, in order: health (state changes), count and zone intervals."""


def run_analysis(
    camera: CameraConfig,
    *,
    intervals_s: tuple[int, ...] = (60,),
    detector: Detector | None = None,
    agent_id: str = "analyze",
    observer: FrameObserver | None = None,
) -> AnalysisResult:
    """Run one camera's pipeline over its (file) source to the end; ``detector`` defaults to ``camera.detector``'s."""
    events: list[Event] = []
    gate = build_motion_gate(camera.motion_gate)
    pipeline = CameraPipeline(
        agent_id,
        camera,
        detector or build_detector(camera.detector),
        events.append,
        intervals_s=intervals_s,
        observer=observer,
        gate=gate,
    )
    pipeline.start()
    pipeline.join()
    return AnalysisResult(pipeline.stats(), tuple(events), gate.stats() if gate is not None else None)


def finest_interval_s(events: Sequence[Event]) -> int | None:
    """The shortest interval length among the count and zone events (each length counts every crossing)."""
    lengths = [e.interval_s for e in events if isinstance(e, CountIntervalEvent | ZoneIntervalEvent)]
    return min(lengths) if lengths else None


def line_totals(lines: Sequence[LineConfig], events: Sequence[Event]) -> dict[str, dict[str, Counter[str]]]:
    """Counts per line -> direction ('in'/'out') -> class, summed over the finest interval length's events.

    With ``intervals_s: [60, 900]`` every crossing is in a 60 s and in a 900 s interval: summing both
    would count it twice.
    """
    totals: dict[str, dict[str, Counter[str]]] = {line.id: {"in": Counter(), "out": Counter()} for line in lines}
    finest = finest_interval_s(events)
    for event in events:
        if isinstance(event, CountIntervalEvent) and event.interval_s == finest:
            for bucket in event.counts:
                totals[event.line_id][bucket.direction][bucket.vehicle_class] += bucket.count
    return totals


def summarise(camera: CameraConfig, result: AnalysisResult) -> dict[str, Any]:
    """The JSON report of ``edge-agent analyze --json``."""
    stats = result.stats
    intervals = [e for e in result.events if isinstance(e, CountIntervalEvent | ZoneIntervalEvent)]
    finest = finest_interval_s(result.events)
    zone_entries: Counter[str] = Counter({zone.id: 0 for zone in camera.zones})
    for event in intervals:
        if isinstance(event, ZoneIntervalEvent) and event.interval_s == finest:
            zone_entries[event.zone_id] += event.entries
    return {
        "video": camera.url,
        "camera_id": camera.id,
        "frames_decoded": stats.frames_decoded,
        "frames_processed": stats.frames_processed,
        "decode_errors": stats.decode_errors,
        "analytics_errors": stats.analytics_errors,
        "error": stats.last_error,
        "events": len(result.events),
        "lines": {
            line_id: {
                "in": dict(sorted(directions["in"].items())),
                "out": dict(sorted(directions["out"].items())),
                "total": sum(directions["in"].values()) + sum(directions["out"].values()),
            }
            for line_id, directions in line_totals(camera.lines, result.events).items()
        },
        "motion_gate": dataclasses.asdict(result.motion_gate) if result.motion_gate is not None else None,
        "zones": {zone_id: {"entries": entries} for zone_id, entries in sorted(zone_entries.items())},
        "intervals": [event.model_dump(mode="json", exclude={"event_id", "schema_version"}) for event in intervals],
    }


def format_table(camera: CameraConfig, report: dict[str, Any]) -> str:
    """Counts as an aligned table: one row per line, direction and class, then each line's totals."""
    rows: list[tuple[str, str, str, str]] = [("line", "direction", "class", "count")]
    for line_id, counts in report["lines"].items():
        for direction in ("in", "out"):
            rows.extend((line_id, direction, name, str(n)) for name, n in counts[direction].items())
        for direction in ("in", "out"):
            rows.append((line_id, direction, "all", str(sum(counts[direction].values()))))
        rows.append((line_id, "in+out", "all", str(counts["total"])))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    table = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d:>{widths[3]}}".rstrip() for a, b, c, d in rows]
    labels = [
        f"  {line.id}: {line.display_name}; in = {line.in_label or 'in'}, out = {line.out_label or 'out'}"
        for line in camera.lines
    ]
    header = (
        f"Số lượt xe / Counts: {report['video']} (camera {report['camera_id']}): {report['frames_decoded']} frames "
        f"decoded, {report['frames_processed']} analysed, {report['decode_errors']} decode errors"
    )
    problems = [f"error: {report['error']}"] if report["error"] else []
    return "\n".join([header, *problems, "", *table, "", "Vạch đếm / Lines:", *labels])


def write_events_jsonl(path: Path, events: Sequence[Event]) -> None:
    """One contract event per line (``model_dump_json``); written aside and renamed, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(event.model_dump_json() + "\n")
    os.replace(partial, path)
