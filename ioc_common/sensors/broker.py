"""How to reach a sensor broker (``BrokerConfig``): the connection settings plus subscription QoS and flow control.

The site's stations publish to a local (or province) broker; the agent subscribes with a
persistent session so the broker keeps the QoS 1 readings published while the agent is away.
The connection itself (client id, login, TLS, the paho client) is ``ioc_common.mqtt_connection``,
shared with the MQTT uplink; what only a subscriber needs is here.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from paho.mqtt.client import Client
from paho.mqtt.properties import Properties
from pydantic import Field

from ioc_common import mqtt_connection
from ioc_common.mqtt_connection import MQTT_MAX_SESSION_EXPIRY_S, BrokerConnection

MQTT_MAX_RECEIVE_MAXIMUM = 65_535
"""MQTT 5 carries Receive Maximum in two bytes."""


class BrokerConfig(BrokerConnection):
    """One broker the agent subscribes to: the connection, then subscription QoS and flow control."""

    CLIENT_ID_FORMAT: ClassVar[str] = "ioc-sensors-{agent_id}"

    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host name or address.")
    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="MQTT client id. Null: 'ioc-sensors-<agent id>', the same after every restart, so the broker "
        "finds this agent's session again and hands over the readings it kept. Two agents must never share one.",
    )
    session_expiry_s: int = Field(
        default=86_400,
        ge=0,
        le=MQTT_MAX_SESSION_EXPIRY_S,
        description="How long the broker keeps this agent's session (subscriptions and queued QoS 1 readings) "
        "after a disconnect, seconds (MQTT 5, clean_start=False). MQTT 3.1.1 has no expiry: clean_session=False "
        "keeps the session until the broker's own limit (mosquitto: persistent_client_expiration).",
    )
    qos: Literal[0, 1] = Field(
        default=1,
        description="Subscription QoS. 1: the broker keeps and re-sends each reading until the agent acknowledges "
        "it (after storing it). 0 only for stations whose readings may be lost. QoS 2 is not offered: paho "
        "answers its PUBREC before the reading is stored, so it would add round trips and no safety.",
    )
    receive_maximum: int = Field(
        default=1000,
        ge=1,
        le=MQTT_MAX_RECEIVE_MAXIMUM,
        description="MQTT 5 Receive Maximum: most unacknowledged readings the broker sends at once. It bounds "
        "memory and the batch the worker can gather; MQTT 3.1.1 brokers use their own setting "
        "(mosquitto: max_inflight_messages).",
    )


def connect_properties(config: BrokerConfig) -> Properties | None:
    """MQTT 5 CONNECT properties (session expiry, Receive Maximum); None for MQTT 3.1.1."""
    if config.protocol != "5":
        return None
    return mqtt_connection.connect_properties(config.session_expiry_s, config.receive_maximum)


def connect_async(client: Client, config: BrokerConfig) -> None:
    """Start connecting (in paho's network thread, once ``loop_start`` runs) and keep the session."""
    mqtt_connection.connect_async(
        client, config, session_expiry_s=config.session_expiry_s, receive_maximum=config.receive_maximum
    )
