"""Daily figures and activity windows become contract events (schema 1.5) with every measurement detail."""

from __future__ import annotations

import datetime as dt

import pytest

from edge_agent.progress.activity import ActivityWindow
from edge_agent.progress.estimator import DailyFigure
from edge_agent.progress.events import activity_event, carried_over_note, progress_event
from event_contract import EventBatch
from event_contract.evidence import EvidenceRef

CLOSE = dt.datetime(2025, 3, 3, 10, 30, tzinfo=dt.UTC)  # 17:30 in Hà Nội
REF = EvidenceRef(kind="keyframe", uri="evidence/" + "a" * 64 + ".jpg", time=CLOSE, sha256="a" * 64)


def figure(**changes: object) -> DailyFigure:
    values: dict[str, object] = {
        "project_id": "du-an-1",
        "package_id": "mong",
        "day": dt.date(2025, 3, 3),
        "time": CLOSE,
        "percent": 42.5,
        "raw_percent": 44.0,
        "confidence": 0.8,
        "frames_used": 5,
        "frames_rejected": 7,
        "quality": 0.71,
    }
    values.update(changes)
    return DailyFigure(**values)  # type: ignore[arg-type]


def window(**changes: object) -> ActivityWindow:
    values: dict[str, object] = {
        "zone_id": "san",
        "start": CLOSE - dt.timedelta(hours=1),
        "end": CLOSE,
        "frames": 120,
        "covered_s": 3600.0,
        "activity_index": 0.5,
        "active_s": 1800.0,
        "mean_present": {"worker": 2.5, "machine": 0.25, "truck": 0.0},
        "peak_present": {"worker": 6, "machine": 1, "truck": 0},
    }
    values.update(changes)
    return ActivityWindow(**values)  # type: ignore[arg-type]


def test_a_daily_figure_is_a_camera_visual_progress_event_with_its_measurement_details() -> None:
    event = progress_event("site-01", "cam-1", figure(), (REF,))
    assert (event.agent_id, event.source_id, event.time) == ("site-01", "cam-1", CLOSE)
    assert (event.project_id, event.package_id, event.method, event.confirmed) == (
        "du-an-1",
        "mong",
        "camera_visual",
        False,
    )
    assert (event.percent_complete, event.raw_percent, event.confidence) == (42.5, 44.0, 0.8)
    assert (event.frames_used, event.frames_rejected, event.quality) == (5, 7, 0.71)
    assert event.evidence == (REF,)
    assert event.note == ""
    assert event.schema_version == "1.5"
    # It crosses the wire as it is.
    batch = EventBatch(agent_id="site-01", events=[event])
    assert EventBatch.model_validate_json(batch.model_dump_json()).events[0] == event


def test_the_project_figure_has_no_package_and_a_carried_day_says_why() -> None:
    event = progress_event("site-01", "cam-1", figure(package_id=None, raw_percent=None, frames_used=1, quality=None))
    assert event.package_id is None
    assert event.raw_percent is None
    assert event.quality is None
    assert event.note == "carried over: 1 good frame"
    assert carried_over_note(0) == "carried over: 0 good frames"


def test_values_a_hair_outside_the_contract_are_clamped_and_nan_is_refused() -> None:
    event = progress_event("a", "c", figure(percent=100.0000001, raw_percent=-1e-9, confidence=1.0000001))
    assert (event.percent_complete, event.raw_percent, event.confidence) == (100.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="percent"):
        progress_event("a", "c", figure(percent=float("nan")))


def test_an_activity_window_is_a_site_activity_event() -> None:
    event = activity_event("site-01", "cam-1", "du-an-1", window())
    assert (event.kind, event.project_id, event.zone_id) == ("site_activity", "du-an-1", "san")
    assert (event.start, event.time) == (CLOSE - dt.timedelta(hours=1), CLOSE)
    assert (event.frames, event.covered_s, event.activity_index, event.active_s) == (120, 3600.0, 0.5, 1800.0)
    assert event.mean_present == {"worker": 2.5, "machine": 0.25, "truck": 0.0}
    assert event.peak_present == {"worker": 6, "machine": 1, "truck": 0}
    batch = EventBatch(agent_id="site-01", events=[event])
    assert EventBatch.model_validate_json(batch.model_dump_json()).events[0] == event


def test_active_seconds_never_exceed_covered_seconds_and_unknown_groups_are_left_out() -> None:
    event = activity_event(
        "a",
        "c",
        "p",
        window(covered_s=10.0, active_s=10.0000004, mean_present={"worker": 1.0, "crane": 2.0}, peak_present={}),
    )
    assert event.active_s == event.covered_s == 10.0
    assert event.mean_present == {"worker": 1.0}
    assert event.peak_present == {}
