"""The MQTT transport: one batch = one QoS 1 PUBLISH, done when CENTRAL (not the broker) acknowledges it.

MQTT 5 (default): each batch goes to ``{prefix}/agents/{agent_id}/events`` with a ResponseTopic
``{prefix}/agents/{agent_id}/acks/{client_id}`` (this client subscribes to it) and a fresh
CorrelationData. Central's ingest worker commits the batch, THEN publishes its ``BatchAck`` JSON
to that topic with the same correlation data and the outcome in user property ``ioc-ack``
(``stored`` | ``refused`` | ``too_large``). So:

- reply ``stored`` -> ``Acked(ack)``; ``refused`` -> ``Refused``; ``too_large`` -> ``TooLarge``;
- no reply within ``timeout_s``, a disconnect while waiting, no broker connection -> ``Retry``.
  The resend carries the same event ids, so central stores nothing twice (a worker that died
  after its commit but before its reply costs duplicates, not data). A batch published while no
  ingest worker is subscribed is dropped by the broker: the missing reply catches that too.

MQTT 3.1.1 has no response topic: the broker's PUBACK is taken as the ack (``Acked(None)``).
That is weaker: the broker, not central, then holds the batch, and mosquitto drops a client's
queued messages past ``max_queued_messages`` (1000 by default) while no worker reads them.

The broker connection runs in paho's network thread (``loop_start``); reconnects wait a delay
drawn from ``reconnect_backoff`` (full jitter). ``send`` is called by one thread at a time.
"""

from __future__ import annotations

import gzip
import logging
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage, error_string
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge_agent.delivery.config import MqttUplinkConfig, UplinkConfig
from edge_agent.delivery.transport import Acked, Refused, Retry, SendOutcome, TooLarge, batch_body
from event_contract import BatchAck
from ioc_common.backoff import Backoff
from ioc_common.mqtt_connection import connect_async, new_client, set_next_reconnect_delay

log = logging.getLogger(__name__)

ACK_OUTCOME_PROPERTY: Final = "ioc-ack"
"""User property of central's reply naming the outcome (central_ingest.ingest.mqtt_handler has the same)."""


def events_topic(prefix: str, agent_id: str) -> str:
    """Where ``agent_id`` publishes its batches (the scheme of docs/mqtt_topics.md)."""
    return f"{prefix}/agents/{agent_id}/events"


def acks_topic(prefix: str, agent_id: str, client_id: str) -> str:
    """Where central replies to the batches this client publishes."""
    return f"{prefix}/agents/{agent_id}/acks/{client_id}"


@dataclass
class _Waiter:
    """One send waiting for central's reply (filled in by the network thread)."""

    done: threading.Event = field(default_factory=threading.Event)
    outcome: SendOutcome | None = None


class MqttTransport:
    """Publishes batches of one agent to the broker and waits for central's acks; see the module doc."""

    def __init__(self, agent_id: str, config: UplinkConfig, *, rng: random.Random | None = None) -> None:
        if config.mqtt is None:
            raise ValueError("the MQTT transport needs central.mqtt")
        mqtt = config.mqtt
        self._agent_id = agent_id
        self._mqtt = mqtt
        self._gzip = config.gzip
        self._timeout_s = config.timeout_s
        self._v5 = mqtt.protocol == "5"
        self.client_id = mqtt.client_id_for(agent_id)
        if any(ch in self.client_id for ch in "/+#\0"):
            raise ValueError(f"mqtt client_id {self.client_id!r} is used as a topic level: no / + # NUL")
        self.topic = events_topic(mqtt.topic_prefix, agent_id)
        self.acks_topic = acks_topic(mqtt.topic_prefix, agent_id, self.client_id)
        self._backoff = Backoff(mqtt.reconnect_backoff, rng or random.Random())  # noqa: S311 - jitter
        self._lock = threading.Lock()
        self._waiters: dict[bytes, _Waiter] = {}
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._last_error = "not connected yet"
        self.stale_acks = 0
        """Replies that matched no waiting send (late, after a retry already went out): ignored."""
        self._client = self._new_client(mqtt)
        self._connect()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def send(self, agent_id: str, payloads: Sequence[bytes]) -> SendOutcome:
        if agent_id != self._agent_id:
            raise ValueError(f"this MQTT transport publishes for agent {self._agent_id!r}, not {agent_id!r}")
        if not self._ready.wait(self._mqtt.connect_wait_s):
            return Retry(f"no connection to broker {self._mqtt.host}:{self._mqtt.port} ({self._last_error})")
        body = batch_body(agent_id, payloads)
        if self._gzip:
            body = gzip.compress(body, compresslevel=6)
        return self._send_v5(body) if self._v5 else self._send_v311(body)

    def close(self) -> None:
        self._closing.set()
        self._ready.clear()
        self._wake_all(Retry("transport closed"))
        self._client.disconnect()
        self._client.loop_stop()

    # -- one try ----------------------------------------------------------------------------------

    def _send_v5(self, body: bytes) -> SendOutcome:
        correlation = uuid.uuid4().bytes
        waiter = _Waiter()
        with self._lock:
            self._waiters[correlation] = waiter
        try:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ResponseTopic = self.acks_topic
            properties.CorrelationData = correlation
            info = self._client.publish(self.topic, body, qos=1, retain=False, properties=properties)
            refused = _publish_error(info.rc, len(body))
            if refused is not None:
                return refused
            if not waiter.done.wait(self._timeout_s):
                return Retry(
                    f"no ack from central within {self._timeout_s:g} s (is a central MQTT ingest worker subscribed?)"
                )
            assert waiter.outcome is not None
            return waiter.outcome
        finally:
            with self._lock:
                self._waiters.pop(correlation, None)

    def _send_v311(self, body: bytes) -> SendOutcome:
        info = self._client.publish(self.topic, body, qos=1, retain=False)
        refused = _publish_error(info.rc, len(body))
        if refused is not None:
            return refused
        try:
            info.wait_for_publish(self._timeout_s)
        except (ValueError, RuntimeError) as error:
            return Retry(f"publish failed: {error}")
        if not info.is_published():
            return Retry(f"no PUBACK from the broker within {self._timeout_s:g} s")
        return Acked(None)

    def _wake_all(self, outcome: SendOutcome) -> None:
        with self._lock:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            if not waiter.done.is_set():
                waiter.outcome = outcome
                waiter.done.set()

    # -- connection, in paho's network thread -------------------------------------------------------

    def _new_client(self, mqtt: MqttUplinkConfig) -> Client:
        # MQTT 5 keeps the session (central's acks wait in it across a reconnect); 3.1.1 gets no acks to keep.
        client = new_client(mqtt, agent_id=self._agent_id, manual_ack=False, keep_311_session=False)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect(self) -> None:
        self._set_next_reconnect_delay()
        connect_async(self._client, self._mqtt, session_expiry_s=self._mqtt.session_expiry_s)
        self._client.loop_start()

    def _on_connect(
        self, client: Client, _userdata: Any, _flags: ConnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        if reason.is_failure:
            self._last_error = f"broker refused the connection: {reason}"
            log.warning("MQTT uplink: %s", self._last_error)
            return
        self._backoff.reset()
        if self._v5:
            client.subscribe(self.acks_topic, options=SubscribeOptions(qos=1))
        else:
            self._ready.set()
        log.info("MQTT uplink: connected to %s:%d as %s", self._mqtt.host, self._mqtt.port, self.client_id)

    def _on_subscribe(
        self, _client: Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _props: Properties | None
    ) -> None:
        failed = [reason for reason in reasons if reason.is_failure]
        if failed:
            self._last_error = f"broker refused the subscription to {self.acks_topic!r}: {failed} (check the ACL)"
            log.error("MQTT uplink: %s", self._last_error)
            return
        self._ready.set()

    def _on_disconnect(
        self, _client: Client, _userdata: Any, _flags: DisconnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        self._ready.clear()
        self._wake_all(Retry(f"disconnected from the broker before central's ack ({reason})"))
        if self._closing.is_set():
            return
        self._last_error = f"disconnected: {reason}"
        delay = self._set_next_reconnect_delay()
        log.warning("MQTT uplink: disconnected (%s); reconnecting in %.1f s", reason, delay)

    def _on_connect_fail(self, _client: Client, _userdata: Any) -> None:
        self._last_error = f"cannot reach {self._mqtt.host}:{self._mqtt.port}"
        delay = self._set_next_reconnect_delay()
        log.warning("MQTT uplink: %s; next try in %.1f s", self._last_error, delay)

    def _set_next_reconnect_delay(self) -> float:
        return set_next_reconnect_delay(self._client, self._backoff)

    def _on_message(self, _client: Client, _userdata: Any, message: MQTTMessage) -> None:
        properties = message.properties
        correlation = getattr(properties, "CorrelationData", None) if properties is not None else None
        with self._lock:
            waiter = self._waiters.get(bytes(correlation)) if isinstance(correlation, bytes | bytearray) else None
        if waiter is None or waiter.done.is_set():
            self.stale_acks += 1
            return
        waiter.outcome = outcome_of_reply(bytes(message.payload), getattr(properties, "UserProperty", None))
        waiter.done.set()


def outcome_of_reply(payload: bytes, user_properties: object) -> SendOutcome:
    """What central's reply says: its ``ioc-ack`` user property and the BatchAck JSON."""
    outcome = "stored"
    if isinstance(user_properties, list):
        for item in user_properties:
            if isinstance(item, tuple) and len(item) == 2 and item[0] == ACK_OUTCOME_PROPERTY:
                outcome = str(item[1])
    try:
        ack = BatchAck.model_validate_json(payload)
    except ValueError as error:
        return Retry(f"unreadable ack from central: {error}")
    reason = ack.rejections[0].reason if ack.rejections else "no reason given"
    if outcome == "refused":
        return Refused(f"central refused the batch: {reason}")
    if outcome == "too_large":
        return TooLarge(f"central: {reason}")
    return Acked(ack)


def _publish_error(rc: MQTTErrorCode, size: int) -> SendOutcome | None:
    if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
        return None
    if rc == MQTTErrorCode.MQTT_ERR_PAYLOAD_SIZE:
        return TooLarge(f"batch of {size} bytes is over the broker's maximum packet size")
    return Retry(f"publish failed: {error_string(rc)}")
