"""ByteTrack-style multi-object tracker on our own immutable ``Detections``.

Why not a PyPI tracker (checked with ``pip download --no-deps`` + METADATA, 2026):

- ``trackers`` 2.6.1 (Roboflow, Apache-2.0): clean ByteTrack/OC-SORT/BoT-SORT, even takes a
  timestamp, but requires ``opencv-python`` (the GUI build; it installs over our
  ``opencv-python-headless`` as the same ``cv2`` package), ``supervision``, ``rich``,
  ``requests``, ``pydeprecate``, imports cv2 eagerly from its package ``__init__``, and works
  on ``supervision.Detections``.
- ``supervision`` 0.31.2 (MIT): no longer ships ByteTrack (moved to ``trackers``); pulls
  matplotlib, pillow, requests, av, tqdm.
- ``boxmot`` 25.0.0: AGPL-3.0, requires torch, torchvision, timm, opencv-python, pandas,
  pyarrow, scikit-learn, huggingface-hub, gdown.

None fits (headless OpenCV, no torch, light deps, our ``Detections``), so this is a small
re-implementation of ByteTrack (Zhang et al., 2022) with changes that matter at the edge:

- Time-based, not frame-based: the Kalman prediction uses the real ``dt`` between updates and
  a lost track is kept for ``max_lost_s`` seconds, so dropped frames neither break tracks nor
  stretch their lifetime.
- Class vote: each track keeps a confidence-weighted vote over the classes it was detected as,
  so a vehicle the detector flickers between ``car`` and ``van`` keeps one class.
- Flicker-tolerant start: a new (tentative) track survives misses for ``tentative_max_lost_s``,
  so a vehicle the detector skips every few frames is still confirmed (ByteTrack drops a
  tentative track at its first miss, and with a weak detector such vehicles are never counted).
- Size gate: a detection matches a track only if its width and height are within
  ``max_size_ratio`` of the track's. The commonest id switch on a road is a detector box that
  merges two vehicles side by side for a frame: IoU alone lets the track slide onto the other one.
- Lost tracks: one that stood still when last seen (a queue at a red light) is kept for
  ``max_lost_stationary_s`` rather than ``max_lost_s``; one that moved is also matched against
  the box half-way between where it was last seen and its constant-velocity prediction
  (``lost_swept_match``), because perspective slows a receding vehicle down in the image.

Association per update:

1. Predict every track to ``timestamp_s``.
2. High-score detections vs confirmed tracks (active and lost), Hungarian on ``1 - IoU``.
3. Low-score detections vs the confirmed tracks still unmatched that were active at the last
   update (low scores only extend live tracks: they are often occluded vehicles).
4. Remaining high-score detections vs tentative tracks; a tentative track missed for longer
   than ``tentative_max_lost_s`` is dropped.
5. Unmatched high-score detections above ``new_track_threshold`` start tentative tracks.

Output: one row per confirmed track matched in this update, with the DETECTION's box and
confidence (what the camera saw, not the filter's smoothing), the track's voted class and a
stable ``tracker_id`` (monotonic from 1, given at confirmation so ids have no gaps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.optimize import linear_sum_assignment

from edge_agent.perception import kalman
from edge_agent.perception.types import Detections


class TrackerConfig(BaseModel):
    """Tracker knobs. ByteTrack's published settings (0.5 / 0.6, three hits) assume a detector that scores
    vehicles 0.6-0.9; the defaults here are measured instead (``benchmarks/count_accuracy.py``): with the
    default SSD, which scores clearly visible cars 0.3-0.6, they count every scenario clip exactly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    high_score_threshold: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="Detections at or above this score are matched first. 0.3 is the detectors' default "
        "score_threshold: every box a detector keeps is trusted; set it above the detector's threshold to let "
        "weaker boxes only extend tracks (ByteTrack's low-score association).",
    )
    low_score_threshold: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Detections between this and high_score_threshold only extend active tracks; "
        "lower ones are ignored.",
    )
    new_track_threshold: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="An unmatched detection starts a track only at or above this score; false starts are "
        "filtered by min_hits.",
    )
    match_iou_threshold: float = Field(
        default=0.2, gt=0.0, le=1.0, description="Least IoU for a high-score detection to match a confirmed track."
    )
    low_match_iou_threshold: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Least IoU for a low-score detection to match an active track."
    )
    tentative_match_iou_threshold: float = Field(
        default=0.3, gt=0.0, le=1.0, description="Least IoU for a detection to match a not-yet-confirmed track."
    )
    max_lost_s: float = Field(
        default=1.0,
        ge=0.0,
        description="Seconds a confirmed track is kept without detections "
        "(time-based, so dropped frames do not count).",
    )
    min_hits: int = Field(
        default=2,
        ge=1,
        description="Matched updates before a track is confirmed and reported (misses shorter than "
        "tentative_max_lost_s in between are forgiven).",
    )
    tentative_max_lost_s: float = Field(
        default=0.25,
        ge=0.0,
        description="Seconds a not-yet-confirmed track survives without a match: a detector that skips a "
        "vehicle for a frame or two must not keep it from ever being confirmed. 0 drops it at the first miss.",
    )
    max_lost_stationary_s: float = Field(
        default=3.0,
        ge=0.0,
        description="Like max_lost_s, for a track that was standing still when last seen (a queue at a red "
        "light): its box cannot drift, and a detector often loses a vehicle that does not move.",
    )
    lost_swept_match: bool = Field(
        default=True,
        description="A lost track is also matched against the box half-way between where it was last seen and "
        "where constant velocity puts it: seen along the road, a receding vehicle slows down in the image, "
        "so after half a second unseen the constant-velocity box has run ahead of it.",
    )
    max_size_ratio: float = Field(
        default=1.8,
        gt=1.0,
        description="A detection matches a track only if its width and its height are within this factor of the "
        "track's: a much wider box is two vehicles merged by the detector and would hand the id to the wrong one.",
    )
    split_merged: bool | None = Field(
        default=None,
        description="A high-score box that holds two or more active tracks (each at least merged_min_inside "
        "inside it) is two vehicles seen as one (a motion blob joining neighbours in a queue): it is replaced "
        "by the tracks' predicted boxes, clipped to it, so both tracks go on instead of one taking the box and "
        "the other being lost. None (default) = on for the motion backend, off for models, whose boxes are "
        "one object each (measured: on, the SSD lost one car of 59 on the dense clip; motion gained two clips).",
    )
    merged_min_inside: float = Field(
        default=0.6,
        gt=0.0,
        le=1.0,
        description="Share of a track's predicted box that must lie inside a box for split_merged to count "
        "the track as held by it.",
    )
    class_vote_decay: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Weight kept by past class votes at each observation: 1.0 votes over the whole history, "
        "lower values follow recent detections.",
    )
    max_tracks: int = Field(
        default=1024,
        ge=1,
        description="Bound on tracks held. When full, the longest-lost track is dropped; if none is lost, "
        "the new track is refused (counted in tracks_refused).",
    )
    process_noise_position: float = Field(
        default=0.25, gt=0.0, description="Kalman position random walk, box sizes per sqrt(second)."
    )
    process_noise_velocity: float = Field(
        default=0.5,
        gt=0.0,
        description="Kalman velocity random walk, box sizes per second per sqrt(second); lower trusts the "
        "motion so far more than one noisy box (a steadier prediction across missed frames).",
    )
    measurement_noise: float = Field(default=0.05, gt=0.0, description="Detector box noise, fraction of box size.")

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> TrackerConfig:
        if self.low_score_threshold > self.high_score_threshold:
            raise ValueError("low_score_threshold must not exceed high_score_threshold")
        if self.new_track_threshold < self.high_score_threshold:
            raise ValueError(
                "new_track_threshold must be at least high_score_threshold (tracks start from high scores)"
            )
        return self

    def for_backend(self, backend: str) -> TrackerConfig:
        """These settings with every 'depends on the detector' default (None) decided for ``backend``."""
        if self.split_merged is not None:
            return self
        return self.model_copy(update={"split_merged": backend == "motion"})

    @property
    def kalman_noise(self) -> kalman.KalmanNoise:
        return kalman.KalmanNoise(
            measurement=self.measurement_noise,
            process_position=self.process_noise_position,
            process_velocity=self.process_noise_velocity,
        )


STATIONARY_SPEED = 0.25
"""Box sizes per second under which a track counts as standing still."""


def _intersections(a64: npt.NDArray[np.float64], b64: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(n, m) area shared by xyxy box ``a64[i]`` and box ``b64[j]``."""
    low = np.maximum(a64[:, None, :2], b64[None, :, :2])
    high = np.minimum(a64[:, None, 2:], b64[None, :, 2:])
    overlap = np.clip(high - low, 0, None)
    inter: npt.NDArray[np.float64] = overlap[..., 0] * overlap[..., 1]
    return inter


def _areas(boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    area: npt.NDArray[np.float64] = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    return area


def iou_matrix(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """(n, m) IoU between xyxy boxes ``a`` (n, 4) and ``b`` (m, 4)."""
    a64 = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b64 = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    inter = _intersections(a64, b64)
    union = _areas(a64)[:, None] + _areas(b64)[None, :] - inter
    iou: npt.NDArray[np.float64] = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def _inside_share(inner: npt.NDArray[np.float64], outer: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(n, m): share of box ``inner[i]``'s area that lies inside box ``outer[j]``."""
    share: npt.NDArray[np.float64] = _intersections(inner, outer) / np.maximum(_areas(inner), 1e-9)[:, None]
    return share


@dataclass(slots=True, eq=False)
class _Track:
    """Internal, mutable state of one track; never leaves the tracker."""

    mean: npt.NDArray[np.float64]
    cov: npt.NDArray[np.float64]
    votes: npt.NDArray[np.float64]
    last_seen_s: float
    hits: int = 1
    track_id: int = 0
    """0 while tentative; the public id once confirmed."""
    lost: bool = False
    class_id: int = field(default=-1)
    seen_state: npt.NDArray[np.float64] | None = None
    """cx, cy, w, h of the filter right after the last match (where the vehicle was last seen)."""

    @property
    def confirmed(self) -> bool:
        return self.track_id > 0

    def vote(self, class_id: int, confidence: float, decay: float) -> None:
        self.votes *= decay
        self.votes[class_id] += max(confidence, 1e-6)
        best = float(self.votes.max())
        # On a tie keep the class already reported, so the label does not flip back and forth.
        if self.class_id < 0 or self.votes[self.class_id] < best:
            self.class_id = int(np.argmax(self.votes))


def size_compatible(
    a: npt.NDArray[np.floating], b: npt.NDArray[np.floating], max_ratio: float
) -> npt.NDArray[np.bool_]:
    """(n, m): whether box ``a[i]`` and box ``b[j]`` agree in width and in height within ``max_ratio``."""
    a64 = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b64 = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    sizes_a = np.maximum(a64[:, 2:] - a64[:, :2], 1e-6)
    sizes_b = np.maximum(b64[:, 2:] - b64[:, :2], 1e-6)
    ratio = sizes_a[:, None, :] / sizes_b[None, :, :]
    compatible: npt.NDArray[np.bool_] = np.all((ratio <= max_ratio) & (ratio >= 1.0 / max_ratio), axis=2)
    return compatible


def _associate(
    tracks: list[_Track],
    det_indices: npt.NDArray[np.intp],
    det_boxes: npt.NDArray[np.float64],
    min_iou: float,
    *,
    max_size_ratio: float,
    swept: bool = False,
) -> tuple[list[tuple[_Track, int]], list[_Track], npt.NDArray[np.intp]]:
    """Hungarian assignment on 1 - IoU; pairs under ``min_iou`` or of too different sizes are rejected.

    With ``swept``, a lost track also scores the IoU with its half-way box (between its last-seen box and
    its prediction) and keeps the better of the two.
    """
    if not tracks or len(det_indices) == 0:
        return [], list(tracks), det_indices
    predicted = kalman.cxcywh_to_xyxy(np.stack([t.mean[:4] for t in tracks]))
    candidates = det_boxes[det_indices]
    iou = iou_matrix(predicted, candidates)
    lost = [i for i, t in enumerate(tracks) if t.lost and t.seen_state is not None]
    if swept and lost:
        halfway = np.stack([(tracks[i].mean[:4] + tracks[i].seen_state) / 2 for i in lost])  # type: ignore[operator]
        iou[lost] = np.maximum(iou[lost], iou_matrix(kalman.cxcywh_to_xyxy(halfway), candidates))
    # A box twice as wide as the track is not the same vehicle: it is two vehicles the detector merged
    # (side by side, or one passing another), and taking it would hand the track to the other one.
    iou = np.where(size_compatible(predicted, candidates, max_size_ratio), iou, 0.0)
    rows, cols = linear_sum_assignment(1.0 - iou)
    keep = iou[rows, cols] >= min_iou
    rows, cols = rows[keep], cols[keep]
    pairs = [(tracks[r], int(det_indices[c])) for r, c in zip(rows, cols, strict=True)]
    matched_rows = set(rows.tolist())
    unmatched_tracks = [t for i, t in enumerate(tracks) if i not in matched_rows]
    unmatched_dets = np.delete(det_indices, cols)
    return pairs, unmatched_tracks, unmatched_dets


class ByteTracker:
    """Assigns stable ids to detections over time. One instance per camera; not thread-safe."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self._config = config or TrackerConfig()
        self._noise = self._config.kalman_noise
        self._tracks: list[_Track] = []
        self._last_timestamp_s: float | None = None
        self._class_names: tuple[str, ...] | None = None
        self._next_id = 1
        self._tracks_refused = 0

    @property
    def config(self) -> TrackerConfig:
        return self._config

    @property
    def tracks_refused(self) -> int:
        """New tracks not started because max_tracks were held and none was lost."""
        return self._tracks_refused

    @property
    def track_count(self) -> int:
        """Tracks held now: tentative, active and lost."""
        return len(self._tracks)

    @property
    def confirmed_count(self) -> int:
        """Ids handed out so far."""
        return self._next_id - 1

    def update(self, detections: Detections, timestamp_s: float) -> Detections:
        """Match ``detections`` taken at ``timestamp_s`` (seconds, any epoch, non-decreasing)."""
        dt = self._check_input(detections, timestamp_s)
        cfg = self._config
        # Forget tracks lost too long BEFORE matching, so they cannot take a new vehicle's detection.
        # (Tentative tracks are judged after matching: each gets this update's chance first.)
        self._tracks = [
            t for t in self._tracks if not t.confirmed or timestamp_s - t.last_seen_s <= self._keep_lost_s(t)
        ]
        self._predict(dt)
        # None (not decided for a backend: for_backend) counts as off.
        detections, parts_from = self._split_merged(detections) if cfg.split_merged else (detections, len(detections))

        boxes = np.asarray(detections.xyxy, dtype=np.float64)
        scores = detections.confidence
        high = np.flatnonzero(scores >= cfg.high_score_threshold)
        low = np.flatnonzero((scores >= cfg.low_score_threshold) & (scores < cfg.high_score_threshold))
        confirmed = [t for t in self._tracks if t.confirmed]
        tentative = [t for t in self._tracks if not t.confirmed]

        ratio = cfg.max_size_ratio
        pairs, unmatched, high_left = _associate(
            confirmed, high, boxes, cfg.match_iou_threshold, max_size_ratio=ratio, swept=cfg.lost_swept_match
        )
        was_active = [t for t in unmatched if not t.lost]
        low_pairs, _, _ = _associate(was_active, low, boxes, cfg.low_match_iou_threshold, max_size_ratio=ratio)
        tentative_pairs, _, high_left = _associate(
            tentative, high_left, boxes, cfg.tentative_match_iou_threshold, max_size_ratio=ratio
        )
        matched = pairs + low_pairs + tentative_pairs

        self._correct(matched, detections, timestamp_s)
        matched_tracks = {id(t) for t, _ in matched}
        survivors: list[_Track] = []
        for track in self._tracks:
            if id(track) in matched_tracks:
                survivors.append(track)
            elif track.confirmed or timestamp_s - track.last_seen_s <= cfg.tentative_max_lost_s:
                track.lost = True
                survivors.append(track)
            # A tentative track missed for longer than tentative_max_lost_s is dropped here.
        self._tracks = survivors

        # Rows from parts_from on are split parts of a merged box: they continue the tracks they came from
        # and never start a track (an unmatched part is a prediction, not a vehicle seen).
        starters = high_left[(scores[high_left] >= cfg.new_track_threshold) & (high_left < parts_from)]
        born = self._start_tracks(starters, detections, timestamp_s)
        reported = [(t, d) for t, d in matched + born if t.confirmed]
        return self._output(reported, detections)

    def _split_merged(self, detections: Detections) -> tuple[Detections, int]:
        """``detections`` with each box that holds two or more active tracks replaced by their predicted boxes.

        Also returns the number of rows that are detections as seen; the split parts follow them.
        """
        cfg = self._config
        active = [t for t in self._tracks if t.confirmed and not t.lost]
        high = np.flatnonzero(detections.confidence >= cfg.high_score_threshold)
        if len(active) < 2 or len(high) == 0:
            return detections, len(detections)
        predicted = kalman.cxcywh_to_xyxy(np.stack([t.mean[:4] for t in active]))
        boxes = np.asarray(detections.xyxy[high], dtype=np.float64)
        inside = _inside_share(predicted, boxes)  # (tracks, boxes)
        holds = inside >= cfg.merged_min_inside
        merged = np.flatnonzero(holds.sum(axis=0) >= 2)
        if len(merged) == 0:
            return detections, len(detections)
        keep = np.ones(len(detections), dtype=bool)
        parts_xyxy: list[npt.NDArray[np.float64]] = []
        sources: list[int] = []
        claimed: set[int] = set()
        for column in merged:
            row = int(high[column])
            box = np.asarray(detections.xyxy[row], dtype=np.float64)
            tracks = [i for i in np.flatnonzero(holds[:, column]).tolist() if i not in claimed]
            if len(tracks) < 2:
                continue
            claimed.update(tracks)
            keep[row] = False
            for i in tracks:
                part = np.concatenate([np.maximum(predicted[i, :2], box[:2]), np.minimum(predicted[i, 2:], box[2:])])
                parts_xyxy.append(part)
                sources.append(row)
        if keep.all():
            return detections, len(detections)
        source = np.array(sources, dtype=np.intp)
        split = Detections(
            xyxy=np.concatenate([detections.xyxy[keep], np.stack(parts_xyxy).astype(detections.xyxy.dtype)]),
            confidence=np.concatenate([detections.confidence[keep], detections.confidence[source]]),
            class_id=np.concatenate([detections.class_id[keep], detections.class_id[source]]),
            class_names=detections.class_names,
        )
        return split, int(keep.sum())

    def _check_input(self, detections: Detections, timestamp_s: float) -> float:
        if not math.isfinite(timestamp_s):
            raise ValueError(f"tracker timestamp must be finite, got {timestamp_s}")
        if self._class_names is None:
            self._class_names = detections.class_names
        elif detections.class_names != self._class_names:
            raise ValueError(
                f"tracker got class_names {detections.class_names} after {self._class_names}: "
                "use one tracker per detector vocabulary"
            )
        if self._last_timestamp_s is None:
            dt = 0.0
        else:
            dt = timestamp_s - self._last_timestamp_s
            if dt < 0:
                raise ValueError(
                    f"tracker timestamps must not go backwards: {timestamp_s} after {self._last_timestamp_s}"
                )
        self._last_timestamp_s = timestamp_s
        return dt

    def _keep_lost_s(self, track: _Track) -> float:
        """How long a confirmed track may stay unseen: longer when it stood still (queue, red light)."""
        cfg = self._config
        size = max(float(track.mean[2]), float(track.mean[3]), 1e-6)
        speed = float(np.hypot(track.mean[4], track.mean[5])) / size
        return cfg.max_lost_stationary_s if speed <= STATIONARY_SPEED else cfg.max_lost_s

    def _predict(self, dt: float) -> None:
        if not self._tracks or dt == 0:
            return
        means, covs = kalman.predict(
            np.stack([t.mean for t in self._tracks]), np.stack([t.cov for t in self._tracks]), dt, self._noise
        )
        for track, mean, cov in zip(self._tracks, means, covs, strict=True):
            track.mean, track.cov = mean, cov

    def _correct(self, matched: list[tuple[_Track, int]], detections: Detections, timestamp_s: float) -> None:
        if not matched:
            return
        tracks = [t for t, _ in matched]
        rows = np.array([d for _, d in matched], dtype=np.intp)
        means, covs = kalman.update(
            np.stack([t.mean for t in tracks]),
            np.stack([t.cov for t in tracks]),
            kalman.xyxy_to_cxcywh(detections.xyxy[rows]),
            self._noise,
        )
        for track, row, mean, cov in zip(tracks, rows, means, covs, strict=True):
            track.mean, track.cov = mean, cov
            track.seen_state = mean[:4].copy()
            track.hits += 1
            track.lost = False
            track.last_seen_s = timestamp_s
            track.vote(int(detections.class_id[row]), float(detections.confidence[row]), self._config.class_vote_decay)
            self._confirm_if_ready(track)

    def _start_tracks(
        self, rows: npt.NDArray[np.intp], detections: Detections, timestamp_s: float
    ) -> list[tuple[_Track, int]]:
        if len(rows) == 0:
            return []
        means, covs = kalman.initiate(kalman.xyxy_to_cxcywh(detections.xyxy[rows]), self._noise)
        born: list[tuple[_Track, int]] = []
        for row, mean, cov in zip(rows, means, covs, strict=True):
            if not self._make_room():
                self._tracks_refused += 1
                continue
            track = _Track(
                mean=mean,
                cov=cov,
                votes=np.zeros(len(detections.class_names)),
                last_seen_s=timestamp_s,
                seen_state=mean[:4].copy(),
            )
            track.vote(int(detections.class_id[row]), float(detections.confidence[row]), self._config.class_vote_decay)
            self._confirm_if_ready(track)
            self._tracks.append(track)
            born.append((track, int(row)))
        return born

    def _make_room(self) -> bool:
        if len(self._tracks) < self._config.max_tracks:
            return True
        lost = [t for t in self._tracks if t.lost]
        if not lost:
            return False
        oldest = min(lost, key=lambda t: t.last_seen_s)
        self._tracks = [t for t in self._tracks if t is not oldest]
        return True

    def _confirm_if_ready(self, track: _Track) -> None:
        if not track.confirmed and track.hits >= self._config.min_hits:
            track.track_id = self._next_id
            self._next_id += 1

    @staticmethod
    def _output(reported: list[tuple[_Track, int]], detections: Detections) -> Detections:
        if not reported:
            return Detections.empty(detections.class_names)
        reported.sort(key=lambda pair: pair[1])
        rows = np.array([d for _, d in reported], dtype=np.intp)
        return Detections(
            xyxy=detections.xyxy[rows],
            confidence=detections.confidence[rows],
            class_id=np.array([t.class_id for t, _ in reported], dtype=np.int64),
            class_names=detections.class_names,
            tracker_id=np.array([t.track_id for t, _ in reported], dtype=np.int64),
        )
