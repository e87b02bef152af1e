"""The agent's live record stream (``GET /cameras/{id}/live``) over real sockets, fed by hand (no camera, no model)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import json
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from devstack.ports import free_port
from edge_agent.analytics.lines import LineConfig
from edge_agent.analytics.zones import ZoneConfig
from edge_agent.config import CameraConfig
from edge_agent.perception.types import Frame
from edge_agent.pipeline import StepResult
from edge_agent.preview.config import PreviewConfig
from edge_agent.preview.feed import MAX_RECENT_FINDINGS, CameraFeed
from edge_agent.preview.server import PreviewServer, PreviewSources
from edge_agent.violations.findings import Finding
from ioc_common.live_records import CONTENT_TYPE, LiveRecord, RecordDecoder, decode_records
from tests.preview_client import decode_jpeg, metric, open_stream, parse_prometheus
from tests.unit.test_annotate import cars
from tests.unit.test_preview_server import stats

T0 = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)
LINE = LineConfig(id="north", start=(0.0, 0.5), end=(1.0, 0.5), in_label="vào")
ZONE = ZoneConfig(id="box", name="Ô giao", polygon=((0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)))
WIDTH, HEIGHT = 1280, 720
WALL_CLOCK_S = 1_760_000_000.25
"""The agent's wall clock in these tests: frames are analysed 'now', long after their source time T0."""


@dataclasses.dataclass
class Harness:
    server: PreviewServer
    feeds: dict[str, CameraFeed]
    sequence: int = 0

    @property
    def url(self) -> str:
        return self.server.url

    def push(self, camera_id: str = "cam-a", *, at_s: float | None = None, findings: tuple[Finding, ...] = ()) -> None:
        """One analysed frame with a bright box (track 5); ``at_s``: its source time after T0."""
        self.sequence += 1
        x = 100 + 10 * self.sequence
        image = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
        image[300:400, x : x + 150] = 220
        when = T0 + dt.timedelta(seconds=self.sequence / 10 if at_s is None else at_s)
        frame = Frame(image, camera_id, self.sequence, when)
        result = StepResult(tracked=cars([(x, 300, x + 150, 400)], [5]), crossings=(), events=(), findings=findings)
        self.feeds[camera_id].observe(frame, result)

    def live(self, camera_id: str = "cam-a") -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection, response = open_stream(f"{self.url}/cameras/{camera_id}/live", timeout_s=10)
        assert response.status == 200
        assert response.getheader("Content-Type") == CONTENT_TYPE
        return connection, response


def finding(at_s: float, kind: str = "red_light", track_id: int = 5) -> Finding:
    return Finding(
        rule_id="den-do",
        violation_type=kind,  # type: ignore[arg-type]
        category="violation",
        track_id=track_id,
        vehicle_class="car",
        time=T0 + dt.timedelta(seconds=at_s),
        started_at=None,
        line_id="north",
        zone_id=None,
        signal_state="red",
        duration_s=None,
        related_track_ids=(),
        box_xyxy=(110.0, 300.0, 260.0, 400.0),
    )


def read_records(response: http.client.HTTPResponse, count: int) -> list[LiveRecord]:
    """The next ``count`` records, read through the shared decoder as central's proxy reads them."""
    decoder = RecordDecoder()
    records: list[LiveRecord] = []
    while len(records) < count:
        chunk = response.read1(65536)
        if not chunk:
            raise EOFError(f"stream ended after {len(records)} records")
        records.extend(decoder.feed(chunk))
    return records[:count]


def header_of(record: bytes) -> dict[str, Any]:
    [decoded] = decode_records([record])
    return decoded.header


@pytest.fixture
def harness() -> Iterator[Harness]:
    cameras = (
        CameraConfig(id="cam-a", name="Camera A", url="rtsp://example/1", lines=(LINE,), zones=(ZONE,)),
        CameraConfig(id="cam-b", name="Camera B", url="rtsp://example/2", lines=(LINE,)),
    )
    feeds = {c.id: CameraFeed(c.id, c.lines, wall_clock=lambda: WALL_CLOCK_S) for c in cameras}
    sources = PreviewSources(
        agent_id="agent-test",
        cameras=cameras,
        feeds=feeds,
        pipeline_stats=lambda: [stats("cam-a", "live", 4), stats("cam-b", "down")],
    )
    config = PreviewConfig(port=free_port(), max_stream_clients=2, max_fps=30, keepalive_s=0.2)
    server = PreviewServer(config, sources)
    server.start()
    try:
        yield Harness(server, feeds)
    finally:
        server.stop()


def test_cameras_document_links_the_live_stream(harness: Harness) -> None:
    with open_stream(f"{harness.url}/cameras", timeout_s=10)[1] as response:
        cameras = json.loads(response.read())
    assert [c["live"] for c in cameras] == ["/cameras/cam-a/live", "/cameras/cam-b/live"]


def test_frame_records_carry_the_overlay_and_a_plain_downscaled_picture(harness: Harness) -> None:
    harness.push()
    connection, response = harness.live()
    try:
        [first] = read_records(response, 1)
        harness.push()
        [second] = read_records(response, 1)
    finally:
        connection.close()
    assert [first.header["sequence"], second.header["sequence"]] == [1, 2]
    header = second.header
    assert (header["type"], header["camera_id"]) == ("frame", "cam-a")
    assert (header["width"], header["height"], header["image_width"], header["image_height"]) == (1280, 720, 640, 360)
    assert header["time"] == "2025-03-01T07:00:00.200000Z"
    assert header["analysed_at_ms"] == 1_760_000_000_250  # the agent's wall clock, not the frame's source time
    assert header["detections"] == [{"track_id": 5, "class": "car", "confidence": 0.8, "box": [120, 300, 270, 400]}]
    assert [(line["id"], line["in_label"], line["in_total"]) for line in header["lines"]] == [("north", "vào", 0)]
    assert header["zones"] == [
        {"id": "box", "name": "Ô giao", "points": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]}
    ]
    assert header["violations"] == []
    picture = decode_jpeg(second.jpeg)
    assert picture.shape == (360, 640, 3)
    # No drawings: the picture is the frame itself, downscaled (JPEG noise aside); the annotated preview is not.
    image = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
    image[300:400, 120:270] = 220
    expected = cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(picture.astype(int) - expected).max() < 40
    annotated = decode_jpeg(harness.server.renderer.preview("cam-a", harness.feeds["cam-a"].latest()))  # type: ignore[arg-type]
    assert np.abs(annotated.astype(int) - expected).max() > 100


def test_a_camera_without_frames_sends_keepalives_at_once_and_then_regularly(harness: Harness) -> None:
    connection, response = harness.live("cam-b")
    try:
        records = read_records(response, 3)
    finally:
        connection.close()
    assert all(record.keepalive and record.jpeg == b"" for record in records)
    assert [(r.header["type"], r.header["camera_id"], r.header["sequence"]) for r in records] == [
        ("keepalive", "cam-b", 0)
    ] * 3


def test_two_clients_share_one_encode_per_frame_and_metrics_count_them(harness: Harness) -> None:
    harness.push()
    clients = [harness.live(), harness.live()]
    try:
        firsts = [read_records(response, 1)[0] for _, response in clients]
        assert [r.header["sequence"] for r in firsts] == [1, 1]
        assert firsts[0].raw == firsts[1].raw
        assert harness.server.live.encodes == 1
        with open_stream(f"{harness.url}/metrics", timeout_s=10)[1] as response:
            samples = parse_prometheus(response.read().decode())
        assert metric(samples, "ioc_edge_preview_stream_clients", kind="live") == 2
        assert metric(samples, "ioc_edge_preview_live_jpeg_encodes_total") == 1
        assert metric(samples, "ioc_edge_preview_live_records_sent_total") >= 2
        assert metric(samples, "ioc_edge_preview_live_bytes_sent_total") >= 2 * len(firsts[0].raw)
        # Live streams share the preview's bound: a third stream of any kind is refused.
        refused = open_stream(f"{harness.url}/cameras/cam-b/live", timeout_s=10)
        assert refused[1].status == 503
        refused[0].close()
    finally:
        for connection, _ in clients:
            connection.close()


def test_violations_of_the_last_3_s_flash_with_their_age(harness: Harness) -> None:
    harness.push(at_s=10.0, findings=(finding(10.0),))
    feed = harness.feeds["cam-a"]
    live = harness.server.live
    now = header_of(live.frame_record("cam-a", feed.latest()))  # type: ignore[arg-type]
    assert now["violations"] == [
        {
            "kind": "red_light",
            "label_vi": "Vượt đèn đỏ",
            "label_en": "Red light",
            "track_id": 5,
            "box": [110.0, 300.0, 260.0, 400.0],
            "age_ms": 0,
        }
    ]
    harness.push(at_s=12.5, findings=(finding(12.5, "wrong_way", 9),))
    later = header_of(live.frame_record("cam-a", feed.latest()))  # type: ignore[arg-type]
    assert [(v["kind"], v["label_vi"], v["track_id"], v["age_ms"]) for v in later["violations"]] == [
        ("red_light", "Vượt đèn đỏ", 5, 2500),
        ("wrong_way", "Đi ngược chiều", 9, 0),
    ]
    harness.push(at_s=14.0)
    gone = header_of(live.frame_record("cam-a", feed.latest()))  # type: ignore[arg-type]
    assert [v["kind"] for v in gone["violations"]] == ["wrong_way"]  # the red light is 4 s old


def test_a_burst_of_violations_keeps_the_newest_and_counts_the_rest(harness: Harness) -> None:
    burst = tuple(finding(5.0, track_id=i) for i in range(MAX_RECENT_FINDINGS + 6))
    harness.push(at_s=5.0, findings=burst)
    feed = harness.feeds["cam-a"]
    sample = feed.latest()
    assert sample is not None
    assert [f.track_id for f in sample.findings] == list(range(6, MAX_RECENT_FINDINGS + 6))
    assert feed.findings_dropped == 6


def test_unknown_violation_types_get_the_generic_label(harness: Harness) -> None:
    harness.push(at_s=1.0, findings=(finding(1.0, "not_a_type"),))
    header = header_of(harness.server.live.frame_record("cam-a", harness.feeds["cam-a"].latest()))  # type: ignore[arg-type]
    assert [(v["kind"], v["label_en"]) for v in header["violations"]] == [("not_a_type", "Other")]
