"""The per-track voter: which frames are read, the per-character vote, best frame, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.plates.config import PlateVoteConfig
from edge_agent.plates.reader import PlateRead
from edge_agent.plates.vote import PlateVoter

FRAME = (1920, 1080)
BOX = (800.0, 400.0, 1100.0, 700.0)


def read(
    text: str, confidence: float = 0.9, *, valid: bool = True, probs: tuple[float, ...] | None = None
) -> PlateRead:
    n = sum(c.isalnum() for c in text)
    return PlateRead(
        text=text,
        confidence=confidence,
        layout="two_line" if text[3].isdigit() else "one_line",
        format_valid=valid,
        plate_colour="white",
        box_xyxy=(1, 2, 3, 4),
        char_probs=probs if probs is not None else (confidence,) * n,
    )


def voter(**overrides: object) -> PlateVoter:
    settings: dict[str, object] = {"min_interval_s": 0.5, "max_reads_per_track": 3, **overrides}
    return PlateVoter(PlateVoteConfig.model_validate(settings))


def test_reads_only_big_boxes_away_from_the_edge() -> None:
    v = voter()
    assert not v.wants_read(1, (800, 400, 850, 700), *FRAME, 0.0)  # too narrow
    assert not v.wants_read(1, (800, 400, 1100, 430), *FRAME, 0.0)  # too short
    assert not v.wants_read(1, (0, 400, 300, 700), *FRAME, 0.0)  # cut by the frame's left edge
    assert not v.wants_read(1, (1700, 800, 1920, 1080), *FRAME, 0.0)
    assert v.wants_read(1, BOX, *FRAME, 0.0)
    assert (v.counters.skipped_small, v.counters.skipped_edge, v.counters.asked) == (2, 2, 1)


def test_reads_at_most_every_interval_and_at_most_n_times() -> None:
    v = voter()
    asked = [t for t in (0.0, 0.1, 0.4, 0.5, 0.9, 1.0, 1.6, 2.5, 3.0) if v.wants_read(7, BOX, *FRAME, t)]
    assert asked == [0.0, 0.5, 1.0]  # every 0.5 s, then the track is done after 3 reads
    assert v.counters.skipped_interval == 3
    assert v.counters.skipped_done == 3


def test_tracks_are_independent() -> None:
    v = voter()
    assert v.wants_read(1, BOX, *FRAME, 0.0)
    assert v.wants_read(2, BOX, *FRAME, 0.1)


def test_character_vote_fixes_errors_in_different_places() -> None:
    v = voter(max_reads_per_track=5)
    # Each read is wrong in one place, never the same place: no read is right as a whole.
    for i, text in enumerate(("30A-128.45", "30A-123.46", "36A-123.45")):
        v.add(1, read(text), 0.8, float(i))
    best = v.best(1)
    assert best is not None
    assert best.text == "30A-123.45"
    assert best.format_valid
    assert best.reads == 3
    assert 0.5 < best.confidence < 0.9  # two of three agree at each position


def test_weights_favour_confident_sharp_reads() -> None:
    v = voter()
    v.add(1, read("30A-123.45", 0.95), 0.9, 0.0)
    v.add(1, read("30A-128.45", 0.6), 0.2, 1.0)
    v.add(1, read("30A-128.45", 0.6), 0.2, 2.0)
    best = v.best(1)
    assert best is not None
    assert best.text == "30A-123.45"  # 0.95*0.9 outweighs 2 * 0.6*0.2


def test_per_character_probabilities_decide_a_split_position() -> None:
    v = voter()
    sure = (0.99,) * 8
    unsure_at_5 = (0.99, 0.99, 0.99, 0.99, 0.99, 0.2, 0.99, 0.99)
    v.add(1, read("30A-123.45", 0.9, probs=sure), 0.5, 0.0)
    v.add(1, read("30A-128.45", 0.9, probs=unsure_at_5), 0.5, 1.0)
    best = v.best(1)
    assert best is not None
    assert best.text == "30A-123.45"


def test_valid_reads_outvote_invalid_ones() -> None:
    v = voter(max_reads_per_track=5)
    v.add(1, read("30A-123.45", 0.7), 0.5, 0.0)
    for t in (1.0, 2.0):
        v.add(1, read("13A12345", 0.95, valid=False), 0.9, t)
    best = v.best(1)
    assert best is not None
    assert best.text == "30A-123.45"
    assert best.format_valid


def test_only_invalid_reads_give_an_invalid_plate() -> None:
    v = voter()
    v.add(1, read("13A12345", 0.9, valid=False), 0.5, 0.0)
    best = v.best(1)
    assert best is not None
    assert not best.format_valid
    assert best.text == "13A12345"


def test_the_most_supported_length_wins_and_keeps_its_shape() -> None:
    v = voter(max_reads_per_track=5)
    v.add(1, read("59X1-2345"), 0.8, 0.0)  # an old two-line motorbike plate, 8 characters
    v.add(1, read("59X1-2345"), 0.8, 1.0)
    v.add(1, read("59X1-234.56"), 0.8, 2.0)  # a misread with an extra digit
    best = v.best(1)
    assert best is not None
    assert best.text == "59X1-2345"  # not re-parsed as the car 59X-123.45
    assert best.layout == "two_line"


def test_low_confidence_and_empty_reads_are_counted_not_voted() -> None:
    v = voter()
    v.add(1, None, 0.9, 0.0)
    v.add(1, read("30A-123.45", 0.3), 0.9, 1.0)
    assert v.best(1) is None
    assert (v.counters.reads, v.counters.no_plate, v.counters.low_confidence) == (2, 1, 1)


def test_best_frame_is_the_sharpest_and_only_its_crop_is_kept() -> None:
    v = voter()
    crops = [np.full((4, 4, 3), i, np.uint8) for i in range(3)]
    for i, quality in enumerate((0.3, 0.9, 0.5)):
        v.add(1, read("30A-123.45"), quality, float(i), crop=crops[i])
    best = v.best(1)
    assert best is not None
    assert best.best_quality == pytest.approx(0.9)
    assert best.best_time_s == 1.0
    assert best.best_crop is crops[1]
    kept = [vote.crop is not None for vote in v.tracks[1].votes]
    assert kept == [False, True, False]


def test_votes_per_track_are_bounded_dropping_the_lightest() -> None:
    v = voter(max_reads_per_track=2)
    v.add(1, read("30A-123.45", 0.9), 0.9, 0.0)
    v.add(1, read("30A-128.45", 0.55), 0.1, 1.0)
    v.add(1, read("30A-123.45", 0.8), 0.8, 2.0)
    assert len(v.tracks[1].votes) == 2
    best = v.best(1)
    assert best is not None
    assert best.text == "30A-123.45"
    assert best.reads == 2


def test_finish_forgets_the_track() -> None:
    v = voter()
    v.add(5, read("30A-123.45"), 0.5, 0.0)
    final = v.finish(5)
    assert final is not None
    assert final.text == "30A-123.45"
    assert v.finish(5) is None
    assert v.best(5) is None


def test_expire_closes_stale_tracks_only() -> None:
    v = voter(track_ttl_s=10.0)
    v.add(1, read("30A-123.45"), 0.5, 0.0)
    assert v.wants_read(2, BOX, *FRAME, 5.0)
    expired = v.expire(12.0)
    assert [tid for tid, _ in expired] == [1]
    assert expired[0][1] is not None
    assert expired[0][1].text == "30A-123.45"
    assert list(v.tracks) == [2]
    assert v.expire(16.0) == ((2, None),)  # asked but never read
    assert v.counters.expired_tracks == 2


def test_memory_is_bounded_evicting_the_least_recent_track() -> None:
    v = voter(max_tracks=3)
    for tid in range(3):
        v.add(tid, read("30A-123.45"), 0.5, float(tid))
    v.add(0, read("30A-123.45"), 0.5, 3.0)  # track 0 is now the most recent
    v.add(9, read("51F-678.90"), 0.5, 4.0)
    assert sorted(v.tracks) == [0, 2, 9]
    assert v.counters.evicted_tracks == 1


def test_colour_is_the_weighted_majority() -> None:
    v = voter()
    base = read("30A-123.45")
    for i, colour in enumerate(("yellow", "yellow", "white")):
        v.add(
            1,
            PlateRead(base.text, base.confidence, base.layout, True, colour, None, base.char_probs),  # type: ignore[arg-type]
            0.5,
            float(i),
        )
    best = v.best(1)
    assert best is not None
    assert best.plate_colour == "yellow"
