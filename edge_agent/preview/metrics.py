"""The agent's counters in the Prometheus text exposition format (version 0.0.4), for ``GET /metrics``.

A pure function of stats values: every camera's pipeline counters, its measured frame rate,
running crossings per line/direction/class and per-stage seconds, the uplink's queue and
delivery counters, the preview server's own clients and refusals, and (on a traffic site) the
traffic counters: plate reads done and dropped, violations, plate passes, congestion reports and
keyframes per camera, and the evidence store and uploader (stored, uploaded, pending, evicted,
officers' requests); on a construction site, each site camera's progress counters (frames sampled,
used and rejected by reason, days reported, activity windows, timelapse keyframes, latest figures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import get_args

from edge_agent.delivery.sender import DeliveryStats
from edge_agent.evidence.store import EvidenceStats
from edge_agent.evidence.uploader import UploaderStats
from edge_agent.health import CameraHealth
from edge_agent.overlay import RunningCounts
from edge_agent.pipeline import PipelineStats
from edge_agent.preview.feed import StageTotals
from edge_agent.progress.stage import SiteProgressStats
from edge_agent.traffic.camera import CameraTrafficStats
from edge_agent.traffic.plate_stage import PlateStageStats
from edge_agent.traffic.plate_worker import PlateWorkerStats
from event_contract import SourceState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "ioc_edge_"


@dataclass(frozen=True, slots=True)
class CameraMetrics:
    stats: PipelineStats
    fps: float = 0.0
    counts: RunningCounts | None = None
    stages: StageTotals | None = None


@dataclass(frozen=True, slots=True)
class ServerMetrics:
    stream_clients: dict[str, int] = field(default_factory=dict)
    """Open streams by kind (mjpeg, sse)."""
    streams_refused: int = 0
    mjpeg_frames_sent: int = 0
    sse_messages_sent: int = 0
    jpeg_encodes: int = 0
    live_records_sent: int = 0
    """Records (frames and keepalives) written to live stream clients."""
    live_bytes_sent: int = 0
    live_jpeg_encodes: int = 0
    """Plain pictures encoded for live records (once per camera and frame, however many clients)."""


@dataclass(frozen=True, slots=True)
class TrafficMetrics:
    """The traffic side of an agent (violations, plates, evidence); absent on a counting-only agent."""

    cameras: Mapping[str, CameraTrafficStats] = field(default_factory=dict)
    plate_stages: Mapping[str, PlateStageStats] = field(default_factory=dict)
    """Per camera with plates."""
    plate_worker: PlateWorkerStats | None = None
    evidence: EvidenceStats | None = None
    evidence_upload: UploaderStats | None = None
    progress: Mapping[str, SiteProgressStats] = field(default_factory=dict)
    """Per site camera (``progress:``)."""


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    kind: str
    help: str
    samples: tuple[tuple[dict[str, str], float], ...]


def render_metrics(
    agent_id: str,
    cameras: Sequence[CameraMetrics],
    uplink: DeliveryStats | None,
    server: ServerMetrics,
    traffic: TrafficMetrics | None = None,
) -> str:
    families = [
        _Family("agent_info", "gauge", "Always 1; labels name the agent.", (({"agent_id": agent_id}, 1.0),)),
        *_camera_families(cameras),
        *(_uplink_families(uplink) if uplink is not None else ()),
        *_server_families(server),
        *(_traffic_families(traffic) if traffic is not None else ()),
    ]
    return "".join(_format(family) for family in families)


def _camera_families(cameras: Sequence[CameraMetrics]) -> Iterable[_Family]:
    def per_camera(name: str, kind: str, help_text: str, value: Iterable[float]) -> _Family:
        samples = tuple(({"camera": c.stats.source_id}, v) for c, v in zip(cameras, value, strict=True))
        return _Family(name, kind, help_text, samples)

    states = get_args(SourceState)
    yield _Family(
        "camera_state",
        "gauge",
        "1 for the camera's current state, 0 for the others.",
        tuple(
            ({"camera": c.stats.source_id, "state": state}, float(c.stats.state == state))
            for c in cameras
            for state in states
        ),
    )
    yield per_camera(
        "camera_up",
        "gauge",
        "1 while the camera is starting or live and has not given up.",
        (float(CameraHealth(c.stats.source_id, c.stats.state, c.stats.failed).working) for c in cameras),
    )
    yield per_camera(
        "camera_failed",
        "gauge",
        "1 when the camera gave up (max_reconnects).",
        (float(c.stats.failed) for c in cameras),
    )
    yield per_camera(
        "frames_decoded_total", "counter", "Frames decoded by the reader.", (c.stats.frames_decoded for c in cameras)
    )
    yield per_camera(
        "frames_processed_total", "counter", "Frames analysed.", (c.stats.frames_processed for c in cameras)
    )
    yield per_camera(
        "frames_dropped_total",
        "counter",
        "Frames the reader->analytics mailbox dropped because analytics was busy.",
        (c.stats.frames_dropped for c in cameras),
    )
    yield per_camera(
        "decode_errors_total",
        "counter",
        "Packets or frames that failed to decode.",
        (c.stats.decode_errors for c in cameras),
    )
    yield per_camera(
        "reconnects_total", "counter", "Reconnections to the camera.", (c.stats.reconnects for c in cameras)
    )
    yield per_camera("crossings_total", "counter", "Line crossings counted.", (c.stats.crossings for c in cameras))
    yield per_camera(
        "events_emitted_total", "counter", "Events handed to the uplink.", (c.stats.events_emitted for c in cameras)
    )
    yield per_camera(
        "analytics_errors_total",
        "counter",
        "Frames whose analysis failed.",
        (c.stats.analytics_errors for c in cameras),
    )
    yield per_camera("camera_fps", "gauge", "Analysed frames per second, recent.", (c.fps for c in cameras))
    yield _Family(
        "line_crossings_total",
        "counter",
        "Crossings since the agent started, per line, direction and class.",
        tuple(
            ({"camera": c.stats.source_id, "line": line_id, "direction": direction, "class": vehicle_class}, float(n))
            for c in cameras
            if c.counts is not None
            for line_id, line_counts in c.counts.lines.items()
            for direction, by_class in (("in", line_counts.inbound), ("out", line_counts.outbound))
            for vehicle_class, n in by_class.items()
        ),
    )
    yield _Family(
        "stage_seconds_total",
        "counter",
        "Seconds of analytics time per stage.",
        tuple(
            ({"camera": c.stats.source_id, "stage": stage}, seconds)
            for c in cameras
            if c.stages is not None
            for stage, seconds in (
                ("gate", c.stages.gate_s),
                ("detect", c.stages.detect_s),
                ("track", c.stages.track_s),
                ("count", c.stages.count_s),
            )
        ),
    )
    yield per_camera(
        "detector_runs_total",
        "counter",
        "Frames on which the detector ran (fewer than analysed when a motion gate skips still frames).",
        (c.stages.detector_runs if c.stages is not None else 0 for c in cameras),
    )


BREAKER_STATES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


def _uplink_families(uplink: DeliveryStats) -> Iterable[_Family]:
    def one(name: str, kind: str, help_text: str, value: float) -> _Family:
        return _Family(name, kind, help_text, (({}, float(value)),))

    spool = uplink.spool
    yield one(
        "uplink_backlog_events", "gauge", "Events in the spool not yet acknowledged by central.", uplink.backlog_events
    )
    yield one("uplink_backlog_bytes", "gauge", "Bytes of those events.", uplink.backlog_bytes)
    yield one(
        "uplink_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest event still waiting for central (0 when none).",
        uplink.oldest_pending_age_s or 0.0,
    )
    yield one("uplink_events_submitted_total", "counter", "Events stored in the spool.", uplink.submitted)
    yield one("uplink_events_sent_total", "counter", "Events central acknowledged.", uplink.sent_events)
    yield one(
        "uplink_events_duplicate_total", "counter", "Acknowledged events central already had.", uplink.duplicate_events
    )
    yield one(
        "uplink_events_failed_total",
        "counter",
        "Events central refused (one by one or as a batch); kept in the local dead letters, not retried.",
        uplink.rejected_events + uplink.refused_events,
    )
    yield one(
        "uplink_events_dropped_total",
        "counter",
        "Events the full spool dropped (lowest priority, oldest first), ever.",
        spool.dropped_events,
    )
    yield one("uplink_batches_sent_total", "counter", "Batches central acknowledged.", uplink.sent_batches)
    yield one("uplink_batches_failed_total", "counter", "Batches central refused as a whole.", uplink.refused_batches)
    yield one("uplink_retries_total", "counter", "Failed sends that were retried.", uplink.retries)
    yield one(
        "uplink_circuit_state",
        "gauge",
        "Circuit breaker: 0 closed (sending), 1 half-open (probing), 2 open (waiting).",
        BREAKER_STATES.get(uplink.breaker_state, 2.0),
    )
    yield one(
        "uplink_evidence_wanted_total",
        "counter",
        "Evidence digests central asked for in its acks (officers' requests).",
        uplink.evidence_wanted,
    )


def _one(name: str, kind: str, help_text: str, value: float) -> _Family:
    return _Family(name, kind, help_text, (({}, float(value)),))


def _traffic_families(traffic: TrafficMetrics) -> Iterable[_Family]:
    yield from _traffic_camera_families(traffic)
    yield from _progress_families(traffic.progress)
    worker = traffic.plate_worker
    if worker is not None:
        yield _one("plate_reads_total", "counter", "Vehicle crops read by the plate worker.", worker.reads)
        yield _one("plate_reads_found_total", "counter", "Reads that found a plate.", worker.plates_found)
        yield _one(
            "plate_reads_dropped_total",
            "counter",
            "Crops dropped unread: the plate worker's queue was full (drop_oldest).",
            worker.jobs_dropped,
        )
        yield _one(
            "plate_results_dropped_total",
            "counter",
            "Readings a camera did not take in time (its result queue full, drop_oldest).",
            worker.results_dropped,
        )
        yield _one("plate_read_errors_total", "counter", "Reads that failed with an error.", worker.read_errors)
        yield _one("plate_queue_depth", "gauge", "Crops waiting for the plate worker.", worker.queued)
        yield _one("plate_read_seconds_total", "counter", "Seconds the plate worker spent reading.", worker.busy_s)
    if traffic.evidence is not None:
        yield from _evidence_families(traffic.evidence)
    upload = traffic.evidence_upload
    if upload is not None:
        yield _one(
            "evidence_upload_failures_total",
            "counter",
            "Keyframe uploads that failed and are retried.",
            upload.failures,
        )
        yield _one(
            "evidence_upload_missing_total",
            "counter",
            "Listed keyframes whose file was gone at upload time (since start).",
            upload.missing,
        )
        yield _one(
            "evidence_upload_enabled", "gauge", "1 while the upload policy sends keyframes.", float(upload.enabled)
        )
        yield _one(
            "evidence_upload_serves_requests",
            "gauge",
            "1 while keyframes officers request are uploaded.",
            float(upload.serves_requests),
        )


def _traffic_camera_families(traffic: TrafficMetrics) -> Iterable[_Family]:
    cameras = sorted(traffic.cameras.items())

    def per_camera(name: str, help_text: str, values: Iterable[tuple[str, float]]) -> _Family:
        return _Family(name, "counter", help_text, tuple(({"camera": camera}, float(v)) for camera, v in values))

    yield per_camera("violations_total", "Violations and incidents emitted.", ((c, s.violations) for c, s in cameras))
    yield per_camera(
        "violations_with_plate_total",
        "Violations emitted with the vehicle's plate.",
        ((c, s.violations_with_plate) for c, s in cameras),
    )
    yield per_camera("plate_passes_total", "Plate passes emitted.", ((c, s.plate_passes) for c, s in cameras))
    yield per_camera(
        "plates_unfit_total",
        "Voted plates the contract cannot carry (dropped from the violation, no pass).",
        ((c, s.plates_unfit) for c, s in cameras),
    )
    yield per_camera("congestion_reports_total", "Congestion events emitted.", ((c, s.congestion) for c, s in cameras))
    yield per_camera("keyframes_total", "Evidence keyframes stored.", ((c, s.keyframes) for c, s in cameras))
    yield per_camera(
        "keyframes_failed_total",
        "Keyframes that could not be made or stored.",
        ((c, s.keyframes_failed) for c, s in cameras),
    )
    stages = sorted(traffic.plate_stages.items())
    yield per_camera(
        "plate_crops_submitted_total",
        "Vehicle crops sent to the plate worker.",
        ((c, s.crops_submitted) for c, s in stages),
    )
    yield per_camera(
        "passes_without_plate_total",
        "Vehicles that crossed the pass line with no plate read (not sent).",
        ((c, s.passes_without_plate) for c, s in stages),
    )


def _progress_families(progress: Mapping[str, SiteProgressStats]) -> Iterable[_Family]:
    if not progress:
        return
    cameras = sorted(progress.items())

    def per_camera(name: str, help_text: str, value: Callable[[SiteProgressStats], float]) -> _Family:
        return _Family(name, "counter", help_text, tuple(({"camera": c}, float(value(s))) for c, s in cameras))

    yield per_camera("progress_frames_sampled_total", "Frames sampled for visual progress.", lambda s: s.frames_sampled)
    yield per_camera(
        "progress_frames_used_total", "Sampled frames that passed the quality gates.", lambda s: s.frames_used
    )
    yield _Family(
        "progress_frames_rejected_total",
        "counter",
        "Sampled frames not used, by reason (night, dark, blurred, fogged, occluded...).",
        tuple(({"camera": c, "reason": r}, float(n)) for c, s in cameras for r, n in sorted(s.rejected.items())),
    )
    yield per_camera("progress_days_reported_total", "Local days closed and reported.", lambda s: s.days_reported)
    yield per_camera("progress_events_total", "Daily progress events emitted.", lambda s: s.progress_events)
    yield per_camera(
        "progress_carried_over_total", "Daily figures carried over for want of good frames.", lambda s: s.carried_over
    )
    yield per_camera("site_activity_windows_total", "Site activity events emitted.", lambda s: s.activity_windows)
    yield per_camera("progress_timelapse_keyframes_total", "Daily timelapse keyframes stored.", lambda s: s.keyframes)
    yield per_camera(
        "progress_state_errors_total", "Progress state files that could not be saved or read.", lambda s: s.state_errors
    )
    yield _Family(
        "progress_percent",
        "gauge",
        "Latest published % complete per work package (package '' = the camera's project figure).",
        tuple(({"camera": c, "package": p}, v) for c, s in cameras for p, v in sorted(s.latest.items())),
    )


def _evidence_families(evidence: EvidenceStats) -> Iterable[_Family]:
    yield _one("evidence_files", "gauge", "Keyframes held at the edge.", evidence.files)
    yield _one("evidence_bytes", "gauge", "Bytes of those keyframes.", evidence.bytes)
    yield _one("evidence_pending", "gauge", "Keyframes waiting for upload.", evidence.pending)
    yield _one(
        "evidence_requested_pending",
        "gauge",
        "Keyframes officers asked for, still waiting.",
        evidence.requested_pending,
    )
    counters = (
        ("evidence_stored_total", "Keyframes stored, ever.", evidence.stored),
        ("evidence_uploaded_total", "Keyframes central stored, ever.", evidence.uploaded),
        ("evidence_evicted_total", "Keyframes deleted oldest-first to stay under max_bytes.", evidence.evicted),
        ("evidence_expired_total", "Keyframes deleted for age (max_age_days).", evidence.expired),
        ("evidence_refused_total", "Uploads central refused for good (the file stays).", evidence.refused),
        ("evidence_pending_dropped_total", "Keyframes dropped from the full upload list.", evidence.pending_dropped),
        ("evidence_write_errors_total", "Keyframes the disk refused (since start).", evidence.write_errors),
        (
            "evidence_requested_total",
            "Keyframes officers asked for that were put on the upload list.",
            evidence.requested,
        ),
        (
            "evidence_requested_missing_total",
            "Keyframes officers asked for that this agent no longer holds.",
            evidence.requested_missing,
        ),
        ("evidence_requested_uploaded_total", "Requested keyframes uploaded.", evidence.requested_uploaded),
    )
    for name, help_text, value in counters:
        yield _one(name, "counter", help_text, value)


def _server_families(server: ServerMetrics) -> Iterable[_Family]:
    yield _Family(
        "preview_stream_clients",
        "gauge",
        "Open preview streams by kind.",
        tuple(({"kind": kind}, float(n)) for kind, n in sorted(server.stream_clients.items())),
    )
    yield _Family(
        "preview_streams_refused_total",
        "counter",
        "Stream requests refused with 503 because max_stream_clients were open.",
        (({}, float(server.streams_refused)),),
    )
    yield _Family(
        "preview_mjpeg_frames_sent_total",
        "counter",
        "JPEG parts sent to MJPEG clients.",
        (({}, float(server.mjpeg_frames_sent)),),
    )
    yield _Family(
        "preview_sse_messages_sent_total",
        "counter",
        "Frame messages sent to SSE clients.",
        (({}, float(server.sse_messages_sent)),),
    )
    yield _Family(
        "preview_jpeg_encodes_total", "counter", "Preview pictures encoded.", (({}, float(server.jpeg_encodes)),)
    )
    yield _Family(
        "preview_live_records_sent_total",
        "counter",
        "Records (frames and keepalives) sent to live stream clients.",
        (({}, float(server.live_records_sent)),),
    )
    yield _Family(
        "preview_live_bytes_sent_total",
        "counter",
        "Bytes sent to live stream clients.",
        (({}, float(server.live_bytes_sent)),),
    )
    yield _Family(
        "preview_live_jpeg_encodes_total",
        "counter",
        "Plain pictures encoded for live records (once per camera and frame, shared by every client).",
        (({}, float(server.live_jpeg_encodes)),),
    )


def _format(family: _Family) -> str:
    name = PREFIX + family.name
    lines = [f"# HELP {name} {_escape_help(family.help)}", f"# TYPE {name} {family.kind}"]
    for labels, value in family.samples:
        label_text = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels.items())
        lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
