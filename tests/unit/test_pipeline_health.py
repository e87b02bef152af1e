"""Camera health: the reader's stats are the one source of state and reason; every change becomes an event."""

from __future__ import annotations

from pathlib import Path

from edge_agent.pipeline import CameraPipeline, is_news
from event_contract import Event, HealthEvent
from ioc_common.backoff import BackoffConfig
from tests.unit.test_pipeline_step import BrightBlobDetector, camera, square_tops, write_square_video


def run_to_end(pipeline: CameraPipeline) -> None:
    pipeline.start()
    assert pipeline.join(timeout=60)


def test_reader_state_changes_become_health_events_with_the_readers_reason(tmp_path: Path) -> None:
    events: list[Event] = []
    config = camera(tmp_path / "absent.mp4", max_reconnects=3, reconnect=BackoffConfig(base_s=0.01, ceiling_s=0.02))
    pipeline = CameraPipeline("agent-1", config, BrightBlobDetector(), events.append, health_interval_s=3600)
    run_to_end(pipeline)

    health = [(e.state, e.reason) for e in events if isinstance(e, HealthEvent)]
    missing = f"FileNotFoundError: video file not found: {tmp_path / 'absent.mp4'}"
    # Three retries of the same failure are counted, not reported one by one.
    assert health == [("starting", ""), ("connecting", "opening"), ("down", missing), ("stopped", missing)]
    stats = pipeline.stats()
    assert stats.failed
    assert (stats.state, stats.state_reason, stats.reconnects) == ("stopped", missing, 3)


def test_only_news_is_reported_between_periodic_health_events() -> None:
    assert is_news("connecting", "opening", None)
    assert is_news("live", "", ("connecting", "opening"))
    assert is_news("stalled", "no data for 5 s", ("live", ""))
    assert not is_news("connecting", "reconnecting after: no data for 5 s", ("stalled", "no data for 5 s"))
    assert is_news("down", "no answer within open_timeout_s (10 s)", ("stalled", "no data for 5 s"))
    assert not is_news(
        "down", "no answer within open_timeout_s (10 s)", ("down", "no answer within open_timeout_s (10 s)")
    )
    assert is_news("down", "ConnectionRefusedError: refused", ("down", "no answer within open_timeout_s (10 s)"))
    assert not is_news("stopped", "stop requested", ("live", ""))


def test_periodic_health_carries_the_readers_state_not_a_guess(tmp_path: Path) -> None:
    tops = square_tops()
    video = write_square_video(tmp_path / "square.mp4", tops)
    events: list[Event] = []
    # Realtime pacing at 10 fps: the periodic health events fall while the file plays.
    config = camera(video, realtime=True, queue_policy="drop_oldest", queue_capacity=1)
    pipeline = CameraPipeline("agent-1", config, BrightBlobDetector(), events.append, health_interval_s=0.3)
    run_to_end(pipeline)

    health = [e for e in events if isinstance(e, HealthEvent)]
    states = [e.state for e in health]
    assert states[:3] == ["starting", "connecting", "live"]
    assert states[-1] == "stopped"
    assert health[-1].reason == "end of stream (on_end: stop)"
    assert set(states) <= {"starting", "connecting", "live", "stopped"}
    assert states.count("live") >= 2  # the change itself, then periodic reports while playing
    stats = pipeline.stats()
    assert stats.frames_delivered == stats.frames_decoded == len(tops)
    assert stats.stalls == 0
