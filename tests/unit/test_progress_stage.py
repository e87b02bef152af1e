"""SiteProgress around the progress core: occluders, the daily timelapse keyframe, events, state across restarts,
failures that never cost an event; and the site camera's place in the agent (config, taxonomy, pipeline)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from edge_agent.analytics.zones import ZoneConfig
from edge_agent.config import CameraConfig, parse_config
from edge_agent.evidence.config import EvidenceConfig, should_upload
from edge_agent.evidence.store import EvidenceStore
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.detectors.label_map import CLASS_NAMES, TAXONOMY, build_label_mapping
from edge_agent.perception.tracker import ByteTracker, TrackerConfig
from edge_agent.perception.types import Detections, Frame
from edge_agent.pipeline import AnalyticsStep
from edge_agent.preview.metrics import ServerMetrics, TrafficMetrics, render_metrics
from edge_agent.progress.config import ProgressCameraConfig
from edge_agent.progress.estimator import DailyFigure, FrameAssessment, ProgressStats
from edge_agent.progress.quality import FrameQuality
from edge_agent.progress.stage import SiteProgress, occluder_boxes
from event_contract import ProgressEvent, SiteActivityEvent, ZoneIntervalEvent

ZONE = dt.timezone(dt.timedelta(hours=7))  # Asia/Ho_Chi_Minh has no DST
DAY = dt.date(2025, 3, 3)
GOOD = FrameQuality(0.8, 0.5, 1.0, 0.1, 0.0, ())
DARK = FrameQuality(0.1, 0.05, 1.0, 0.1, 0.0, ("dark", "low_score"))


def local(day: dt.date, hour: float) -> dt.datetime:
    return (dt.datetime.combine(day, dt.time(0), tzinfo=ZONE) + dt.timedelta(hours=hour)).astimezone(dt.UTC)


def progress_config(**changes: Any) -> ProgressCameraConfig:
    values: dict[str, Any] = {
        "project_id": "du-an-1",
        "packages": [{"id": "mong", "region": [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9], [0.1, 0.9]]}],
        "references": [{"image": "ref/not_started.png", "state": "not_started"}],
        "timelapse": {"at": "12:00", "within_minutes": 90},
        "activity": {"enabled": False},
    }
    values.update(changes)
    return ProgressCameraConfig.model_validate(values)


def figures_of(day: dt.date, percent: float = 40.0, raw: float | None = 41.0) -> tuple[DailyFigure, ...]:
    close = local(day, 17.5)
    return (
        DailyFigure("du-an-1", "mong", day, close, percent, raw, 0.8, 4, 2, 0.7),
        DailyFigure("du-an-1", None, day, close, percent, raw, 0.8, 4, 2, 0.7),
    )


class FakeEstimator:
    """Scripted core: a quality per sampled frame time, figures released once their close time passed."""

    def __init__(self, qualities: Mapping[dt.datetime, FrameQuality], figures: Sequence[DailyFigure] = ()) -> None:
        self.qualities = dict(qualities)
        self.figures = list(figures)
        self.occluders: list[npt.NDArray[np.float32] | None] = []
        self.restored: list[Mapping[str, object]] = []
        self.closed = 0
        self.flushed = False

    def observe(
        self, image: npt.NDArray[np.uint8], t: dt.datetime, occluders: npt.NDArray[np.float32] | None = None
    ) -> FrameAssessment | None:
        self.occluders.append(occluders)
        quality = self.qualities.get(t)
        return None if quality is None else FrameAssessment(t, quality, ())

    def close_days(self, now: dt.datetime) -> tuple[DailyFigure, ...]:
        due = tuple(f for f in self.figures if f.time <= now)
        self.figures = [f for f in self.figures if f.time > now]
        self.closed += len({f.day for f in due})
        return due

    def flush(self, now: dt.datetime) -> tuple[DailyFigure, ...]:
        self.flushed = True
        due, self.figures = tuple(self.figures), []
        return due

    def stats(self) -> ProgressStats:
        return ProgressStats(10, 6, 4, {"night": 2}, self.closed)

    def export_state(self) -> dict[str, object]:
        return {"version": 1, "closed": self.closed}

    def restore_state(self, state: Mapping[str, object]) -> None:
        if state.get("version") != 1:
            raise ValueError("bad version")
        self.restored.append(state)


def frame(t: dt.datetime, colour: int, *, sequence: int = 0) -> Frame:
    return Frame(np.full((90, 160, 3), colour, np.uint8), "cam-1", sequence, t)


def no_objects() -> Detections:
    return Detections.empty(CLASS_NAMES)


def objects(*rows: tuple[str, tuple[float, float, float, float]]) -> Detections:
    return Detections(
        xyxy=np.array([box for _, box in rows], np.float32).reshape(-1, 4),
        confidence=np.full(len(rows), 0.9, np.float32),
        class_id=np.array([CLASS_NAMES.index(name) for name, _ in rows], np.int64),
        class_names=CLASS_NAMES,
        tracker_id=np.arange(1, len(rows) + 1, dtype=np.int64),
    )


@pytest.fixture
def store(tmp_path: Path) -> Any:
    evidence = EvidenceStore(EvidenceConfig(), tmp_path / "evidence")
    yield evidence
    evidence.close()


def stage(
    estimator: FakeEstimator, store: EvidenceStore | None, state_path: Path | None = None, **config: Any
) -> SiteProgress:
    return SiteProgress(
        "site-01",
        "cam-1",
        progress_config(**config),
        estimator=estimator,
        evidence=store,
        evidence_config=EvidenceConfig(),
        state_path=state_path,
    )


def run(site: SiteProgress, frames: Sequence[Frame]) -> list[Any]:
    return [event for f in frames for event in site.on_frame(f, no_objects())]


def stored_colour(store: EvidenceStore, sha256: str | None) -> int:
    assert sha256 is not None
    data = store.read(sha256)
    assert data is not None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return round(float(image.mean()))


# -- occluders -------------------------------------------------------------------------------------


def test_only_workers_machines_and_trucks_hide_the_regions() -> None:
    tracked = objects(("person", (1, 2, 3, 4)), ("car", (5, 6, 7, 8)), ("truck", (9, 10, 11, 12)))
    boxes = occluder_boxes(tracked, frozenset({"person", "truck", "other_vehicle"}))
    assert boxes is not None
    assert boxes.tolist() == [[1, 2, 3, 4], [9, 10, 11, 12]]
    assert occluder_boxes(objects(("car", (5, 6, 7, 8))), frozenset({"person"})) is None
    assert occluder_boxes(no_objects(), frozenset({"person"})) is None


def test_the_estimator_gets_every_frame_with_the_groups_boxes(store: EvidenceStore) -> None:
    estimator = FakeEstimator({})
    site = stage(estimator, store)
    site.on_frame(frame(local(DAY, 9), 100), objects(("person", (1, 2, 3, 4)), ("bicycle", (0, 0, 1, 1))))
    site.on_frame(frame(local(DAY, 9.1), 100), no_objects())
    first, second = estimator.occluders
    assert first is not None
    assert first.tolist() == [[1, 2, 3, 4]]
    assert second is None


# -- timelapse -------------------------------------------------------------------------------------


def test_the_day_keyframe_is_the_best_usable_frame_near_noon_and_rides_on_every_figure(
    store: EvidenceStore,
) -> None:
    times = {
        "early": local(DAY, 9.0),  # the best score, but outside 12:00 +- 90 min
        "fair": local(DAY, 11.0),
        "best": local(DAY, 12.5),
        "dark": local(DAY, 12.0),  # nearest to noon, but not usable
    }
    qualities = {
        times["early"]: FrameQuality(0.99, 0.5, 1, 0, 0, ()),
        times["fair"]: FrameQuality(0.7, 0.5, 1, 0, 0, ()),
        times["best"]: FrameQuality(0.9, 0.5, 1, 0, 0, ()),
        times["dark"]: DARK,
    }
    estimator = FakeEstimator(qualities, figures_of(DAY))
    site = stage(estimator, store)
    colours = {"early": 30, "fair": 60, "dark": 90, "best": 120}
    events = run(site, [frame(times[name], colours[name]) for name in ("early", "fair", "dark", "best")])
    assert events == []
    events = list(site.on_frame(frame(local(DAY, 18), 10), no_objects()))
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    assert [(e.package_id, e.percent_complete, e.method) for e in progress] == [
        ("mong", 40.0, "camera_visual"),
        (None, 40.0, "camera_visual"),
    ]
    refs = {ref for e in progress for ref in e.evidence}
    assert len(refs) == 1
    (ref,) = refs
    assert ref.time == times["best"]
    assert stored_colour(store, ref.sha256) == colours["best"]
    assert store.pending() == [ref.sha256], "timelapse keyframes are uploaded under policy violations"
    stats = site.stats()
    assert (stats.keyframes, stats.progress_events, stats.timelapse_missing) == (1, 2, 0)
    assert stats.latest == {"mong": 40.0, "": 40.0}
    assert stats.last_day == DAY.isoformat()


def test_a_day_rained_out_at_noon_keeps_its_usable_frame_nearest_to_noon(store: EvidenceStore) -> None:
    times = {"morning": local(DAY, 9.0), "rain": local(DAY, 12.0), "late": local(DAY, 15.5)}
    qualities = {
        times["morning"]: FrameQuality(0.6, 0.5, 1, 0, 0, ()),
        times["rain"]: DARK,
        times["late"]: FrameQuality(0.95, 0.5, 1, 0, 0, ()),  # better, but further from noon
    }
    site = stage(FakeEstimator(qualities, figures_of(DAY)), store, timelapse={"at": "12:00", "within_minutes": 90})
    colours = {"morning": 40, "rain": 80, "late": 160}
    events = run(site, [*(frame(times[name], colours[name]) for name in colours), frame(local(DAY, 18), 10)])
    (ref,) = {ref for e in events if isinstance(e, ProgressEvent) for ref in e.evidence}
    assert ref.time == times["morning"]
    assert stored_colour(store, ref.sha256) == colours["morning"]
    assert site.stats().timelapse_missing == 0


def test_a_day_without_any_usable_frame_sends_its_figures_without_a_keyframe(store: EvidenceStore) -> None:
    noon = local(DAY, 12)
    estimator = FakeEstimator({noon: DARK}, figures_of(DAY, raw=None))
    site = stage(estimator, store)
    events = run(site, [frame(noon, 50), frame(local(DAY, 18), 50)])
    assert [e.evidence for e in events] == [(), ()]
    assert [e.note for e in events] == ["carried over: 4 good frames"] * 2
    stats = site.stats()
    assert (stats.keyframes, stats.timelapse_missing, stats.carried_over) == (0, 1, 2)
    assert store.stats().files == 0


def test_a_late_closing_day_keeps_its_own_keyframe_when_the_next_day_has_begun(store: EvidenceStore) -> None:
    next_day = DAY + dt.timedelta(days=1)
    first, second = local(DAY, 12), local(next_day, 12)
    # The core releases yesterday's figures only on the next day's noon frame (e.g. the camera was off at night).
    late = tuple(dataclass_replace_time(f, second) for f in figures_of(DAY))
    estimator = FakeEstimator({first: GOOD, second: GOOD}, late)
    site = stage(estimator, store)
    events = run(site, [frame(first, 70), frame(second, 140)])
    assert len(events) == 2
    (ref,) = {ref for e in events for ref in e.evidence}
    assert stored_colour(store, ref.sha256) == 70
    # Today's candidate is still held, one picture, written when today closes.
    estimator.figures = list(figures_of(next_day))
    events = list(site.finish(local(next_day, 18)))
    (ref,) = {ref for e in events for ref in e.evidence}
    assert stored_colour(store, ref.sha256) == 140
    assert site.stats().keyframes == 2


def dataclass_replace_time(figure: DailyFigure, time: dt.datetime) -> DailyFigure:
    return DailyFigure(
        figure.project_id,
        figure.package_id,
        figure.day,
        time,
        figure.percent,
        figure.raw_percent,
        figure.confidence,
        figure.frames_used,
        figure.frames_rejected,
        figure.quality,
    )


class BrokenStore:
    def put(self, jpeg: bytes, *, time: dt.datetime | None, purpose: str) -> None:
        raise OSError("disk full")


def test_a_keyframe_that_cannot_be_stored_costs_the_evidence_not_the_events() -> None:
    noon = local(DAY, 12)
    estimator = FakeEstimator({noon: GOOD}, figures_of(DAY))
    site = stage(estimator, BrokenStore())  # type: ignore[arg-type]
    events = run(site, [frame(noon, 50), frame(local(DAY, 18), 50)])
    assert [e.evidence for e in events] == [(), ()]
    assert site.stats().keyframes_failed == 1


def test_without_an_evidence_store_or_with_timelapse_off_no_picture_is_kept() -> None:
    noon = local(DAY, 12)
    for site in (
        stage(FakeEstimator({noon: GOOD}, figures_of(DAY)), None),
        stage(FakeEstimator({noon: GOOD}, figures_of(DAY)), None, timelapse={"enabled": False}),
    ):
        events = run(site, [frame(noon, 50), frame(local(DAY, 18), 50)])
        assert [e.evidence for e in events] == [(), ()]
        assert site.stats().timelapse_missing == 0


def test_a_figure_the_contract_cannot_carry_is_counted_and_the_others_go(store: EvidenceStore) -> None:
    good, project = figures_of(DAY)
    bad = dataclass_nan(good)
    site = stage(FakeEstimator({}, (bad, project)), store)
    events = [e for e in site.on_tick(local(DAY, 18)) if isinstance(e, ProgressEvent)]
    assert [e.package_id for e in events] == [None]
    assert site.stats().events_invalid == 1


def dataclass_nan(figure: DailyFigure) -> DailyFigure:
    return DailyFigure(
        figure.project_id, figure.package_id, figure.day, figure.time, float("nan"), None, 0.5, 0, 0, None
    )


# -- finishing ---------------------------------------------------------------------------------------


def test_a_live_camera_stopping_mid_day_leaves_today_a_replay_ending_reports_it(store: EvidenceStore) -> None:
    live = FakeEstimator({}, figures_of(DAY))
    assert stage(live, store).finish(local(DAY, 10)) == ()
    assert not live.flushed
    replay = FakeEstimator({}, figures_of(DAY))
    events = stage(replay, store).finish(local(DAY, 10), close_current_day=True)
    assert replay.flushed
    assert len(events) == 2


# -- activity --------------------------------------------------------------------------------------


def test_workers_in_the_picture_become_hourly_site_activity_events(store: EvidenceStore) -> None:
    site = stage(FakeEstimator({}), store, activity={"window_s": 3600})
    worker = objects(("person", (10, 10, 20, 60)))
    events: list[Any] = []
    for minute in range(0, 60, 10):
        events += site.on_frame(frame(local(DAY, 9 + minute / 60), 80), worker if minute < 30 else no_objects())
    events += site.on_frame(frame(local(DAY, 10), 80), no_objects())
    (event,) = events
    assert isinstance(event, SiteActivityEvent)
    assert (event.zone_id, event.project_id, event.start, event.time) == (
        "site",
        "du-an-1",
        local(DAY, 9),
        local(DAY, 10),
    )
    assert event.frames == 6
    assert event.activity_index == 0.5
    assert event.peak_present["worker"] == 1
    assert site.stats().working_hours_today == {"site": 1.0}
    tail = site.finish(local(DAY, 10.1))
    assert [type(e) for e in tail] == [SiteActivityEvent]
    assert site.stats().activity_windows == 2
    assert site.stats().working_hours_today == {"site": 1.0}, "an idle hour is not a working hour"


def test_a_camera_that_goes_down_mid_hour_still_sends_that_hour(store: EvidenceStore) -> None:
    site = stage(FakeEstimator({}), store, activity={"window_s": 3600})
    assert site.on_frame(frame(local(DAY, 9.5), 80), objects(("person", (10, 10, 20, 60)))) == ()
    assert [e for e in site.on_tick(local(DAY, 9.9)) if isinstance(e, SiteActivityEvent)] == []
    (event,) = [e for e in site.on_tick(local(DAY, 10.1)) if isinstance(e, SiteActivityEvent)]
    assert (event.start, event.time, event.frames, event.activity_index) == (local(DAY, 9), local(DAY, 10), 1, 1.0)


def test_activity_can_be_turned_off(store: EvidenceStore) -> None:
    site = stage(FakeEstimator({}), store, activity={"enabled": False})
    run(site, [frame(local(DAY, 9), 1), frame(local(DAY, 11), 1)])
    assert site.finish(local(DAY, 12)) == ()


# -- state across restarts -------------------------------------------------------------------------


def test_the_smoothing_state_is_saved_at_each_day_close_and_restored_at_start(
    store: EvidenceStore, tmp_path: Path
) -> None:
    path = tmp_path / "state" / "progress" / "cam-1.json"
    site = stage(FakeEstimator({}, figures_of(DAY)), store, path)
    assert not site.stats().state_restored
    site.on_tick(local(DAY, 18))
    document = json.loads(path.read_text())
    assert document["format"] == "ioc-edge-progress-state/1"
    assert (document["camera_id"], document["project_id"]) == ("cam-1", "du-an-1")
    assert document["estimator"] == {"version": 1, "closed": 1}
    assert site.stats().state_saves == 1
    again = FakeEstimator({})
    restarted = stage(again, store, path)
    assert again.restored == [{"version": 1, "closed": 1}]
    assert restarted.stats().state_restored


def test_an_unusable_state_file_is_kept_aside_and_the_camera_starts_afresh(
    store: EvidenceStore, tmp_path: Path
) -> None:
    path = tmp_path / "cam-1.json"
    for text in ("{not json", json.dumps({"format": "ioc-edge-progress-state/1", "project_id": "du-an-1",
                                          "estimator": {"version": 99}})):  # fmt: skip
        path.write_text(text)
        site = stage(FakeEstimator({}), store, path)
        assert not site.stats().state_restored
        assert site.stats().state_errors == 1
        assert not path.exists()
        assert path.with_name("cam-1.json.corrupt").read_text() == text


def test_another_projects_state_is_not_restored(store: EvidenceStore, tmp_path: Path) -> None:
    path = tmp_path / "cam-1.json"
    path.write_text(
        json.dumps({"format": "ioc-edge-progress-state/1", "project_id": "old", "estimator": {"version": 1}})
    )
    estimator = FakeEstimator({})
    assert not stage(estimator, store, path).stats().state_restored
    assert estimator.restored == []


def test_a_state_file_that_cannot_be_written_is_counted(store: EvidenceStore, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    site = stage(FakeEstimator({}, figures_of(DAY)), store, blocker / "cam-1.json")
    assert len(site.on_tick(local(DAY, 18))) == 2
    assert (site.stats().state_saves, site.stats().state_errors) == (0, 1)


# -- the site camera in the agent ------------------------------------------------------------------

SITE_YAML = """
agent_id: site-01
central: {url: "http://127.0.0.1:9", token: t0k}
cameras:
  - id: cam-site
    url: rtsp://192.0.2.1/stream
    decode: keyframes
    detector: {label_map: {Person: person, Vehicle: other_vehicle}}
    progress:
      project_id: du-an-1
      packages: [{id: mong, region: [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9]]}]
      references: [{image: ref/not_started.png, state: not_started}]
"""


def test_a_camera_with_only_progress_is_valid_and_keeps_evidence() -> None:
    config = parse_config(SITE_YAML)
    (camera,) = config.cameras
    assert camera.progress is not None
    assert camera.progress.project_id == "du-an-1"
    assert camera.keeps_evidence
    assert camera.detector.label_map == {"Person": "person", "Vehicle": "other_vehicle"}
    with pytest.raises(ValidationError, match="progress:"):
        CameraConfig.model_validate({"id": "empty", "url": "rtsp://192.0.2.1/x"})


def test_timelapse_evidence_is_uploaded_under_violations_and_all_not_never() -> None:
    assert [should_upload(policy, "timelapse") for policy in ("never", "violations", "all")] == [False, True, True]
    assert not should_upload("violations", "plate_pass")


def test_site_classes_follow_the_vehicle_taxonomy_and_only_a_site_map_keeps_them() -> None:
    assert CLASS_NAMES[: len(TAXONOMY)] == TAXONOMY
    assert "person" in CLASS_NAMES
    assert "person" not in TAXONOMY
    mapping = build_label_mapping(["Car", "Person", "Chair"], {"Car": "car", "Person": "person"})
    assert [CLASS_NAMES[i] if i >= 0 else None for i in mapping.model_to_taxonomy] == ["car", "person", None]
    with pytest.raises(ValidationError, match="crane"):
        DetectorConfig(label_map={"Crane": "crane"})


class ScriptedDetector:
    class_names = CLASS_NAMES

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        return Detections(
            xyxy=np.array([[10, 10, 30, 60], [100, 20, 150, 60]], np.float32),
            confidence=np.array([0.9, 0.9], np.float32),
            class_id=np.array([CLASS_NAMES.index("person"), CLASS_NAMES.index("car")], np.int64),
            class_names=CLASS_NAMES,
        )


def test_lines_zones_and_intervals_see_tracked_vehicles_while_the_site_sees_every_detection() -> None:
    step = AnalyticsStep(
        "site-01",
        "cam-1",
        ScriptedDetector(),
        ByteTracker(TrackerConfig()),
        zones=[ZoneConfig(id="yard", polygon=((0, 0), (1, 0), (1, 1), (0, 1)))],
        lines=[],
    )
    results = [step.process(frame(local(DAY, 9) + dt.timedelta(seconds=i), 90, sequence=i)) for i in range(3)]
    last = results[-1]
    assert last.tracked.names == ["car"]
    assert sorted(last.seen.names) == ["car", "person"]
    assert last.zones[0].occupancy == (("car", 1),)
    zone_events = [e for e in step.flush() if isinstance(e, ZoneIntervalEvent)]
    assert zone_events
    assert all({c.vehicle_class for c in e.classes} <= {"car"} for e in zone_events)


def test_site_counters_are_on_the_metrics_page(store: EvidenceStore) -> None:
    site = stage(FakeEstimator({}, figures_of(DAY)), store)
    site.on_tick(local(DAY, 18))
    text = render_metrics("site-01", [], None, ServerMetrics(), TrafficMetrics(progress={"cam-1": site.stats()}))
    assert 'ioc_edge_progress_frames_rejected_total{camera="cam-1",reason="night"} 2' in text
    assert 'ioc_edge_progress_events_total{camera="cam-1"} 2' in text
    assert 'ioc_edge_progress_percent{camera="cam-1",package="mong"} 40' in text
    assert 'ioc_edge_progress_percent{camera="cam-1",package=""} 40' in text
