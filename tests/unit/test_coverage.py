"""CoverageMeter: analysed stretches from frames (gaps capped), downtime from ticks, drop deltas."""

from __future__ import annotations

import datetime as dt

import pytest

from edge_agent.analytics.coverage import CoverageMeter, CoverageUpdate
from edge_agent.analytics.epoch import US, epoch_us

T0 = dt.datetime(2026, 4, 1, 8, 0, tzinfo=dt.UTC)


def t(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def stretches(update: CoverageUpdate) -> list[tuple[float, float, str]]:
    base = epoch_us(T0)
    return [((s.start_us - base) / US, (s.end_us - base) / US, s.kind) for s in update.spans]


def test_each_frame_credits_the_gap_since_the_previous_one_capped() -> None:
    meter = CoverageMeter(max_frame_gap_s=1.0)
    assert stretches(meter.frame(t(0))) == []  # the first frame has no predecessor
    assert stretches(meter.frame(t(0.2))) == [(0.0, 0.2, "analysed")]
    assert stretches(meter.frame(t(0.4))) == [(0.2, 0.4, "analysed")]
    # A 5 s hole in the stream: only the last second before the next frame counts as analysed.
    assert stretches(meter.frame(t(5.4))) == [(4.4, 5.4, "analysed")]


def test_ticks_credit_downtime_only_when_the_reader_says_the_source_is_not_live() -> None:
    meter = CoverageMeter(max_frame_gap_s=1.0)
    meter.frame(t(0))
    meter.frame(t(0.5))
    assert stretches(meter.tick(t(1.0), "live")) == []  # frames late, source not known to be down yet
    assert stretches(meter.tick(t(6.0), "connecting")) == [(0.5, 6.0, "down")]  # back to the last frame
    assert stretches(meter.tick(t(6.25), "down")) == [(6.0, 6.25, "down")]
    assert stretches(meter.tick(t(6.25), "down")) == []
    # Back: the first frame credits at most the cap, and never time already counted as down.
    assert stretches(meter.frame(t(6.5))) == [(6.25, 6.5, "analysed")]
    assert stretches(meter.frame(t(7.0))) == [(6.5, 7.0, "analysed")]


def test_a_camera_dead_from_the_start_accumulates_downtime_from_the_first_tick() -> None:
    meter = CoverageMeter()
    assert stretches(meter.tick(t(0), "connecting")) == []
    assert stretches(meter.tick(t(0.25), "connecting")) == [(0.0, 0.25, "down")]
    assert stretches(meter.tick(t(3.0), "down")) == [(0.25, 3.0, "down")]
    # Its first frame has no predecessor frame: nothing analysed yet.
    assert stretches(meter.frame(t(3.1))) == []
    assert stretches(meter.frame(t(3.3))) == [(3.1, 3.3, "analysed")]


def test_frames_and_drops_are_counted_as_increments() -> None:
    meter = CoverageMeter()
    first = meter.frame(t(0), frames_dropped_total=3)
    second = meter.frame(t(0.1), frames_dropped_total=7)
    tick = meter.tick(t(0.5), "live", frames_dropped_total=7)
    assert [(u.frames_analysed, u.frames_dropped, u.at) for u in (first, second, tick)] == [
        (1, 3, t(0)),
        (1, 4, t(0.1)),
        (0, 0, t(0.5)),
    ]


def test_an_out_of_order_frame_credits_nothing_twice() -> None:
    meter = CoverageMeter()
    meter.frame(t(1.0))
    meter.frame(t(2.0))
    assert stretches(meter.frame(t(1.5))) == []
    assert stretches(meter.frame(t(2.5))) == [(2.0, 2.5, "analysed")]


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        CoverageMeter(max_frame_gap_s=0)
