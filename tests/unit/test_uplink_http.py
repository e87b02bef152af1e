"""HttpUplink against a real HTTP server on localhost (no mocks of httpx)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge_agent.delivery.http_uplink import EVENTS_PATH, HttpUplink, UplinkConfig
from event_contract import CountIntervalEvent, EventBatch, HealthEvent
from ioc_common.backoff import BackoffConfig

AGENT = "agent-hue-01"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    batch: EventBatch


@dataclass
class ScriptedCentral:
    """Answers each POST with the next scripted (status, body, headers); 200 once the script is used up."""

    script: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""


@pytest.fixture
def central() -> Iterator[ScriptedCentral]:
    state = ScriptedCentral()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            batch = EventBatch.model_validate_json(raw)
            with state.lock:
                state.received.append(Received(self.path, dict(self.headers.items()), batch))
                status, body, headers = state.script.pop(0) if state.script else (200, "", {})
            if status == 200:
                body = json.dumps({"received": len(batch.events), "stored": len(batch.events), "duplicates": 0})
            payload = body.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def _config(url: str, **overrides: object) -> UplinkConfig:
    base: dict[str, object] = {
        "url": url,
        "token": "s3cret-token",
        "flush_interval_s": 0.05,
        "timeout_s": 2.0,
        "retry": BackoffConfig(base_s=0.01, ceiling_s=0.05),
    }
    base.update(overrides)
    return UplinkConfig.model_validate(base)


def _count_event(minute: int) -> CountIntervalEvent:
    return CountIntervalEvent(
        agent_id=AGENT,
        source_id="cam-cau-truong-tien",
        line_id="north",
        time=dt.datetime(2025, 3, 1, 7, minute, tzinfo=dt.UTC),
        interval_s=60,
    )


def test_events_arrive_in_gzip_batches_with_bearer_token(central: ScriptedCentral) -> None:
    events = [_count_event(m) for m in range(7)]
    uplink = HttpUplink(AGENT, _config(central.url, batch_max_events=3))
    for event in events:
        uplink.submit(event)
    stats = uplink.close(timeout=5)

    assert stats.sent_events == 7
    assert stats.dropped == stats.dead_events == stats.lost_at_close == 0
    assert all(len(r.batch.events) <= 3 for r in central.received)
    assert stats.sent_batches == len(central.received) >= 3
    first = central.received[0]
    assert first.path == EVENTS_PATH
    assert first.headers["Authorization"] == "Bearer s3cret-token"
    assert first.headers["Content-Encoding"] == "gzip"
    sent_ids = [e.event_id for r in central.received for e in r.batch.events]
    assert sorted(sent_ids) == sorted(e.event_id for e in events)


def test_5xx_and_429_are_retried_with_the_same_events(central: ScriptedCentral) -> None:
    central.script = [(503, "database restarting", {}), (429, "slow down", {"Retry-After": "0"})]
    health = HealthEvent(agent_id=AGENT, source_id="cam-1", time=dt.datetime(2025, 3, 1, tzinfo=dt.UTC), state="live")
    uplink = HttpUplink(AGENT, _config(central.url))
    uplink.submit(health)
    stats = uplink.close(timeout=5)

    assert [len(r.batch.events) for r in central.received] == [1, 1, 1]
    assert {r.batch.events[0].event_id for r in central.received} == {health.event_id}
    assert stats.retries == 2
    assert stats.sent_events == 1
    assert stats.dead_batches == 0


def test_4xx_is_not_retried_and_counted_dead(central: ScriptedCentral) -> None:
    central.script = [(422, '{"detail": "events[0].line_id invalid"}', {})]
    uplink = HttpUplink(AGENT, _config(central.url, batch_max_events=10))
    uplink.submit(_count_event(0))
    uplink.submit(_count_event(1))
    # Wait for the first batch to be answered before sending the next one.
    for _ in range(200):
        if uplink.stats().dead_batches:
            break
        time.sleep(0.01)
    uplink.submit(_count_event(2))
    stats = uplink.close(timeout=5)

    assert len(central.received) == 2
    assert stats.dead_batches == 1
    assert stats.dead_events == 2
    assert "events[0].line_id invalid" in stats.last_error
    assert stats.sent_events == 1
    assert stats.retries == 0


def test_full_queue_drops_oldest_and_counts_while_central_is_down() -> None:
    # Port 9 on localhost: nothing listens, every POST fails to connect.
    config = _config("http://127.0.0.1:9", batch_max_events=1, queue_capacity=5)
    uplink = HttpUplink(AGENT, config)
    for minute in range(20):
        uplink.submit(_count_event(minute))
    before_close = uplink.stats()
    stats = uplink.close(timeout=0.2)

    # The worker may hold one event in flight; every other event beyond capacity was dropped.
    assert before_close.queue_depth == 5
    assert before_close.dropped in (14, 15)
    assert stats.sent_events == 0
    assert stats.lost_at_close == 20 - before_close.dropped
    assert "ConnectError" in stats.last_error


def test_submit_after_close_is_counted_not_raised(central: ScriptedCentral) -> None:
    uplink = HttpUplink(AGENT, _config(central.url))
    uplink.close(timeout=1)
    uplink.submit(_count_event(0))
    assert uplink.stats().dropped == 1


def test_event_of_another_agent_is_refused(central: ScriptedCentral) -> None:
    uplink = HttpUplink(AGENT, _config(central.url))
    stranger = CountIntervalEvent(
        agent_id="other-agent", source_id="c", line_id="l", time=dt.datetime(2025, 1, 1, tzinfo=dt.UTC), interval_s=60
    )
    with pytest.raises(ValueError, match="other-agent"):
        uplink.submit(stranger)
    uplink.close(timeout=1)


def test_token_file_is_read_and_empty_file_rejected(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("abc123\n", encoding="utf-8")
    assert UplinkConfig(url="http://x", token_file=token_file).resolve_token() == "abc123"
    token_file.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        UplinkConfig(url="http://x", token_file=token_file).resolve_token()


def test_config_needs_exactly_one_token_source() -> None:
    with pytest.raises(ValueError, match="token or token_file"):
        UplinkConfig(url="http://x")


def test_too_large_batch_is_split_not_lost(central: ScriptedCentral) -> None:
    central.script = [(413, "body exceeds the limit", {})]
    uplink = HttpUplink(AGENT, _config(central.url, batch_max_events=4, flush_interval_s=0.5))
    for minute in range(4):
        uplink.submit(_count_event(minute))
    stats = uplink.close(timeout=5)

    assert [len(r.batch.events) for r in central.received] == [4, 2, 2]
    assert stats.sent_events == 4
    assert stats.dead_batches == 0
