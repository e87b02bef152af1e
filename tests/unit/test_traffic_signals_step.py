"""Signal feed messages -> the camera's board (bad ones dead-lettered), and AnalyticsStep judging a red light
with that board: findings arrive in StepResult, without threads or I/O in the step."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from edge_agent.delivery.dead_letters import DeadLetterConfig, DeadLetterStore
from edge_agent.perception.tracker import ByteTracker, TrackerConfig
from edge_agent.perception.types import Frame
from edge_agent.pipeline import AnalyticsStep
from edge_agent.traffic.config import SignalFeedConfig
from edge_agent.traffic.signal_feed import SharedSignalBoard, SignalFeedSubscriber
from edge_agent.violations.config import ViolationRulesConfig
from tests.unit.test_pipeline_step import HEIGHT, START, BrightBlobDetector, square_image, square_tops

RULES = ViolationRulesConfig.model_validate(
    {
        "signals": [{"id": "sig-north", "mqtt": "ctl-7"}],
        "rules": [
            {
                "type": "red_light",
                "id": "red-north",
                "signal_id": "sig-north",
                "stop_line": {"start": [0.0, 0.5], "end": [1.0, 0.5]},
                "direction": "in",
                "grace_s": 0.0,
            }
        ],
    }
)


def message(state: str, time: dt.datetime, signal_id: str = "ctl-7") -> bytes:
    return json.dumps({"signal_id": signal_id, "state": state, "time": time.isoformat()}).encode()


def subscriber(tmp_path: Path) -> tuple[SignalFeedSubscriber, SharedSignalBoard, DeadLetterStore]:
    board = SharedSignalBoard(RULES.signals)
    letters = DeadLetterStore(DeadLetterConfig(path=tmp_path / "letters.sqlite"))
    feed = SignalFeedSubscriber(SignalFeedConfig(host="127.0.0.1"), (board,), letters, agent_id="agent-1")
    return feed, board, letters


def test_good_messages_reach_the_board_bad_ones_are_counted_and_dead_lettered(tmp_path: Path) -> None:
    feed, board, letters = subscriber(tmp_path)
    assert feed.handle("ioc/v1/signals/ctl-7", message("red", START))
    assert board.state_at("sig-north", START + dt.timedelta(seconds=1)) == "red"
    assert not feed.handle("ioc/v1/signals/ctl-7", b"{not json")
    assert not feed.handle("ioc/v1/signals/ctl-7", message("purple", START))
    assert not feed.handle("ioc/v1/signals/ctl-9", message("green", START, signal_id="ctl-9"))  # no such signal
    stats = feed.stats()
    assert (stats.received, stats.applied, stats.refused, stats.ignored) == (4, 1, 2, 1)
    kept = letters.recent(10)
    assert [k.letter.raw for k in kept] == [message("purple", START), b"{not json"]
    assert all(k.letter.source == "signal_feed" and k.letter.code == "bad_shape" for k in kept)
    assert "state" in kept[0].letter.reason
    letters.close()


def test_a_stale_feed_reads_unknown(tmp_path: Path) -> None:
    feed, board, letters = subscriber(tmp_path)
    feed.handle("t", message("green", START))
    assert board.state_at("sig-north", START + dt.timedelta(seconds=60)) == "unknown"
    letters.close()


def run_step(feed: SignalFeedSubscriber, board: SharedSignalBoard, state: str) -> list[tuple[str, int, str | None]]:
    """The square drives down over the stop line while the controller repeats ``state`` every frame."""
    step = AnalyticsStep(
        "agent-1",
        "cam-1",
        BrightBlobDetector(),
        ByteTracker(TrackerConfig()),
        lines=(),
        violations=RULES,
        signal_board=board,
    )
    found: list[tuple[str, int, str | None]] = []
    for index, top in enumerate([*square_tops(), HEIGHT]):
        timestamp = START + dt.timedelta(seconds=index / 5)
        assert feed.handle("ioc/v1/signals/ctl-7", message(state, timestamp))
        result = step.process(Frame(square_image(top), "cam-1", index, timestamp))
        assert dict(result.signals) == {"sig-north": state}
        found.extend((f.rule_id, f.track_id, f.signal_state) for f in result.findings)
    return found


def test_the_step_judges_a_red_light_from_the_feed_and_not_a_green_one(tmp_path: Path) -> None:
    feed, board, letters = subscriber(tmp_path)
    found = run_step(feed, board, "red")
    assert [(rule, state) for rule, _track, state in found] == [("red-north", "red")]
    letters.close()
    feed, board, letters = subscriber(tmp_path / "green")
    assert run_step(feed, board, "green") == []
    letters.close()
