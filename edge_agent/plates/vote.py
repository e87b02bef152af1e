"""Which frames of a track to read, and the best plate of a track from several reads.

Reading every frame wastes the CPU and adds nothing: ``wants_read`` asks for a read only when the
vehicle's box is big enough and away from the frame's edge, at most every ``min_interval_s`` and at
most ``max_reads_per_track`` times per track. Each read votes with weight confidence x quality
(sharpness x size of the crop). Valid-format reads outvote invalid ones; among the reads of the most
supported length, each character position is voted separately (weight x that character's
probability), so three reads each wrong in a different place still give the right plate. The best
frame (highest quality among the voting reads) is remembered for the evidence. Memory is bounded:
at most ``max_tracks`` tracks, the least recently updated evicted first (counted).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from edge_agent.plates.config import PlateVoteConfig
from edge_agent.plates.quality import crop_quality
from edge_agent.plates.result import PlateRead
from edge_agent.plates.vn_format import compact_text, parse_plate
from event_contract.traffic import PlateColour, PlateLayout

__all__ = ["PlateVoter", "VotedPlate", "crop_quality", "vote"]

K = TypeVar("K")
MIN_QUALITY = 0.05
"""A read's quality weight never drops below this (a dark frame still counts a little)."""


@dataclass(frozen=True, slots=True)
class VotedPlate:
    """A track's plate from its reads so far."""

    text: str
    confidence: float
    layout: PlateLayout | None
    format_valid: bool
    plate_colour: PlateColour | None
    reads: int
    """Reads that voted (confident enough)."""
    best_quality: float = 0.0
    """Quality of the best frame among the voting reads (see ``crop_quality``)."""
    best_time_s: float | None = None
    """When the best frame was read (the caller's clock)."""
    best_crop: npt.NDArray[np.uint8] | None = field(default=None, compare=False, repr=False)
    """The best frame's crop, when the caller passed crops to ``add``."""


@dataclass(slots=True)
class _Vote:
    read: PlateRead
    weight: float
    quality: float
    time_s: float
    crop: npt.NDArray[np.uint8] | None


@dataclass(slots=True)
class _Track:
    last_seen_s: float
    last_asked_s: float | None = None
    attempts: int = 0
    votes: list[_Vote] = field(default_factory=list)


@dataclass(slots=True)
class VoterCounters:
    asked: int = 0
    skipped_small: int = 0
    skipped_edge: int = 0
    skipped_interval: int = 0
    skipped_done: int = 0
    reads: int = 0
    no_plate: int = 0
    low_confidence: int = 0
    evicted_tracks: int = 0
    expired_tracks: int = 0


def _char_vote(votes: list[_Vote], compacts: list[str]) -> tuple[str, float]:
    """Per-position weighted vote over same-length texts; returns the text and its mean winning share."""
    length = len(compacts[0])
    chars: list[str] = []
    shares: list[float] = []
    total = sum(v.weight for v in votes)
    for i in range(length):
        score: defaultdict[str, float] = defaultdict(float)
        for vote, text in zip(votes, compacts, strict=True):
            probs = vote.read.char_probs
            p = probs[i] if len(probs) == length else vote.read.confidence
            score[text[i]] += vote.weight * p
        char, value = max(score.items(), key=lambda kv: kv[1])
        chars.append(char)
        shares.append(value / total if total > 0 else 0.0)
    return "".join(chars), float(np.mean(shares))


def _heaviest(weights: Mapping[K, float]) -> K:
    """The key with the largest weight."""
    return max(weights, key=lambda key: weights[key])


def _reshape(template: str, chars: str) -> str:
    """``template`` with its letters and digits replaced, in order, by ``chars`` (separators kept)."""
    it = iter(chars)
    return "".join(next(it, c) if c.isalnum() else c for c in template)


def vote(votes: list[_Vote]) -> VotedPlate | None:
    """The voted plate of one track's reads (None without any)."""
    if not votes:
        return None
    pool = [v for v in votes if v.read.format_valid] or votes
    compacts = [compact_text(v.read.text) for v in pool]
    by_length: defaultdict[int, float] = defaultdict(float)
    for v, text in zip(pool, compacts, strict=True):
        by_length[len(text)] += v.weight
    length = max(by_length.items(), key=lambda kv: kv[1])[0]
    same = [(v, t) for v, t in zip(pool, compacts, strict=True) if len(t) == length]
    same_votes, same_texts = [v for v, _ in same], [t for _, t in same]
    layouts: defaultdict[PlateLayout | None, float] = defaultdict(float)
    colours: defaultdict[PlateColour, float] = defaultdict(float)
    for v in same_votes:
        layouts[v.read.layout] += v.weight
        if v.read.plate_colour is not None:
            colours[v.read.plate_colour] += v.weight
    layout = _heaviest(layouts)
    text, share = _char_vote(same_votes, same_texts)
    texts: defaultdict[str, float] = defaultdict(float)
    for v in same_votes:
        texts[v.read.text] += v.weight
    heaviest = _heaviest(texts)
    # The voted characters in the heaviest reading's printed shape: its dash and dot keep the series length
    # (59X1-2345 is not 59X-123.45) that the bare characters cannot tell.
    parse = parse_plate(_reshape(heaviest, text), layout_hint=layout)
    if parse.valid or not any(v.read.format_valid for v in same_votes):
        final_text, valid = (parse.text if parse.valid else text), parse.valid
    else:
        # The per-character mix broke the format: fall back to the heaviest whole reading.
        final_text, valid = heaviest, True
    best = max(pool, key=lambda v: v.quality)
    colour: PlateColour | None = None
    for name, weight in colours.items():
        if colour is None or weight > colours[colour]:
            colour = name
    return VotedPlate(
        text=final_text,
        confidence=round(min(1.0, share), 4),
        layout=parse.layout or layout,
        format_valid=valid,
        plate_colour=colour,
        reads=len(votes),
        best_quality=best.quality,
        best_time_s=best.time_s,
        best_crop=best.crop,
    )


class PlateVoter:
    """Per-track read scheduling and voting. Not thread-safe: call it from the one thread that owns the tracks
    (the pipeline's), and hand only the crops to a reading worker."""

    def __init__(self, config: PlateVoteConfig) -> None:
        self.config = config
        self.tracks: OrderedDict[int, _Track] = OrderedDict()
        self.counters = VoterCounters()

    def _track(self, track_id: int, now_s: float) -> _Track:
        track = self.tracks.get(track_id)
        if track is None:
            track = _Track(last_seen_s=now_s)
            self.tracks[track_id] = track
            while len(self.tracks) > self.config.max_tracks:
                self.tracks.popitem(last=False)
                self.counters.evicted_tracks += 1
        else:
            track.last_seen_s = max(track.last_seen_s, now_s)
            self.tracks.move_to_end(track_id)
        return track

    def wants_read(
        self,
        track_id: int,
        box_xyxy: tuple[float, float, float, float],
        frame_width: int,
        frame_height: int,
        now_s: float,
    ) -> bool:
        """True when this frame of the track should be read; a True counts as the track's read for the interval."""
        cfg = self.config
        x1, y1, x2, y2 = box_xyxy
        track = self._track(track_id, now_s)
        if x2 - x1 < cfg.min_box_width_px or y2 - y1 < cfg.min_box_height_px:
            self.counters.skipped_small += 1
            return False
        mx, my = cfg.edge_margin * frame_width, cfg.edge_margin * frame_height
        if x1 < mx or y1 < my or x2 > frame_width - mx or y2 > frame_height - my:
            self.counters.skipped_edge += 1
            return False
        if track.attempts >= cfg.max_reads_per_track:
            self.counters.skipped_done += 1
            return False
        if track.last_asked_s is not None and now_s - track.last_asked_s < cfg.min_interval_s:
            self.counters.skipped_interval += 1
            return False
        track.last_asked_s = now_s
        track.attempts += 1
        self.counters.asked += 1
        return True

    def add(
        self,
        track_id: int,
        read: PlateRead | None,
        quality: float,
        now_s: float,
        *,
        crop: npt.NDArray[np.uint8] | None = None,
    ) -> None:
        """Record one read of the track (None: no plate found); ``crop`` is kept if it becomes the best frame."""
        track = self._track(track_id, now_s)
        self.counters.reads += 1
        if read is None:
            self.counters.no_plate += 1
            return
        if read.confidence < self.config.min_confidence:
            self.counters.low_confidence += 1
            return
        q = float(np.clip(quality, 0.0, 1.0))
        new = _Vote(read, read.confidence * max(q, MIN_QUALITY), q, now_s, crop)
        track.votes.append(new)
        if len(track.votes) > self.config.max_reads_per_track:
            # Bounded: drop the lightest vote (its crop with it).
            track.votes.remove(min(track.votes, key=lambda v: v.weight))
        best_q = max(v.quality for v in track.votes)
        for v in track.votes:
            if v.quality < best_q:
                v.crop = None  # only the best frame's crop is kept

    def best(self, track_id: int) -> VotedPlate | None:
        track = self.tracks.get(track_id)
        return None if track is None else vote(track.votes)

    def finish(self, track_id: int) -> VotedPlate | None:
        """Forget the track (it ended) and return its final reading."""
        track = self.tracks.pop(track_id, None)
        return None if track is None else vote(track.votes)

    def expire(self, now_s: float) -> tuple[tuple[int, VotedPlate | None], ...]:
        """Close tracks not seen for ``track_ttl_s``; their final readings (None for tracks never read)."""
        stale = [tid for tid, t in self.tracks.items() if now_s - t.last_seen_s >= self.config.track_ttl_s]
        out = []
        for tid in stale:
            out.append((tid, vote(self.tracks.pop(tid).votes)))
            self.counters.expired_tracks += 1
        return tuple(out)
