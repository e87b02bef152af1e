"""The preview server over real sockets, fed by hand through a camera's feed (no camera, no model)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from devstack.ports import free_port
from edge_agent.analytics.lines import Crossing, LineConfig
from edge_agent.config import CameraConfig
from edge_agent.delivery.circuit_breaker import BreakerStats
from edge_agent.delivery.sender import DeliveryStats
from edge_agent.delivery.spool import SpoolStats
from edge_agent.perception.types import Frame
from edge_agent.pipeline import PipelineStats, StageTimings, StepResult
from edge_agent.preview.config import PreviewConfig
from edge_agent.preview.feed import CameraFeed
from edge_agent.preview.server import PreviewServer, PreviewSources
from tests.preview_client import decode_jpeg, metric, open_stream, parse_prometheus, read_mjpeg_parts, read_sse_messages
from tests.unit.test_annotate import cars

T0 = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)
LINE = LineConfig(id="north", start=(0.0, 0.5), end=(1.0, 0.5), in_label="vào")
WIDTH, HEIGHT = 1280, 720


def camera(camera_id: str) -> CameraConfig:
    return CameraConfig(id=camera_id, name=f"Camera {camera_id}", url="rtsp://example/1", lines=(LINE,))


def stats(camera_id: str, state: str = "live", processed: int = 0, failed: bool = False) -> PipelineStats:
    return PipelineStats(
        source_id=camera_id,
        state=state,  # type: ignore[arg-type]
        frames_decoded=processed + 2,
        frames_processed=processed,
        frames_dropped=2,
        decode_errors=1,
        reconnects=3,
        crossings=0,
        events_emitted=0,
        analytics_errors=0,
        last_error="",
        source_ended=False,
        failed=failed,
    )


SPOOL = SpoolStats(
    pending_events=1,
    pending_bytes=300,
    leased_events=0,
    pending_by_priority={"1": 1},
    oldest_pending_time="2026-11-25T07:00:00+00:00",
    put_events=10,
    acked_events=8,
    duplicate_puts=0,
    dropped_events=1,
    dropped_by_kind={"count_interval": 1},
    dropped_first_time="2026-11-25T06:00:00+00:00",
    dropped_last_time="2026-11-25T06:00:00+00:00",
    memory_held=0,
    memory_dropped=0,
    refused_puts=0,
    unflushed_acks=0,
    disk_errors=0,
    state="ok",
    last_error=None,
    corrupt_recoveries=0,
    salvaged_events=0,
    checksum_failures=0,
    quarantined_files=(),
    max_bytes=1 << 30,
)
UPLINK = DeliveryStats(
    submitted=10,
    submit_errors=0,
    refused_after_close=0,
    sent_events=8,
    sent_batches=2,
    stored_events=8,
    duplicate_events=0,
    rejected_events=1,
    refused_batches=0,
    refused_events=0,
    split_batches=0,
    retries=4,
    dead_letter_errors=0,
    internal_errors=0,
    breaker_state="open",
    breaker=BreakerStats(state="open", consecutive_failures=5, opens_in_a_row=1, open_remaining_s=3.0),
    last_error="",
    backlog_events=1,
    backlog_bytes=300,
    oldest_pending_age_s=12.5,
    spool=SPOOL,
)


@dataclasses.dataclass
class Harness:
    server: PreviewServer
    feeds: dict[str, CameraFeed]
    states: dict[str, str]
    sequence: int = 0

    @property
    def url(self) -> str:
        return self.server.url

    def push(self, camera_id: str = "cam-a", *, crossings: tuple[Crossing, ...] = ()) -> None:
        """One analysed frame: a bright box moving right, as the analytics thread would report it."""
        self.sequence += 1
        x = 100 + 10 * self.sequence
        image = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
        image[300:400, x : x + 150] = 220
        frame = Frame(image, camera_id, self.sequence, T0 + dt.timedelta(seconds=self.sequence / 10))
        result = StepResult(
            tracked=cars([(x, 300, x + 150, 400)], [5]),
            crossings=crossings,
            events=(),
            timings=StageTimings(detect_s=0.01, track_s=0.001),
        )
        self.feeds[camera_id].observe(frame, result)

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:  # noqa: S310 - local test server
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers.items()), error.read()

    def get_json(self, path: str) -> tuple[int, Any]:
        status, _, body = self.get(path)
        return status, json.loads(body)


def start_harness(config: PreviewConfig) -> Harness:
    cameras = (camera("cam-a"), camera("cam-b"))
    feeds = {c.id: CameraFeed(c.id, c.lines) for c in cameras}
    states = {"cam-a": "live", "cam-b": "down"}
    sources = PreviewSources(
        agent_id="agent-test",
        cameras=cameras,
        feeds=feeds,
        pipeline_stats=lambda: [stats(c, s, processed=4) for c, s in states.items()],
        uplink_stats=lambda: UPLINK,
    )
    server = PreviewServer(config, sources)
    server.start()
    return Harness(server, feeds, states)


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = start_harness(PreviewConfig(port=free_port(), max_stream_clients=2, max_fps=30, keepalive_s=0.5))
    try:
        yield h
    finally:
        h.server.stop()


def feed_frames_while(h: Harness, done: threading.Event, camera_id: str = "cam-a") -> threading.Thread:
    """Push a frame now and then every 50 ms until ``done``."""
    h.push(camera_id)

    def run() -> None:
        while not done.wait(0.05):
            h.push(camera_id)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_cameras_lists_ids_names_states_and_frame_size(harness: Harness) -> None:
    status, before = harness.get_json("/cameras")
    assert status == 200
    assert [(c["id"], c["name"], c["state"], c["width"]) for c in before] == [
        ("cam-a", "Camera cam-a", "live", None),
        ("cam-b", "Camera cam-b", "down", None),
    ]
    harness.push()
    _, after = harness.get_json("/cameras")
    assert (after[0]["width"], after[0]["height"]) == (WIDTH, HEIGHT)
    assert after[0]["lines"][0]["in_label"] == "vào"
    assert after[0]["preview"] == "/cameras/cam-a/preview.mjpg"


def test_snapshot_waits_for_a_frame_then_is_downscaled_and_annotated(harness: Harness) -> None:
    status, headers, body = harness.get("/cameras/cam-a/snapshot.jpg")
    assert status == 503
    assert headers["Retry-After"] == "2"
    assert "No picture" in body.decode() or "no picture" in body.decode()

    harness.push()
    status, headers, body = harness.get("/cameras/cam-a/snapshot.jpg")
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    picture = decode_jpeg(body)
    assert picture.shape == (360, 640, 3)  # max_width 640 keeps 16:9

    _, _, raw_body = harness.get("/cameras/cam-a/snapshot.jpg?raw=1")
    raw = decode_jpeg(raw_body)
    assert raw.shape == (HEIGHT, WIDTH, 3)
    # The raw frame has no overlay: the box edge at y=300 is the frame's own flat grey above it.
    assert abs(int(raw[250, 640, 0]) - 60) < 8
    assert np.abs(cv2.resize(raw, (640, 360)).astype(int) - picture.astype(int)).max() > 100  # overlay drawn


def test_mjpeg_stream_sends_decodable_jpeg_parts_of_new_frames(harness: Harness) -> None:
    done = threading.Event()
    feeder = feed_frames_while(harness, done)
    try:
        connection, response = open_stream(harness.url + "/cameras/cam-a/preview.mjpg", timeout_s=10)
        parts = read_mjpeg_parts(response, 3)
        connection.close()
    finally:
        done.set()
        feeder.join()
    pictures = [decode_jpeg(part.body) for part in parts]
    assert all(p.shape == (360, 640, 3) for p in pictures)
    sequences = [int(part.headers["x-sequence"]) for part in parts]
    assert sequences == sorted(set(sequences))  # new frames, never one repeated
    assert parts[0].headers["x-timestamp"].startswith("2025-03-01T07:00:")
    assert not np.array_equal(pictures[0], pictures[-1])  # the box moved


def test_mjpeg_shows_a_placeholder_before_the_first_frame(harness: Harness) -> None:
    connection, response = open_stream(harness.url + "/cameras/cam-b/preview.mjpg", timeout_s=10)
    [part] = read_mjpeg_parts(response, 1)
    connection.close()
    assert "x-sequence" not in part.headers
    assert decode_jpeg(part.body).shape == (360, 640, 3)


def test_sse_sends_one_message_per_analysed_frame_with_boxes_and_counts(harness: Harness) -> None:
    done = threading.Event()
    feeder = feed_frames_while(harness, done)
    try:
        connection, response = open_stream(harness.url + "/cameras/cam-a/events", timeout_s=10)
        messages = read_sse_messages(response, 3)
        connection.close()
    finally:
        done.set()
        feeder.join()
    assert [m["sequence"] for m in messages] == sorted({m["sequence"] for m in messages})
    first = messages[0]
    assert (first["camera_id"], first["width"], first["height"]) == ("cam-a", WIDTH, HEIGHT)
    assert first["detections"][0]["track_id"] == 5
    assert first["detections"][0]["class"] == "car"
    assert first["lines"][0]["id"] == "north"
    assert first["lines"][0]["in_total"] == 0


def test_stream_clients_are_bounded_and_refusals_counted(harness: Harness) -> None:
    opened = [open_stream(harness.url + "/cameras/cam-a/events", timeout_s=10) for _ in range(2)]
    assert all(response.status == 200 for _, response in opened)
    status, headers, body = harness.get("/cameras/cam-b/preview.mjpg")
    assert status == 503
    assert "max_stream_clients=2" in json.loads(body)["reason"]
    assert headers["Retry-After"] == "10"

    samples = parse_prometheus(harness.get("/metrics")[2].decode())
    assert metric(samples, "ioc_edge_preview_streams_refused_total") == 1
    assert metric(samples, "ioc_edge_preview_stream_clients", kind="sse") == 2
    for connection, _ in opened:
        connection.close()


def test_stop_ends_open_streams(harness: Harness) -> None:
    harness.push()
    connection, response = open_stream(harness.url + "/cameras/cam-a/preview.mjpg", timeout_s=10)
    read_mjpeg_parts(response, 1)
    harness.server.stop()
    with pytest.raises(EOFError):
        read_mjpeg_parts(response, 1_000)
    connection.close()


def test_metrics_are_prometheus_text_with_camera_uplink_and_line_counters(harness: Harness) -> None:
    harness.push(crossings=(Crossing("north", 5, "car", "in", T0),))
    harness.push()
    status, headers, body = harness.get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse_prometheus(body.decode())

    assert metric(samples, "ioc_edge_camera_state", camera="cam-a", state="live") == 1
    assert metric(samples, "ioc_edge_camera_state", camera="cam-b", state="live") == 0
    assert metric(samples, "ioc_edge_camera_up", camera="cam-b") == 0
    assert metric(samples, "ioc_edge_frames_processed_total", camera="cam-a") == 4
    assert metric(samples, "ioc_edge_frames_dropped_total", camera="cam-a") == 2
    assert metric(samples, "ioc_edge_decode_errors_total", camera="cam-a") == 1
    assert metric(samples, "ioc_edge_reconnects_total", camera="cam-a") == 3
    assert (
        metric(
            samples, "ioc_edge_line_crossings_total", camera="cam-a", line="north", direction="in", **{"class": "car"}
        )
        == 1
    )
    assert metric(samples, "ioc_edge_camera_fps", camera="cam-a") > 0
    assert metric(samples, "ioc_edge_stage_seconds_total", camera="cam-a", stage="detect") == pytest.approx(0.02)
    assert metric(samples, "ioc_edge_uplink_backlog_events") == 1
    assert metric(samples, "ioc_edge_uplink_oldest_pending_age_seconds") == 12.5
    assert metric(samples, "ioc_edge_uplink_circuit_state") == 2
    assert metric(samples, "ioc_edge_uplink_events_sent_total") == 8
    assert metric(samples, "ioc_edge_uplink_events_failed_total") == 1
    assert metric(samples, "ioc_edge_uplink_events_dropped_total") == 1


def test_healthz_is_503_only_when_every_camera_is_down(harness: Harness) -> None:
    status, document = harness.get_json("/healthz")
    assert status == 200
    assert document["status"] == "ok"
    assert "cam-b=down" in document["reason"]

    harness.states["cam-a"] = "connecting"
    status, document = harness.get_json("/healthz")
    assert status == 503
    assert document["status"] == "unhealthy"
    assert document["reason"].startswith("every camera is down")


def test_unknown_paths_and_cameras_are_404_with_a_reason(harness: Harness) -> None:
    status, document = harness.get_json("/cameras/nope/preview.mjpg")
    assert status == 404
    assert "nope" in document["reason"]
    assert harness.get("/cameras/cam-a/video.avi")[0] == 404
    assert harness.get("/admin")[0] == 404
    status, index = harness.get_json("/")
    assert status == 200
    assert "/metrics" in index["endpoints"]


def test_mjpeg_skips_frames_to_keep_to_max_fps() -> None:
    h = start_harness(PreviewConfig(port=free_port(), max_fps=1, keepalive_s=60))
    done = threading.Event()
    feeder = feed_frames_while(h, done)  # about 20 analysed frames per second
    try:
        connection, response = open_stream(h.url + "/cameras/cam-a/preview.mjpg", timeout_s=10)
        first, second = read_mjpeg_parts(response, 2)
        connection.close()
    finally:
        done.set()
        feeder.join()
        h.server.stop()
    # One part a second while frames keep coming: the stream jumps to the newest, skipping the rest.
    assert int(second.headers["x-sequence"]) - int(first.headers["x-sequence"]) >= 3


def test_viewers_of_the_same_frame_share_one_encode(harness: Harness) -> None:
    harness.push()
    streams = []
    for _ in range(2):
        connection, response = open_stream(harness.url + "/cameras/cam-a/preview.mjpg", timeout_s=10)
        [part] = read_mjpeg_parts(response, 1)
        streams.append((connection, part))
    assert streams[0][1].body == streams[1][1].body
    assert harness.server.renderer.encodes == 1
    for connection, _ in streams:
        connection.close()
