"""The signal-controller feed: MQTT messages in, the latest state per signal out to the ``SignalBoard``.

A junction controller publishes each signal's state (JSON, parsed by ``parse_signal_message``) on the
configured topic. This subscriber applies each good message to the board at once (in paho's network
thread: the board is a small locked map, O(1)); a message that does not parse is counted by reason and
kept in the agent's dead-letter store with its raw bytes (code ``bad_shape``), never silently lost.
Signal states are worth nothing later, so the session is clean by default and messages are
acknowledged as they arrive (QoS 1 guards the hop, not a backlog). paho reconnects by itself; before
each wait the delay is drawn from ``reconnect_backoff`` (exponential, full jitter, ceiling), as the
sensor subscriber does. The board turns a signal whose messages stop into "unknown" (staleness), so a
dead feed never leaves a stale red or green in force.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.traffic.config import SignalFeedConfig
from edge_agent.violations.config import SignalConfig
from edge_agent.violations.signals import SignalBoard, SignalUpdate, parse_signal_message
from event_contract.traffic import SignalState
from ioc_common.backoff import Backoff
from ioc_common.dead_letter import DeadLetter, DeadLetterSink
from ioc_common.mqtt_connection import connect_async, new_client, set_next_reconnect_delay

log = logging.getLogger(__name__)

ClientFactory = Callable[[SignalFeedConfig, str], Client]


@dataclass(frozen=True, slots=True)
class SignalFeedStats:
    received: int
    applied: int
    ignored: int
    """Good messages no camera took: a controller id no signal names, or older than the latest of its signal."""
    refused: int
    by_reason: dict[str, int]
    """Refused messages by the first words of their reason (e.g. 'unknown state')."""
    dead_letter_failures: int
    """Refused messages the dead-letter store could not keep (its disk failed); counted, then dropped."""
    connects: int
    disconnects: int
    connected: bool
    last_error: str | None


@dataclass(slots=True)
class _Counters:
    received: int = 0
    applied: int = 0
    ignored: int = 0
    refused: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    dead_letter_failures: int = 0
    connects: int = 0
    disconnects: int = 0
    connected: bool = False
    last_error: str | None = None


def _default_client(config: SignalFeedConfig, agent_id: str) -> Client:
    return new_client(config, agent_id=agent_id, manual_ack=False, keep_311_session=False)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SharedSignalBoard:
    """One camera's ``SignalBoard`` behind a lock: the feed's network thread offers, the analytics thread reads."""

    def __init__(self, signals: tuple[SignalConfig, ...]) -> None:
        self._board = SignalBoard(signals)
        self._lock = threading.Lock()

    def offer(self, update: SignalUpdate) -> bool:
        with self._lock:
            return self._board.offer(update)

    def state_at(self, signal_id: str, now: dt.datetime) -> SignalState:
        with self._lock:
            return self._board.state_at(signal_id, now)

    def counters(self) -> dict[str, int]:
        with self._lock:
            board = self._board
            return {
                "accepted": board.accepted,
                "out_of_order": board.out_of_order,
                "unknown_signal": board.unknown_signal,
            }


class SignalFeedSubscriber:
    """``start()``, ``wait_ready(s)``, ``stop()``: every good message is offered to each camera's board."""

    def __init__(
        self,
        config: SignalFeedConfig,
        boards: tuple[SharedSignalBoard, ...],
        dead_letters: DeadLetterSink,
        *,
        agent_id: str,
        clock: Callable[[], dt.datetime] = _utc_now,
        rng: random.Random | None = None,
        client_factory: ClientFactory = _default_client,
    ) -> None:
        self._config = config
        self._boards = boards
        self._dead_letters = dead_letters
        self._agent_id = agent_id
        self._clock = clock
        self._backoff = Backoff(config.reconnect_backoff, rng or random.Random())  # noqa: S311 (jitter)
        self._client_factory = client_factory
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._counters = _Counters()
        self._ready = threading.Event()
        self._stopping = threading.Event()

    def start(self) -> None:
        if self._client is not None:
            return
        client = self._client_factory(self._config, self._agent_id)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._set_next_delay(client)
        self._client = client
        config = self._config
        connect_async(client, config, session_expiry_s=config.session_expiry_s)
        client.loop_start()
        log.info("signal feed: connecting to %s:%d for %r", config.host, config.port, config.topic)

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until connected and subscribed; False after ``timeout_s``."""
        return self._ready.wait(timeout_s)

    def stop(self) -> None:
        client = self._client
        if client is None or self._stopping.is_set():
            return
        self._stopping.set()
        client.disconnect()
        client.loop_stop()
        with self._lock:
            self._counters.connected = False
        self._ready.clear()

    def stats(self) -> SignalFeedStats:
        with self._lock:
            c = self._counters
            return SignalFeedStats(
                received=c.received,
                applied=c.applied,
                ignored=c.ignored,
                refused=c.refused,
                by_reason=dict(c.by_reason),
                dead_letter_failures=c.dead_letter_failures,
                connects=c.connects,
                disconnects=c.disconnects,
                connected=c.connected,
                last_error=c.last_error,
            )

    def handle(self, topic: str, payload: bytes) -> bool:
        """One message: applied to some board (True), or ignored or refused (counted; refused ones dead-lettered).
        Never raises."""
        with self._lock:
            self._counters.received += 1
        try:
            update = parse_signal_message(payload)
        except Exception as error:  # SignalMessageError says why; anything else is a parser bug, kept the same way
            self._refuse(topic, payload, str(error) or type(error).__name__)
            return False
        taken = [board.offer(update) for board in self._boards]
        with self._lock:
            if any(taken):
                self._counters.applied += 1
            else:
                self._counters.ignored += 1
        return any(taken)

    def _refuse(self, topic: str, payload: bytes, reason: str) -> None:
        key = " ".join(reason.split()[:2]).rstrip(":") or "unknown"
        with self._lock:
            self._counters.refused += 1
            self._counters.by_reason[key] += 1
            self._counters.last_error = f"refused a signal message on {topic}: {reason}"
        letter = DeadLetter(
            source="signal_feed",
            code="bad_shape",
            reason=f"signal feed message refused: {reason}",
            raw=payload,
            received_at=self._clock(),
            topic=topic,
        )
        try:
            self._dead_letters.keep_many([letter])
        except Exception as error:
            with self._lock:
                self._counters.dead_letter_failures += 1
            log.error("signal feed: could not dead-letter a refused message (%s): %s", reason, error)

    # --- paho callbacks (network thread) --------------------------------------------------------

    def _on_message(self, _client: Client, _userdata: Any, message: MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)
        self.handle(topic, bytes(message.payload))

    def _on_connect(
        self, client: Client, _userdata: Any, _flags: ConnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        if reason.is_failure:
            with self._lock:
                self._counters.last_error = f"broker refused the connection: {reason}"
            log.warning("signal feed: broker refused the connection: %s", reason)
            return
        self._backoff.reset()
        with self._lock:
            self._counters.connects += 1
            self._counters.connected = True
        client.subscribe(self._config.topic, qos=self._config.qos)

    def _on_subscribe(
        self, _client: Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _props: Properties | None
    ) -> None:
        failed = [str(reason) for reason in reasons if reason.is_failure]
        if failed:
            with self._lock:
                self._counters.last_error = f"broker refused the subscription to {self._config.topic}: {failed}"
            log.error("signal feed: broker refused the subscription to %s: %s", self._config.topic, failed)
            return
        self._ready.set()

    def _on_disconnect(
        self, client: Client, _userdata: Any, _flags: DisconnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        self._ready.clear()
        with self._lock:
            if self._counters.connected:
                self._counters.disconnects += 1
            self._counters.connected = False
            if not self._stopping.is_set():
                self._counters.last_error = f"disconnected: {reason}"
        if not self._stopping.is_set():
            delay = self._set_next_delay(client)
            log.warning("signal feed: disconnected (%s); reconnecting in %.1f s", reason, delay)

    def _on_connect_fail(self, client: Client, _userdata: Any) -> None:
        cause = sys.exc_info()[1]
        with self._lock:
            self._counters.last_error = f"cannot connect to {self._config.host}:{self._config.port}: {cause}"
        delay = self._set_next_delay(client)
        log.warning("signal feed: cannot connect (%s); next try in %.1f s", cause, delay)

    def _set_next_delay(self, client: Client) -> float:
        return set_next_reconnect_delay(client, self._backoff)
