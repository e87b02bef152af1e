"""``edge-agent``: run | validate-config | analyze.

- ``edge-agent run -c site.yaml [-v]`` runs the agent until SIGINT/SIGTERM (or every source ended).
- ``edge-agent validate-config site.yaml`` prints ``FILE:LINE:COL: field: problem`` for each
  problem and exits 2, or prints a short summary and exits 0.
- ``edge-agent analyze VIDEO --line 0,0.5,1,0.5`` counts crossings in a recorded file as fast as
  it decodes (no pacing, no dropped frames) and prints the counts as JSON; a technician's check
  of a camera's lines on a clip, and the basis of end-to-end tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge_agent.agent import Agent
from edge_agent.analytics.lines import LineConfig
from edge_agent.config import AgentConfig, CameraConfig, ConfigError, load_config
from edge_agent.delivery.backoff import BackoffConfig
from edge_agent.perception.detector import Detector
from edge_agent.perception.detectors import DetectorConfig, build_detector
from edge_agent.perception.motion_gate import build_motion_gate
from edge_agent.perception.tracker import TrackerConfig
from edge_agent.pipeline import CameraPipeline
from event_contract import CountIntervalEvent, HealthEvent

EXIT_INVALID_CONFIG = 2
EXIT_RUNTIME_ERROR = 1

log = logging.getLogger("edge_agent")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command: str = args.command
    # A long-running agent says what it is doing; the one-shot commands stay quiet unless asked.
    _setup_logging(args.verbose + (1 if command == "run" else 0))
    if command == "run":
        return _run(Path(args.config), Path(args.status_file) if args.status_file else None)
    if command == "validate-config":
        return _validate(Path(args.file))
    return _analyze(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description="Edge video analytics agent.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the agent with a site config")
    run.add_argument("-c", "--config", required=True, help="site config YAML")
    run.add_argument("--status-file", help="rewrite this JSON file every few seconds with the agent's counters")

    validate = commands.add_parser("validate-config", help="check a site config; exit 2 with FILE:LINE:COL if invalid")
    validate.add_argument("file")

    analyze = commands.add_parser("analyze", help="count line crossings in a video file, print JSON")
    analyze.add_argument("video", help="video file (or any URL PyAV opens)")
    analyze.add_argument(
        "--line",
        action="append",
        default=[],
        metavar="[ID=]X1,Y1,X2,Y2",
        help="counting line in normalised 0..1 coordinates; repeat for more lines",
    )
    analyze.add_argument("--anchor", choices=("center", "bottom_center"), default="bottom_center")
    analyze.add_argument("--config", help="take detector, tracker and (without --line) lines from this site config")
    analyze.add_argument("--camera", help="camera id in --config (default: its first camera)")
    analyze.add_argument("--detector-config", help="YAML file with a detector section (DetectorConfig)")
    analyze.add_argument("--interval-s", type=int, default=60, help="count interval length in seconds")
    analyze.add_argument(
        "--start-time",
        type=dt.datetime.fromisoformat,
        default=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        help="wall-clock time of the first frame, ISO 8601 with zone (default 2000-01-01T00:00:00+00:00)",
    )
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _load_or_report(path: Path) -> AgentConfig | None:
    try:
        return load_config(path)
    except ConfigError as error:
        for issue in error.issues:
            print(issue, file=sys.stderr)
        return None


def _run(path: Path, status_file: Path | None = None) -> int:
    config = _load_or_report(path)
    if config is None:
        return EXIT_INVALID_CONFIG
    try:
        agent = Agent(config)
    except (RuntimeError, ValueError) as error:
        log.error("%s", error)
        return EXIT_RUNTIME_ERROR
    pipelines, uplink = agent.run(status_file=status_file)
    failed = [p.source_id for p in pipelines if p.failed]
    if failed:
        log.error("cameras that gave up: %s", ", ".join(failed))
    if uplink.dead_events or uplink.lost_at_close:
        log.warning("%d events rejected by central, %d lost at shutdown", uplink.dead_events, uplink.lost_at_close)
    return EXIT_RUNTIME_ERROR if failed else 0


def _validate(path: Path) -> int:
    config = _load_or_report(path)
    if config is None:
        return EXIT_INVALID_CONFIG
    lines = sum(len(camera.lines) for camera in config.cameras)
    cameras = ", ".join(camera.id for camera in config.cameras)
    print(f"{path}: valid: agent {config.agent_id}, {len(config.cameras)} camera(s) [{cameras}], {lines} line(s)")
    return 0


def parse_line(text: str, index: int, anchor: str) -> LineConfig:
    """``[ID=]x1,y1,x2,y2`` -> LineConfig; ids default to line-1, line-2, ..."""
    line_id, _, coords = text.rpartition("=")
    parts = coords.split(",")
    if len(parts) != 4:
        raise ValueError(f"--line {text!r}: expected [ID=]X1,Y1,X2,Y2")
    try:
        x1, y1, x2, y2 = (float(part) for part in parts)
    except ValueError:
        raise ValueError(f"--line {text!r}: coordinates must be numbers") from None
    return LineConfig(id=line_id or f"line-{index}", start=(x1, y1), end=(x2, y2), anchor=anchor)


def _analysis_camera(args: argparse.Namespace) -> CameraConfig:
    detector: DetectorConfig | None = None
    tracker = TrackerConfig()
    lines: tuple[LineConfig, ...] = ()
    if args.config:
        site = load_config(args.config)
        chosen = [c for c in site.cameras if args.camera in (None, c.id)]
        if not chosen:
            raise ValueError(f"--camera {args.camera!r} is not in {args.config}")
        detector, tracker, lines = chosen[0].detector, chosen[0].tracker, chosen[0].lines
    if args.detector_config:
        raw = yaml.safe_load(Path(args.detector_config).read_text(encoding="utf-8"))
        detector = DetectorConfig.model_validate(raw.get("detector", raw) if isinstance(raw, dict) else raw)
    if args.line:
        lines = tuple(parse_line(text, i, args.anchor) for i, text in enumerate(args.line, start=1))
    if not lines:
        raise ValueError("give at least one --line (or --config with a camera that has lines)")
    if args.start_time.tzinfo is None:
        raise ValueError("--start-time needs a time zone, e.g. 2025-03-01T07:00:00+07:00")
    return CameraConfig(
        id="video",
        url=args.video,
        realtime=False,
        loop=False,
        on_end="stop",
        max_reconnects=0,
        reconnect=BackoffConfig(base_s=0.1, ceiling_s=0.1),
        start_time=args.start_time,
        queue_policy="block",
        queue_capacity=8,
        detector=detector or DetectorConfig(),
        tracker=tracker,
        lines=lines,
    )


def analyze_video(camera: CameraConfig, interval_s: int = 60, detector: Detector | None = None) -> dict[str, Any]:
    """Run one camera's pipeline over a file to the end; counts per line, direction and class.

    ``detector`` defaults to the one ``camera.detector`` describes.
    """
    events: list[CountIntervalEvent] = []

    def collect(event: CountIntervalEvent | HealthEvent) -> None:
        if isinstance(event, CountIntervalEvent):
            events.append(event)

    detector = detector or build_detector(camera.detector)
    gate = build_motion_gate(camera.motion_gate)
    pipeline = CameraPipeline("analyze", camera, detector, collect, interval_s=interval_s, gate=gate)
    pipeline.start()
    pipeline.join()
    stats = pipeline.stats()
    totals: dict[str, dict[str, Counter[str]]] = {line.id: {"in": Counter(), "out": Counter()} for line in camera.lines}
    for event in events:
        for bucket in event.counts:
            totals[event.line_id][bucket.direction][bucket.vehicle_class] += bucket.count
    return {
        "video": camera.url,
        "frames_decoded": stats.frames_decoded,
        "frames_processed": stats.frames_processed,
        "decode_errors": stats.decode_errors,
        "error": stats.last_error,
        "lines": {
            line_id: {
                "in": dict(sorted(directions["in"].items())),
                "out": dict(sorted(directions["out"].items())),
                "total": sum(directions["in"].values()) + sum(directions["out"].values()),
            }
            for line_id, directions in totals.items()
        },
        "intervals": [event.model_dump(mode="json", exclude={"event_id", "schema_version"}) for event in events],
        "motion_gate": dataclasses.asdict(gate.stats()) if gate is not None else None,
    }


def _analyze(args: argparse.Namespace) -> int:
    try:
        camera = _analysis_camera(args)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_INVALID_CONFIG
    except (ValueError, ValidationError, OSError) as error:
        print(f"edge-agent analyze: {error}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    try:
        report = analyze_video(camera, args.interval_s)
    except (RuntimeError, ValueError, OSError) as error:
        print(f"edge-agent analyze: {error}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return EXIT_RUNTIME_ERROR if report["frames_processed"] == 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
