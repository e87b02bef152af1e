"""MQTT sink: each notice's JSON is published to ``{topic_prefix}/{rule_kind}/{subject}``.

paho-mqtt 2.x (callback API version 2, MQTT v5) runs its network loop in its own thread
(``loop_start``) and reconnects by itself with a growing delay. ``deliver`` publishes and waits
for the broker's PUBACK (QoS 1) through ``MQTTMessageInfo.wait_for_publish`` in a worker thread,
so the event loop never waits on the network; no PUBACK within ``timeout_s`` is a failed try that
the dispatcher retries. QoS 1 is at-least-once: a receiver may see a notice twice and should key
on ``alert_id`` + ``changed_at``.

Topic safety: MQTT wildcards (``+``, ``#``) and NUL in ``rule_kind`` or ``subject`` become ``_``.
A ``/`` in the subject is kept, so its parts become topic levels: ``sensor:agent-1/wl-01`` is
published to ``ioc/v1/alerts/sensor_threshold/sensor:agent-1/wl-01`` and a subscriber can pick
one agent's sensors with ``ioc/v1/alerts/sensor_threshold/sensor:agent-1/#``. Empty levels
(``a//b``, a leading or trailing ``/``) become ``_`` so every level names something.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from typing import Any, Final

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.sinks.config import MqttSinkConfig
from central_ingest.alerts.sinks.dispatcher import RetryableDeliveryError
from central_ingest.mqtt_client import new_client

log = logging.getLogger(__name__)

_UNSAFE: Final = str.maketrans({"+": "_", "#": "_", "\0": "_"})
PAHO_MAX_QUEUED: Final = 1000
"""paho's own outgoing queue is bounded too; a full one fails the try (the dispatcher retries)."""


def topic_level(text: str) -> str:
    """``text`` with MQTT wildcards and NUL replaced by ``_`` (``/`` kept), empty levels as ``_``."""
    safe = text.translate(_UNSAFE)
    return "/".join(level or "_" for level in safe.split("/"))


def alert_topic(topic_prefix: str, notice: AlertNotice) -> str:
    """Where ``notice`` is published: ``{topic_prefix}/{rule_kind}/{subject}``, made topic-safe."""
    return f"{topic_prefix}/{topic_level(notice.rule_kind.replace('/', '_'))}/{topic_level(notice.subject)}"


class MqttSink:
    """Publishes notices to one broker; see the module docstring."""

    def __init__(self, config: MqttSinkConfig) -> None:
        self._config = config
        self._client: Client | None = None
        self._connected = threading.Event()
        self._closing = False

    @property
    def name(self) -> str:
        return "mqtt"

    async def start(self) -> None:
        """Begin connecting in paho's thread; returns at once (an unreachable broker is retried by paho)."""
        if self._client is not None:
            return
        config = self._config
        client = new_client(config)
        # paho takes whole seconds and does not jitter; one client per process needs no jitter.
        client.reconnect_delay_set(
            min_delay=max(1, math.ceil(config.backoff.base_s)), max_delay=max(1, math.ceil(config.backoff.ceiling_s))
        )
        client.max_queued_messages_set(PAHO_MAX_QUEUED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client
        # connect_async resolves and connects inside paho's thread: nothing here waits on the network.
        client.connect_async(config.host, config.port, keepalive=config.keepalive_s)
        client.loop_start()

    async def close(self) -> None:
        client, self._client = self._client, None
        self._closing = True
        self._connected.set()  # wakes a try waiting for the connection; it sees _closing
        if client is None:
            return
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)

    def _on_connect(
        self, _client: Client, _userdata: Any, _flags: ConnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        if reason.is_failure:
            log.warning("alert MQTT sink: broker %s:%d refused: %s", self._config.host, self._config.port, reason)
            return
        log.info("alert MQTT sink: connected to %s:%d", self._config.host, self._config.port)
        self._connected.set()

    def _on_disconnect(
        self,
        _client: Client,
        _userdata: Any,
        _flags: DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if not self._closing:
            self._connected.clear()
            log.warning("alert MQTT sink: disconnected from %s:%d: %s", self._config.host, self._config.port, reason)

    async def deliver(self, notice: AlertNotice) -> None:
        client = self._client
        if client is None or self._closing:
            raise RetryableDeliveryError("the MQTT sink is not started")
        timeout_s = self._config.timeout_s
        if not self._connected.is_set():
            await asyncio.to_thread(self._connected.wait, timeout_s)
        if self._closing or not client.is_connected():
            raise RetryableDeliveryError(f"not connected to {self._config.host}:{self._config.port}")
        topic = alert_topic(self._config.topic_prefix, notice)
        info = client.publish(topic, notice.model_dump_json().encode(), qos=self._config.qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise RetryableDeliveryError(f"publish to {topic!r} failed: {info.rc.name}")
        await asyncio.to_thread(_wait_for_ack, info, timeout_s)
        if not info.is_published():
            raise RetryableDeliveryError(f"no PUBACK for {topic!r} within {timeout_s} s")


def _wait_for_ack(info: MQTTMessageInfo, timeout_s: float) -> None:
    try:
        info.wait_for_publish(timeout_s)
    except (RuntimeError, ValueError) as error:  # paho's way to say the message was not queued or was lost
        raise RetryableDeliveryError(f"publish failed: {error}") from error
