"""Alert notification sinks: signed webhooks, an MQTT topic, and a server-sent event stream.

``build_dispatcher(config, sse)`` gives a ``NotificationDispatcher`` whose ``publish(notice)`` the
rule engine calls for every alert transition; it never blocks and never raises. See
docs/alert_sinks.md for the wire formats and how a webhook receiver verifies a signature.
"""

from __future__ import annotations

from central_ingest.alerts.sinks.config import MqttSinkConfig, SinksConfig, SseConfig, WebhookSinkConfig
from central_ingest.alerts.sinks.dispatcher import (
    AlertSink,
    NotificationDispatcher,
    PermanentDeliveryError,
    RetryableDeliveryError,
    RetryPolicy,
)
from central_ingest.alerts.sinks.factory import build_dispatcher, build_sse_broker
from central_ingest.alerts.sinks.sse import SseBroker
from central_ingest.alerts.sinks.webhook import verify_signature

__all__ = [
    "AlertSink",
    "MqttSinkConfig",
    "NotificationDispatcher",
    "PermanentDeliveryError",
    "RetryPolicy",
    "RetryableDeliveryError",
    "SinksConfig",
    "SseBroker",
    "SseConfig",
    "WebhookSinkConfig",
    "build_dispatcher",
    "build_sse_broker",
    "verify_signature",
]
