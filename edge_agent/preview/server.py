"""The agent's local HTTP server (standard library ``ThreadingHTTPServer``, one thread per client).

Endpoints (all GET):

- ``/cameras``: JSON list of cameras: id, name, state, frame size, analysed fps, lines, links.
- ``/cameras/{id}/preview.mjpg``: annotated MJPEG (multipart/x-mixed-replace), at most
  ``max_fps``, downscaled to ``max_width``.
- ``/cameras/{id}/snapshot.jpg``: the latest annotated picture; ``?raw=1``: the frame as the
  camera sent it, full size, for drawing lines and zones.
- ``/cameras/{id}/events``: Server-Sent Events, one ``frame`` message per analysed frame with
  its time, size, tracked boxes and the lines with their running counts (``overlay_message``).
- ``/cameras/{id}/live``: the live record stream (``application/x-ioc-live``, ``preview.live``): the
  plain downscaled picture with the overlay as JSON beside it, at most ``max_fps``, keepalive records
  while no frame comes; what central's live proxy relays to browsers (docs/live_view.md).
- ``/metrics``: Prometheus text format. ``/healthz``: 200 while a camera works, else 503.

The analytics threads never wait on this server: they only replace each camera's latest sample
(``CameraFeed``). Pictures are encoded here, in client threads, at the preview rate and only while
someone watches. At most ``max_stream_clients`` streams are open at once; more get 503 (counted).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import cv2
import numpy as np

from edge_agent.analytics.lines import LineConfig
from edge_agent.annotate import FONT
from edge_agent.config import CameraConfig
from edge_agent.delivery.sender import DeliveryStats
from edge_agent.health import CameraHealth, judge_cameras
from edge_agent.overlay import overlay_message
from edge_agent.pipeline import PipelineStats
from edge_agent.preview.config import PreviewConfig
from edge_agent.preview.feed import CameraFeed, PreviewSample
from edge_agent.preview.jpeg import JpegRenderer, encode_jpeg
from edge_agent.preview.live import LiveEncoder, zone_documents
from edge_agent.preview.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from edge_agent.preview.metrics import CameraMetrics, ServerMetrics, TrafficMetrics, render_metrics
from ioc_common.live_records import CONTENT_TYPE as LIVE_CONTENT_TYPE

log = logging.getLogger(__name__)

STOP_POLL_S = 0.5
"""Longest a stream waits for a frame before it checks whether the server is stopping."""
ACCEPT_POLL_S = 0.1
"""How often the accept loop checks for shutdown; stop() waits up to this long."""
BOUNDARY = "ioc-frame"
STREAM_KINDS = ("mjpeg", "sse", "live")


@dataclass(frozen=True, slots=True)
class PreviewSources:
    """What the server reads from the running agent; plain callables, so tests can give their own."""

    agent_id: str
    cameras: tuple[CameraConfig, ...]
    feeds: Mapping[str, CameraFeed]
    pipeline_stats: Callable[[], Sequence[PipelineStats]]
    uplink_stats: Callable[[], DeliveryStats] | None = None
    traffic_stats: Callable[[], TrafficMetrics | None] | None = None
    """Plates, violations and evidence counters (agents with traffic cameras)."""


class StreamLimiter:
    """Bounds the open streams over all cameras; a refused request is counted, never queued."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        self.refused = 0

    def try_open(self, kind: str) -> bool:
        with self._lock:
            if sum(self._open.values()) >= self.capacity:
                self.refused += 1
                return False
            self._open[kind] += 1
            return True

    def close(self, kind: str) -> None:
        with self._lock:
            self._open[kind] -= 1

    def open_streams(self) -> dict[str, int]:
        with self._lock:
            return {kind: self._open.get(kind, 0) for kind in STREAM_KINDS}


class PreviewServer:
    """``start()`` binds and serves in a background thread; ``stop()`` ends every stream."""

    def __init__(self, config: PreviewConfig, sources: PreviewSources) -> None:
        self.config = config
        self.sources = sources
        self.limiter = StreamLimiter(config.max_stream_clients)
        self.renderer = JpegRenderer(max_width=config.max_width, quality=config.jpeg_quality)
        self.live = LiveEncoder(
            max_width=config.max_width,
            quality=config.jpeg_quality,
            zones={camera.id: zone_documents(camera.zones) for camera in sources.cameras},
        )
        self.stopping = threading.Event()
        self._counts_lock = threading.Lock()
        self._mjpeg_frames_sent = 0
        self._sse_messages_sent = 0
        self._live_records_sent = 0
        self._live_bytes_sent = 0
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind ``host:port`` (raises ``OSError`` when taken) and serve in a daemon thread."""
        httpd = _HttpServer((self.config.host, self.config.port), _Handler)
        httpd.app = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": ACCEPT_POLL_S}, name="preview-http", daemon=True
        )
        self._thread.start()
        log.info("preview server on %s", self.url)

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("preview server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def stop(self) -> None:
        self.stopping.set()  # streams notice within STOP_POLL_S
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def counted(self, *, mjpeg: int = 0, sse: int = 0, live: int = 0, live_bytes: int = 0) -> None:
        with self._counts_lock:
            self._mjpeg_frames_sent += mjpeg
            self._sse_messages_sent += sse
            self._live_records_sent += live
            self._live_bytes_sent += live_bytes

    # -- documents ---------------------------------------------------------------------------------

    def cameras_document(self) -> list[dict[str, Any]]:
        stats = {s.source_id: s for s in self.sources.pipeline_stats()}
        cameras = []
        for camera in self.sources.cameras:
            feed = self.sources.feeds.get(camera.id)
            sample = feed.latest() if feed is not None else None
            camera_stats = stats.get(camera.id)
            base = f"/cameras/{camera.id}"
            cameras.append(
                {
                    "id": camera.id,
                    "name": camera.name or camera.id,
                    "state": camera_stats.state if camera_stats else "starting",
                    "failed": camera_stats.failed if camera_stats else False,
                    "width": sample.frame.width if sample else None,
                    "height": sample.frame.height if sample else None,
                    "fps": round(feed.fps(), 2) if feed else 0.0,
                    "frames_processed": camera_stats.frames_processed if camera_stats else 0,
                    "lines": [_line_document(line) for line in camera.lines],
                    "preview": f"{base}/preview.mjpg",
                    "snapshot": f"{base}/snapshot.jpg",
                    "events": f"{base}/events",
                    "live": f"{base}/live",
                }
            )
        return cameras

    def health_document(self) -> tuple[int, dict[str, Any]]:
        cameras = [CameraHealth(s.source_id, s.state, s.failed) for s in self.sources.pipeline_stats()]
        verdict = judge_cameras(cameras)
        document = {
            "status": "ok" if verdict.healthy else "unhealthy",
            "reason": verdict.reason,
            "agent_id": self.sources.agent_id,
            "cameras": [{"id": c.camera_id, "state": c.state, "failed": c.failed} for c in cameras],
        }
        return (200 if verdict.healthy else 503), document

    def metrics_text(self) -> str:
        cameras = []
        for stats in self.sources.pipeline_stats():
            feed = self.sources.feeds.get(stats.source_id)
            cameras.append(
                CameraMetrics(
                    stats,
                    fps=feed.fps() if feed else 0.0,
                    counts=feed.counts() if feed else None,
                    stages=feed.stage_totals() if feed else None,
                )
            )
        with self._counts_lock:
            mjpeg_sent, sse_sent = self._mjpeg_frames_sent, self._sse_messages_sent
            live_sent, live_bytes = self._live_records_sent, self._live_bytes_sent
        server = ServerMetrics(
            stream_clients=self.limiter.open_streams(),
            streams_refused=self.limiter.refused,
            mjpeg_frames_sent=mjpeg_sent,
            sse_messages_sent=sse_sent,
            jpeg_encodes=self.renderer.encodes,
            live_records_sent=live_sent,
            live_bytes_sent=live_bytes,
            live_jpeg_encodes=self.live.encodes,
        )
        uplink = self.sources.uplink_stats() if self.sources.uplink_stats is not None else None
        traffic = self.sources.traffic_stats() if self.sources.traffic_stats is not None else None
        return render_metrics(self.sources.agent_id, cameras, uplink, server, traffic)

    def placeholder_jpeg(self, camera_id: str) -> bytes:
        """Shown in a stream before the camera's first frame, so a viewer sees why the picture is missing."""
        width = self.config.max_width
        picture = np.full((width * 9 // 16, width, 3), 40, dtype=np.uint8)
        stats = {s.source_id: s for s in self.sources.pipeline_stats()}
        state = stats[camera_id].state if camera_id in stats else "starting"
        for row, text in enumerate((f"camera {camera_id}", f"no picture yet: {state}")):
            cv2.putText(picture, text, (16, 40 + 36 * row), FONT, 0.8, (220, 220, 220), 2, cv2.LINE_AA)
        return encode_jpeg(picture, self.config.jpeg_quality)


def _line_document(line: LineConfig) -> dict[str, Any]:
    return {
        "id": line.id,
        "name": line.display_name,
        "start": list(line.start),
        "end": list(line.end),
        "in_label": line.in_label,
        "out_label": line.out_label,
    }


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    app: PreviewServer

    def handle_error(self, request: object, client_address: Any) -> None:
        # socketserver would print to stderr; a failed request belongs in the agent's log.
        log.exception("preview: request from %s failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "ioc-edge-agent"

    def setup(self) -> None:
        super().setup()
        # A viewer that stops reading blocks our writes; the socket timeout ends it and frees its slot.
        self.connection.settimeout(self.server.app.config.client_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("preview %s: " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        parts = [unquote(part) for part in url.path.strip("/").split("/") if part]
        query = parse_qs(url.query)
        try:
            if parts == ["cameras"]:
                self._send_json(200, app.cameras_document())
            elif parts == ["healthz"]:
                status, document = app.health_document()
                self._send_json(status, document)
            elif parts == ["metrics"]:
                self._send(200, METRICS_CONTENT_TYPE, app.metrics_text().encode("utf-8"))
            elif parts == []:
                self._send_json(200, {"agent_id": app.sources.agent_id, "endpoints": _ENDPOINTS})
            elif len(parts) == 3 and parts[0] == "cameras":
                self._camera_route(parts[1], parts[2], query)
            else:
                self._error(404, "Không có trang này", f"no such endpoint {url.path!r}")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            log.debug("preview client %s went away", self.address_string())

    def _camera_route(self, camera_id: str, what: str, query: dict[str, list[str]]) -> None:
        feed = self.server.app.sources.feeds.get(camera_id)
        if feed is None:
            self._error(404, f"Không có camera {camera_id!r}", f"no camera {camera_id!r}")
        elif what == "preview.mjpg":
            self._stream("mjpeg", feed)
        elif what == "events":
            self._stream("sse", feed)
        elif what == "live":
            self._stream("live", feed)
        elif what == "snapshot.jpg":
            self._snapshot(feed, raw=query.get("raw", ["0"])[-1] in ("1", "true", "yes"))
        else:
            self._error(404, "Không có trang này", f"no such camera endpoint {what!r}")

    def _snapshot(self, feed: CameraFeed, *, raw: bool) -> None:
        app = self.server.app
        sample = feed.latest()
        if sample is None:
            self._error(503, "Camera chưa có hình", f"camera {feed.camera_id!r} has sent no picture yet", retry_s=2)
            return
        jpeg = app.renderer.raw(sample) if raw else app.renderer.preview(feed.camera_id, sample)
        self._send(200, "image/jpeg", jpeg, headers={"Cache-Control": "no-store"})

    def _stream(self, kind: str, feed: CameraFeed) -> None:
        app = self.server.app
        if not app.limiter.try_open(kind):
            self._error(
                503,
                f"Quá nhiều người xem cùng lúc ({app.limiter.capacity}), thử lại sau",
                f"too many preview streams open (max_stream_clients={app.limiter.capacity}); try again later",
                retry_s=10,
            )
            return
        try:
            if kind == "mjpeg":
                self._mjpeg(feed)
            elif kind == "live":
                self._live(feed)
            else:
                self._sse(feed)
        finally:
            app.limiter.close(kind)

    def _mjpeg(self, feed: CameraFeed) -> None:
        app = self.server.app
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self._no_cache_headers()
        self.end_headers()
        period = 1.0 / app.config.max_fps
        last_sequence, last_sent = 0, -float("inf")
        while not app.stopping.is_set():
            wait = last_sent + period - time.monotonic()
            if wait > 0:
                app.stopping.wait(wait)  # the rate cap: at most max_fps parts
                continue
            # The first part goes out at once, so a viewer sees at least a placeholder straight away.
            sample = feed.wait_newer(last_sequence, STOP_POLL_S if last_sent > 0 else 0.0)
            if sample is None and time.monotonic() - last_sent < app.config.keepalive_s:
                continue
            # New frame, or a keepalive: repeat the last picture (or say there is none yet).
            sample = sample or feed.latest()
            jpeg = app.renderer.preview(feed.camera_id, sample) if sample else app.placeholder_jpeg(feed.camera_id)
            self.wfile.write(_mjpeg_part(jpeg, sample) + jpeg + b"\r\n")
            self.wfile.flush()
            app.counted(mjpeg=1)
            last_sequence = sample.sequence if sample else 0
            last_sent = time.monotonic()

    def _sse(self, feed: CameraFeed) -> None:
        app = self.server.app
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self._no_cache_headers()
        self.send_header("X-Accel-Buffering", "no")  # a reverse proxy must not hold messages back
        self.end_headers()
        self.wfile.write(b"retry: 2000\n\n")
        self.wfile.flush()
        last_sequence, last_write = 0, time.monotonic()
        while not app.stopping.is_set():
            sample = feed.wait_newer(last_sequence, STOP_POLL_S)
            if sample is None:
                if time.monotonic() - last_write >= app.config.keepalive_s:
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                    last_write = time.monotonic()
                continue
            self.wfile.write(_sse_message(feed.camera_id, sample))
            self.wfile.flush()
            app.counted(sse=1)
            last_sequence, last_write = sample.sequence, time.monotonic()

    def _live(self, feed: CameraFeed) -> None:
        """Latest-value records: a slow client skips frames (it gets the newest when its write returns)."""
        app = self.server.app
        self.send_response(200)
        self.send_header("Content-Type", LIVE_CONTENT_TYPE)
        self._no_cache_headers()
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        period = 1.0 / app.config.max_fps
        last_sequence, last_sent, first = 0, -float("inf"), True
        while not app.stopping.is_set():
            wait = last_sent + period - time.monotonic()
            if wait > 0:
                app.stopping.wait(wait)  # the rate cap: at most max_fps records
                continue
            sample = feed.wait_newer(last_sequence, 0.0 if first else STOP_POLL_S)
            if sample is not None:
                record = app.live.frame_record(feed.camera_id, sample)
                last_sequence = sample.sequence
            elif first or time.monotonic() - last_sent >= app.config.keepalive_s:
                # Sent at once too, so a client (central's proxy) knows the stream works before the first frame.
                record = app.live.keepalive_record(feed.camera_id, last_sequence)
            else:
                continue
            first = False
            self.wfile.write(record)
            self.wfile.flush()
            app.counted(live=1, live_bytes=len(record))
            last_sent = time.monotonic()

    # -- plumbing ----------------------------------------------------------------------------------

    def _no_cache_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.send_header("Pragma", "no-cache")
        self.send_header("Connection", "close")

    def _send(self, status: int, content_type: str, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, document: object, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        self._send(status, "application/json; charset=utf-8", body, headers)

    def _error(self, status: int, message_vi: str, message_en: str, *, retry_s: int | None = None) -> None:
        headers = {"Retry-After": str(retry_s)} if retry_s is not None else None
        self._send_json(status, {"error": status, "reason": f"{message_vi} / {message_en}"}, headers)


def _mjpeg_part(jpeg: bytes, sample: PreviewSample | None) -> bytes:
    """The part's headers; X-Sequence / X-Timestamp tie a picture to its SSE message."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
    if sample is not None:
        time = sample.frame.timestamp.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        head += f"X-Sequence: {sample.sequence}\r\nX-Timestamp: {time}\r\n"
    return (head + "\r\n").encode("ascii")


def _sse_message(camera_id: str, sample: PreviewSample) -> bytes:
    document = overlay_message(
        sample.overlay, camera_id=camera_id, sequence=sample.sequence, timestamp=sample.frame.timestamp
    )
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return f"id: {sample.sequence}\nevent: frame\ndata: {data}\n\n".encode()


_ENDPOINTS = {
    "/cameras": "cameras: id, name, state, size, lines",
    "/cameras/{id}/preview.mjpg": "annotated MJPEG preview",
    "/cameras/{id}/snapshot.jpg": "latest annotated picture (?raw=1: unannotated, full size)",
    "/cameras/{id}/events": "Server-Sent Events: boxes, tracks, lines and counts per analysed frame",
    "/cameras/{id}/live": "live records (application/x-ioc-live): plain picture + overlay JSON per frame",
    "/metrics": "Prometheus metrics",
    "/healthz": "200 while a camera works, 503 when every camera is down",
}
