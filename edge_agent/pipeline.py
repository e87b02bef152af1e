"""Per-camera pipeline: reader thread -> frame mailbox -> analytics thread -> event sink.

``AnalyticsStep`` is the per-frame work (detect -> track -> count lines and zones ->
close intervals) as one class that takes a ``Frame`` and returns values, so it can be
tested on arrays with any ``Detector``. Its ``tick`` is the same without a frame: the
analytics thread calls it while no frames come, so a dead camera still closes its
intervals (with zero coverage and the downtime) instead of falling silent.
``CameraPipeline`` adds the threads:

- the reader thread decodes frames into a bounded mailbox (``queue_policy``:
  ``drop_oldest`` keeps only the newest frames for live cameras, ``block`` loses
  nothing for offline files);
- the analytics thread takes frames, runs the step and the camera's output stages
  (``CameraTraffic`` for violations and plates, ``SiteProgress`` for construction
  progress), hands events to ``submit`` (the uplink), and submits a ``HealthEvent``
  at every change of the reader's state
  (connecting, live, stalled, down, ...: the reader's stats are the one source of
  truth for state and reason) and every ``health_interval_s``.

A site camera's detector may keep classes beyond vehicles (``person``: workers, see
``perception.detectors.label_map``): lines, zones, intervals and violations see the
tracked vehicles only (``StepResult.tracked``); the progress stage sees everything the
detector found in the frame (``StepResult.detections``), untracked: a site camera
analysed seconds or minutes apart cannot confirm tracks, and an object not yet
confirmed still hides the work behind it.

Intervals close as SOURCE time advances (frame timestamps), so a file analysed
faster than real time yields the same intervals as a live camera. Without frames,
source time is estimated as the last frame's timestamp plus the time elapsed since
it was handed over (before any frame: the wall clock, which live sources' timestamps
follow; a file with a fixed ``start_time`` waits for its first frame).
When the source ends or the pipeline is stopped, open intervals are flushed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.analytics.coverage import DEFAULT_MAX_FRAME_GAP_S, CoverageMeter, CoverageUpdate
from edge_agent.analytics.intervals import IntervalAggregator, IntervalConfig, IntervalEvent
from edge_agent.analytics.lines import CountingLine, Crossing, LineConfig
from edge_agent.analytics.zones import Zone, ZoneConfig, ZoneObservation
from edge_agent.config import CameraConfig
from edge_agent.delivery.queues import BoundedQueue, QueueClosedError
from edge_agent.perception.detector import Detector
from edge_agent.perception.tracker import ByteTracker
from edge_agent.perception.types import Detections, Frame
from edge_agent.sources.open_source import FrameSource, open_reader
from edge_agent.sources.pyav_reader import SourceGaveUpError, utc_now
from edge_agent.traffic.analytics import NO_SIGNALS, SignalStates, TrafficAnalytics
from edge_agent.violations.config import ViolationRulesConfig
from edge_agent.violations.findings import CongestionReport, Finding, ViolationStep
from event_contract import VEHICLE_CLASSES, Event, HealthEvent, SourceState
from event_contract.traffic import SignalState

if TYPE_CHECKING:
    from edge_agent.progress.stage import SiteProgress
    from edge_agent.traffic.camera import CameraTraffic

log = logging.getLogger(__name__)

EventSink = Callable[[Event], None]
"""Where a pipeline hands its events (count and zone intervals, health): the uplink's ``submit``."""


class MotionGateLike(Protocol):
    """Decides per frame whether the detector must run (see ``perception.motion_gate``)."""

    def check(self, image: npt.NDArray[np.uint8], timestamp_s: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class StageTimings:
    """Seconds spent in each analytics stage for one frame (for benchmarks and metrics)."""

    gate_s: float = 0.0
    detect_s: float = 0.0
    track_s: float = 0.0
    count_s: float = 0.0
    violations_s: float = 0.0
    """Signal classification and the violation engine (0 for cameras without violations)."""
    detector_ran: bool = True
    """False when the motion gate saw no motion and the previous detections were reused."""


MAILBOX_POLL_S = 0.25
"""How often the analytics thread wakes without frames, to tick intervals and send health while a camera is down."""


@dataclass(frozen=True, slots=True)
class StepResult:
    tracked: Detections
    crossings: tuple[Crossing, ...]
    events: tuple[IntervalEvent, ...]
    """Intervals that closed at this frame's time."""
    timings: StageTimings = StageTimings()
    zones: tuple[ZoneObservation, ...] = ()
    """What each zone saw in this frame (occupancy, entries, exits)."""
    findings: tuple[Finding, ...] = ()
    """Violations and incidents the engine judged at this frame (cameras with ``violations``)."""
    congestion: tuple[CongestionReport, ...] = ()
    """Congestion level changes and periodic reports decided at this frame."""
    signals: Mapping[str, SignalState] = field(default_factory=lambda: NO_SIGNALS)
    """Each configured signal's state at this frame (for the rules, the preview and evidence)."""
    detections: Detections | None = None
    """What the detector found in this frame, every class it reports (workers on a site camera), before tracking
    (the previous frame's when the motion gate skipped the detector); None where a caller built the result
    without it."""

    @property
    def seen(self) -> Detections:
        """``detections`` when known, else the tracked vehicles: what site activity and occlusion count."""
        return self.tracked if self.detections is None else self.detections


FrameObserver = Callable[[Frame, StepResult], None]
"""Called in the analytics thread after each analysed frame (live preview, benchmarks); keep it O(1)."""


class AnalyticsStep:
    """Detect, track, count lines and zones, judge violations and aggregate intervals of one camera, in timestamp
    order. Without threads or I/O: the plate worker and evidence writing live in ``CameraPipeline``."""

    def __init__(
        self,
        agent_id: str,
        source_id: str,
        detector: Detector,
        tracker: ByteTracker,
        *,
        lines: Sequence[LineConfig],
        zones: Sequence[ZoneConfig] = (),
        intervals_s: Sequence[int] = (60,),
        detector_backend: str | None = None,
        max_frame_gap_s: float = DEFAULT_MAX_FRAME_GAP_S,
        gate: MotionGateLike | None = None,
        clock: Callable[[], float] = time.perf_counter,
        violations: ViolationRulesConfig | None = None,
        signal_board: SignalStates | None = None,
    ) -> None:
        if not intervals_s:
            raise ValueError(f"camera {source_id}: give at least one interval length")
        self.source_id = source_id
        self._detector = detector
        self._tracker = tracker
        self._gate = gate
        self._clock = clock
        self._last_detections: Detections | None = None
        self._vehicle_ids: tuple[tuple[str, ...], npt.NDArray[np.int64] | None] | None = None
        self._line_configs = tuple(lines)
        self._zone_configs = tuple(zones)
        self._lines: tuple[CountingLine, ...] = ()
        self._zones: tuple[Zone, ...] = ()
        self._frame_size: tuple[int, int] | None = None
        self._coverage = CoverageMeter(max_frame_gap_s)
        self._traffic = TrafficAnalytics(violations, signal_board) if violations is not None else None
        # Zone exits are decided exit_grace_s after the last sighting; intervals wait for them.
        close_delay_s = max((zone.exit_grace_s for zone in self._zone_configs), default=0.0)
        self._aggregators = tuple(
            IntervalAggregator(
                agent_id,
                source_id,
                IntervalConfig(interval_s=length),
                line_ids=[line.id for line in self._line_configs],
                zone_ids=[zone.id for zone in self._zone_configs],
                detector_backend=detector_backend or type(detector).__name__,
                close_delay_s=close_delay_s,
            )
            for length in sorted(set(intervals_s))
        )

    @property
    def aggregators(self) -> tuple[IntervalAggregator, ...]:
        """One per interval length, shortest first (for their late/skipped counters)."""
        return self._aggregators

    def process(self, frame: Frame, *, frames_dropped: int = 0) -> StepResult:
        """Analyse one frame; ``frames_dropped`` is the mailbox's cumulative drop counter."""
        if frame.source_id != self.source_id:
            raise ValueError(f"frame from {frame.source_id!r} given to the pipeline of {self.source_id!r}")
        lines, zones = self._geometry_for(frame.width, frame.height)
        t0 = self._clock()
        run_detector = self._gate is None or self._last_detections is None
        if not run_detector and self._gate is not None:
            run_detector = self._gate.check(frame.image, frame.timestamp.timestamp())
        t1 = self._clock()
        if run_detector or self._last_detections is None:
            detections = self._detector.detect(frame.image)
            self._last_detections = detections
        else:
            # Nothing moved since the detector last ran, so its boxes still describe the scene.
            detections = self._last_detections
        t2 = self._clock()
        # Only vehicles are tracked: workers on a site camera are counted per frame, never followed.
        tracked = self._tracker.update(self._vehicles_of(detections), frame.timestamp.timestamp())
        t3 = self._clock()
        crossings = tuple(crossing for line in lines for crossing in line.update(tracked, frame.timestamp))
        observations = tuple(zone.update(tracked, frame.timestamp) for zone in zones)
        coverage = self._coverage.frame(frame.timestamp, frames_dropped)
        closed = self._aggregate(coverage, crossings, observations, frame.timestamp)
        t4 = self._clock()
        violation_step, signals = ViolationStep(), NO_SIGNALS
        if self._traffic is not None:
            violation_step, signals = self._traffic.update(frame.image, tracked, frame.timestamp)
        t5 = self._clock()
        timings = StageTimings(
            gate_s=t1 - t0,
            detect_s=t2 - t1,
            track_s=t3 - t2,
            count_s=t4 - t3,
            violations_s=t5 - t4,
            detector_ran=run_detector,
        )
        return StepResult(
            tracked=tracked,
            crossings=crossings,
            events=closed,
            timings=timings,
            zones=observations,
            findings=violation_step.findings,
            congestion=violation_step.congestion,
            signals=signals,
            detections=detections,
        )

    def _vehicles_of(self, detections: Detections) -> Detections:
        """The vehicles among ``detections`` (the object itself when the detector reports vehicle classes only)."""
        names = detections.class_names
        if self._vehicle_ids is None or self._vehicle_ids[0] != names:
            others = [name for name in names if name not in VEHICLE_CLASSES]
            ids = np.array([i for i, name in enumerate(names) if name in VEHICLE_CLASSES], np.int64)
            self._vehicle_ids = (names, ids if others else None)
        vehicle_ids = self._vehicle_ids[1]
        return detections if vehicle_ids is None else detections[np.isin(detections.class_id, vehicle_ids)]

    def tick(
        self, now: dt.datetime, source_state: SourceState, *, frames_dropped: int = 0
    ) -> tuple[IntervalEvent, ...]:
        """No frame came: account ``now`` (SOURCE time) as down unless ``source_state`` is live; close intervals."""
        coverage = self._coverage.tick(now, source_state, frames_dropped)
        observations = tuple(zone.expire(now) for zone in self._zones)
        return self._aggregate(coverage, (), observations, now)

    def expire_traffic(self, now: dt.datetime) -> ViolationStep:
        """No frame came: the violation engine closes what must close at ``now`` (SOURCE time)."""
        return self._traffic.expire(now) if self._traffic is not None else ViolationStep()

    def flush(self) -> tuple[IntervalEvent, ...]:
        """Close every open interval (source ended or agent stopping)."""
        return tuple(event for aggregator in self._aggregators for event in aggregator.flush())

    def _aggregate(
        self,
        coverage: CoverageUpdate,
        crossings: tuple[Crossing, ...],
        observations: tuple[ZoneObservation, ...],
        now: dt.datetime,
    ) -> tuple[IntervalEvent, ...]:
        closed: list[IntervalEvent] = []
        for aggregator in self._aggregators:
            aggregator.add_coverage(coverage)
            for crossing in crossings:
                aggregator.add_crossing(crossing)
            for observation in observations:
                aggregator.add_zone(observation)
            closed.extend(aggregator.close_until(now))
        return tuple(closed)

    def _geometry_for(self, width: int, height: int) -> tuple[tuple[CountingLine, ...], tuple[Zone, ...]]:
        # Lines and zones are drawn in normalised coordinates; pixels are known only once frames arrive,
        # and a camera whose resolution is changed on site gets them rescaled (their track memory restarts).
        if self._frame_size != (width, height):
            if self._frame_size is not None:
                log.warning("camera %s: frame size changed %s -> %s", self.source_id, self._frame_size, (width, height))
            self._frame_size = (width, height)
            self._lines = tuple(CountingLine(config, width, height) for config in self._line_configs)
            self._zones = tuple(Zone(config, width, height) for config in self._zone_configs)
        return self._lines, self._zones


@dataclass(frozen=True, slots=True)
class PipelineStats:
    source_id: str
    state: SourceState
    frames_decoded: int
    frames_processed: int
    frames_dropped: int
    """Frames the mailbox discarded (drop_oldest) because analytics was busy."""
    decode_errors: int
    reconnects: int
    crossings: int
    events_emitted: int
    analytics_errors: int
    last_error: str
    source_ended: bool
    """The reader has stopped for good; analytics finishes the frames already handed over."""
    failed: bool
    """The source gave up (max_reconnects) or the reader crashed, rather than ending or being stopped."""
    state_reason: str = ""
    """Why the camera is in ``state`` (from the reader; empty while live)."""
    frames_delivered: int = 0
    """Frames the reader handed over (fewer than decoded with max_fps or dropped corrupt frames)."""
    stalls: int = 0
    """Connections the reader's stall watchdog tore down."""


def is_news(state: SourceState, reason: str, last_reported: tuple[SourceState, str] | None) -> bool:
    """Whether a reader state change deserves its own health event.

    A camera that stays down is retried every few seconds (connecting, down, connecting, ...);
    those retries are counted in the stats and the periodic health event, not sent one by one.
    "starting" went out at start(); "stopped" goes out once, after the last intervals.
    """
    if state in ("starting", "stopped"):
        return False
    if last_reported is None:
        return True
    retrying = state == "connecting" and last_reported[0] in ("down", "stalled")
    return not retrying and (state, reason) != last_reported


class CameraPipeline:
    """Runs one camera in two threads; ``start()``, then ``stop()`` or wait for ``join()``."""

    def __init__(
        self,
        agent_id: str,
        camera: CameraConfig,
        detector: Detector,
        submit: EventSink,
        *,
        intervals_s: Sequence[int] = (60,),
        health_interval_s: float = 30.0,
        reader: FrameSource | None = None,
        wall_clock: Callable[[], dt.datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        observer: FrameObserver | None = None,
        gate: MotionGateLike | None = None,
        traffic: CameraTraffic | None = None,
        signal_board: SignalStates | None = None,
        progress: SiteProgress | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.camera = camera
        self._submit = submit
        self._traffic = traffic
        self._progress = progress
        self._observer = observer
        self._health_interval_s = health_interval_s
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._reader: FrameSource = reader or open_reader(camera.id, camera, wall_clock=wall_clock, monotonic=monotonic)
        self._step = AnalyticsStep(
            agent_id,
            camera.id,
            detector,
            ByteTracker(camera.tracker.for_backend(camera.detector.backend)),
            lines=camera.lines,
            zones=camera.zones,
            intervals_s=intervals_s,
            detector_backend=camera.detector.backend,
            max_frame_gap_s=camera.max_frame_gap_s,
            gate=gate,
            violations=camera.violations,
            signal_board=signal_board,
        )
        self._mailbox: BoundedQueue[Frame] = BoundedQueue(camera.queue_capacity, camera.queue_policy)
        self._stopping = threading.Event()
        self._frames_processed = 0
        self._crossings = 0
        self._events_emitted = 0
        self._analytics_errors = 0
        self._traffic_errors = 0
        self._progress_errors = 0
        self._last_error = ""
        self._failed = False
        self._seen_change = 0
        self._last_reported: tuple[SourceState, str] | None = None
        self._last_frame_at: tuple[dt.datetime, float] | None = None
        """(source timestamp, monotonic hand-over time) of the last analysed frame: the source clock's estimate."""
        self._started_at = monotonic()
        self._reader_thread = threading.Thread(target=self._read, name=f"reader-{camera.id}", daemon=True)
        self._analytics_thread = threading.Thread(target=self._analyse, name=f"analytics-{camera.id}", daemon=True)

    def start(self) -> None:
        self._started_at = self._monotonic()
        self._emit(self._health("starting"))
        self._reader_thread.start()
        self._analytics_thread.start()

    def stop(self) -> None:
        """Stop reading; the analytics thread flushes open intervals and sends a last health event."""
        self._stopping.set()
        self._reader.stop()
        self._mailbox.close()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for both threads; True when they have ended."""
        deadline = None if timeout is None else self._monotonic() + timeout
        for thread in (self._reader_thread, self._analytics_thread):
            remaining = None if deadline is None else max(0.0, deadline - self._monotonic())
            thread.join(remaining)
        return self.done

    @property
    def done(self) -> bool:
        return not (self._reader_thread.is_alive() or self._analytics_thread.is_alive())

    def stats(self) -> PipelineStats:
        reader = self._reader.stats()
        return PipelineStats(
            source_id=self.camera.id,
            state=reader.state,
            frames_decoded=reader.frames_decoded,
            frames_processed=self._frames_processed,
            frames_dropped=self._mailbox.stats().dropped,
            decode_errors=reader.decode_errors,
            reconnects=reader.reconnects,
            crossings=self._crossings,
            events_emitted=self._events_emitted,
            analytics_errors=self._analytics_errors,
            last_error=self._last_error or reader.last_error,
            source_ended=self._mailbox.closed,
            failed=self._failed,
            state_reason=reader.reason,
            frames_delivered=reader.frames_delivered,
            stalls=reader.stalls,
        )

    # -- threads ---------------------------------------------------------------------------------

    def _read(self) -> None:
        try:
            for frame in self._reader.frames():
                self._mailbox.put(dataclasses.replace(frame, received_monotonic=self._monotonic()))
        except QueueClosedError:
            pass  # stop() closed the mailbox while a put was waiting
        except SourceGaveUpError as error:
            self._failed = True
            self._last_error = str(error)
            log.error("%s", error)
        except Exception as error:
            # A reader bug must not leave analytics waiting forever; record it and end this camera.
            self._failed = True
            self._last_error = f"reader crashed: {type(error).__name__}: {error}"
            log.exception("camera %s: reader crashed", self.camera.id)
        finally:
            self._mailbox.close()

    def _analyse(self) -> None:
        last_health = self._monotonic()
        processed_at_last_health = 0
        try:
            while not self._stopping.is_set():
                frame = self._mailbox.get(timeout=MAILBOX_POLL_S)
                if frame is not None:
                    self._process(frame)
                self._emit_state_changes()
                if frame is None:
                    if self._mailbox.drained():
                        break
                    self._tick()  # no frames: intervals still close, with the downtime they saw
                now = self._monotonic()
                if now - last_health >= self._health_interval_s:
                    fps = (self._frames_processed - processed_at_last_health) / (now - last_health)
                    reader = self._reader.stats()
                    self._emit(self._health(reader.state, fps=fps, reason=reader.reason or self._last_error))
                    last_health = now
                    processed_at_last_health = self._frames_processed
        finally:
            self._flush()

    def _process(self, frame: Frame) -> None:
        self._last_frame_at = (frame.timestamp, frame.received_monotonic or self._monotonic())
        try:
            result = self._step.process(frame, frames_dropped=self._mailbox.stats().dropped)
        except Exception as error:
            # One bad frame (or a detector hiccup) must not end the camera; count it and go on.
            self._analytics_errors += 1
            self._last_error = f"analytics: {type(error).__name__}: {error}"
            if self._analytics_errors == 1 or self._analytics_errors % 100 == 0:
                log.exception("camera %s: analytics failed (%d so far)", self.camera.id, self._analytics_errors)
            return
        self._frames_processed += 1
        self._crossings += len(result.crossings)
        for event in result.events:
            self._emit(event)
        if self._traffic is not None:
            self._traffic_events(
                lambda traffic: traffic.on_frame(
                    frame, result.tracked, result.crossings, result.findings, result.congestion
                )
            )
        if self._progress is not None:
            self._progress_events(lambda progress: progress.on_frame(frame, result.seen))
        if self._observer is not None:
            try:
                self._observer(frame, result)
            except Exception:
                # A preview or metrics bug must never stop counting.
                log.exception("camera %s: frame observer failed", self.camera.id)

    def _tick(self) -> None:
        now = self._source_now()
        if now is None:
            return
        try:
            state = self._reader.stats().state  # the reader's own view: live, connecting, down, ...
            events = self._step.tick(now, state, frames_dropped=self._mailbox.stats().dropped)
        except Exception as error:
            self._analytics_errors += 1
            self._last_error = f"analytics tick: {type(error).__name__}: {error}"
            if self._analytics_errors == 1 or self._analytics_errors % 100 == 0:
                log.exception(
                    "camera %s: analytics tick failed (%d errors so far)", self.camera.id, self._analytics_errors
                )
            return
        for event in events:
            self._emit(event)
        if self._traffic is not None:

            def expire(traffic: CameraTraffic) -> Sequence[Event]:
                step = self._step.expire_traffic(now)
                return traffic.on_tick(now, step.findings, step.congestion)

            self._traffic_events(expire)
        if self._progress is not None:
            self._progress_events(lambda progress: progress.on_tick(now))

    def _traffic_events(self, work: Callable[[CameraTraffic], Sequence[Event]]) -> None:
        """Run one call of the camera's traffic outputs; a failure is counted and never stops counting."""
        if self._traffic is None:
            return
        try:
            events = work(self._traffic)
        except Exception as error:
            self._traffic_errors += 1
            self._analytics_errors += 1
            self._last_error = f"traffic: {type(error).__name__}: {error}"
            if self._traffic_errors == 1 or self._traffic_errors % 100 == 0:
                log.exception("camera %s: traffic outputs failed (%d so far)", self.camera.id, self._traffic_errors)
            return
        for event in events:
            self._emit(event)

    def _progress_events(self, work: Callable[[SiteProgress], Sequence[Event]]) -> None:
        """Run one call of the camera's progress stage; a failure is counted and never stops counting."""
        if self._progress is None:
            return
        try:
            events = work(self._progress)
        except Exception as error:
            self._progress_errors += 1
            self._analytics_errors += 1
            self._last_error = f"progress: {type(error).__name__}: {error}"
            if self._progress_errors == 1 or self._progress_errors % 100 == 0:
                log.exception("camera %s: progress stage failed (%d so far)", self.camera.id, self._progress_errors)
            return
        for event in events:
            self._emit(event)

    @property
    def progress(self) -> SiteProgress | None:
        """The camera's construction progress stage (None without ``progress:``)."""
        return self._progress

    @property
    def traffic(self) -> CameraTraffic | None:
        """The camera's violation/plate/congestion outputs (None without violations or plates)."""
        return self._traffic

    def _source_now(self) -> dt.datetime | None:
        """The source clock now: the last frame's time plus the time since it was handed over."""
        if self._last_frame_at is None:
            if not self.camera.is_live and self.camera.start_time is not None:
                return None  # a replayed file's clock is unknown until its first frame
            return self._wall_clock()
        timestamp, handed_over = self._last_frame_at
        return timestamp + dt.timedelta(seconds=max(0.0, self._monotonic() - handed_over))

    def _flush(self) -> None:
        self._emit_state_changes()
        now = self._source_now()
        if self._traffic is not None and now is not None:
            self._traffic_events(lambda traffic: traffic.finish(now))
        if self._progress is not None and now is not None:
            # A replayed file has ended: its last day is complete as far as the recording goes. A live camera
            # that stops mid-day does not report a partial day (its figures carry on after the restart).
            close_day = not self.camera.is_live
            self._progress_events(lambda progress: progress.finish(now, close_current_day=close_day))
        for event in self._step.flush():
            self._emit(event)
        stats = self.stats()
        self._emit(self._health("stopped", reason=stats.state_reason or stats.last_error))

    def _emit(self, event: Event) -> None:
        try:
            self._submit(event)
        except Exception:
            log.exception("camera %s: could not hand event %s to the uplink", self.camera.id, event.event_id)
            return
        self._events_emitted += 1

    def _emit_state_changes(self) -> None:
        """A health event for each reader state change that is news (O(1) when there is none)."""
        for change in self._reader.state_changes(self._seen_change):
            self._seen_change = change.number
            if is_news(change.state, change.reason, self._last_reported):
                self._last_reported = (change.state, change.reason)
                self._emit(self._health(change.state, reason=change.reason, at=change.at))

    def _health(
        self, state: SourceState, fps: float = 0.0, *, reason: str = "", at: dt.datetime | None = None
    ) -> HealthEvent:
        stats = self.stats()
        return HealthEvent(
            agent_id=self.agent_id,
            source_id=self.camera.id,
            time=at or self._wall_clock(),
            state=state,
            reason=reason[:500],
            frames_decoded=stats.frames_decoded,
            frames_processed=stats.frames_processed,
            frames_dropped=stats.frames_dropped,
            fps=round(fps, 2),
            uptime_s=max(0.0, self._monotonic() - self._started_at),
        )
