"""Alert sinks without the network: configuration, signatures, topics, the dispatcher's queues and
retries (with in-memory test sinks), and the SSE broker's fan-out."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import random
import threading
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError

from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.sinks import (
    MqttSinkConfig,
    NotificationDispatcher,
    PermanentDeliveryError,
    RetryableDeliveryError,
    RetryPolicy,
    SinksConfig,
    SseBroker,
    WebhookSinkConfig,
    build_dispatcher,
    verify_signature,
)
from central_ingest.alerts.sinks.mqtt_sink import alert_topic, topic_level
from central_ingest.alerts.sinks.routes import SESSION_ENDED_FRAME, StreamEndedError, StreamScope, _frames
from central_ingest.alerts.sinks.sse import HEARTBEAT_FRAME, StreamFilter, alert_frame
from central_ingest.alerts.sinks.webhook import delivery_id, notice_body, sign
from ioc_common.backoff import BackoffConfig

T0 = dt.datetime(2025, 3, 1, 8, 30, tzinfo=dt.UTC)
TINY_BACKOFF = BackoffConfig(base_s=0.001, ceiling_s=0.002)


def make_notice(
    n: int = 0, *, rule_kind: str = "sensor_threshold", severity: str = "warning", subject: str = "sensor:agent-1/wl-01"
) -> AlertNotice:
    return AlertNotice.model_validate(
        {
            "alert_id": uuid.UUID(int=n + 1),
            "rule_id": "water-level-hn",
            "rule_kind": rule_kind,
            "subject": subject,
            "status": "open",
            "transition": "opened",
            "severity": severity,
            "level": "bao_dong_2",
            "message_vi": "Mực nước vượt báo động 2",
            "message_en": "Water level above alert level 2",
            "value": 5.2,
            "baseline": None,
            "threshold": 5.0,
            "window": "5 min",
            "evidence": ["/api/v1/sensors/agent-1/wl-01"],
            "opened_at": T0,
            "changed_at": T0 + dt.timedelta(seconds=n),
        }
    )


# --- configuration ------------------------------------------------------------------------------------


def test_defaults_turn_on_only_the_sse_stream() -> None:
    config = SinksConfig()
    assert config.webhooks == ()
    assert config.mqtt is None
    assert (config.sse.client_queue_size, config.sse.heartbeat_s) == (100, 15.0)
    mqtt = MqttSinkConfig(host="broker")
    assert (mqtt.port, mqtt.qos, mqtt.topic_prefix, mqtt.queue_size, mqtt.max_attempts) == (
        1883,
        1,
        "ioc/v1/alerts",
        1000,
        8,
    )
    webhook = WebhookSinkConfig(id="police", url="https://example.test/hook", secret="topsecret-42")
    assert (webhook.timeout_s, webhook.max_attempts, webhook.queue_size) == (5.0, 8, 1000)
    assert "topsecret-42" not in repr(webhook)  # SecretStr hides the key


def test_webhook_needs_exactly_one_secret_source(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one of secret and secret_file"):
        WebhookSinkConfig(id="a", url="https://example.test/")
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-from-file\nignored second line\n")
    with pytest.raises(ValidationError, match="exactly one of secret and secret_file"):
        WebhookSinkConfig.model_validate({"id": "a", "url": "https://x.test/", "secret": "k", "secret_file": key_file})
    from_file = WebhookSinkConfig.model_validate({"id": "a", "url": "https://x.test/", "secret_file": key_file})
    assert from_file.signing_key() == b"s3cret-from-file"
    missing = WebhookSinkConfig.model_validate({"id": "a", "url": "https://x.test/", "secret_file": tmp_path / "no"})
    with pytest.raises(ValueError, match="cannot read secret_file"):
        missing.signing_key()
    with pytest.raises(ValidationError, match="secret is empty"):
        WebhookSinkConfig.model_validate({"id": "a", "url": "https://x.test/", "secret": "  "})


def test_bad_sink_configuration_is_refused_with_a_clear_error() -> None:
    hook = {"id": "a", "url": "https://x.test/", "secret": "k"}
    with pytest.raises(ValidationError, match=r"webhook ids must be unique, repeated: \['a'\]"):
        SinksConfig.model_validate({"webhooks": [hook, hook]})
    with pytest.raises(ValidationError, match="must not hold"):
        MqttSinkConfig(host="b", topic_prefix="ioc/+/alerts")
    with pytest.raises(ValidationError, match="must not hold"):
        MqttSinkConfig(host="b", topic_prefix="ioc/alerts/")
    with pytest.raises(ValidationError, match="extra"):
        SinksConfig.model_validate({"sse": {"heartbeat": 3}})
    with pytest.raises(ValidationError, match="url"):
        SinksConfig.model_validate({"webhooks": [hook | {"url": "ftp://x.test/"}]})


# --- webhook signatures -------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"key", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert sign(b"key", 1_700_000_000, body) == f"sha256={expected}"


def test_verify_signature_accepts_only_the_right_key_body_and_a_fresh_timestamp() -> None:
    body = notice_body(make_notice())
    header = sign(b"shared", 1_700_000_000, body)
    now = 1_700_000_000 + 10
    assert verify_signature("shared", "1700000000", body, header, now=now)
    assert verify_signature(b"shared", 1_700_000_000, body, header, now=now)
    assert not verify_signature("other", "1700000000", body, header, now=now)
    assert not verify_signature("shared", "1700000000", body + b" ", header, now=now)
    assert not verify_signature("shared", "1700000001", body, header, now=now)
    assert not verify_signature("shared", "1700000000", body, "sha256=" + "0" * 64, now=now)
    assert not verify_signature("shared", "yesterday", body, header, now=now)
    # Replays: 5 minutes is the window, either way (a receiver's clock may be behind).
    assert verify_signature("shared", "1700000000", body, header, now=1_700_000_000 + 300)
    assert not verify_signature("shared", "1700000000", body, header, now=1_700_000_000 + 301)
    assert not verify_signature("shared", "1700000000", body, header, now=1_700_000_000 - 301)
    assert verify_signature("shared", "1700000000", body, header, max_age_s=None, now=1_800_000_000)


def test_body_is_the_notice_json_and_delivery_ids_are_stable_per_notice() -> None:
    notice = make_notice(3)
    assert json.loads(notice_body(notice)) == notice.model_dump(mode="json")
    assert delivery_id("police", notice) == delivery_id("police", make_notice(3))
    assert delivery_id("police", notice) != delivery_id("police", make_notice(4))
    assert delivery_id("police", notice) != delivery_id("chatbot", notice)


# --- MQTT topics --------------------------------------------------------------------------------------


def test_topics_keep_slashes_and_lose_wildcards() -> None:
    assert alert_topic("ioc/v1/alerts", make_notice()) == "ioc/v1/alerts/sensor_threshold/sensor:agent-1/wl-01"
    assert topic_level("junction:a+b#c\0d") == "junction:a_b_c_d"
    assert topic_level("/a//b/") == "_/a/_/b/_"
    assert topic_level("") == "_"
    odd = make_notice().model_copy(update={"rule_kind": "kind/with+slash", "subject": "x#"})
    assert alert_topic("p", odd) == "p/kind_with_slash/x_"


# --- dispatcher ---------------------------------------------------------------------------------------


class ScriptedSink:
    """Fails the first ``failures`` tries (with ``error``), then records what it delivered."""

    def __init__(self, name: str, failures: int = 0, error: Exception | None = None) -> None:
        self._name = name
        self._failures = failures
        self._error = error or RetryableDeliveryError("receiver down")
        self.tries = 0
        self.delivered: list[AlertNotice] = []
        self.gate: asyncio.Event | None = None

    @property
    def name(self) -> str:
        return self._name

    async def deliver(self, notice: AlertNotice) -> None:
        self.tries += 1
        if self.gate is not None:
            await self.gate.wait()
        if self._failures > 0:
            self._failures -= 1
            raise self._error
        self.delivered.append(notice)


def policy(queue_size: int = 10, max_attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(queue_size=queue_size, max_attempts=max_attempts, backoff=TINY_BACKOFF)


async def wait_until(condition: object, deadline_s: float = 10.0) -> None:
    assert callable(condition)
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.005)


def test_retries_then_delivers_and_a_broken_sink_does_not_hold_back_the_others() -> None:
    flaky = ScriptedSink("flaky", failures=2)
    broken = ScriptedSink("broken", failures=99)
    healthy = ScriptedSink("healthy")

    async def scenario() -> dict[str, dict[str, int]]:
        dispatcher = NotificationDispatcher([(flaky, policy()), (broken, policy()), (healthy, policy())])
        await dispatcher.start()
        dispatcher.publish(make_notice(1))
        await wait_until(lambda: dispatcher.stats()["broken"]["failed"] == 1 and flaky.delivered)
        await dispatcher.close(timeout_s=5)
        return dispatcher.stats()

    stats = asyncio.run(scenario())
    assert stats == {
        "flaky": {"delivered": 1, "retried": 2, "failed": 0, "dropped": 0, "queued": 0},
        "broken": {"delivered": 0, "retried": 2, "failed": 1, "dropped": 0, "queued": 0},
        "healthy": {"delivered": 1, "retried": 0, "failed": 0, "dropped": 0, "queued": 0},
    }
    assert (flaky.tries, broken.tries, healthy.tries) == (3, 3, 1)


def test_a_permanent_error_is_not_retried() -> None:
    rejecting = ScriptedSink("rejecting", failures=1, error=PermanentDeliveryError("HTTP 400"))

    async def scenario() -> dict[str, int]:
        dispatcher = NotificationDispatcher([(rejecting, policy(max_attempts=5))])
        await dispatcher.start()
        dispatcher.publish(make_notice(1))
        dispatcher.publish(make_notice(2))
        await dispatcher.close(timeout_s=5)
        return dispatcher.stats()["rejecting"]

    assert asyncio.run(scenario()) == {"delivered": 1, "retried": 0, "failed": 1, "dropped": 0, "queued": 0}
    assert [n.alert_id for n in rejecting.delivered] == [uuid.UUID(int=3)]


def test_a_full_queue_drops_its_oldest_notices_and_counts_them() -> None:
    slow = ScriptedSink("slow")

    async def scenario() -> tuple[dict[str, int], dict[str, int]]:
        slow.gate = asyncio.Event()
        dispatcher = NotificationDispatcher([(slow, policy(queue_size=2))])
        await dispatcher.start()
        dispatcher.publish(make_notice(0))
        await wait_until(lambda: slow.tries == 1)  # notice 0 is in flight, held by the gate
        for n in range(1, 6):
            dispatcher.publish(make_notice(n))  # returns at once although the sink is stuck
        while_stuck = dispatcher.stats()["slow"]
        slow.gate.set()
        await dispatcher.close(timeout_s=5)
        return while_stuck, dispatcher.stats()["slow"]

    while_stuck, final = asyncio.run(scenario())
    assert while_stuck == {"delivered": 0, "retried": 0, "failed": 0, "dropped": 3, "queued": 2}
    assert final == {"delivered": 3, "retried": 0, "failed": 0, "dropped": 3, "queued": 0}
    assert [n.alert_id.int - 1 for n in slow.delivered] == [0, 4, 5]


def test_close_gives_up_after_its_timeout_and_counts_the_rest_as_dropped() -> None:
    stuck = ScriptedSink("stuck")

    async def scenario() -> dict[str, int]:
        stuck.gate = asyncio.Event()  # never set
        dispatcher = NotificationDispatcher([(stuck, policy())])
        await dispatcher.start()
        for n in range(3):
            dispatcher.publish(make_notice(n))
        await wait_until(lambda: stuck.tries == 1)
        await dispatcher.close(timeout_s=0.05)
        dispatcher.publish(make_notice(9))  # after close: sent nowhere, still no exception
        assert dispatcher.dropped_after_close == 1
        return dispatcher.stats()["stuck"]

    assert asyncio.run(scenario()) == {"delivered": 0, "retried": 0, "failed": 0, "dropped": 3, "queued": 0}


def test_publish_before_start_and_from_another_thread_is_delivered_in_order() -> None:
    sink = ScriptedSink("ordered")

    async def scenario() -> None:
        dispatcher = NotificationDispatcher([(sink, policy(queue_size=100))])
        dispatcher.publish(make_notice(0))  # before start: waits in the queue
        await dispatcher.start()

        def publish_three() -> None:
            for n in range(1, 4):
                dispatcher.publish(make_notice(n))

        worker = threading.Thread(target=publish_three)
        worker.start()
        await asyncio.to_thread(worker.join)
        await wait_until(lambda: len(sink.delivered) == 4)
        await dispatcher.close(timeout_s=5)

    asyncio.run(scenario())
    assert [n.alert_id.int - 1 for n in sink.delivered] == [0, 1, 2, 3]


class FailingStartSink(ScriptedSink):
    async def start(self) -> None:
        raise ConnectionError("broker unreachable at start")

    async def close(self) -> None:
        raise OSError("already gone")


def test_a_sink_that_fails_to_start_or_close_does_not_stop_the_dispatcher() -> None:
    odd = FailingStartSink("odd")
    fine = ScriptedSink("fine")

    async def scenario() -> dict[str, dict[str, int]]:
        dispatcher = NotificationDispatcher([(odd, policy()), (fine, policy())])
        await dispatcher.start()
        dispatcher.publish(make_notice(1))
        await dispatcher.close(timeout_s=5)
        return dispatcher.stats()

    stats = asyncio.run(scenario())
    assert stats["odd"]["delivered"] == 1  # its deliver works; start failing only got logged
    assert stats["fine"]["delivered"] == 1


def test_sink_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="sink names must be unique"):
        NotificationDispatcher([(ScriptedSink("x"), policy()), (ScriptedSink("x"), policy())])


def test_build_dispatcher_names_every_configured_sink(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k2\n")
    config = SinksConfig.model_validate(
        {
            "webhooks": [
                {"id": "police", "url": "https://police.test/hook", "secret": "k1"},
                {"id": "chat", "url": "http://chat.test/hook", "secret_file": str(key_file)},
            ],
            "mqtt": {"host": "broker.test"},
        }
    )
    dispatcher = build_dispatcher(config, SseBroker(), rng=random.Random(1))
    assert dispatcher.sink_names == ["sse", "webhook:police", "webhook:chat", "mqtt"]
    assert set(dispatcher.stats()["mqtt"]) == {"delivered", "retried", "failed", "dropped", "queued"}


# --- SSE broker ---------------------------------------------------------------------------------------


def test_sse_frame_format() -> None:
    notice = make_notice(2)
    frame = alert_frame(notice).decode()
    lines = frame.split("\n")
    assert lines[0] == "event: alert"
    assert lines[1] == f"id: {uuid.UUID(int=3)}:2025-03-01T08:30:02+00:00"
    assert lines[2].startswith("data: ")
    assert AlertNotice.model_validate_json(lines[2].removeprefix("data: ")) == notice
    assert lines[3:] == ["", ""]  # a blank line ends the event


def test_broker_filters_and_a_slow_client_only_loses_its_own_oldest_notices() -> None:
    async def scenario() -> None:
        broker = SseBroker(client_queue_size=3, heartbeat_s=0.01)
        reader = broker.subscribe()
        stalled = broker.subscribe()
        critical_only = broker.subscribe(StreamFilter(severity="critical"))
        water_only = broker.subscribe(StreamFilter(rule_kind="sensor_threshold"))
        received: list[int] = []
        for n in range(10):
            await broker.deliver(make_notice(n, severity="critical" if n == 7 else "warning"))
            notice = await reader.next(1.0)
            assert notice is not None
            received.append(notice.alert_id.int - 1)
        await broker.deliver(make_notice(10, rule_kind="silence"))
        assert received == list(range(10))
        assert stalled.dropped == 8  # 11 offered, 3 kept
        assert [(await stalled.next(1.0)).alert_id.int - 1 for _ in range(3)] == [8, 9, 10]  # type: ignore[union-attr]
        assert await stalled.next(0.01) is None  # empty: the route sends a heartbeat
        critical = await critical_only.next(1.0)
        assert critical is not None
        assert critical.alert_id.int - 1 == 7
        assert critical_only.queued == 0
        assert water_only.dropped == 7
        assert water_only.queued == 3
        assert broker.stats() == {
            "clients": 4,
            "fanned_out": 11,
            "dropped": 8 + 7,
            "scope_refresh_failures": 0,
            "streams_revoked": 0,
        }
        broker.unsubscribe(stalled)
        broker.unsubscribe(stalled)  # twice is harmless
        assert broker.client_count == 3

    asyncio.run(scenario())


# --- the stream route's recheck of its user (routes._frames; the real session lookup: test_stream_revocation) ---

OWN, OTHER = "sensor:agent-a/tram-a", "sensor:agent-b/tram-b"


class FakeRecheck:
    """What the route's recheck answers, in turn: a subject set, or an exception to raise."""

    def __init__(self, *answers: frozenset[str] | Exception | None) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> frozenset[str] | None:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def _next_alert_subject(frames: AsyncGenerator[bytes, None]) -> str:
    async for frame in frames:
        if frame.startswith(b"event: alert"):
            data = frame.decode().split("\n")[2].removeprefix("data: ")
            return AlertNotice.model_validate_json(data).subject
    raise AssertionError("the stream ended")


def test_a_recheck_that_finds_the_session_gone_ends_the_stream() -> None:
    async def scenario() -> None:
        broker = SseBroker(heartbeat_s=0.01)
        recheck = FakeRecheck(None, StreamEndedError("session ended"))
        frames = _frames(broker, StreamFilter(), StreamScope(None, recheck), recheck_every_s=0.05)
        seen = [frame async for frame in frames]
        assert seen[0].endswith(b": connected\n\n")
        assert seen[-1] == SESSION_ENDED_FRAME
        assert recheck.calls == 2
        assert broker.stats()["streams_revoked"] == 1
        assert broker.client_count == 0  # unsubscribed

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_recheck_applies_the_fresh_areas_before_a_queued_notice_goes_out() -> None:
    async def scenario() -> None:
        broker = SseBroker(heartbeat_s=10)
        recheck = FakeRecheck(frozenset({OTHER}))  # the user was moved to the other commune
        wanted = StreamFilter(subjects=frozenset({OWN}))
        frames = _frames(broker, wanted, StreamScope(frozenset({OWN}), recheck), recheck_every_s=0.01)
        assert (await anext(frames)).endswith(b": connected\n\n")
        await broker.deliver(make_notice(0, subject=OWN))  # queued under the old set
        await asyncio.sleep(0.02)  # the recheck is due when the stream takes it
        reading = asyncio.create_task(_next_alert_subject(frames))
        await asyncio.sleep(0.05)
        assert recheck.calls >= 1
        await broker.deliver(make_notice(1, subject=OTHER))
        assert await reading == OTHER  # OWN was never sent
        await frames.aclose()
        assert broker.client_count == 0

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_recheck_the_database_cannot_answer_keeps_the_previous_set_and_is_counted() -> None:
    async def scenario() -> None:
        broker = SseBroker(heartbeat_s=0.01)
        recheck = FakeRecheck(psycopg.OperationalError("connection refused"))
        frames = _frames(broker, StreamFilter(subjects=frozenset({OWN})), StreamScope(frozenset({OWN}), recheck), 0.02)
        assert (await anext(frames)).endswith(b": connected\n\n")
        while recheck.calls < 2:
            await anext(frames)
        for n, subject in enumerate((OTHER, OWN)):
            await broker.deliver(make_notice(n, subject=subject))
        assert await _next_alert_subject(frames) == OWN
        assert broker.stats()["scope_refresh_failures"] >= 2
        assert broker.stats()["streams_revoked"] == 0
        await frames.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_heartbeats_keep_coming_between_rechecks() -> None:
    async def scenario() -> None:
        broker = SseBroker(heartbeat_s=0.02)
        recheck = FakeRecheck(None)
        frames = _frames(broker, StreamFilter(), StreamScope(None, recheck), recheck_every_s=0.05)
        await anext(frames)
        beats = [await anext(frames) for _ in range(10)]
        assert set(beats) == {HEARTBEAT_FRAME}
        assert 2 <= recheck.calls <= 6  # about every 0.05 s over ~0.2 s
        await frames.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 10))
