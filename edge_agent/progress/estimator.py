"""Construction progress of one camera: sampled frames -> quality gate -> region states -> daily figures.

Pure and single-threaded: the caller (the progress stage) feeds every analysed frame with its source time and
the tracker's object boxes, and publishes what ``close_days`` returns. Frame cost is bounded: frames are resized
to a fixed working width first, and only one frame per ``sample_every_s`` of source time is analysed.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_agent.progress.appearance import AppearanceModel, prepare, reference_sets, to_working, working_size
from edge_agent.progress.config import ProgressCameraConfig
from edge_agent.progress.daylight import day_closes_at, in_daylight, local_day
from edge_agent.progress.photometry import sharpness
from edge_agent.progress.quality import REASONS, FrameQuality, QualityReference, judge, measure
from edge_agent.progress.smoothing import DaySmoother, day_figure

STATE_VERSION = 1
MAX_PENDING_FIGURES = 4096
"""Closed figures waiting for ``close_days``; beyond this the oldest are dropped (counted in figures_dropped)."""


@dataclass(frozen=True, slots=True)
class PackageReading:
    package_id: str
    percent: float
    confidence: float
    occluded: float


@dataclass(frozen=True, slots=True)
class FrameAssessment:
    time: dt.datetime
    quality: FrameQuality
    packages: tuple[PackageReading, ...]


@dataclass(frozen=True, slots=True)
class DailyFigure:
    project_id: str
    package_id: str | None
    day: dt.date
    time: dt.datetime
    percent: float
    raw_percent: float | None
    confidence: float
    frames_used: int
    frames_rejected: int
    quality: float | None


@dataclass(frozen=True, slots=True)
class ProgressStats:
    frames_seen: int
    frames_sampled: int
    frames_used: int
    rejected: Mapping[str, int]
    """Sampled frames by reason: the quality reasons, "night" (outside daylight), "size" (another aspect ratio
    than the references), and "late" (older than the last sample, or of a day already reported)."""
    days_reported: int
    figures_dropped: int = 0
    """Closed figures dropped because nobody called ``close_days`` for too long (MAX_PENDING_FIGURES)."""


@dataclass(slots=True)
class _Day:
    used: int = 0
    rejected: int = 0
    qualities: list[float] = field(default_factory=list)
    readings: dict[str, list[tuple[dt.datetime, float, float, float]]] = field(default_factory=dict)
    """Per package: (time, percent, weight, confidence) of the used frames."""


class ProgressEstimator:
    """Visual progress of one camera's work packages, one figure per package (and project) per local day."""

    def __init__(self, config: ProgressCameraConfig, references: Mapping[str, npt.NDArray[np.uint8]]) -> None:
        """``references`` keyed by ReferenceImage.image; ValueError names a missing, malformed or odd-sized one."""
        sizes: dict[str, tuple[int, int]] = {}
        for ref in config.references:
            image = references.get(ref.image)
            if image is None:
                raise ValueError(f"reference image {ref.image!r} ({ref.state}) was not provided")
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"reference image {ref.image!r} must be HxWx3 uint8 BGR, got {image.shape}")
            sizes[ref.image] = (int(image.shape[1]), int(image.shape[0]))
        if len(set(sizes.values())) > 1:
            raise ValueError(f"reference images differ in size: {sizes} (all must show the same camera view)")
        self._config = config
        width, height = next(iter(sizes.values()))
        self._source_size = (width, height)
        self._size = working_size(width, height, config.appearance.working_width)
        working = {name: to_working(references[name], self._size) for name in sizes}
        # Each reference is resized to the working size once; a picture named by several references is shared.
        self._appearance = AppearanceModel(config, reference_sets(config, working), self._size)
        self._quality_ref = QualityReference.from_measures([measure(img, 1.0) for img in working.values()])
        self._smoothers = {p.id: DaySmoother(config.smoothing) for p in config.packages}
        self._confidence: dict[str, float] = {p.id: 0.0 for p in config.packages}
        self._days: dict[dt.date, _Day] = {}
        self._last_closed: dt.date | None = None
        self._last_sample: dt.datetime | None = None
        self._pending: deque[DailyFigure] = deque()
        self._seen = self._sampled = self._used = self._reported = self._dropped = 0
        self._rejected: dict[str, int] = dict.fromkeys((*REASONS, "night", "late", "size"), 0)

    @property
    def working_size(self) -> tuple[int, int]:
        return self._size

    def observe(
        self, image: npt.NDArray[np.uint8], t: dt.datetime, occluders: npt.NDArray[np.float32] | None = None
    ) -> FrameAssessment | None:
        """Assess ``image`` taken at ``t`` if a sample is due and it is day-time there; None otherwise."""
        if t.tzinfo is None:
            raise ValueError("frame time must be timezone-aware (UTC)")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"frame must be HxWx3 uint8 BGR, got {image.shape} {image.dtype}")
        self._seen += 1
        self._close_until(t)
        day = self._sample_day(t)
        if day is None:
            return None
        c = self._config
        acc = self._days.setdefault(day, _Day())
        height, width = image.shape[:2]
        sw, sh = self._source_size
        if abs(width / height - sw / sh) > 0.02 * sw / sh:
            return self._reject(acc, t, FrameQuality(0.0, 0.0, 0.0, 0.0, 0.0, ("size",)))
        frame = to_working(image, self._size)
        aligned = self._appearance.align(frame)
        measures = measure(frame, sharpness(aligned, self._appearance.photometric))
        quality = judge(measures, self._quality_ref, 0.0, c.quality)
        if not quality.usable:  # dark, blurred, fogged: the regions are not worth judging
            return self._reject(acc, t, quality)
        occluder_mask = self._appearance.occluder_mask(occluders, self._size[0] / width)
        regions = self._appearance.judge(prepare(aligned), occluder_mask)
        cells = sum(r.cells for r in regions)
        occlusion = sum(r.hidden for r in regions) / max(cells, 1)
        quality = judge(measures, self._quality_ref, occlusion, c.quality)
        if not quality.usable:
            return self._reject(acc, t, quality)
        readings = tuple(PackageReading(r.package_id, r.percent, r.confidence, r.occluded) for r in regions)
        acc.used += 1
        self._used += 1
        acc.qualities.append(quality.score)
        for reading in readings:
            if reading.occluded <= c.quality.max_occlusion:
                acc.readings.setdefault(reading.package_id, []).append(
                    (t, reading.percent, quality.score * (1.0 - reading.occluded), reading.confidence)
                )
        return FrameAssessment(time=t, quality=quality, packages=readings)

    def _sample_day(self, t: dt.datetime) -> dt.date | None:
        """The local day of ``t`` when a visual sample is due and it is day-time there, else None (counted)."""
        c = self._config
        if self._last_sample is not None and t < self._last_sample:
            self._rejected["late"] += 1  # the source went back in time (a replay, a clock fix): not sampled
            return None
        if self._last_sample is not None and t - self._last_sample < dt.timedelta(seconds=c.sample_every_s):
            return None
        self._last_sample = t
        self._sampled += 1
        if not in_daylight(t, c.daylight, c.timezone):
            self._rejected["night"] += 1
            return None
        day = local_day(t, c.timezone)
        if self._last_closed is not None and day <= self._last_closed:
            self._rejected["late"] += 1
            return None
        return day

    def _reject(self, acc: _Day, t: dt.datetime, quality: FrameQuality) -> FrameAssessment:
        acc.rejected += 1
        for reason in quality.reasons:
            self._rejected[reason] = self._rejected.get(reason, 0) + 1
        return FrameAssessment(time=t, quality=quality, packages=())

    def close_days(self, now: dt.datetime) -> tuple[DailyFigure, ...]:
        """Figures of every local day whose close passed by ``now`` (and any closed during ``observe``)."""
        self._close_until(now)
        figures = tuple(self._pending)
        self._pending.clear()
        return figures

    def flush(self, now: dt.datetime) -> tuple[DailyFigure, ...]:
        """Close every day up to and including ``now``'s local day (the agent stops)."""
        c = self._config
        today = local_day(now, c.timezone)
        self._close_until(max(now, day_closes_at(today, c.daylight, c.timezone)))
        return self.close_days(now)

    def _close_until(self, now: dt.datetime) -> None:
        c = self._config
        candidates = set(self._days)
        if self._last_closed is not None:
            # Days without any frame (camera off) between the last closed day and now are reported as carried.
            today = local_day(now, c.timezone)
            first = max(self._last_closed + dt.timedelta(days=1), today - dt.timedelta(days=c.smoothing.max_gap_days))
            day = first
            while day <= today:
                candidates.add(day)
                day += dt.timedelta(days=1)
        for day in sorted(candidates):
            if day_closes_at(day, c.daylight, c.timezone) > now:
                break
            if self._last_closed is not None and day <= self._last_closed:
                self._days.pop(day, None)
                continue
            self._emit(day, self._days.pop(day, _Day()))
            self._last_closed = day

    def _emit(self, day: dt.date, acc: _Day) -> None:
        c = self._config
        close = day_closes_at(day, c.daylight, c.timezone)
        quality = float(np.mean(acc.qualities)) if acc.qualities else None
        figures: list[DailyFigure] = []
        for package in c.packages:
            readings = acc.readings.get(package.id, [])
            enough = len(readings) >= c.smoothing.min_frames_per_day
            raw = (
                day_figure([(t, p, w) for t, p, w, _ in readings], close, c.smoothing.max_increase_points_per_day)
                if enough
                else None
            )
            smoothed = self._smoothers[package.id].add_day(day, raw)
            if smoothed.carried:
                confidence = self._confidence[package.id] * c.smoothing.carried_confidence_factor
            else:
                confidence = _day_confidence(readings)
            self._confidence[package.id] = confidence
            figures.append(
                DailyFigure(
                    c.project_id,
                    package.id,
                    day,
                    close,
                    smoothed.percent,
                    raw,
                    confidence,
                    acc.used,
                    acc.rejected,
                    quality,
                )
            )
        if c.report_project:
            figures.append(self._project_figure(figures, day, close, acc, quality))
        for figure in figures:
            if len(self._pending) >= MAX_PENDING_FIGURES:
                self._pending.popleft()
                self._dropped += 1
            self._pending.append(figure)
        self._reported += 1

    def _project_figure(
        self, figures: list[DailyFigure], day: dt.date, close: dt.datetime, acc: _Day, quality: float | None
    ) -> DailyFigure:
        weights = np.array([p.weight for p in self._config.packages], dtype=np.float64)
        weights /= weights.sum()
        percent = float(np.dot(weights, [f.percent for f in figures]))
        raws = [f.raw_percent for f in figures]
        raw = None if any(r is None for r in raws) else float(np.dot(weights, [r or 0.0 for r in raws]))
        confidence = float(np.dot(weights, [f.confidence for f in figures]))
        return DailyFigure(
            self._config.project_id, None, day, close, percent, raw, confidence, acc.used, acc.rejected, quality
        )

    def stats(self) -> ProgressStats:
        return ProgressStats(
            frames_seen=self._seen,
            frames_sampled=self._sampled,
            frames_used=self._used,
            rejected={k: v for k, v in self._rejected.items() if v},
            days_reported=self._reported,
            figures_dropped=self._dropped,
        )

    def export_state(self) -> dict[str, object]:
        """JSON-able day-to-day state: per package the recent day figures, peak, last figure and confidence."""
        return {
            "version": STATE_VERSION,
            "last_closed": None if self._last_closed is None else self._last_closed.isoformat(),
            "packages": {
                pid: {**smoother.export(), "confidence": self._confidence[pid]}
                for pid, smoother in self._smoothers.items()
            },
        }

    def restore_state(self, state: Mapping[str, object]) -> None:
        """Restore ``export_state`` output so a restart cannot let a figure drop. Packages unknown to the current
        config are ignored, new ones start fresh; a malformed state raises ValueError and changes nothing."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"progress state version {state.get('version')!r} is not {STATE_VERSION}")
        packages = state.get("packages")
        if not isinstance(packages, Mapping):
            raise ValueError("progress state 'packages' must be an object")
        last_closed = state.get("last_closed")
        try:
            closed = None if last_closed is None else dt.date.fromisoformat(str(last_closed))
        except ValueError as error:
            raise ValueError(f"progress state 'last_closed' {last_closed!r} is not a date") from error
        smoothers = {p.id: DaySmoother(self._config.smoothing) for p in self._config.packages}
        confidence = {p.id: 0.0 for p in self._config.packages}
        for pid, smoother in smoothers.items():
            entry = packages.get(pid)
            if entry is None:
                continue
            if not isinstance(entry, Mapping):
                raise ValueError(f"progress state of package {pid!r} must be an object")
            smoother.restore(entry)
            value = entry.get("confidence", 0.0)
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"progress state confidence of {pid!r} must be in 0..1, got {value!r}")
            confidence[pid] = float(value)
        self._smoothers, self._confidence, self._last_closed = smoothers, confidence, closed


def _day_confidence(readings: list[tuple[dt.datetime, float, float, float]]) -> float:
    """Mean frame confidence, lowered when the day's frames disagree (median absolute deviation in points)."""
    percents = np.array([r[1] for r in readings])
    spread = float(np.median(np.abs(percents - np.median(percents))))
    agreement = max(0.0, 1.0 - spread / 25.0)
    return float(np.clip(np.mean([r[3] for r in readings]) * agreement, 0.0, 1.0))
