"""One site camera's construction progress outputs: daily progress events with a timelapse keyframe, and site
activity events.

``SiteProgress`` runs in the camera's analytics thread right after ``AnalyticsStep`` (like ``CameraTraffic``);
the pure core (``ProgressEstimator``, ``ActivityMeter``) does the judging, this stage does the I/O around it.
Per analysed frame it:

- hands the frame to the estimator with the workers, machines and trucks found in it as occluders (their
  cells are not judged); the estimator samples one frame every ``sample_every_s`` of source time in daylight;
- keeps the day's timelapse candidate: the best-quality usable sample within ``timelapse.within_minutes`` of
  ``timelapse.at`` (local time; when none, the usable sample nearest to it), as a downscaled copy: at most ONE
  picture per camera in memory;
- when days close (source time past ``daylight.end``), writes the day's timelapse JPEG to the evidence store
  (purpose ``timelapse``) and emits one ProgressEvent per ``DailyFigure`` carrying its reference; then saves
  the estimator's smoothing state (a small JSON file, written atomically) so a restart never lets a published
  figure drop;
- feeds the activity meter every frame and emits a SiteActivityEvent per closed window.

Failures around the core never cost an event: a keyframe the store cannot write leaves the day's events
without evidence (counted), a state file that cannot be written is counted and retried at the next close,
and an unreadable state file is kept aside (``.corrupt``) and the camera starts afresh, with a warning.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import zoneinfo
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from edge_agent.evidence.config import EvidenceConfig
from edge_agent.evidence.store import EvidenceStore
from edge_agent.perception.types import Detections, Frame
from edge_agent.preview.jpeg import downscale
from edge_agent.progress.activity import ActivityMeter, ActivityWindow
from edge_agent.progress.config import ProgressCameraConfig, parse_hhmm
from edge_agent.progress.estimator import DailyFigure, FrameAssessment, ProgressStats
from edge_agent.progress.events import activity_event, progress_event
from edge_agent.traffic import keyframes
from event_contract import Event
from event_contract.evidence import EvidenceRef
from ioc_common.atomic_files import replace_text

log = logging.getLogger(__name__)

STATE_FORMAT = "ioc-edge-progress-state/1"
"""Marks the state file's layout; a file of another format is set aside, not misread."""

TIMELAPSE_DAYS_KEPT = 8
"""Days whose stored timelapse reference is remembered for figures that close late (bounded, oldest first out)."""


class Estimator(Protocol):
    """What the stage needs of ``edge_agent.progress.estimator.ProgressEstimator``."""

    def observe(
        self, image: npt.NDArray[np.uint8], t: dt.datetime, occluders: npt.NDArray[np.float32] | None = None
    ) -> FrameAssessment | None: ...
    def close_days(self, now: dt.datetime) -> tuple[DailyFigure, ...]: ...
    def flush(self, now: dt.datetime) -> tuple[DailyFigure, ...]: ...
    def stats(self) -> ProgressStats: ...
    def export_state(self) -> dict[str, object]: ...
    def restore_state(self, state: Mapping[str, object]) -> None: ...


@dataclass(frozen=True, slots=True)
class SiteProgressStats:
    """Counters of one site camera (agent status file and /metrics)."""

    project_id: str
    frames_seen: int
    frames_sampled: int
    frames_used: int
    rejected: dict[str, int]
    """Sampled frames not used, by reason (night, dark, blurred, fogged, occluded, ...)."""
    days_reported: int
    progress_events: int
    carried_over: int
    """Figures without a fresh estimate (too few good frames that day): the previous value, lower confidence."""
    activity_windows: int
    keyframes: int
    """Timelapse keyframes stored."""
    keyframes_failed: int
    timelapse_missing: int
    """Days closed without any usable frame (their events carry no keyframe)."""
    events_invalid: int
    """Figures or windows the contract could not carry (a NaN from the core): logged and counted."""
    state_saves: int
    state_errors: int
    state_restored: bool
    latest: dict[str, float] = field(default_factory=dict)
    """Last published percent per package ('' = the camera's project figure)."""
    last_day: str | None = None
    working_hours_today: dict[str, float] = field(default_factory=dict)
    """Per activity zone, hours of the latest local day's closed windows with an activity index at or above
    ``activity.working_threshold``."""


@dataclass(slots=True)
class _Counters:
    progress_events: int = 0
    carried_over: int = 0
    activity_windows: int = 0
    keyframes: int = 0
    keyframes_failed: int = 0
    timelapse_missing: int = 0
    events_invalid: int = 0
    state_saves: int = 0
    state_errors: int = 0


@dataclass(frozen=True, slots=True)
class _Candidate:
    day: dt.date
    time: dt.datetime
    score: float
    distance_s: float
    image: npt.NDArray[np.uint8]


def _rank(score: float, distance_s: float, within_s: float) -> tuple[bool, float, float]:
    """Timelapse preference: inside the window beats outside; inside, the best quality (then the nearest);
    outside (a day whose frames near ``at`` were all rejected), the nearest usable frame, so no day is blank."""
    if distance_s <= within_s:
        return (True, score, -distance_s)
    return (False, -distance_s, score)


def occluder_boxes(tracked: Detections, classes: frozenset[str]) -> npt.NDArray[np.float32] | None:
    """Pixel boxes (n, 4) of the tracked objects whose class is in ``classes``; None when there are none."""
    if not len(tracked) or not classes:
        return None
    names = tracked.class_names
    keep = np.array([names[int(c)] in classes for c in tracked.class_id], dtype=np.bool_)
    if not keep.any():
        return None
    return np.asarray(tracked.xyxy[keep], dtype=np.float32)


class SiteProgress:
    """Events of one site camera; ``on_frame`` per analysed frame, ``on_tick`` without frames, ``finish`` at the end."""

    def __init__(
        self,
        agent_id: str,
        camera_id: str,
        config: ProgressCameraConfig,
        *,
        estimator: Estimator,
        evidence: EvidenceStore | None,
        evidence_config: EvidenceConfig,
        state_path: Path | None = None,
        max_frame_gap_s: float = 60.0,
        on_keyframe: Callable[[], None] | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.camera_id = camera_id
        self.config = config
        self._estimator = estimator
        self._evidence = evidence
        self._evidence_config = evidence_config
        self._state_path = state_path
        self._on_keyframe = on_keyframe
        self._zone = zoneinfo.ZoneInfo(config.timezone)
        self._timelapse_at = parse_hhmm(config.timelapse.at)
        self._occluding = frozenset(name for names in config.activity.groups.values() for name in names)
        self._meter = ActivityMeter(config.activity, max_frame_gap_s) if config.activity.enabled else None
        self._candidate: _Candidate | None = None
        self._timelapse: OrderedDict[dt.date, EvidenceRef | None] = OrderedDict()
        self._counters = _Counters()
        self._latest: dict[str, float] = {}
        self._last_day: dt.date | None = None
        self._working: tuple[dt.date | None, dict[str, float]] = (None, {})
        self._state_restored = self._restore()

    # -- the pipeline's calls --------------------------------------------------------------------

    def on_frame(self, frame: Frame, tracked: Detections) -> tuple[Event, ...]:
        """One analysed frame and the objects found in it, workers included (the pipeline passes the detector's
        output: a camera analysed minutes apart cannot confirm tracks, and presence needs no identity)."""
        now = frame.timestamp
        assessment = self._estimator.observe(frame.image, now, occluder_boxes(tracked, self._occluding))
        if assessment is not None:
            self._consider_timelapse(frame.image, assessment)
        events = self._figure_events(self._estimator.close_days(now))
        if self._meter is not None:
            windows = self._meter.update(tracked, now, frame.width, frame.height)
            events.extend(self._activity_events(windows))
        return tuple(events)

    def on_tick(self, now: dt.datetime) -> tuple[Event, ...]:
        """No frame came (camera down, night without frames): days and activity windows still close on source
        time."""
        events = self._figure_events(self._estimator.close_days(now))
        if self._meter is not None:
            events.extend(self._activity_events(self._meter.expire(now)))
        return tuple(events)

    def finish(self, now: dt.datetime, *, close_current_day: bool = False) -> tuple[Event, ...]:
        """The camera stops: closed days are reported, the open activity window is sent, the state saved.

        ``close_current_day``: report today too (a replayed recording ended); a live camera stopping mid-day
        leaves today to the next run, whose smoothing state is restored from the file.
        """
        figures = self._estimator.flush(now) if close_current_day else self._estimator.close_days(now)
        events = self._figure_events(figures)
        if self._meter is not None:
            events.extend(self._activity_events(self._meter.flush(now)))
        if not figures:
            self._save_state()
        return tuple(events)

    def stats(self) -> SiteProgressStats:
        core = self._estimator.stats()
        c = self._counters
        return SiteProgressStats(
            project_id=self.config.project_id,
            frames_seen=core.frames_seen,
            frames_sampled=core.frames_sampled,
            frames_used=core.frames_used,
            rejected=dict(core.rejected),
            days_reported=core.days_reported,
            progress_events=c.progress_events,
            carried_over=c.carried_over,
            activity_windows=c.activity_windows,
            keyframes=c.keyframes,
            keyframes_failed=c.keyframes_failed,
            timelapse_missing=c.timelapse_missing,
            events_invalid=c.events_invalid,
            state_saves=c.state_saves,
            state_errors=c.state_errors,
            state_restored=self._state_restored,
            latest=dict(self._latest),
            last_day=None if self._last_day is None else self._last_day.isoformat(),
            working_hours_today={zone: round(hours, 3) for zone, hours in self._working[1].items()},
        )

    # -- daily figures ---------------------------------------------------------------------------

    def _figure_events(self, figures: Sequence[DailyFigure]) -> list[Event]:
        events: list[Event] = []
        for figure in figures:
            evidence = self._timelapse_for(figure.day)
            try:
                event = progress_event(self.agent_id, self.camera_id, figure, evidence)
            except (ValueError, ValidationError) as error:
                self._counters.events_invalid += 1
                log.error("camera %s: day %s figure %s not sent: %s", self.camera_id, figure.day, figure, error)
                continue
            events.append(event)
            self._counters.progress_events += 1
            self._counters.carried_over += figure.raw_percent is None
            self._latest[figure.package_id or ""] = event.percent_complete
            self._last_day = figure.day if self._last_day is None else max(self._last_day, figure.day)
        if figures:
            self._save_state()
        return events

    # -- timelapse -------------------------------------------------------------------------------

    def _consider_timelapse(self, image: npt.NDArray[np.uint8], assessment: FrameAssessment) -> None:
        timelapse = self.config.timelapse
        if not timelapse.enabled or self._evidence is None or not assessment.quality.usable:
            return
        local = assessment.time.astimezone(self._zone)
        target = dt.datetime.combine(local.date(), self._timelapse_at, tzinfo=self._zone)
        distance_s = abs((local - target).total_seconds())
        held = self._candidate
        if held is not None and held.day < local.date():
            self._write_timelapse(held)  # a later day's frame: the held day can get no better picture
            held = None
        within_s = timelapse.within_minutes * 60
        if held is None or _rank(assessment.quality.score, distance_s, within_s) > _rank(
            held.score, held.distance_s, within_s
        ):
            # A downscaled copy: the frame's buffer belongs to the reader, and one picture per camera is held.
            picture = np.array(downscale(image, self._evidence_config.max_width), dtype=np.uint8, copy=True)
            held = _Candidate(local.date(), assessment.time, assessment.quality.score, distance_s, picture)
        self._candidate = held

    def _timelapse_for(self, day: dt.date) -> tuple[EvidenceRef, ...]:
        """The day's timelapse reference, writing the held candidate when it is that day's (or an earlier one's)."""
        held = self._candidate
        if held is not None and held.day <= day:
            self._write_timelapse(held)
        if not self.config.timelapse.enabled or self._evidence is None:
            return ()
        if day not in self._timelapse:
            self._counters.timelapse_missing += 1
            self._remember(day, None)
        ref = self._timelapse[day]
        return () if ref is None else (ref,)

    def _write_timelapse(self, candidate: _Candidate) -> None:
        self._candidate = None
        if self._evidence is None:
            return
        ref = keyframes.store(
            self._evidence,
            candidate.image,
            time=candidate.time,
            purpose="timelapse",
            jpeg_quality=self._evidence_config.jpeg_quality,
            what=f"the timelapse keyframe of camera {self.camera_id} for {candidate.day}",
        )
        if ref is None:
            self._counters.keyframes_failed += 1
        else:
            self._counters.keyframes += 1
            if self._on_keyframe is not None:
                self._on_keyframe()
        self._remember(candidate.day, ref)

    def _remember(self, day: dt.date, ref: EvidenceRef | None) -> None:
        self._timelapse[day] = ref
        self._timelapse.move_to_end(day)
        while len(self._timelapse) > TIMELAPSE_DAYS_KEPT:
            self._timelapse.popitem(last=False)

    # -- activity --------------------------------------------------------------------------------

    def _activity_events(self, windows: Sequence[ActivityWindow]) -> list[Event]:
        events: list[Event] = []
        for window in windows:
            try:
                events.append(activity_event(self.agent_id, self.camera_id, self.config.project_id, window))
            except (ValueError, ValidationError) as error:
                self._counters.events_invalid += 1
                log.error("camera %s: activity window %s not sent: %s", self.camera_id, window, error)
                continue
            self._counters.activity_windows += 1
            self._count_working(window)
        return events

    def _count_working(self, window: ActivityWindow) -> None:
        day = window.start.astimezone(self._zone).date()
        current, hours = self._working
        if current != day:
            if current is not None and day < current:
                return  # a late window of an earlier day does not reopen it
            hours = {}
            self._working = (day, hours)
        worked = window.activity_index >= self.config.activity.working_threshold
        hours[window.zone_id] = hours.get(window.zone_id, 0.0) + (
            (window.end - window.start).total_seconds() / 3600.0 if worked else 0.0
        )

    # -- smoothing state across restarts ---------------------------------------------------------

    def _save_state(self) -> None:
        if self._state_path is None:
            return
        document = {
            "format": STATE_FORMAT,
            "camera_id": self.camera_id,
            "project_id": self.config.project_id,
            "saved_at": dt.datetime.now(dt.UTC).isoformat(),
            "estimator": self._estimator.export_state(),
        }
        try:
            replace_text(self._state_path, json.dumps(document, indent=1, sort_keys=True), durable=True)
        except (OSError, TypeError, ValueError) as error:
            self._counters.state_errors += 1
            log.error("camera %s: cannot save progress state %s: %s", self.camera_id, self._state_path, error)
            return
        self._counters.state_saves += 1

    def _restore(self) -> bool:
        """Load the smoothing state of the last run; False when there is none or it cannot be used."""
        path = self._state_path
        if path is None or not path.exists():
            return False
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
                raise ValueError(f"not a {STATE_FORMAT} document")
            if document.get("project_id") != self.config.project_id:
                log.warning(
                    "camera %s: progress state %s is of project %r, now %r: starting afresh",
                    self.camera_id,
                    path,
                    document.get("project_id"),
                    self.config.project_id,
                )
                return False
            state = document.get("estimator")
            if not isinstance(state, dict):
                raise ValueError("no estimator state")
            self._estimator.restore_state(state)
        except (OSError, ValueError, TypeError, KeyError) as error:
            self._counters.state_errors += 1
            kept = path.with_name(path.name + ".corrupt")
            log.warning(
                "camera %s: cannot use progress state %s (%s): kept as %s, starting afresh",
                self.camera_id,
                path,
                error,
                kept,
            )
            try:
                os.replace(path, kept)
            except OSError:
                log.exception("camera %s: cannot set %s aside", self.camera_id, path)
            return False
        log.info("camera %s: progress state restored from %s", self.camera_id, path)
        return True
