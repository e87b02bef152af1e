"""The progress estimator end to end on synthetic days: sampling, daylight, quality rejections by reason, day
closing with carried days, the weighted project figure, state export/restore and bad references."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import itertools

import cv2
import numpy as np
import pytest

from edge_agent.progress.estimator import DailyFigure, ProgressEstimator
from tests.unit import progress_images as pi

DAY = dt.date(2026, 3, 2)
HOURS = (7.0, 9.0, 11.0, 13.0, 15.0, 17.0)


@functools.cache
def _template(overrides: tuple[tuple[str, object], ...]) -> ProgressEstimator:
    return ProgressEstimator(pi.config(True, **dict(overrides)), pi.references())


def estimator(**overrides: object) -> ProgressEstimator:
    """A fresh estimator (a copy of one built once per config: building calibrates on the references)."""
    return copy.deepcopy(_template(tuple(sorted(overrides.items()))))


def run_day(est: ProgressEstimator, day: dt.date, share: float, light: dict[str, object] | None = None) -> None:
    for hour in HOURS:
        image = pi.light(pi.render({"mong": share, "tuong": share / 2}), **(light or {}))  # type: ignore[arg-type]
        est.observe(image, pi.local(day, hour))


def by_package(figures: tuple[DailyFigure, ...]) -> dict[str | None, DailyFigure]:
    return {f.package_id: f for f in figures}


def test_sampling_cadence_and_night() -> None:
    est = estimator(sample_every_s=300)
    image = pi.render({})
    noon = pi.local(DAY, 12)
    assert est.observe(image, noon) is not None
    assert est.observe(image, noon + dt.timedelta(seconds=299)) is None  # not due
    assert est.observe(image, noon + dt.timedelta(seconds=300)) is not None
    assert est.observe(image, pi.local(DAY, 22)) is None  # night
    stats = est.stats()
    assert (stats.frames_seen, stats.frames_sampled, stats.frames_used) == (4, 3, 2)
    assert stats.rejected == {"night": 1}


def test_a_day_closes_into_package_and_project_figures() -> None:
    est = estimator()
    run_day(est, DAY, 0.4)
    assert est.close_days(pi.local(DAY, 17.4)) == ()  # not closed before daylight.end
    figures = by_package(est.close_days(pi.local(DAY, 17.5)))
    assert set(figures) == {"mong", "tuong", None}
    mong, tuong, project = figures["mong"], figures["tuong"], figures[None]
    assert mong.percent == pytest.approx(40, abs=6)
    assert tuong.percent == pytest.approx(20, abs=6)
    assert project.percent == pytest.approx((3 * mong.percent + tuong.percent) / 4)  # weights 3 and 1
    assert mong.raw_percent is not None
    assert (mong.frames_used, mong.frames_rejected) == (6, 0)
    assert mong.time == dt.datetime(2026, 3, 2, 10, 30, tzinfo=dt.UTC)
    assert mong.day == DAY
    assert mong.project_id == "du-an-a"
    assert mong.confidence > 0.6
    assert mong.quality is not None
    assert mong.quality > 0.8
    assert est.close_days(pi.local(DAY, 23)) == ()  # each day once
    assert est.stats().days_reported == 1


def test_bad_frames_are_counted_by_reason_and_a_thin_day_is_carried() -> None:
    est = estimator()
    run_day(est, DAY, 0.5)
    first = by_package(est.close_days(pi.local(DAY, 18)))
    next_day = DAY + dt.timedelta(days=1)
    lights: tuple[dict[str, float], ...] = (
        {"gain": 0.05},
        {"blur": 3.0},
        {"haze": 0.8},
        {"blur": 3.0},
        {"gain": 3.0},
        {},
    )
    for hour, light in zip(HOURS, lights, strict=True):
        est.observe(pi.light(pi.render({"mong": 0.9}), **light), pi.local(next_day, hour))  # type: ignore[arg-type]
    carried = by_package(est.close_days(pi.local(next_day, 18)))
    assert carried["mong"].raw_percent is None
    assert carried["mong"].percent == first["mong"].percent  # too few good frames: no jump to 90
    assert carried["mong"].confidence == pytest.approx(first["mong"].confidence * 0.5)
    assert (carried["mong"].frames_used, carried["mong"].frames_rejected) == (1, 5)
    assert carried[None].raw_percent is None
    rejected = est.stats().rejected
    assert rejected["dark"] == 1
    assert rejected["blurred"] >= 2
    assert rejected["fogged"] >= 1
    assert rejected["washed_out"] == 1


def test_days_without_frames_are_reported_as_carried() -> None:
    est = estimator()
    run_day(est, DAY, 0.3)
    est.close_days(pi.local(DAY, 18))
    later = DAY + dt.timedelta(days=3)
    run_day(est, later, 0.35)
    figures = est.close_days(pi.local(later, 18))
    days = sorted({f.day for f in figures})
    assert days == [DAY + dt.timedelta(days=i) for i in (1, 2, 3)]
    gap = [f for f in figures if f.day != later]
    assert all(f.raw_percent is None and f.frames_used == 0 for f in gap)


def test_lighting_and_weather_do_not_make_progress_go_backwards() -> None:
    est = estimator()
    lights: list[dict[str, object]] = [{}, {"gain": 0.55}, {"cast": (0.75, 1.0, 1.25)}, {"haze": 0.35}, {"gain": 1.3}]
    published: list[float] = []
    for i, light in enumerate(lights * 2):
        day = DAY + dt.timedelta(days=i)
        run_day(est, day, 0.1 * i, light)
        published.append(by_package(est.close_days(pi.local(day, 18)))["mong"].percent)
    truth = [10.0 * i for i in range(10)]
    assert all(abs(p - t) <= 10 for p, t in zip(published, truth, strict=True)), published
    assert all(b >= a - 2.0 for a, b in itertools.pairwise(published))


def test_occluders_hide_cells_and_a_crowd_rejects_the_frame() -> None:
    est = estimator()
    width, height = pi.SIZE
    x0, y0, _, y1 = pi.REGIONS["mong"]
    worker = np.array([[x0 * width, y0 * height, (x0 + 0.1) * width, y1 * height]], dtype=np.float32)
    one = est.observe(pi.render({"mong": 0.5}), pi.local(DAY, 9), worker)
    assert one is not None
    assert one.quality.usable
    assert 0 < by_reading(one)["mong"] < 0.35
    crowd = np.array([[0, 0.45 * height, width, height]], dtype=np.float32)
    many = est.observe(pi.render({"mong": 0.5}), pi.local(DAY, 10), crowd)
    assert many is not None
    assert many.quality.reasons == ("occluded",)
    assert many.packages == ()


def by_reading(assessment: object) -> dict[str, float]:
    return {p.package_id: p.occluded for p in assessment.packages}  # type: ignore[attr-defined]


def test_full_hd_frames_are_resized_to_the_working_width() -> None:
    est = estimator()
    assert est.working_size == (640, 360)
    big = np.asarray(cv2.resize(pi.render({"mong": 0.5}), (1920, 1080), interpolation=cv2.INTER_LINEAR), np.uint8)
    assessment = est.observe(big, pi.local(DAY, 9))
    assert assessment is not None
    assert assessment.quality.usable
    assert {p.package_id: p.percent for p in assessment.packages}["mong"] == pytest.approx(50, abs=8)
    odd = est.observe(np.zeros((400, 400, 3), np.uint8), pi.local(DAY, 10))
    assert odd is not None
    assert odd.quality.reasons == ("size",)


def test_export_restore_keeps_the_floor_across_a_restart() -> None:
    est = estimator()
    run_day(est, DAY, 0.6)
    before = by_package(est.close_days(pi.local(DAY, 18)))["mong"].percent
    state = est.export_state()
    restarted = estimator()
    restarted.restore_state(state)
    next_day = DAY + dt.timedelta(days=1)
    run_day(restarted, next_day, 0.0)  # e.g. a wrong reading all day
    after = by_package(restarted.close_days(pi.local(next_day, 18)))["mong"].percent
    assert after >= before - 2.0
    run_day(restarted, DAY, 0.6)  # frames of an already reported day are late, not counted again
    assert restarted.stats().rejected.get("late") == len(HOURS)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"version": 99}, "version"),
        ({"version": 1, "packages": []}, "packages"),
        ({"version": 1, "packages": {}, "last_closed": "yesterday"}, "last_closed"),
        ({"version": 1, "packages": {"mong": {"recent": [], "peak": 5, "last": 5, "confidence": 3}}}, "confidence"),
    ],
)
def test_restore_refuses_malformed_state(state: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimator().restore_state(state)


def test_flush_closes_the_current_day() -> None:
    est = estimator()
    run_day(est, DAY, 0.2)
    figures = est.flush(pi.local(DAY, 12))
    assert {f.day for f in figures} == {DAY}
    assert est.flush(pi.local(DAY, 13)) == ()


def test_references_are_checked() -> None:
    refs = pi.references()
    with pytest.raises(ValueError, match=r"ref/done.png.*not provided"):
        ProgressEstimator(pi.config(), {"ref/ns.png": refs["ref/ns.png"]})
    small = np.asarray(cv2.resize(refs["ref/done.png"], (320, 180)), dtype=np.uint8)
    with pytest.raises(ValueError, match="differ in size"):
        ProgressEstimator(pi.config(), {**refs, "ref/done.png": small})
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        ProgressEstimator(pi.config(), {**refs, "ref/done.png": refs["ref/done.png"].astype(np.float32)})


def test_naive_time_and_bad_frames_are_refused() -> None:
    est = estimator()
    with pytest.raises(ValueError, match="timezone-aware"):
        est.observe(pi.render({}), dt.datetime(2026, 3, 2, 12))  # noqa: DTZ001
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        est.observe(np.zeros((360, 640), np.uint8), pi.local(DAY, 12))
