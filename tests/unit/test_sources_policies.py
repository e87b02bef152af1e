"""The reader's small policies on plain values: max_fps, stall watchdog, reconnect delays, state log, clocks."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from edge_agent.sources.config import ReaderConfig
from edge_agent.sources.rate_limit import FrameRateLimiter
from edge_agent.sources.reconnect import ReconnectLimitError, ReconnectPolicy
from edge_agent.sources.status import CHANGE_LOG_SIZE, SourceStatus
from edge_agent.sources.timeline import ArrivalClock, ClockSteering, ConnectionClocks, SenderClock, Timeline
from edge_agent.sources.urls import describe_error, redact_url, short_name
from edge_agent.sources.watchdog import StallWatchdog, StreamStalledError
from ioc_common.backoff import BackoffConfig

T0 = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)


def kept(limiter: FrameRateLimiter, offsets_ms: list[int]) -> list[int]:
    return [ms for ms in offsets_ms if limiter.due(ms / 1000)]


def test_max_fps_keeps_a_steady_grid_in_stream_time() -> None:
    every_40ms = list(range(0, 1000, 40))
    assert kept(FrameRateLimiter(10, 0.04), every_40ms) == [0, 120, 200, 320, 400, 520, 600, 720, 800, 920]
    assert kept(FrameRateLimiter(5, 0.04), every_40ms) == [0, 200, 400, 600, 800]
    assert kept(FrameRateLimiter(None, 0.04), every_40ms) == every_40ms


def test_max_fps_tolerates_pts_rounding_and_restarts_after_gaps_and_jumps_back() -> None:
    limiter = FrameRateLimiter(5, 0.04)
    assert kept(limiter, [0, 199, 240, 401]) == [0, 199, 401]  # 1 ms early still counts as due
    assert kept(limiter, [5000, 5040, 5200]) == [5000, 5200]  # a gap starts a new grid
    assert kept(limiter, [100, 140, 300]) == [100, 300]  # time went back (new pass of a file)
    limiter.restart()
    assert limiter.due(0.0)


def test_watchdog_fires_only_after_the_timeout_without_progress() -> None:
    watchdog = StallWatchdog(10.0, now=100.0)
    watchdog.packet()
    watchdog.check(109.9)
    watchdog.progress(109.9)
    watchdog.packet()
    watchdog.packet()
    watchdog.check(119.8)
    with pytest.raises(StreamStalledError, match=r"no frame for 10\.0 s .* \(2 packets arrived meanwhile\)"):
        watchdog.check(119.9)


def reconnect_config(**overrides: object) -> ReaderConfig:
    settings: dict[str, object] = {
        "url": "rtsp://cam/1",
        "reconnect": BackoffConfig(base_s=1.0, ceiling_s=30.0),
        "fast_reconnect_ceiling_s": 2.0,
        "fast_reconnect_window_s": 300.0,
    }
    return ReaderConfig.model_validate(settings | overrides)


def test_reconnect_is_fast_for_a_camera_seen_lately_and_polite_for_one_dead_long() -> None:
    never_seen = ReconnectPolicy(reconnect_config(), random.Random(1))
    slow = [never_seen.next_delay(now=0.0) for _ in range(40)]
    assert 2.0 < max(slow) <= 30.0  # grows to the slow ceiling

    seen = ReconnectPolicy(reconnect_config(), random.Random(1))
    seen.frame_arrived(now=1000.0)
    fast = [seen.next_delay(now=1000.0 + attempt) for attempt in range(40)]
    assert max(fast) <= 2.0
    assert len(set(fast)) > 30  # still jittered
    assert seen.failures == 40
    assert max(seen.next_delay(now=1000.0 + 301.0) for _ in range(20)) > 2.0  # window over: slow again
    seen.frame_arrived(now=2000.0)
    assert seen.failures == 0


def test_fast_ceiling_never_exceeds_the_configured_ceiling_and_max_reconnects_gives_up() -> None:
    policy = ReconnectPolicy(
        reconnect_config(reconnect=BackoffConfig(base_s=0.01, ceiling_s=0.02), max_reconnects=3), random.Random(2)
    )
    policy.frame_arrived(now=0.0)
    assert all(policy.next_delay(now=0.0) <= 0.02 for _ in range(3))
    with pytest.raises(ReconnectLimitError, match="gave up after 3 reconnects"):
        policy.next_delay(now=0.0)


def test_status_logs_each_state_change_once_with_reason_and_time() -> None:
    clock = iter(T0 + dt.timedelta(seconds=s) for s in range(1000))
    status = SourceStatus(lambda: next(clock))
    status.set_state("connecting", "opening")
    status.set_state("live")
    status.set_state("live")  # no change, no entry
    status.set_state("stalled", "no frame for 10.0 s")
    changes = status.changes_since(0)
    assert [(c.number, c.state, c.reason) for c in changes] == [
        (1, "connecting", "opening"),
        (2, "live", ""),
        (3, "stalled", "no frame for 10.0 s"),
    ]
    assert changes[0].at < changes[1].at < changes[2].at
    assert status.changes_since(3) == ()
    snapshot = status.snapshot()
    assert (snapshot.state, snapshot.reason, snapshot.state_since, snapshot.state_changes) == (
        "stalled",
        "no frame for 10.0 s",
        changes[2].at,
        3,
    )
    for index in range(CHANGE_LOG_SIZE + 10):
        status.set_state("down" if index % 2 else "connecting", f"try {index}")
    assert len(status.changes_since(0)) == CHANGE_LOG_SIZE  # bounded: a slow poller sees the newest


def test_sender_clock_follows_the_latest_reference_time_else_the_first_report() -> None:
    clock = SenderClock()
    base = Fraction(1, 90_000)
    assert clock.time_of(90_000, base, None) is None  # no report yet
    start_us = int(T0.timestamp() * 1e6)
    assert clock.time_of(90_000, base, start_us) == T0 + dt.timedelta(seconds=1)
    clock.observe(180_000, start_us + 2_000_500)  # latest report: the camera's clock ran 0.5 ms ahead
    assert clock.time_of(270_000, base, start_us) == T0 + dt.timedelta(seconds=3, microseconds=500)
    clock.observe(None, start_us)  # a packet without PTS changes nothing
    assert clock.time_of(270_000, base, start_us) == T0 + dt.timedelta(seconds=3, microseconds=500)


def test_timeline_never_goes_backwards() -> None:
    timeline = Timeline(T0)
    assert timeline.offset_s(1000, Fraction(1, 1000), 0.04) == 0.0
    assert timeline.offset_s(1500, Fraction(1, 1000), 0.04) == 0.5
    first = timeline.monotonic(timeline.at(0.5))
    assert timeline.monotonic(timeline.at(0.2)) == first + dt.timedelta(microseconds=1)


def test_urls_lose_their_credentials_in_messages() -> None:
    url = "rtsp://admin:s3cr%40t@10.0.0.5:554/Streaming/101"
    assert redact_url(url) == "rtsp://***@10.0.0.5:554/Streaming/101"
    error = ConnectionRefusedError(111, f"Connection refused: '{url}' and 'rtsp://admin:s3cr@t@10.0.0.5:554/x'")
    message = describe_error(error, url)
    assert "s3cr" not in message
    assert "admin" not in message
    assert message.startswith("ConnectionRefusedError: ")
    assert short_name(url) == "10.0.0.5-101"
    assert short_name("/data/junction 4.mp4") == "junction_4"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_arrival_origin_is_the_earliest_arrival_minus_offset() -> None:
    clock = ArrivalClock()
    # Frames 0-4 came in a burst 0.5 s late (buffered while FFmpeg probed the stream), then on time.
    for offset, arrived in [(0.0, 0.5), (0.1, 0.52), (0.2, 0.54), (0.3, 0.56), (0.4, 0.58), (0.5, 0.6), (0.6, 0.61)]:
        clock.observe(at(arrived), offset)
    assert clock.origin == at(0.01)


def test_connection_clocks_remember_when_each_frames_packet_arrived() -> None:
    clocks = ConnectionClocks()
    clocks.packet(0, None, at(1.0))
    clocks.packet(9000, int(at(1.05).timestamp() * 1e6), at(1.1))
    assert clocks.frame_arrival(0, at(9.0)) == at(1.0)  # the decoder gave frame 0 out later: its packet counts
    assert clocks.frame_arrival(0, at(9.0)) == at(9.0)  # taken once
    assert clocks.frame_arrival(None, at(9.0)) == at(9.0)
    assert clocks.sender.time_of(18_000, Fraction(1, 90_000), None) == at(1.15)


def test_steering_slews_towards_the_camera_clock_by_a_tenth_of_each_frame_step() -> None:
    steering = ClockSteering(max_clock_offset_s=2.0)
    stamps = []
    for index in range(12):
        offset = 0.1 * index
        camera = at(offset - 0.05) if index >= 2 else None  # a report arrives at frame 2: camera 50 ms behind
        stamp, source, clock_offset = steering.steer(at(offset), offset, at(offset), camera)
        stamps.append((stamp, source, clock_offset))
    assert [s for _, s, _ in stamps[:2]] == ["arrival", "arrival"]
    assert {s for _, s, _ in stamps[2:]} == {"sender_report"}
    assert stamps[5][2] == pytest.approx(-0.05)
    gaps_ms = [round((b[0] - a[0]).total_seconds() * 1000, 3) for a, b in itertools.pairwise(stamps)]
    assert gaps_ms == [100.0, 90.0, 90.0, 90.0, 90.0, 90.0, 100.0, 100.0, 100.0, 100.0, 100.0]
    assert stamps[-1][0] == at(1.1 - 0.05)


def test_a_camera_clock_far_off_ours_is_reported_but_not_followed() -> None:
    steering = ClockSteering(max_clock_offset_s=2.0)
    for index in range(5):
        stamp, source, clock_offset = steering.steer(at(0.1 * index), 0.1 * index, at(0.1 * index), at(3600.0))
    assert source == "arrival"
    assert stamp == at(0.4)
    assert clock_offset == pytest.approx(3599.6)


def test_every_reader_knob_is_shown_with_its_default_in_the_example_config() -> None:
    example = Path(__file__).resolve().parents[2] / "configs" / "edge.example.yaml"
    defaults = yaml.safe_load(example.read_text(encoding="utf-8"))["defaults"]
    knobs = set(ReaderConfig.model_fields) - {"url"}
    assert knobs <= set(defaults), f"not in configs/edge.example.yaml defaults: {sorted(knobs - set(defaults))}"
    built_in = ReaderConfig(url="rtsp://cam/1")
    for knob in knobs - {"reconnect"}:
        assert defaults[knob] == getattr(built_in, knob), f"{knob}: the example shows another value than the default"
