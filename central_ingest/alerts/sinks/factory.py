"""Builds the broker and the dispatcher from ``SinksConfig``: the one place that knows every sink kind."""

from __future__ import annotations

import random

from central_ingest.alerts.sinks.config import SinksConfig
from central_ingest.alerts.sinks.dispatcher import AlertSink, NotificationDispatcher, RetryPolicy
from central_ingest.alerts.sinks.mqtt_sink import MqttSink
from central_ingest.alerts.sinks.sse import SseBroker
from central_ingest.alerts.sinks.webhook import WebhookSink
from ioc_common.backoff import BackoffConfig

SSE_POLICY = RetryPolicy(queue_size=1000, max_attempts=1, backoff=BackoffConfig())
"""The broker's deliver only appends to memory and cannot fail; its lane never waits long."""


def build_sse_broker(config: SinksConfig) -> SseBroker:
    return SseBroker(client_queue_size=config.sse.client_queue_size, heartbeat_s=config.sse.heartbeat_s)


def build_dispatcher(
    config: SinksConfig, sse: SseBroker, *, rng: random.Random | None = None
) -> NotificationDispatcher:
    """The SSE broker first, then each webhook, then MQTT; secrets are read here (a bad secret_file fails now)."""
    sinks: list[tuple[AlertSink, RetryPolicy]] = [(sse, SSE_POLICY)]
    for webhook in config.webhooks:
        sink = WebhookSink(webhook.id, str(webhook.url), webhook.signing_key(), timeout_s=webhook.timeout_s)
        sinks.append((sink, RetryPolicy(webhook.queue_size, webhook.max_attempts, webhook.backoff)))
    if config.mqtt is not None:
        mqtt = config.mqtt
        sinks.append((MqttSink(mqtt), RetryPolicy(mqtt.queue_size, mqtt.max_attempts, mqtt.backoff)))
    return NotificationDispatcher(sinks, rng=rng)
