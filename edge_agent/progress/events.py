"""Contract events from the progress core's values: ``DailyFigure`` -> ProgressEvent, ``ActivityWindow`` ->
SiteActivityEvent (schema 1.5).

Pure functions, no I/O. Values are clamped into the contract's ranges (a percent a hair over 100 from float
sums, more frames than the contract counts) rather than losing the event; a value that cannot be made valid
(NaN) raises ``ValueError`` for the caller to count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import get_args

from edge_agent.progress.activity import ActivityWindow
from edge_agent.progress.estimator import DailyFigure
from event_contract.evidence import MAX_EVIDENCE, EvidenceRef
from event_contract.progress import ActivityGroup, ProgressEvent, SiteActivityEvent

MAX_FRAMES = 100_000
"""Most frames a ProgressEvent counts (the contract's bound); a day never samples that many."""

MAX_WINDOW_S = 86_400.0
"""Longest window a SiteActivityEvent carries."""

GROUPS: tuple[ActivityGroup, ...] = get_args(ActivityGroup)


def _bounded(value: float, low: float, high: float, what: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{what} is {value}, not a number the contract can carry")
    return min(high, max(low, float(value)))


def carried_over_note(frames_used: int) -> str:
    """Why a day has no fresh figure: too few good frames, so yesterday's value is carried (central may ask a PMU)."""
    return f"carried over: {frames_used} good frame{'' if frames_used == 1 else 's'}"


def progress_event(
    agent_id: str, camera_id: str, figure: DailyFigure, evidence: Sequence[EvidenceRef] = ()
) -> ProgressEvent:
    """The daily camera estimate of one package (or the camera's project figure when ``package_id`` is None)."""
    raw = figure.raw_percent
    return ProgressEvent(
        agent_id=agent_id,
        source_id=camera_id,
        time=figure.time,
        project_id=figure.project_id,
        package_id=figure.package_id,
        percent_complete=round(_bounded(figure.percent, 0.0, 100.0, "percent"), 3),
        method="camera_visual",
        confidence=round(_bounded(figure.confidence, 0.0, 1.0, "confidence"), 4),
        confirmed=False,
        note="" if raw is not None else carried_over_note(figure.frames_used),
        evidence=tuple(evidence)[:MAX_EVIDENCE],
        raw_percent=None if raw is None else round(_bounded(raw, 0.0, 100.0, "raw_percent"), 3),
        frames_used=min(MAX_FRAMES, max(0, figure.frames_used)),
        frames_rejected=min(MAX_FRAMES, max(0, figure.frames_rejected)),
        quality=None if figure.quality is None else round(_bounded(figure.quality, 0.0, 1.0, "quality"), 4),
    )


def _groups(values: Mapping[str, float]) -> dict[ActivityGroup, float]:
    return {group: values[group] for group in GROUPS if group in values}


def activity_event(agent_id: str, camera_id: str, project_id: str, window: ActivityWindow) -> SiteActivityEvent:
    """Work seen in one zone over one window (``time`` is its end)."""
    covered = _bounded(window.covered_s, 0.0, MAX_WINDOW_S, "covered_s")
    return SiteActivityEvent(
        agent_id=agent_id,
        source_id=camera_id,
        time=window.end,
        project_id=project_id,
        zone_id=window.zone_id,
        start=window.start,
        frames=min(1_000_000, max(0, window.frames)),
        covered_s=round(covered, 3),
        activity_index=round(_bounded(window.activity_index, 0.0, 1.0, "activity_index"), 4),
        active_s=round(_bounded(window.active_s, 0.0, covered, "active_s"), 3),
        mean_present={
            group: round(_bounded(value, 0.0, 1e6, f"mean_present[{group}]"), 3)
            for group, value in _groups(window.mean_present).items()
        },
        peak_present={group: max(0, int(value)) for group, value in _groups(window.peak_present).items()},
    )
