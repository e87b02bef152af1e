"""Camera health: the reader's stats are the one source of state and reason; every change becomes an event."""

from __future__ import annotations

from pathlib import Path

from edge_agent.delivery.backoff import BackoffConfig
from edge_agent.pipeline import CameraPipeline
from event_contract import CountIntervalEvent, HealthEvent
from tests.unit.test_pipeline_step import BrightBlobDetector, camera, square_tops, write_square_video


def run_to_end(pipeline: CameraPipeline) -> None:
    pipeline.start()
    assert pipeline.join(timeout=60)


def test_each_reader_state_change_is_one_health_event_with_the_readers_reason(tmp_path: Path) -> None:
    events: list[CountIntervalEvent | HealthEvent] = []
    config = camera(tmp_path / "absent.mp4", max_reconnects=1, reconnect=BackoffConfig(base_s=0.01, ceiling_s=0.02))
    pipeline = CameraPipeline("agent-1", config, BrightBlobDetector(), events.append, health_interval_s=3600)
    run_to_end(pipeline)

    health = [(e.state, e.reason) for e in events if isinstance(e, HealthEvent)]
    missing = f"FileNotFoundError: video file not found: {tmp_path / 'absent.mp4'}"
    assert health[:3] == [("starting", ""), ("connecting", "opening"), ("down", missing)]
    assert health[3] == ("connecting", f"reconnecting after: {missing}")
    assert health[4] == ("down", missing)
    assert health[-1][0] == "stopped"
    assert [state for state, _ in health].count("stopped") == 1
    stats = pipeline.stats()
    assert stats.failed
    assert (stats.state, stats.reconnects) == ("stopped", 1)


def test_periodic_health_carries_the_readers_state_not_a_guess(tmp_path: Path) -> None:
    tops = square_tops()
    video = write_square_video(tmp_path / "square.mp4", tops)
    events: list[CountIntervalEvent | HealthEvent] = []
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
