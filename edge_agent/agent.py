"""The edge agent process: one ``CameraPipeline`` per camera, field sensors over MQTT, one delivery stack.

Every event (camera intervals and health, sensor readings, the agent's own health) goes first into
the durable spool and leaves it only when central acknowledged it (``edge_agent.delivery``).

``Agent.run()`` blocks until every camera source has ended (cameras configured with
``on_end: stop``, and no sensors configured) or ``stop()`` is called, e.g. by SIGINT/SIGTERM.
On the way out each pipeline flushes its open intervals (lines and zones) into the spool, the
sensor subscriber stores what it received, and the sender gets ``shutdown_timeout_s`` to deliver;
what it could not send stays in the spool for the next start.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from edge_agent.config import AgentConfig, CameraConfig
from edge_agent.delivery.sender import Delivery, DeliveryStats
from edge_agent.delivery.stack import inside_state_dir, open_delivery
from edge_agent.delivery.transport import Transport
from edge_agent.evidence.requests import EvidenceRequestHandler
from edge_agent.evidence.store import EvidenceStore
from edge_agent.evidence.uploader import EvidenceUploader
from edge_agent.perception.detector import Detector
from edge_agent.perception.detectors import DetectorConfig, build_detector
from edge_agent.perception.detectors.batching import BatchingDetector
from edge_agent.perception.detectors.motion import MotionDetector
from edge_agent.perception.motion_gate import build_motion_gate
from edge_agent.pipeline import CameraPipeline, PipelineStats
from edge_agent.plates.config import PlateReadingConfig
from edge_agent.plates.quality import crop_quality
from edge_agent.plates.reader import PlateReader, build_plate_reader
from edge_agent.plates.vote import PlateVoter
from edge_agent.preview.feed import CameraFeed
from edge_agent.preview.metrics import TrafficMetrics
from edge_agent.preview.server import PreviewServer, PreviewSources
from edge_agent.progress.estimator import ProgressEstimator
from edge_agent.progress.references import load_references
from edge_agent.progress.stage import SiteProgress
from edge_agent.sensor_state import FILE_NAME as SENSOR_TIMES_FILE
from edge_agent.sensor_state import load_last_times, save_last_times
from edge_agent.status_events import agent_health_event, delivery_health, sensor_health_events
from edge_agent.traffic.camera import CameraTraffic
from edge_agent.traffic.plate_stage import PlateStage
from edge_agent.traffic.plate_worker import PlateWorker
from edge_agent.traffic.signal_feed import SharedSignalBoard, SignalFeedSubscriber
from event_contract import SensorReadingEvent
from ioc_common.atomic_files import replace_text
from ioc_common.sensors.normalise import SensorNormaliser
from ioc_common.sensors.subscriber import SensorSubscriber

log = logging.getLogger(__name__)

DetectorFactory = Callable[[DetectorConfig], Detector]
PlateReaderFactory = Callable[[PlateReadingConfig], PlateReader]
_SignalHandler = Callable[[int, FrameType | None], object] | int | None

SUPERVISE_POLL_S = 0.5
"""How often ``run`` checks whether every source has ended."""

STATUS_EVERY_S = 2.0
"""How often the status file (if any) is rewritten."""

PROGRESS_STATE_DIR = Path("progress")
"""Under state_dir: one small JSON file per site camera with its day-to-day smoothing state."""


def build_camera_detectors(
    config: AgentConfig, factory: DetectorFactory = build_detector
) -> tuple[dict[str, Detector], tuple[BatchingDetector, ...]]:
    """One detector per camera; cameras with identical detector settings and batching on share one model.

    Raises RuntimeError naming the camera whose detector cannot be built.
    """
    detectors: dict[str, Detector] = {}
    shared: dict[str, BatchingDetector] = {}
    for camera in config.cameras:
        settings = camera.detector
        try:
            if settings.batching.enabled:
                key = settings.model_dump_json()
                if key not in shared:
                    name = f"{settings.backend}-{len(shared) + 1}"
                    shared[key] = BatchingDetector(factory(settings), settings.batching, name=name)
                detectors[camera.id] = shared[key].client(camera.id)
            else:
                detectors[camera.id] = factory(settings)  # per camera: some backends keep state
        except Exception as error:
            raise RuntimeError(f"camera {camera.id}: cannot build its detector: {error}") from error
    return detectors, tuple(shared.values())


class SpoolSink:
    """Where the sensor subscriber stores readings: the spool, durably, or an exception (no MQTT ack then)."""

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery

    def store(self, events: Sequence[SensorReadingEvent]) -> None:
        self._delivery.submit_many(events, durable_only=True)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        detector_factory: DetectorFactory = build_detector,
        transport: Transport | None = None,
        plate_reader_factory: PlateReaderFactory = build_plate_reader,
    ) -> None:
        self.config = config
        self._stop = threading.Event()
        self._started = time.monotonic()
        # Build every detector before anything starts, so a missing model fails fast with its camera named.
        self.detectors, self.shared_detectors = build_camera_detectors(config, detector_factory)
        self.gates = {camera.id: build_motion_gate(camera.motion_gate) for camera in config.cameras}
        # Site cameras: reference images are read (and checked) before anything starts, naming camera and path.
        self._estimators = {
            camera.id: self._build_estimator(camera) for camera in config.cameras if camera.progress is not None
        }
        self.delivery_stack = open_delivery(
            config.agent_id,
            config.central,
            config.spool,
            config.dead_letters,
            state_dir=config.state_dir,
            transport=transport,
        )
        self.uplink = self.delivery_stack.delivery
        # Traffic and site cameras: evidence store + uploader, the shared plate worker, the signal feed (only
        # what cameras use).
        self.evidence: EvidenceStore | None = None
        self.evidence_uploader: EvidenceUploader | None = None
        self.evidence_requests: EvidenceRequestHandler | None = None
        if any(camera.keeps_evidence for camera in config.cameras):
            evidence_dir = inside_state_dir(config.state_dir, config.evidence.dir)
            self.evidence = EvidenceStore(config.evidence, evidence_dir)
            self.evidence_uploader = EvidenceUploader(self.evidence, config.central, config.evidence)
            # Officers' requests ride on central's acks (edge boxes cannot be called): the sender hands them here.
            self.evidence_requests = EvidenceRequestHandler(
                self.evidence, self.evidence_uploader, enabled=config.evidence.upload_on_request
            )
            self.uplink.set_evidence_wanted_handler(self.evidence_requests)
        self.plate_worker, self._reader_keys = self._build_plate_worker(plate_reader_factory)
        self.signal_boards = {
            camera.id: SharedSignalBoard(camera.violations.signals)
            for camera in config.cameras
            if camera.violations is not None and camera.feed_signals
        }
        self.signal_feed = (
            SignalFeedSubscriber(
                config.signal_feed,
                tuple(self.signal_boards.values()),
                self.delivery_stack.dead_letters,
                agent_id=config.agent_id,
            )
            if config.signal_feed is not None and self.signal_boards
            else None
        )
        self._last_times_path = config.state_dir / SENSOR_TIMES_FILE
        self._normaliser: SensorNormaliser | None = None
        self.sensors = self._build_sensors()
        # Each camera's latest analysed frame, for the preview server (none when preview.port is 0).
        self.preview_feeds = {c.id: CameraFeed(c.id, c.lines) for c in config.cameras} if config.preview.port else {}
        self.preview: PreviewServer | None = None
        self.pipelines = tuple(
            CameraPipeline(
                config.agent_id,
                camera,
                self.detectors[camera.id],
                self.uplink.submit,
                intervals_s=config.intervals_s,
                health_interval_s=config.health_interval_s,
                observer=self.preview_feeds[camera.id].observe if self.preview_feeds else None,
                gate=self.gates[camera.id],
                traffic=self._camera_traffic(camera),
                signal_board=self.signal_boards.get(camera.id),
                progress=self._site_progress(camera),
            )
            for camera in config.cameras
        )

    def stop(self) -> None:
        """Ask ``run`` to shut down; safe from a signal handler or any thread."""
        self._stop.set()

    def run(
        self, *, handle_signals: bool = True, status_file: Path | None = None
    ) -> tuple[tuple[PipelineStats, ...], DeliveryStats]:
        """Run until stopped or every camera source ended (and no sensors are read); returns the final counters.

        ``status_file``, if given, is rewritten (atomically) every few seconds with every
        camera's, the sensors' and the delivery's counters as JSON, for supervisors and the demo.
        """
        previous = self._install_signal_handlers() if handle_signals else {}
        try:
            self._start_preview()
            for shared in self.shared_detectors:
                shared.start()
            self._start_traffic()
            for pipeline in self.pipelines:
                pipeline.start()
            if self.sensors is not None:
                self.sensors.start()
            sensor_count = len(self.config.sensors.sensors) if self.config.sensors else 0
            log.info("agent %s: %d cameras, %d sensors", self.config.agent_id, len(self.pipelines), sensor_count)
            next_status = time.monotonic()
            next_health = time.monotonic()
            while not self._stop.wait(SUPERVISE_POLL_S):
                if status_file is not None and time.monotonic() >= next_status:
                    self._write_status(status_file)
                    next_status = time.monotonic() + STATUS_EVERY_S
                if time.monotonic() >= next_health:
                    self._report_health()
                    next_health = time.monotonic() + self.config.health_interval_s
                self._report_silent_sensors()
                if self.sensors is None and all(pipeline.done for pipeline in self.pipelines):
                    log.info("agent %s: every source has ended", self.config.agent_id)
                    break
            result = self._shutdown()
            if status_file is not None:
                self._write_status(status_file)
            return result
        finally:
            if self.preview is not None:
                self.preview.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def status(self) -> dict[str, object]:
        """Counters of every camera and of the uplink, JSON-ready."""
        return {
            "agent_id": self.config.agent_id,
            "time": dt.datetime.now(dt.UTC).isoformat(),
            "stopping": self._stop.is_set(),
            "cameras": [dataclasses.asdict(pipeline.stats()) for pipeline in self.pipelines],
            "perception": self._perception_status(),
            "sensors": dataclasses.asdict(self.sensors.stats()) if self.sensors is not None else None,
            "uplink": dataclasses.asdict(self.uplink.stats()),
            "dead_letters": dataclasses.asdict(self.delivery_stack.dead_letter_stats()),
            "preview_url": self.preview.url if self.preview is not None else None,
            "traffic": self.traffic_status(),
            "progress": self.progress_status(),
        }

    def progress_status(self) -> dict[str, object] | None:
        """Per site camera: frames sampled, used and rejected by reason, days reported, latest figures."""
        cameras: dict[str, object] = {
            pipeline.camera.id: dataclasses.asdict(pipeline.progress.stats())
            for pipeline in self.pipelines
            if pipeline.progress is not None
        }
        return cameras or None

    def traffic_status(self) -> dict[str, object] | None:
        """Evidence, uploader, plate worker, signal feed and per-camera traffic counters; None without traffic."""
        if self.evidence is None and self.plate_worker is None:
            return None
        cameras: dict[str, object] = {}
        for pipeline in self.pipelines:
            traffic = pipeline.traffic
            if traffic is not None:
                plates = traffic.plate_stats()
                cameras[pipeline.camera.id] = {
                    **dataclasses.asdict(traffic.stats()),
                    "plates": dataclasses.asdict(plates) if plates is not None else None,
                }
        return {
            "evidence": dataclasses.asdict(self.evidence.stats()) if self.evidence is not None else None,
            "evidence_upload": (
                dataclasses.asdict(self.evidence_uploader.stats()) if self.evidence_uploader is not None else None
            ),
            "evidence_requests": (
                dataclasses.asdict(self.evidence_requests.stats()) if self.evidence_requests is not None else None
            ),
            "plate_worker": dataclasses.asdict(self.plate_worker.stats()) if self.plate_worker is not None else None,
            "signal_feed": dataclasses.asdict(self.signal_feed.stats()) if self.signal_feed is not None else None,
            "cameras": cameras,
        }

    def traffic_metrics(self) -> TrafficMetrics | None:
        """The traffic and site counters for ``/metrics``; None on an agent without violation, plate or site
        cameras."""
        if self.evidence is None and self.plate_worker is None and not self._estimators:
            return None
        cameras = {}
        stages = {}
        progress = {}
        for pipeline in self.pipelines:
            if pipeline.progress is not None:
                progress[pipeline.camera.id] = pipeline.progress.stats()
            traffic = pipeline.traffic
            if traffic is None:
                continue
            cameras[pipeline.camera.id] = traffic.stats()
            plates = traffic.plate_stats()
            if plates is not None:
                stages[pipeline.camera.id] = plates
        return TrafficMetrics(
            cameras=cameras,
            plate_stages=stages,
            plate_worker=self.plate_worker.stats() if self.plate_worker is not None else None,
            evidence=self.evidence.stats() if self.evidence is not None else None,
            evidence_upload=self.evidence_uploader.stats() if self.evidence_uploader is not None else None,
            progress=progress,
        )

    def _build_plate_worker(self, factory: PlateReaderFactory) -> tuple[PlateWorker | None, dict[str, str]]:
        """One worker for every camera with plates; one reader per distinct reader config (cameras share it).

        Raises RuntimeError naming the camera whose reader cannot be built (missing model files).
        """
        readers: dict[str, PlateReader] = {}
        keys: dict[str, str] = {}
        for camera in self.config.cameras:
            if camera.plates is None:
                continue
            key = camera.plates.reader.model_dump_json()
            if key not in readers:
                try:
                    readers[key] = factory(camera.plates.reader)
                except Exception as error:
                    raise RuntimeError(f"camera {camera.id}: cannot build its plate reader: {error}") from error
            keys[camera.id] = key
        if not readers:
            return None, keys
        settings = self.config.plate_worker
        worker = PlateWorker(readers, queue_capacity=settings.queue_capacity, result_capacity=settings.result_capacity)
        for camera_id in keys:
            worker.register(camera_id)
        return worker, keys

    def _camera_traffic(self, camera: CameraConfig) -> CameraTraffic | None:
        if camera.violations is None and camera.plates is None:
            return None
        stage: PlateStage | None = None
        if camera.plates is not None and self.plate_worker is not None:
            stage = PlateStage(
                camera_id=camera.id,
                reader_key=self._reader_keys[camera.id],
                config=camera.plates,
                voter=PlateVoter(camera.plates.reader.vote),
                submit=self.plate_worker.submit,
                results=self.plate_worker.register(camera.id),
                quality_of=crop_quality,
            )
        uploader = self.evidence_uploader
        return CameraTraffic(
            self.config.agent_id,
            camera.id,
            violations=camera.violations,
            plates=camera.plates,
            plate_stage=stage,
            evidence=self.evidence,
            evidence_config=self.config.evidence,
            on_keyframe=uploader.wake if uploader is not None else None,
        )

    def _build_estimator(self, camera: CameraConfig) -> ProgressEstimator:
        """The camera's progress core with its reference images; RuntimeError naming the camera and the path."""
        assert camera.progress is not None
        try:
            return ProgressEstimator(camera.progress, load_references(camera.id, camera.progress))
        except ValueError as error:
            message = str(error) if str(error).startswith(f"camera {camera.id}") else f"camera {camera.id}: {error}"
            raise RuntimeError(message) from error

    def _site_progress(self, camera: CameraConfig) -> SiteProgress | None:
        if camera.progress is None:
            return None
        uploader = self.evidence_uploader
        return SiteProgress(
            self.config.agent_id,
            camera.id,
            camera.progress,
            estimator=self._estimators[camera.id],
            evidence=self.evidence if camera.progress.timelapse.enabled else None,
            evidence_config=self.config.evidence,
            state_path=inside_state_dir(self.config.state_dir, PROGRESS_STATE_DIR / f"{camera.id}.json"),
            max_frame_gap_s=camera.max_frame_gap_s,
            on_keyframe=uploader.wake if uploader is not None else None,
        )

    def _start_traffic(self) -> None:
        if self.plate_worker is not None:
            self.plate_worker.start()
        if self.evidence_uploader is not None:
            self.evidence_uploader.start()
        if self.signal_feed is not None:
            self.signal_feed.start()

    def _stop_traffic(self) -> None:
        """After the pipelines flushed: stop reading plates and signals, give uploads a moment, close the store."""
        if self.plate_worker is not None:
            self.plate_worker.stop()
        if self.signal_feed is not None:
            self.signal_feed.stop()
        if self.evidence_uploader is not None:
            self.evidence_uploader.stop()
        if self.evidence is not None:
            self.uplink.set_evidence_wanted_handler(None)  # the sender may still ack batches: not into a closed store
            self.evidence.close()

    def _start_preview(self) -> None:
        if not self.preview_feeds:
            return
        sources = PreviewSources(
            self.config.agent_id,
            self.config.cameras,
            self.preview_feeds,
            pipeline_stats=lambda: [pipeline.stats() for pipeline in self.pipelines],
            uplink_stats=self.uplink.stats,
            traffic_stats=self.traffic_metrics,
        )
        server = PreviewServer(self.config.preview, sources)
        try:
            server.start()
        except OSError as error:
            # The preview is for people watching; counting and delivery go on without it.
            log.error(
                "preview server cannot listen on %s:%d (%s): no preview, /metrics or /healthz; set preview.port",
                self.config.preview.host,
                self.config.preview.port,
                error,
            )
            return
        self.preview = server

    def _perception_status(self) -> dict[str, object]:
        """Motion gate, motion backend and shared-detector counters (only for what is in use)."""
        gates = {camera_id: dataclasses.asdict(gate.stats()) for camera_id, gate in self.gates.items() if gate}
        motion = {
            camera_id: dataclasses.asdict(detector.stats())
            for camera_id, detector in self.detectors.items()
            if isinstance(detector, MotionDetector)
        }
        shared = [
            {"name": detector.name, **dataclasses.asdict(detector.stats()), "mean_batch": detector.stats().mean_batch}
            for detector in self.shared_detectors
        ]
        return {"motion_gates": gates, "motion_detectors": motion, "shared_detectors": shared}

    def _write_status(self, path: Path) -> None:
        try:
            replace_text(path, json.dumps(self.status(), indent=2))  # readers never see a half-written file
        except OSError as error:
            log.warning("cannot write status file %s: %s", path, error)

    def _build_sensors(self) -> SensorSubscriber | None:
        site = self.config.sensors
        if site is None or not site.sensors:
            return None
        normaliser = SensorNormaliser(self.config.agent_id, site.sensors, max_payload_bytes=site.max_payload_bytes)
        normaliser.restore_last_times(load_last_times(self._last_times_path))
        self._normaliser = normaliser
        return SensorSubscriber(
            site.broker,
            normaliser,
            SpoolSink(self.uplink),
            self.delivery_stack.dead_letters,
            agent_id=self.config.agent_id,
            silent_after_s=site.silent_after_s(),
            queue_capacity=site.queue_capacity,
            batch_max=site.batch_max,
            store_retry_backoff=site.store_retry_backoff,
        )

    def _report_health(self) -> None:
        """The agent's own health event: spool backlog, drops and dead letters (DeliveryHealth)."""
        stats = self.uplink.stats()
        spool = self.delivery_stack.spool.stats()
        health = delivery_health(stats, spool, self.delivery_stack.dead_letter_stats())
        now = dt.datetime.now(dt.UTC)
        self.uplink.submit(agent_health_event(self.config.agent_id, now, time.monotonic() - self._started, health))
        if self._normaliser is not None:
            save_last_times(self._last_times_path, self._normaliser.last_times())

    def _report_silent_sensors(self) -> None:
        if self.sensors is None:
            return
        now = dt.datetime.now(dt.UTC)
        for event in sensor_health_events(self.config.agent_id, self.sensors.silence_changes(now), now):
            log.warning("sensor %s: %s (%s)", event.source_id, event.state, event.reason)
            self.uplink.submit(event)

    def _shutdown(self) -> tuple[tuple[PipelineStats, ...], DeliveryStats]:
        for pipeline in self.pipelines:
            pipeline.stop()
        join_timeout = max((camera.read_timeout_s for camera in self.config.cameras), default=0.0) + 5.0
        for pipeline in self.pipelines:
            if not pipeline.join(join_timeout):
                log.error("camera %s: did not stop within %.0f s", pipeline.camera.id, join_timeout)
        for shared in self.shared_detectors:
            shared.close()
        self._stop_traffic()
        if self.sensors is not None:
            # Stored readings are acknowledged to the broker; the rest stay in its session for the next start.
            self.sensors.stop(self.config.sensors.stop_timeout_s if self.config.sensors else 10.0)
        self._report_health()
        uplink_stats = self.delivery_stack.close(self.config.shutdown_timeout_s)
        pipeline_stats = tuple(pipeline.stats() for pipeline in self.pipelines)
        for stats in pipeline_stats:
            log.info("camera %s: %s", stats.source_id, stats)
        log.info("uplink: %s", uplink_stats)
        return pipeline_stats, uplink_stats

    def _install_signal_handlers(self) -> dict[signal.Signals, _SignalHandler]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: stopping (again to force quit)", signal.Signals(signum).name)
            self.stop()
            # A second Ctrl-C should not wait for a slow flush.
            signal.signal(signal.SIGINT, signal.default_int_handler)

        previous: dict[signal.Signals, _SignalHandler] = {
            signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        for signum in previous:
            signal.signal(signum, on_signal)
        return previous
