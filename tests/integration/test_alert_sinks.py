"""Alert sinks against real receivers: an HTTP server in a thread (webhooks), the session's mosquitto
broker (MQTT), and the stream route served by uvicorn in a thread (SSE). No network mocks."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from paho.mqtt.client import Client, ConnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.sinks import (
    NotificationDispatcher,
    SinksConfig,
    SseBroker,
    build_dispatcher,
    verify_signature,
)
from central_ingest.alerts.sinks.routes import StreamScope, stream_scope
from central_ingest.alerts.sinks.routes import router as stream_router
from central_ingest.alerts.sinks.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from devstack.mosquitto import MosquittoBroker

pytestmark = pytest.mark.integration

T0 = dt.datetime(2025, 3, 1, 8, 30, tzinfo=dt.UTC)
SECRET = "webhook-secret-for-tests"
TINY_BACKOFF = {"base_s": 0.01, "ceiling_s": 0.05}
DEADLINE_S = 30.0
T = TypeVar("T")


def make_notice(
    n: int = 0, *, severity: str = "warning", message_en: str = "Water level above alert level 2"
) -> AlertNotice:
    return AlertNotice.model_validate(
        {
            "alert_id": uuid.UUID(int=n + 1),
            "rule_id": "water-level-hn",
            "rule_kind": "sensor_threshold",
            "subject": "sensor:agent-1/wl-01",
            "status": "open",
            "transition": "opened",
            "severity": severity,
            "level": "bao_dong_2",
            "message_vi": "Mực nước vượt báo động 2",
            "message_en": message_en,
            "value": 5.2,
            "threshold": 5.0,
            "window": "5 min",
            "evidence": ["/api/v1/sensors/agent-1/wl-01"],
            "opened_at": T0,
            "changed_at": T0 + dt.timedelta(seconds=n),
        }
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def wait_until_sync(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


# --- webhook ------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A real HTTP receiver: answers ``statuses`` in turn (then 200); may hold its first request."""

    statuses: list[int]
    hold_first: bool = False
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.requests.append((headers, body))
            first = len(self.requests) == 1
            status = self.statuses.pop(0) if self.statuses else 200
        if first and self.hold_first:
            self.release.wait(DEADLINE_S)
        return status

    def alert_ids(self) -> list[int]:
        with self.lock:
            return [uuid.UUID(headers["X-IOC-Alert-Id"]).int - 1 for headers, _ in self.requests]


@pytest.fixture
def serve_receiver() -> Iterator[Callable[[Receiver], str]]:
    servers: list[tuple[ThreadingHTTPServer, Receiver, threading.Thread]] = []

    def serve(receiver: Receiver) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.answer(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, receiver, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/hook"

    try:
        yield serve
    finally:
        for server, receiver, thread in servers:
            receiver.release.set()
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


def webhook_config(url: str, **overrides: Any) -> SinksConfig:
    hook = {"id": "police", "url": url, "secret": SECRET, "max_attempts": 5, "backoff": TINY_BACKOFF} | overrides
    return SinksConfig.model_validate({"webhooks": [hook]})


async def run_until(dispatcher: NotificationDispatcher, done: Callable[[], bool], what: str) -> dict[str, int]:
    try:
        await wait_until(done, what)
    finally:
        await dispatcher.close(timeout_s=5)
    return dispatcher.stats()["webhook:police"]


def test_webhook_is_retried_on_503_and_delivered_signed_on_the_third_try(
    serve_receiver: Callable[[Receiver], str],
) -> None:
    receiver = Receiver(statuses=[503, 503])
    url = serve_receiver(receiver)
    notice = make_notice(7)

    async def scenario() -> dict[str, int]:
        dispatcher = build_dispatcher(webhook_config(url), SseBroker())
        await dispatcher.start()
        dispatcher.publish(notice)
        return await run_until(dispatcher, lambda: dispatcher.stats()["webhook:police"]["delivered"] == 1, "delivery")

    stats = asyncio.run(scenario())
    assert stats == {"delivered": 1, "retried": 2, "failed": 0, "dropped": 0, "queued": 0}
    assert len(receiver.requests) == 3
    delivery_ids = set()
    for headers, body in receiver.requests:
        assert headers["Content-Type"] == "application/json"
        assert headers["X-IOC-Alert-Id"] == str(notice.alert_id)
        assert AlertNotice.model_validate_json(body) == notice
        assert json.loads(body) == notice.model_dump(mode="json")
        assert verify_signature(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert not verify_signature("wrong-secret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert not verify_signature(SECRET, headers[TIMESTAMP_HEADER], body + b"\n", headers[SIGNATURE_HEADER])
        delivery_ids.add(headers[DELIVERY_HEADER])
    assert len(delivery_ids) == 1  # one delivery, three tries
    uuid.UUID(delivery_ids.pop())


def test_webhook_400_is_permanent_and_not_retried(serve_receiver: Callable[[Receiver], str]) -> None:
    receiver = Receiver(statuses=[400])
    url = serve_receiver(receiver)

    async def scenario() -> dict[str, int]:
        dispatcher = build_dispatcher(webhook_config(url), SseBroker())
        await dispatcher.start()
        dispatcher.publish(make_notice(1))
        return await run_until(dispatcher, lambda: dispatcher.stats()["webhook:police"]["failed"] == 1, "failure")

    assert asyncio.run(scenario()) == {"delivered": 0, "retried": 0, "failed": 1, "dropped": 0, "queued": 0}
    assert len(receiver.requests) == 1


def test_webhook_that_never_answers_2xx_fails_after_max_attempts(serve_receiver: Callable[[Receiver], str]) -> None:
    receiver = Receiver(statuses=[503, 429, 408, 500, 502, 200])  # the 6th try would succeed: never reached
    url = serve_receiver(receiver)

    async def scenario() -> dict[str, int]:
        dispatcher = build_dispatcher(webhook_config(url, max_attempts=5), SseBroker())
        await dispatcher.start()
        dispatcher.publish(make_notice(1))
        return await run_until(dispatcher, lambda: dispatcher.stats()["webhook:police"]["failed"] == 1, "failure")

    assert asyncio.run(scenario()) == {"delivered": 0, "retried": 4, "failed": 1, "dropped": 0, "queued": 0}
    assert len(receiver.requests) == 5


def test_unreachable_webhook_is_retried_then_failed(serve_receiver: Callable[[Receiver], str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: connection refused

    async def scenario() -> dict[str, int]:
        dispatcher = build_dispatcher(webhook_config(url, max_attempts=3), SseBroker())
        await dispatcher.start()
        dispatcher.publish(make_notice(1))
        return await run_until(dispatcher, lambda: dispatcher.stats()["webhook:police"]["failed"] == 1, "failure")

    assert asyncio.run(scenario()) == {"delivered": 0, "retried": 2, "failed": 1, "dropped": 0, "queued": 0}


def test_publish_does_not_wait_for_a_hanging_receiver_and_drops_the_oldest(
    serve_receiver: Callable[[Receiver], str],
) -> None:
    receiver = Receiver(statuses=[], hold_first=True)
    url = serve_receiver(receiver)

    async def scenario() -> tuple[dict[str, int], int, dict[str, int]]:
        dispatcher = build_dispatcher(webhook_config(url, queue_size=2, timeout_s=60), SseBroker())
        await dispatcher.start()
        dispatcher.publish(make_notice(0))
        await wait_until(lambda: len(receiver.requests) == 1, "the receiver to hold the first POST")
        for n in range(1, 6):
            dispatcher.publish(make_notice(n))
        # publish() has returned five times while the receiver still holds the first POST.
        while_hanging = dispatcher.stats()["webhook:police"]
        held = len(receiver.requests)
        receiver.release.set()
        stats = await run_until(dispatcher, lambda: dispatcher.stats()["webhook:police"]["delivered"] == 3, "drain")
        return while_hanging, held, stats

    while_hanging, held, stats = asyncio.run(scenario())
    assert held == 1  # the first POST was still held when the five publishes had returned
    assert while_hanging == {"delivered": 0, "retried": 0, "failed": 0, "dropped": 3, "queued": 2}
    assert stats == {"delivered": 3, "retried": 0, "failed": 0, "dropped": 3, "queued": 0}
    assert receiver.alert_ids() == [0, 4, 5]  # 1, 2 and 3 were the oldest waiting when the queue overflowed


# --- MQTT ---------------------------------------------------------------------------------------------


def subscriber(broker: MosquittoBroker, topic: str) -> tuple[Client, queue.Queue[MQTTMessage]]:
    """A connected client whose subscription the broker has acknowledged."""
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"alert-test-sub-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.username_pw_set(broker.username, broker.password)
    connected: queue.Queue[ReasonCode] = queue.Queue()
    subscribed: queue.Queue[int] = queue.Queue()
    messages: queue.Queue[MQTTMessage] = queue.Queue()

    def on_connect(_c: Client, _u: object, _f: ConnectFlags, reason: ReasonCode, _p: Properties | None) -> None:
        connected.put(reason)

    client.on_connect = on_connect
    client.on_subscribe = lambda _c, _u, mid, _codes, _p: subscribed.put(mid)
    client.on_message = lambda _c, _u, message: messages.put(message)
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    assert not connected.get(timeout=DEADLINE_S).is_failure
    _result, mid = client.subscribe(topic, qos=1)
    assert subscribed.get(timeout=DEADLINE_S) == mid
    return client, messages


def mqtt_config(broker: MosquittoBroker, prefix: str, **overrides: Any) -> SinksConfig:
    mqtt = {
        "host": broker.host,
        "port": broker.port,
        "username": broker.username,
        "password": broker.password,
        "client_id": f"alert-test-pub-{uuid.uuid4().hex[:8]}",
        "topic_prefix": prefix,
        "backoff": TINY_BACKOFF,
    } | overrides
    return SinksConfig.model_validate({"mqtt": mqtt})


def test_mqtt_subscriber_receives_the_notice_on_its_topic_with_qos_1(mqtt_broker: MosquittoBroker) -> None:
    prefix = f"test/{uuid.uuid4().hex[:8]}/alerts"
    client, messages = subscriber(mqtt_broker, f"{prefix}/#")
    notice = make_notice(4)
    try:

        async def scenario() -> dict[str, int]:
            dispatcher = build_dispatcher(mqtt_config(mqtt_broker, prefix), SseBroker())
            await dispatcher.start()
            dispatcher.publish(notice)
            try:
                await wait_until(lambda: dispatcher.stats()["mqtt"]["delivered"] == 1, "the PUBACK")
            finally:
                await dispatcher.close(timeout_s=5)
            return dispatcher.stats()["mqtt"]

        stats = asyncio.run(scenario())
        message = messages.get(timeout=DEADLINE_S)
    finally:
        client.loop_stop()
        client.disconnect()
    assert stats == {"delivered": 1, "retried": 0, "failed": 0, "dropped": 0, "queued": 0}
    assert message.topic == f"{prefix}/sensor_threshold/sensor:agent-1/wl-01"
    assert message.qos == 1
    assert AlertNotice.model_validate_json(message.payload) == notice
    assert messages.empty()


def test_unreachable_mqtt_broker_gives_retries_then_failed(mqtt_broker: MosquittoBroker) -> None:
    config = mqtt_config(mqtt_broker, "test/unreachable", port=free_port(), timeout_s=0.2, max_attempts=3)

    async def scenario() -> tuple[dict[str, int], dict[str, int]]:
        dispatcher = build_dispatcher(config, SseBroker())
        await dispatcher.start()
        dispatcher.publish(make_notice(1))
        dispatcher.publish(make_notice(2))
        right_after = dispatcher.stats()["mqtt"]  # publish returned although no broker answers
        try:
            await wait_until(lambda: dispatcher.stats()["mqtt"]["failed"] == 2, "both notices to fail")
        finally:
            await dispatcher.close(timeout_s=5)
        return right_after, dispatcher.stats()["mqtt"]

    right_after, stats = asyncio.run(scenario())
    assert right_after == {"delivered": 0, "retried": 0, "failed": 0, "dropped": 0, "queued": 2}
    assert stats == {"delivered": 0, "retried": 4, "failed": 2, "dropped": 0, "queued": 0}


def test_wrong_mqtt_password_fails_without_blocking(mqtt_broker: MosquittoBroker) -> None:
    config = mqtt_config(mqtt_broker, "test/badauth", password="not-the-password", timeout_s=0.2, max_attempts=2)

    async def scenario() -> dict[str, int]:
        dispatcher = build_dispatcher(config, SseBroker())
        await dispatcher.start()
        dispatcher.publish(make_notice(1))
        try:
            await wait_until(lambda: dispatcher.stats()["mqtt"]["failed"] == 1, "the notice to fail")
        finally:
            await dispatcher.close(timeout_s=5)
        return dispatcher.stats()["mqtt"]

    assert asyncio.run(scenario()) == {"delivered": 0, "retried": 1, "failed": 1, "dropped": 0, "queued": 0}


# --- SSE ----------------------------------------------------------------------------------------------


@dataclass
class StreamServer:
    base_url: str
    app: FastAPI

    @property
    def dispatcher(self) -> NotificationDispatcher:
        dispatcher: NotificationDispatcher = self.app.state.alert_dispatcher
        return dispatcher

    def on_loop(self, call: Callable[[], T]) -> T:
        """Run ``call`` on the server's event loop (where the broker lives) and return its result."""
        loop: asyncio.AbstractEventLoop = self.app.state.loop
        result: Future[T] = Future()
        loop.call_soon_threadsafe(lambda: result.set_result(call()))
        return result.result(timeout=DEADLINE_S)

    def broker(self) -> SseBroker:
        broker: SseBroker = self.app.state.ioc_sse
        return broker


def stream_app(client_queue_size: int) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = SinksConfig.model_validate({"sse": {"client_queue_size": client_queue_size, "heartbeat_s": 0.2}})
        broker = SseBroker(client_queue_size=config.sse.client_queue_size, heartbeat_s=config.sse.heartbeat_s)
        dispatcher = build_dispatcher(config, broker)
        await dispatcher.start()
        app.state.ioc_sse = broker
        app.state.alert_dispatcher = dispatcher
        app.state.loop = asyncio.get_running_loop()
        try:
            yield
        finally:
            await dispatcher.close(timeout_s=2)

    app = FastAPI(lifespan=lifespan)
    app.include_router(stream_router)
    # No database here: the stream's sign-in and area scope are tested in test_area_scope_api.py; this reader
    # is a whole-province user.
    app.dependency_overrides[stream_scope] = StreamScope
    return app


@pytest.fixture
def stream_server(request: pytest.FixtureRequest) -> Iterator[StreamServer]:
    app = stream_app(getattr(request, "param", 50))
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", http="h11", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until_sync(lambda: server.started, "uvicorn to start")
        yield StreamServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=DEADLINE_S)


def read_events(lines: Iterator[str], count: int) -> list[dict[str, str]]:
    """The next ``count`` SSE events (field -> value), skipping comments (heartbeats)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if line == "":
            if current:
                events.append(current)
                current = {}
                if len(events) == count:
                    return events
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        current[name] = value
    raise AssertionError(f"the stream ended after {len(events)} of {count} events")


def wait_for_connected(lines: Iterator[str]) -> None:
    for line in lines:
        if line == ": connected":
            return
    raise AssertionError("the stream ended before it said connected")


def test_sse_client_receives_the_published_notice_as_an_alert_event(stream_server: StreamServer) -> None:
    notice = make_notice(5)
    url = f"{stream_server.base_url}/api/v1/alerts/stream"
    with httpx.Client(timeout=DEADLINE_S) as client, client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        wait_for_connected(lines)
        assert stream_server.broker().client_count == 1
        stream_server.dispatcher.publish(notice)  # from this thread: handed to the server's loop
        (event,) = read_events(lines, 1)
    assert event["event"] == "alert"
    assert event["id"] == f"{notice.alert_id}:{notice.changed_at.isoformat()}"
    assert AlertNotice.model_validate_json(event["data"]) == notice
    wait_until_sync(lambda: stream_server.broker().client_count == 0, "the unsubscribe on disconnect")


def test_sse_filters_by_severity_and_rule_kind(stream_server: StreamServer) -> None:
    url = f"{stream_server.base_url}/api/v1/alerts/stream"
    with httpx.Client(timeout=DEADLINE_S) as client:
        bad = client.get(url, params={"severity": "panic"})
        assert bad.status_code == 422
        with client.stream("GET", url, params={"severity": "critical", "rule_kind": "sensor_threshold"}) as response:
            lines = response.iter_lines()
            wait_for_connected(lines)
            stream_server.dispatcher.publish(make_notice(1, severity="warning"))
            stream_server.dispatcher.publish(make_notice(2, severity="critical"))
            (event,) = read_events(lines, 1)
    assert AlertNotice.model_validate_json(event["data"]).alert_id == uuid.UUID(int=3)


def test_a_client_that_stops_reading_does_not_hold_back_the_others(stream_server: StreamServer) -> None:
    # A raw socket with a small receive buffer that reads the headers and then nothing more.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.settimeout(DEADLINE_S)
    host, port = stream_server.base_url.removeprefix("http://").split(":")
    stalled.connect((host, int(port)))
    stalled.sendall(f"GET /api/v1/alerts/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    seen = b""
    while b": connected" not in seen:
        chunk = stalled.recv(1024)
        assert chunk, f"the server closed the stalled client's stream: {seen!r}"
        seen += chunk
    big = "x" * 8000  # large frames fill the stalled client's socket buffers quickly
    published: list[int] = []
    received: list[int] = []
    url = f"{stream_server.base_url}/api/v1/alerts/stream"
    try:
        with httpx.Client(timeout=DEADLINE_S) as client, client.stream("GET", url) as response:
            lines = response.iter_lines()
            wait_for_connected(lines)
            wait_until_sync(lambda: stream_server.broker().client_count == 2, "both clients to subscribe")
            deadline = time.monotonic() + 120
            while stream_server.broker().stats()["dropped"] == 0:
                assert time.monotonic() < deadline, "the stalled client never overflowed its queue"
                batch = range(len(published), len(published) + 20)
                for n in batch:
                    stream_server.dispatcher.publish(make_notice(n, message_en=big))
                published.extend(batch)
                # The reading client keeps up with every batch while the other one is stuck.
                events = read_events(lines, len(batch))
                received.extend(AlertNotice.model_validate_json(e["data"]).alert_id.int - 1 for e in events)
            clients = stream_server.on_loop(stream_server.broker().client_stats)
            assert received == published
            dropped = sorted(client["dropped"] for client in clients.values())
            assert dropped[0] == 0  # the reading client lost nothing
            assert dropped[1] == stream_server.broker().stats()["dropped"] > 0
    finally:
        stalled.close()
    wait_until_sync(lambda: stream_server.broker().client_count == 0, "both clients to be unsubscribed")
