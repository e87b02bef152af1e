"""One camera's plate stage: which crops to read, the voted plate per track, and one pass per vehicle.

Runs in the camera's analytics thread, once per analysed frame, after tracking and line counting:

1. results the shared ``PlateWorker`` finished for this camera are drained and fed to this camera's
   ``PlateVoter`` (the voter is only ever touched from this thread: no lock);
2. each tracked vehicle of the configured classes is offered to ``voter.wants_read`` (the voter
   rations reads: not every frame); a wanted one is cropped (with a margin, copied), scored with
   ``crop_quality`` and submitted to the worker's bounded queue (drop_oldest, counted there);
3. a crossing of the pass line (``pass_line_id``, a counting line of the camera; the existing
   ``Crossing`` of ``analytics.lines``) marks the track's pass. The pass is emitted once, at the first
   frame where ``plate_wait_s`` has gone by since the crossing or the track has ended (unseen for
   ``track_end_s``), with the voter's final reading: reads still in flight at the crossing count.
   Without a pass line, a track's pass is emitted when it ends. A track whose pass has no plate by
   then is counted (``passes_without_plate``), never emitted: a pass event needs its plate.

The best crop read per track (highest quality with a plate found) is kept for evidence. Memory is
bounded: at most ``max_tracks`` tracks (oldest seen dropped, counted) and finished plates are kept
``plate_wait_s`` after their pass, for a violation of the same vehicle judged a little later.
No I/O here: the pipeline turns a ``PlatePass`` into an event with its evidence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.analytics.lines import Crossing
from edge_agent.delivery.queues import BoundedQueue
from edge_agent.perception.types import Detections, Frame
from edge_agent.plates.reader import PlateRead
from edge_agent.traffic.config import PlateCameraConfig
from edge_agent.traffic.events import VotedPlateLike
from edge_agent.traffic.plate_worker import PlateJob, PlateResult
from event_contract import Direction

Image = npt.NDArray[np.uint8]


class VoterLike(Protocol):
    """What the stage needs of ``edge_agent.plates.vote.PlateVoter``."""

    def wants_read(
        self,
        track_id: int,
        box_xyxy: tuple[float, float, float, float],
        frame_width: int,
        frame_height: int,
        now_s: float,
    ) -> bool: ...
    def add(self, track_id: int, read: PlateRead | None, quality: float, now_s: float) -> None: ...
    def best(self, track_id: int) -> VotedPlateLike | None: ...
    def finish(self, track_id: int) -> VotedPlateLike | None: ...
    def expire(self, now_s: float) -> tuple[tuple[int, VotedPlateLike | None], ...]: ...


@dataclass(frozen=True, slots=True)
class BestCrop:
    """The crop whose reading had the highest quality, with the plate's box in it when the reader gave one."""

    crop: Image
    quality: float
    plate_box: tuple[int, int, int, int] | None
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class PlatePass:
    """One vehicle passed with a read plate; the pipeline makes its ``PlatePassEvent`` and evidence."""

    track_id: int
    time: dt.datetime
    """When it crossed the pass line (or was last seen, without a pass line)."""
    plate: VotedPlateLike
    vehicle_class: str | None
    direction: Direction | None
    line_id: str | None
    best: BestCrop | None


@dataclass(frozen=True, slots=True)
class PlateStageStats:
    crops_submitted: int
    crops_refused: int
    """Crops the worker's queue pushed an older one out for (its drop_oldest counter counts the drops)."""
    results: int
    passes: int
    passes_without_plate: int
    tracks_evicted: int
    tracks: int


@dataclass(slots=True)
class _Track:
    last_seen_s: float
    vehicle_class: str | None
    crossed: Crossing | None = None
    crossed_s: float | None = None
    best: BestCrop | None = None
    final: VotedPlateLike | None = None
    final_known: bool = False
    """The voter already forgot the track (``expire``) and handed its final reading over in ``final``."""


@dataclass(slots=True)
class _Finished:
    plate: VotedPlateLike
    best: BestCrop | None
    until_s: float


@dataclass(slots=True)
class _Counters:
    submitted: int = 0
    refused: int = 0
    results: int = 0
    passes: int = 0
    without_plate: int = 0
    evicted: int = 0


@dataclass(frozen=True, slots=True)
class PlateSighting:
    """The plate known for a track (voted so far, or final) and its best crop."""

    plate: VotedPlateLike
    best: BestCrop | None


@dataclass(slots=True)
class PlateStage:
    """Per-camera plate logic; ``update`` once per frame, ``finish_all`` when the camera stops."""

    camera_id: str
    reader_key: str
    config: PlateCameraConfig
    voter: VoterLike
    submit: Callable[[PlateJob], bool]
    results: BoundedQueue[PlateResult]
    quality_of: Callable[[Image], float]
    _tracks: dict[int, _Track] = field(default_factory=dict)
    _finished: dict[int, _Finished] = field(default_factory=dict)
    _counters: _Counters = field(default_factory=_Counters)

    def update(self, frame: Frame, tracked: Detections, crossings: Sequence[Crossing]) -> tuple[PlatePass, ...]:
        now = frame.timestamp
        now_s = now.timestamp()
        self._drain()
        self._offer(frame, tracked, now_s)
        for crossing in crossings:
            if crossing.line_id != self.config.pass_line_id:
                continue
            track = self._tracks.get(crossing.track_id)
            if track is not None and track.crossed is None:
                track.crossed, track.crossed_s = crossing, now_s
        return self._due(now_s, now)

    def tick(self, now: dt.datetime) -> tuple[PlatePass, ...]:
        """No frame (camera down): tracks time out, passes come due."""
        self._drain()
        return self._due(now.timestamp(), now)

    def finish_all(self, now: dt.datetime) -> tuple[PlatePass, ...]:
        """The camera stops: every pending pass is decided now."""
        self._drain()
        passes = [p for track_id in list(self._tracks) if (p := self._end(track_id, now, force=True)) is not None]
        return tuple(passes)

    def sighting(self, track_id: int) -> PlateSighting | None:
        """The best plate known for ``track_id`` now (voted so far, or final after its pass)."""
        finished = self._finished.get(track_id)
        if finished is not None:
            return PlateSighting(finished.plate, finished.best)
        track = self._tracks.get(track_id)
        if track is None:
            return None
        plate = track.final if track.final_known else self.voter.best(track_id)
        return None if plate is None else PlateSighting(plate, track.best)

    def stats(self) -> PlateStageStats:
        c = self._counters
        return PlateStageStats(
            crops_submitted=c.submitted,
            crops_refused=c.refused,
            results=c.results,
            passes=c.passes,
            passes_without_plate=c.without_plate,
            tracks_evicted=c.evicted,
            tracks=len(self._tracks),
        )

    # -- steps ---------------------------------------------------------------------------------

    def _drain(self) -> None:
        for result in self.results.get_many(self.results.capacity):
            job = result.job
            self._counters.results += 1
            self.voter.add(job.track_id, result.read, job.quality, job.now_s)
            track = self._tracks.get(job.track_id)
            if track is None or result.read is None:
                continue
            if track.best is None or job.quality > track.best.quality:
                moment = dt.datetime.fromtimestamp(job.now_s, dt.UTC)
                track.best = BestCrop(job.crop, job.quality, result.read.box_xyxy, moment)

    def _offer(self, frame: Frame, tracked: Detections, now_s: float) -> None:
        names = tracked.names
        wanted = set(self.config.classes)
        for i in range(len(tracked)):
            track_id = int(tracked.tracker_id[i])
            if track_id < 0 or names[i] not in wanted:
                continue
            self._remember(track_id, names[i], now_s)
            x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[i])
            if not self.voter.wants_read(track_id, (x1, y1, x2, y2), frame.width, frame.height, now_s):
                continue
            crop = self._crop(frame.image, (x1, y1, x2, y2))
            if crop is None:
                continue
            job = PlateJob(self.camera_id, self.reader_key, track_id, crop, self.quality_of(crop), now_s)
            self._counters.submitted += 1
            if not self.submit(job):
                self._counters.refused += 1

    def _remember(self, track_id: int, vehicle_class: str, now_s: float) -> _Track:
        track = self._tracks.get(track_id)
        if track is None:
            if len(self._tracks) >= self.config.max_tracks:
                oldest = min(self._tracks, key=lambda t: self._tracks[t].last_seen_s)
                del self._tracks[oldest]
                self.voter.finish(oldest)
                self._counters.evicted += 1
            track = self._tracks[track_id] = _Track(last_seen_s=now_s, vehicle_class=vehicle_class)
        track.last_seen_s = now_s
        track.vehicle_class = vehicle_class
        return track

    def _crop(self, image: Image, box: tuple[float, float, float, float]) -> Image | None:
        height, width = image.shape[:2]
        x1, y1, x2, y2 = box
        margin_x, margin_y = (x2 - x1) * self.config.crop_margin, (y2 - y1) * self.config.crop_margin
        left, top = max(0, int(x1 - margin_x)), max(0, int(y1 - margin_y))
        right, bottom = min(width, int(np.ceil(x2 + margin_x))), min(height, int(np.ceil(y2 + margin_y)))
        if right - left < 8 or bottom - top < 8:
            return None
        return np.array(image[top:bottom, left:right], dtype=np.uint8, copy=True)

    def _due(self, now_s: float, now: dt.datetime) -> tuple[PlatePass, ...]:
        for track_id, plate in self.voter.expire(now_s):
            track = self._tracks.get(track_id)
            if track is not None:
                track.final, track.final_known = plate, True
        passes: list[PlatePass] = []
        for track_id, track in list(self._tracks.items()):
            ended = now_s - track.last_seen_s >= self.config.track_end_s
            waited = track.crossed_s is not None and now_s - track.crossed_s >= self.config.plate_wait_s
            if ended or waited:
                done = self._end(track_id, now, force=False)
                if done is not None:
                    passes.append(done)
        for track_id in [t for t, f in self._finished.items() if f.until_s <= now_s]:
            del self._finished[track_id]
        return tuple(passes)

    def _end(self, track_id: int, now: dt.datetime, *, force: bool) -> PlatePass | None:
        """Close a track's pass (if it made one): the final plate, or a count when there is none.

        A track still in view that has not crossed the pass line is left alone (unless ``force``: stopping).
        """
        track = self._tracks.get(track_id)
        if track is None:
            return None
        gone = force or now.timestamp() - track.last_seen_s >= self.config.track_end_s
        if track.crossed is None and not gone:
            return None
        passed = track.crossed is not None or self.config.pass_line_id is None
        del self._tracks[track_id]
        plate = track.final if track.final_known else self.voter.finish(track_id)
        if plate is not None:
            self._finished[track_id] = _Finished(plate, track.best, now.timestamp() + self.config.plate_wait_s)
        if not passed:
            return None
        if plate is None:
            self._counters.without_plate += 1
            return None
        self._counters.passes += 1
        crossing = track.crossed
        return PlatePass(
            track_id=track_id,
            time=crossing.timestamp if crossing is not None else dt.datetime.fromtimestamp(track.last_seen_s, dt.UTC),
            plate=plate,
            vehicle_class=crossing.vehicle_class if crossing is not None else track.vehicle_class,
            direction=crossing.direction if crossing is not None else None,
            line_id=crossing.line_id if crossing is not None else None,
            best=track.best,
        )
