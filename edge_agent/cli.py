"""``edge-agent``: run | validate-config | analyze | snapshot | health | dead-letters | progress check.

- ``edge-agent run -c site.yaml [-v]`` runs the agent until SIGINT/SIGTERM (or every source ended).
- ``edge-agent validate-config site.yaml`` prints ``FILE:LINE:COL: field: problem`` for each
  problem and exits 2, or prints a short summary and exits 0.
- ``edge-agent analyze VIDEO --config site.yaml [--camera ID] [--events OUT.jsonl] [--annotated OUT.mp4]``
  runs a camera's detector, tracker and lines over a recorded clip as fast as it decodes (no
  pacing, no dropped frames), prints counts per line, direction and class (``--json``: as JSON),
  and writes the events as JSONL and an annotated MP4; a technician's check of a placement
  before going live. ``--line 0,0.5,1,0.5`` tries a line without a site config.
- ``edge-agent health [--url URL | --status-file FILE]`` exits 0 when the running agent is
  healthy and 1 with the reason otherwise (Docker's HEALTHCHECK).
- ``edge-agent snapshot CAMERA_URL [-o FILE] [--timeout S]`` saves one decoded frame (JPEG or PNG
  by the file's suffix) and prints ``FILE WIDTHxHEIGHT``, for drawing lines and zones on.
- ``edge-agent progress check site.yaml --camera ID --image FILE [--json]`` judges one still of a
  construction site camera as the agent would: the quality verdict and each work package's % complete
  and confidence, so a technician can check the package regions and reference images on site (exit 2
  on a bad config or unusable references, 1 when the still cannot be read).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge_agent.agent import Agent
from edge_agent.analytics.lines import LineConfig
from edge_agent.analyze import format_table, run_analysis, summarise, write_events_jsonl
from edge_agent.annotated_video import AnnotatedVideoWriter, probe_frame_rate
from edge_agent.config import AgentConfig, CameraConfig, ConfigError, load_config
from edge_agent.delivery.dead_letters import DeadLetterStore
from edge_agent.delivery.stack import inside_state_dir
from edge_agent.health import DEFAULT_STATUS_MAX_AGE_S, check_status_file, check_url
from edge_agent.perception.detector import Detector
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.tracker import TrackerConfig
from edge_agent.preview.config import DEFAULT_PREVIEW_PORT
from edge_agent.progress.check import CheckError, check_still, format_check, progress_camera, read_still
from edge_agent.progress.references import ReferenceImageError, check_sizes, load_references
from edge_agent.sources.snapshot import SnapshotError, check_image_path, default_snapshot_path, grab_frame, save_image
from edge_agent.sources.urls import redact_url
from event_contract import Event
from ioc_common.backoff import BackoffConfig

EXIT_INVALID_CONFIG = 2
EXIT_RUNTIME_ERROR = 1

log = logging.getLogger("edge_agent")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command: str = args.command
    # A long-running agent says what it is doing; the one-shot commands stay quiet unless asked.
    _setup_logging(args.verbose + (1 if command == "run" else 0))
    commands: dict[str, Callable[[], int]] = {
        "run": lambda: _run(Path(args.config), Path(args.status_file) if args.status_file else None),
        "validate-config": lambda: _validate(Path(args.file)),
        "health": lambda: _health(args),
        "dead-letters": lambda: _dead_letters(Path(args.config), args.limit, args.code, args.raw),
        "snapshot": lambda: _snapshot(
            args.url, Path(args.output) if args.output else None, args.timeout, args.rtsp_transport
        ),
        "progress": lambda: _progress_check(Path(args.config), args.camera, Path(args.image), as_json=args.json),
    }
    return commands.get(command, lambda: _analyze(args))()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description="Edge video analytics agent.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the agent with a site config")
    run.add_argument("-c", "--config", required=True, help="site config YAML")
    run.add_argument("--status-file", help="rewrite this JSON file every few seconds with the agent's counters")

    validate = commands.add_parser("validate-config", help="check a site config; exit 2 with FILE:LINE:COL if invalid")
    validate.add_argument("file")

    analyze = commands.add_parser(
        "analyze",
        help="run a camera's detector, tracker and lines on a video file; print counts, write events and video",
    )
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
    analyze.add_argument(
        "--interval-s", type=int, help="count interval length in seconds (default: --config's intervals_s, else 60)"
    )
    analyze.add_argument("--events", metavar="OUT.jsonl", help="write every event produced, one JSON per line")
    analyze.add_argument(
        "--annotated", metavar="OUT.mp4", help="write an H.264 MP4 with boxes, track ids, lines and running counts"
    )
    analyze.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    analyze.add_argument(
        "--start-time",
        type=dt.datetime.fromisoformat,
        default=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        help="wall-clock time of the first frame, ISO 8601 with zone (default 2000-01-01T00:00:00+00:00)",
    )

    health = commands.add_parser("health", help="exit 0 when the running agent is healthy, 1 with the reason if not")
    source = health.add_mutually_exclusive_group()
    source.add_argument("--url", help=f"the agent's /healthz (default http://127.0.0.1:{DEFAULT_PREVIEW_PORT}/healthz)")
    source.add_argument("--status-file", help="the file the agent rewrites (run --status-file) instead of --url")
    health.add_argument(
        "--max-age-s",
        type=float,
        default=DEFAULT_STATUS_MAX_AGE_S,
        help="--status-file: older than this means the agent hung",
    )
    health.add_argument("--timeout-s", type=float, default=3.0, help="--url: seconds to wait for an answer")

    letters = commands.add_parser(
        "dead-letters", help="list what the agent refused (bad sensor payloads, events central refused), newest first"
    )
    letters.add_argument("-c", "--config", required=True, help="site config YAML (its state_dir holds the store)")
    letters.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    letters.add_argument("--code", help="only this code, e.g. impossible_value, not_json, refused_by_central")
    letters.add_argument("--raw", action="store_true", help="also print each raw input (may hold personal data)")

    snapshot = commands.add_parser("snapshot", help="save one frame of a camera or file as JPEG/PNG")
    snapshot.add_argument("url", metavar="CAMERA_URL", help="rtsp://..., http(s)://... or a video file")
    snapshot.add_argument("-o", "--output", help="image file, .jpg or .png (default: snapshot-HOST-TIME.jpg)")
    snapshot.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for a frame (default 15)")
    snapshot.add_argument("--rtsp-transport", choices=("tcp", "udp"), default="tcp")

    progress = commands.add_parser("progress", help="construction site cameras")
    progress_commands = progress.add_subparsers(dest="progress_command", required=True)
    check = progress_commands.add_parser(
        "check", help="judge one still (a snapshot) of a site camera: quality verdict, % and confidence per package"
    )
    check.add_argument("config", help="site config YAML")
    check.add_argument("--camera", help="site camera id (default: the config's only camera with progress:)")
    check.add_argument("--image", required=True, help="the still, JPEG or PNG (e.g. from edge-agent snapshot)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
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
    refused = uplink.rejected_events + uplink.refused_events
    if refused:
        log.warning("%d events refused by central (kept in the local dead letters)", refused)
    if uplink.backlog_events:
        log.warning("%d events not yet delivered stay in the spool for the next start", uplink.backlog_events)
    return EXIT_RUNTIME_ERROR if failed else 0


def _validate(path: Path) -> int:
    config = _load_or_report(path)
    if config is None:
        return EXIT_INVALID_CONFIG
    reference_sizes: dict[str, tuple[int, int]] = {}
    for camera in config.cameras:
        if camera.progress is None:
            continue
        try:
            reference_sizes[camera.id] = check_sizes(camera.id, load_references(camera.id, camera.progress))
        except ReferenceImageError as error:
            print(f"{path}: {error}", file=sys.stderr)
    if len(reference_sizes) < sum(camera.progress is not None for camera in config.cameras):
        return EXIT_INVALID_CONFIG
    lines = sum(len(camera.lines) for camera in config.cameras)
    zones = sum(len(camera.zones) for camera in config.cameras)
    cameras = ", ".join(camera.id for camera in config.cameras)
    sensors = config.sensors.sensors if config.sensors is not None else ()
    print(
        f"{path}: valid: agent {config.agent_id}, {len(config.cameras)} camera(s) [{cameras}], {lines} line(s), "
        f"{zones} zone(s), intervals {list(config.intervals_s)} s, {len(sensors)} sensor(s) "
        f"[{', '.join(sensor.id for sensor in sensors)}], uplink {config.central.transport}"
    )
    for camera in config.cameras:
        summary = traffic_summary(camera)
        if summary is not None:
            print(f"  camera {camera.id}: {summary}")
    for camera in config.cameras:
        if camera.id in reference_sizes:
            print(f"  camera {camera.id}: {progress_summary(camera, reference_sizes[camera.id])}")
    return 0


def progress_summary(camera: CameraConfig, reference_size: tuple[int, int]) -> str:
    """One line of a site camera's progress settings (for validate-config)."""
    progress = camera.progress
    if progress is None:
        return ""
    activity = progress.activity
    zones = [zone.id for zone in activity.zones] or ["site (whole picture)"]
    parts = [
        f"progress project {progress.project_id}",
        f"packages [{', '.join(p.id for p in progress.packages)}]",
        f"{len(progress.references)} reference(s) {reference_size[0]}x{reference_size[1]}",
        f"sample every {progress.sample_every_s:g} s, daylight {progress.daylight.start}-{progress.daylight.end} "
        f"{progress.timezone}",
        f"activity zones [{', '.join(zones)}]" if activity.enabled else "activity off",
        f"timelapse at {progress.timelapse.at}" if progress.timelapse.enabled else "timelapse off",
    ]
    if camera.decode != "keyframes":
        parts.append("note: decode: keyframes is cheaper for a site camera")
    return "; ".join(parts)


def traffic_summary(camera: CameraConfig) -> str | None:
    """One line of a camera's violation rules and plate settings (for validate-config); None without either.

    A technician checks at a glance that each rule is there, with its signal, and where plates are read.
    """
    parts: list[str] = []
    rules = camera.violations
    if rules is not None:
        described = [
            f"{rule.type} {rule.id}" + (f" (signal {signal})" if (signal := getattr(rule, "signal_id", None)) else "")
            for rule in rules.rules
        ]
        signals = [
            f"{signal.id} ({'mqtt ' + signal.mqtt if signal.mqtt is not None else 'region'})"
            for signal in rules.signals
        ]
        parts.append(f"rules [{', '.join(described)}]" if described else "no rules")
        if signals:
            parts.append(f"signals [{', '.join(signals)}]")
        if rules.congestion:
            parts.append(f"congestion zones [{', '.join(zone.id for zone in rules.congestion)}]")
    plates = camera.plates
    if plates is not None:
        line = f"line {plates.pass_line_id}" if plates.pass_line_id is not None else "at track end (no pass line)"
        parts.append(
            f"plates {plates.reader.backend}, pass {line}, wait {plates.plate_wait_s:g} s, "
            f"classes {'/'.join(plates.classes)}, keyframe {'on' if plates.keyframe else 'off'}"
        )
    return "; ".join(parts) if parts else None


def _dead_letters(path: Path, limit: int, code: str | None, raw: bool) -> int:
    """Totals by code, then the newest letters with their reasons (safe beside a running agent: WAL readers)."""
    config = _load_or_report(path)
    if config is None:
        return EXIT_INVALID_CONFIG
    settings = config.dead_letters
    settings = settings.model_copy(update={"path": inside_state_dir(config.state_dir, settings.path)})
    if not settings.path.exists():
        print(f"{settings.path}: no dead letters yet")
        return 0
    store = DeadLetterStore(settings)
    try:
        stats = store.stats()
        by_code = ", ".join(f"{name} {count}" for name, count in sorted(stats.by_code.items())) or "none"
        print(
            f"{settings.path}: {stats.kept} kept ever ({by_code}); {stats.stored_now} stored, {stats.evicted} evicted"
        )
        for stored in store.recent(limit, code=code):
            letter = stored.letter
            where = " ".join(f"{k}={v}" for k, v in (("topic", letter.topic), ("sensor", letter.sensor_id)) if v)
            print(
                f"#{stored.id} {letter.received_at.isoformat()} {letter.source} {letter.code} {where}: {letter.reason}"
            )
            if raw:
                print(f"    raw{' (truncated)' if letter.truncated else ''}: {letter.raw[:2000]!r}")
    finally:
        store.close()
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


@dataclass(frozen=True, slots=True)
class _AnalysisSetup:
    camera: CameraConfig
    agent_id: str
    intervals_s: tuple[int, ...]


DEFAULT_ANALYZE_INTERVALS_S: tuple[int, ...] = (60,)

# How a recorded clip is read: every frame, no pacing, stop at its end, never reconnect.
_OFFLINE_READING: dict[str, Any] = {
    "realtime": False,
    "loop": False,
    "on_end": "stop",
    "max_reconnects": 0,
    "reconnect": BackoffConfig(base_s=0.1, ceiling_s=0.1),
    "queue_policy": "block",
    "queue_capacity": 8,
}


def _analysis_setup(args: argparse.Namespace) -> _AnalysisSetup:
    if args.start_time.tzinfo is None:
        raise ValueError("--start-time needs a time zone, e.g. 2025-03-01T07:00:00+07:00")
    if args.interval_s is not None and args.interval_s <= 0:
        raise ValueError(f"--interval-s must be positive, got {args.interval_s}")
    # Everything of the site camera (detector, tracker, lines, zones, max_fps...) is kept, so the events
    # look exactly like the ones this camera will send from the site; only how the file is read changes.
    overrides: dict[str, Any] = {"url": args.video, "start_time": args.start_time, **_OFFLINE_READING}
    if args.detector_config:
        raw = yaml.safe_load(Path(args.detector_config).read_text(encoding="utf-8"))
        overrides["detector"] = DetectorConfig.model_validate(
            raw.get("detector", raw) if isinstance(raw, dict) else raw
        )
    if args.line:
        overrides["lines"] = tuple(parse_line(text, i, args.anchor) for i, text in enumerate(args.line, start=1))
    agent_id, intervals_s = "analyze", DEFAULT_ANALYZE_INTERVALS_S
    if args.config:
        site = load_config(args.config)
        chosen = [c for c in site.cameras if args.camera in (None, c.id)]
        if not chosen:
            raise ValueError(f"--camera {args.camera!r} is not in {args.config}")
        agent_id, intervals_s = site.agent_id, site.intervals_s
        base = chosen[0].model_dump()
    elif not args.line:
        raise ValueError("give at least one --line (or --config with a camera that has lines)")
    else:
        base = {"id": "video", "detector": DetectorConfig(), "tracker": TrackerConfig()}
    if args.interval_s is not None:
        intervals_s = (args.interval_s,)
    camera = CameraConfig.model_validate({**base, **overrides})
    return _AnalysisSetup(camera, agent_id, intervals_s)


def analyze_video(camera: CameraConfig, interval_s: int = 60, detector: Detector | None = None) -> dict[str, Any]:
    """Run one camera's pipeline over a file to the end; the JSON report (counts per line, direction, class).

    ``detector`` defaults to the one ``camera.detector`` describes.
    """
    return summarise(camera, run_analysis(camera, intervals_s=(interval_s,), detector=detector))


def _analyze(args: argparse.Namespace) -> int:
    try:
        setup = _analysis_setup(args)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_INVALID_CONFIG
    except (ValueError, ValidationError, OSError) as error:
        print(f"edge-agent analyze: {error}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    camera = setup.camera
    writer = None
    if args.annotated:
        writer = AnnotatedVideoWriter(Path(args.annotated), camera.lines, frame_rate=probe_frame_rate(camera.url))
    try:
        result = run_analysis(
            camera,
            intervals_s=setup.intervals_s,
            agent_id=setup.agent_id,
            observer=writer.observe if writer is not None else None,
        )
    except (RuntimeError, ValueError, OSError) as error:
        print(f"edge-agent analyze: {error}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR
    finally:
        if writer is not None:
            writer.close()
    report = summarise(camera, result)
    problems = [] if report["frames_processed"] else ["no frame was analysed"]
    problems += _record_outputs(report, result.events, args.events, writer)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_table(camera, report))
        if "events_file" in report:
            print(f"\n{report['events']} events -> {report['events_file']}")
        if "annotated_video" in report:
            print(f"annotated video ({report['annotated_frames']} frames) -> {report['annotated_video']}")
    for problem in problems:
        print(f"edge-agent analyze: {problem}", file=sys.stderr)
    return EXIT_RUNTIME_ERROR if problems else 0


def _record_outputs(
    report: dict[str, Any], events: Sequence[Event], events_path: str | None, writer: AnnotatedVideoWriter | None
) -> list[str]:
    """Write the JSONL, note both outputs in ``report``; the problems met, if any."""
    problems: list[str] = []
    if events_path:
        try:
            write_events_jsonl(Path(events_path), events)
            report["events_file"] = events_path
        except OSError as error:
            problems.append(f"cannot write {events_path}: {error}")
    if writer is not None:
        if writer.error:
            problems.append(writer.error)
        else:
            report["annotated_video"] = str(writer.path)
            report["annotated_frames"] = writer.frames_written
    return problems


def _health(args: argparse.Namespace) -> int:
    if args.status_file:
        verdict = check_status_file(Path(args.status_file), dt.datetime.now(dt.UTC), args.max_age_s)
    else:
        verdict = check_url(args.url or f"http://127.0.0.1:{DEFAULT_PREVIEW_PORT}/healthz", args.timeout_s)
    if verdict.healthy:
        print(f"healthy: {verdict.reason}")
        return 0
    print(f"unhealthy: {verdict.reason}", file=sys.stderr)
    return EXIT_RUNTIME_ERROR


def _progress_check(path: Path, camera_id: str | None, image_path: Path, *, as_json: bool) -> int:
    config = _load_or_report(path)
    if config is None:
        return EXIT_INVALID_CONFIG
    try:
        camera, progress = progress_camera(config, camera_id)
        references = load_references(camera, progress)
    except (CheckError, ReferenceImageError) as error:
        print(f"edge-agent progress check: {error}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    try:
        image = read_still(image_path)
    except OSError as error:
        print(f"edge-agent progress check: {error}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR
    try:
        result = check_still(camera, progress, image, references)
    except (CheckError, ReferenceImageError) as error:
        print(f"edge-agent progress check: {error}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    print(json.dumps(result.document(), indent=2) if as_json else format_check(result, str(image_path)))
    return 0


def _snapshot(url: str, output: Path | None, timeout_s: float, rtsp_transport: str) -> int:
    path = output or default_snapshot_path(url, dt.datetime.now(dt.UTC))
    try:
        check_image_path(path)
        if timeout_s <= 0:
            raise ValueError("--timeout must be positive")
    except ValueError as error:
        print(f"edge-agent snapshot: {error}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    try:
        frame = grab_frame(url, timeout_s=timeout_s, rtsp_transport=rtsp_transport)
        save_image(frame, path)
    except (SnapshotError, OSError) as error:
        print(f"edge-agent snapshot: {redact_url(str(error))}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR
    # The size lets a technician turn pixel positions into the normalised 0..1 coordinates of lines and zones.
    print(f"{path} {frame.width}x{frame.height}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
