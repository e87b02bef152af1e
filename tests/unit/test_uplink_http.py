"""The HTTP transport (and Delivery over it) against a real HTTP server on localhost (no mocks of httpx).

``ScriptedCentral`` and its ``central`` fixture are also used by the agent tests.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.delivery.http_uplink import EVENTS_PATH, HttpTransport, UplinkConfig
from edge_agent.delivery.sender import Delivery
from edge_agent.delivery.transport import Acked, Refused, Retry, TooLarge, batch_body
from event_contract import CountIntervalEvent, EventBatch, HealthEvent
from ioc_common.backoff import BackoffConfig
from tests.unit.test_delivery_sender import MemoryDeadLetters, MemorySpool

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
            if status == 200 and not body:
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


def _payloads(*minutes: int) -> list[bytes]:
    return [_count_event(m).model_dump_json().encode() for m in minutes]


def test_batch_body_is_the_event_batch_json_without_reparsing() -> None:
    events = (_count_event(0), _count_event(1))
    body = batch_body(AGENT, [e.model_dump_json().encode() for e in events])
    assert body == EventBatch(agent_id=AGENT, events=events).model_dump_json().encode()


def test_a_batch_is_one_gzip_post_with_the_bearer_token_and_central_ack(central: ScriptedCentral) -> None:
    transport = HttpTransport(_config(central.url))
    outcome = transport.send(AGENT, _payloads(0, 1, 2))
    transport.close()

    assert isinstance(outcome, Acked)
    assert outcome.ack is not None
    assert (outcome.ack.received, outcome.ack.stored) == (3, 3)
    [received] = central.received
    assert received.path == EVENTS_PATH
    assert received.headers["Authorization"] == "Bearer s3cret-token"
    assert received.headers["Content-Encoding"] == "gzip"
    assert [e.time.minute for e in received.batch.events] == [0, 1, 2]


def test_plain_json_when_gzip_is_off(central: ScriptedCentral) -> None:
    transport = HttpTransport(_config(central.url, gzip=False))
    assert isinstance(transport.send(AGENT, _payloads(0)), Acked)
    transport.close()
    assert "Content-Encoding" not in central.received[0].headers


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (503, {}, Retry, 0.0),
        (429, {"Retry-After": "7"}, Retry, 7.0),
        (401, {}, Retry, 0.0),  # a wrong or revoked token: fix the config, the events are fine
        (413, {}, TooLarge, None),
        (422, {}, Refused, None),
        (400, {}, Refused, None),
    ],
)
def test_central_answers_map_to_outcomes(
    central: ScriptedCentral, status: int, headers: dict[str, str], expected: type, retry_after: float | None
) -> None:
    central.script = [(status, "central says why", headers)]
    transport = HttpTransport(_config(central.url))
    outcome = transport.send(AGENT, _payloads(0))
    transport.close()

    assert isinstance(outcome, expected)
    assert isinstance(outcome, Retry | TooLarge | Refused)
    assert outcome.reason == f"HTTP {status}: central says why"
    if isinstance(outcome, Retry):
        assert outcome.retry_after_s == retry_after


def test_an_unreachable_central_is_a_retry() -> None:
    transport = HttpTransport(_config("http://127.0.0.1:9"))  # nothing listens on port 9
    outcome = transport.send(AGENT, _payloads(0))
    transport.close()
    assert isinstance(outcome, Retry)
    assert "ConnectError" in outcome.reason


def test_delivery_over_http_retries_splits_and_dead_letters(central: ScriptedCentral) -> None:
    rejection = {
        "received": 2,
        "stored": 1,
        "duplicates": 0,
        "rejected": 1,
        "rejections": [{"index": 0, "reason": "x"}],
    }
    central.script = [(503, "restarting", {}), (413, "too big", {}), (200, json.dumps(rejection), {})]
    spool, dead = MemorySpool(), MemoryDeadLetters()
    config = _config(central.url, batch_max_events=4, flush_interval_s=0.5)
    delivery = Delivery(AGENT, config, spool, HttpTransport(config), dead_letters=dead, rng=random.Random(1))
    health = HealthEvent(agent_id=AGENT, source_id="cam-1", time=dt.datetime(2025, 3, 1, tzinfo=dt.UTC), state="live")
    delivery.submit_many([_count_event(0), _count_event(1), _count_event(2), health])
    stats = delivery.close(timeout=5)

    # 503 -> the same 4 again -> 413 -> halves of 2; the first half has its event 0 refused by central.
    assert [len(r.batch.events) for r in central.received] == [4, 4, 2, 2]
    assert central.received[0].batch.events[0].event_id == health.event_id  # health goes first
    assert (stats.retries, stats.split_batches, stats.sent_events, stats.rejected_events) == (1, 1, 4, 1)
    assert [letter.raw for letter in dead.letters] == [health.model_dump_json().encode()]
    assert stats.backlog_events == 0


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


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("queue_capacity", 10_000, "queue_capacity was replaced by spool.max_bytes"),
        ("queue_policy", "drop_oldest", "queue_policy was replaced by the spool's drop policy"),
    ],
)
def test_the_old_in_memory_queue_settings_say_what_replaced_them(key: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        UplinkConfig.model_validate({"url": "http://x", "token": "t", key: value})


def test_each_transport_needs_its_own_settings() -> None:
    with pytest.raises(ValidationError, match="transport http needs url"):
        UplinkConfig.model_validate({"token": "t"})
    with pytest.raises(ValidationError, match="transport mqtt needs mqtt"):
        UplinkConfig.model_validate({"transport": "mqtt"})
    with pytest.raises(ValidationError, match="for transport http"):
        UplinkConfig.model_validate({"transport": "mqtt", "url": "http://x", "mqtt": {"host": "b"}})
    config = UplinkConfig.model_validate({"transport": "mqtt", "mqtt": {"host": "broker.example.vn"}})
    assert config.mqtt is not None
    assert (config.mqtt.port, config.mqtt.protocol, config.live_share) == (1883, "5", 0.25)


def test_the_mqtt_uplink_shares_the_sensor_broker_connection_model(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.password"
    secret.write_text("s3cret\n", encoding="utf-8")
    mqtt = {"host": "b", "username": "hue-01", "password_file": str(secret), "tls": {"ca_file": "/etc/ca.pem"}}
    config = UplinkConfig.model_validate({"transport": "mqtt", "mqtt": mqtt})
    assert config.mqtt is not None
    assert config.mqtt.client_id_for("hue-01") == "ioc-agent-hue-01-uplink"
    assert config.mqtt.read_password() == "s3cret"
    assert config.mqtt.tls is not None
    assert config.mqtt.session_expiry_s == 300
    with pytest.raises(ValidationError, match="without a username"):
        UplinkConfig.model_validate({"transport": "mqtt", "mqtt": {"host": "b", "password": "x"}})
    with pytest.raises(ValidationError, match=r"key_file is set without tls\.cert_file"):
        UplinkConfig.model_validate({"transport": "mqtt", "mqtt": {"host": "b", "tls": {"key_file": "/k"}}})
