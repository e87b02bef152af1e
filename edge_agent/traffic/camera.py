"""One camera's traffic outputs: findings, plate passes and congestion reports become events with evidence.

``CameraTraffic`` runs in the camera's analytics thread right after ``AnalyticsStep`` (which stays free of
threads and I/O). Per frame it:

- renders a keyframe of each new finding (the frame at its time, the vehicle boxed, the rule drawn) and
  stores it in the evidence store (a JPEG write: rare, a few milliseconds);
- holds each finding until its vehicle's plate is known (``PlateStage.sighting``) or ``plate_wait_s`` of
  source time went by, then emits its ``ViolationEvent``, with the plate when there is one and the best
  plate crop as a second keyframe. A violation is never lost for want of a plate: at the deadline, at
  ``tick`` without frames and at ``finish`` it goes without one, and more than ``MAX_HELD`` waiting
  findings release the oldest at once;
- runs the plate stage and turns each ``PlatePass`` into a ``PlatePassEvent`` (its best crop stored as a
  keyframe when ``plates.keyframe``);
- turns congestion reports into ``CongestionEvent``s.

A keyframe the evidence store cannot write (disk full) leaves its event without that reference
(counted by the store), never without the event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from edge_agent.analytics.lines import Crossing
from edge_agent.evidence.config import EvidenceConfig, EvidencePurpose
from edge_agent.evidence.store import EvidenceStore
from edge_agent.perception.types import Detections, Frame
from edge_agent.traffic import keyframes
from edge_agent.traffic.config import PlateCameraConfig
from edge_agent.traffic.events import congestion_event, plate_fits, plate_pass_event, violation_event
from edge_agent.traffic.plate_stage import PlatePass, PlateSighting, PlateStage, PlateStageStats
from edge_agent.violations.config import ViolationRulesConfig
from edge_agent.violations.findings import CongestionReport, Finding
from event_contract import Event
from event_contract.evidence import EvidenceRef

MAX_HELD = 256
"""Findings waiting for a plate at once; beyond it the oldest goes without waiting (never dropped)."""


@dataclass(slots=True)
class _Held:
    finding: Finding
    evidence: tuple[EvidenceRef, ...]
    deadline: dt.datetime


@dataclass(frozen=True, slots=True)
class CameraTrafficStats:
    violations: int
    violations_with_plate: int
    plates_unfit: int
    """Voted plates whose text the contract cannot carry (not a normalised plate): sent without it / not sent."""
    held: int
    released_early: int
    """Findings emitted before their plate wait because too many were held."""
    plate_passes: int
    congestion: int
    keyframes: int
    keyframes_failed: int


@dataclass(slots=True)
class _Counters:
    violations: int = 0
    with_plate: int = 0
    unfit: int = 0
    released_early: int = 0
    passes: int = 0
    congestion: int = 0
    keyframes: int = 0
    keyframes_failed: int = 0


class CameraTraffic:
    """Events of one camera's traffic stages; ``on_frame`` per analysed frame, ``on_tick`` without frames."""

    def __init__(
        self,
        agent_id: str,
        camera_id: str,
        *,
        violations: ViolationRulesConfig | None,
        plates: PlateCameraConfig | None,
        plate_stage: PlateStage | None,
        evidence: EvidenceStore | None,
        evidence_config: EvidenceConfig,
        on_keyframe: Callable[[], None] | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.camera_id = camera_id
        self._plates = plates
        self._plate_stage = plate_stage
        self._evidence = evidence
        self._evidence_config = evidence_config
        self._on_keyframe = on_keyframe
        self._shapes: Mapping[str, keyframes.RuleShapes] = (
            {rule.id: keyframes.shapes_of(rule) for rule in violations.rules} if violations is not None else {}
        )
        self._wait = dt.timedelta(seconds=plates.plate_wait_s if plates is not None and plate_stage else 0.0)
        self._held: list[_Held] = []
        self._counters = _Counters()

    def on_frame(
        self,
        frame: Frame,
        tracked: Detections,
        crossings: Sequence[Crossing],
        findings: Sequence[Finding],
        congestion: Sequence[CongestionReport],
    ) -> tuple[Event, ...]:
        events: list[Event | None] = []
        passes = self._plate_stage.update(frame, tracked, crossings) if self._plate_stage is not None else ()
        for finding in findings:
            self._hold(finding, self._finding_keyframe(frame, tracked, finding))
        events.extend(self._release(frame.timestamp, force=False))
        events.extend(self._pass_event(p) for p in passes)
        events.extend(self._congestion(congestion))
        return tuple(event for event in events if event is not None)

    def on_tick(
        self, now: dt.datetime, findings: Sequence[Finding], congestion: Sequence[CongestionReport]
    ) -> tuple[Event, ...]:
        """No frame: findings of ``expire`` go without a keyframe; waits and passes come due on source time."""
        passes = self._plate_stage.tick(now) if self._plate_stage is not None else ()
        for finding in findings:
            self._hold(finding, ())
        events: list[Event | None] = [*self._release(now, force=False)]
        events.extend(self._pass_event(p) for p in passes)
        events.extend(self._congestion(congestion))
        return tuple(event for event in events if event is not None)

    def finish(self, now: dt.datetime) -> tuple[Event, ...]:
        """The camera stops: pending passes are decided, held findings go with what is known."""
        passes = self._plate_stage.finish_all(now) if self._plate_stage is not None else ()
        events: list[Event | None] = [*self._release(now, force=True)]
        events.extend(self._pass_event(p) for p in passes)
        return tuple(event for event in events if event is not None)

    def plate_stats(self) -> PlateStageStats | None:
        """The plate stage's counters (None on a camera without plates)."""
        return self._plate_stage.stats() if self._plate_stage is not None else None

    def stats(self) -> CameraTrafficStats:
        c = self._counters
        return CameraTrafficStats(
            violations=c.violations,
            violations_with_plate=c.with_plate,
            plates_unfit=c.unfit,
            held=len(self._held),
            released_early=c.released_early,
            plate_passes=c.passes,
            congestion=c.congestion,
            keyframes=c.keyframes,
            keyframes_failed=c.keyframes_failed,
        )

    # -- violations ------------------------------------------------------------------------------

    def _hold(self, finding: Finding, evidence: tuple[EvidenceRef, ...]) -> None:
        self._held.append(_Held(finding, evidence, finding.time + self._wait))

    def _release(self, now: dt.datetime, *, force: bool) -> list[Event]:
        ready: list[tuple[_Held, PlateSighting | None]] = []
        waiting: list[_Held] = []
        for held in self._held:
            sighting = self._sighting(held.finding.track_id)
            if force or sighting is not None or now >= held.deadline or self._plate_stage is None:
                ready.append((held, sighting))
            else:
                waiting.append(held)
        while len(waiting) > MAX_HELD:
            oldest = waiting.pop(0)
            self._counters.released_early += 1
            ready.append((oldest, None))
        self._held = waiting
        return [self._violation(held, sighting) for held, sighting in ready]

    def _sighting(self, track_id: int) -> PlateSighting | None:
        if self._plate_stage is None:
            return None
        return self._plate_stage.sighting(track_id)

    def _violation(self, held: _Held, sighting: PlateSighting | None) -> Event:
        evidence = held.evidence
        plate = sighting.plate if sighting is not None else None
        if plate is not None and not plate_fits(plate):
            self._counters.unfit += 1
            plate = None
        if plate is not None and sighting is not None and sighting.best is not None:
            best = sighting.best
            picture = keyframes.plate_picture(best.crop, best.plate_box, plate.text)
            ref = self._store(picture, best.time, "violation")
            evidence = (*evidence, *((ref,) if ref is not None else ()))
        self._counters.violations += 1
        self._counters.with_plate += plate is not None
        return violation_event(self.agent_id, self.camera_id, held.finding, plate=plate, evidence=evidence)

    def _finding_keyframe(self, frame: Frame, tracked: Detections, finding: Finding) -> tuple[EvidenceRef, ...]:
        if self._evidence is None:
            return ()
        related = [
            tuple(float(v) for v in tracked.xyxy[i])
            for i in range(len(tracked))
            if int(tracked.tracker_id[i]) in finding.related_track_ids
        ]
        label = f"{finding.rule_id}: {finding.violation_type} #{finding.track_id}"
        if finding.signal_state is not None:
            label += f" ({finding.signal_state})"
        picture = keyframes.violation_picture(
            frame.image,
            finding.box_xyxy,
            label,
            self._shapes.get(finding.rule_id, keyframes.RuleShapes()),
            max_width=self._evidence_config.max_width,
            related_boxes=related,
        )
        ref = self._store(picture, frame.timestamp, "violation")
        return () if ref is None else (ref,)

    # -- passes and congestion -------------------------------------------------------------------

    def _pass_event(self, plate_pass: PlatePass) -> Event | None:
        evidence: tuple[EvidenceRef, ...] = ()
        best = plate_pass.best
        if best is not None and self._plates is not None and self._plates.keyframe and plate_fits(plate_pass.plate):
            ref = self._store(
                keyframes.plate_picture(best.crop, best.plate_box, plate_pass.plate.text), best.time, "plate_pass"
            )
            evidence = () if ref is None else (ref,)
        event = plate_pass_event(
            self.agent_id,
            self.camera_id,
            time=plate_pass.time,
            track_id=plate_pass.track_id,
            plate=plate_pass.plate,
            vehicle_class=plate_pass.vehicle_class,
            direction=plate_pass.direction,
            line_id=plate_pass.line_id,
            evidence=evidence,
        )
        if event is None:
            self._counters.unfit += 1
            return None
        self._counters.passes += 1
        return event

    def _congestion(self, reports: Sequence[CongestionReport]) -> list[Event]:
        self._counters.congestion += len(reports)
        return [congestion_event(self.agent_id, self.camera_id, report) for report in reports]

    def _store(self, picture: keyframes.Image, time: dt.datetime, purpose: EvidencePurpose) -> EvidenceRef | None:
        if self._evidence is None:
            return None
        ref = keyframes.store(
            self._evidence,
            picture,
            time=time,
            purpose=purpose,
            jpeg_quality=self._evidence_config.jpeg_quality,
            what=f"the {purpose} keyframe of camera {self.camera_id}",
        )
        if ref is None:
            self._counters.keyframes_failed += 1
            return None
        self._counters.keyframes += 1
        if self._on_keyframe is not None:
            self._on_keyframe()
        return ref
