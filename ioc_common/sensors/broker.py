"""How to reach a sensor broker (``BrokerConfig``) and a paho-mqtt 2.x client made from it (``new_client``).

The site's stations publish to a local (or province) broker; the agent subscribes with a
persistent session so the broker keeps the QoS 1 readings published while the agent is away.
That only works when the client id is the same after a restart: by default it is derived from
the agent id, never random. Everything that decides how the client connects lives here, so the
subscriber (and central, should it subscribe to a province broker) build the client one way.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Literal

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ioc_common.backoff import BackoffConfig
from ioc_common.mqtt_tls import client_tls_context
from ioc_common.secret_files import read_secret_file

MQTT_MAX_RECEIVE_MAXIMUM = 65_535
"""MQTT 5 carries Receive Maximum in two bytes."""
MQTT_MAX_SESSION_EXPIRY_S = 4_294_967_295
"""MQTT 5 carries Session Expiry Interval in four bytes (this value: never expires)."""
CLIENT_ID_PREFIX = "ioc-sensors-"
_CLIENT_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class BrokerTls(BaseModel):
    """TLS to the broker: the server certificate is always verified; a client certificate is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed the broker's certificate; null: the system trust store."
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate (PEM) for brokers that require one; null: none is sent."
    )
    key_file: Path | None = Field(
        default=None, description="Private key of cert_file (PEM); null: the key is inside cert_file."
    )
    check_hostname: bool = Field(
        default=True,
        description="Check that the broker's certificate names `host`. Turn off only for a broker reached by an "
        "address its certificate does not list; the certificate chain is still verified.",
    )

    @model_validator(mode="after")
    def _key_needs_cert(self) -> BrokerTls:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("tls.key_file is set without tls.cert_file")
        return self


class BrokerConfig(BaseModel):
    """One broker the agent subscribes to: address, protocol, login, TLS, session and flow control."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 is the usual TLS port).")
    protocol: Literal["5", "3.1.1"] = Field(
        default="5", description="MQTT version: '5' (Receive Maximum, session expiry) or '3.1.1' for older brokers."
    )
    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="MQTT client id. Null: 'ioc-sensors-<agent id>', the same after every restart, so the broker "
        "finds this agent's session again and hands over the readings it kept. Two agents must never share one.",
    )
    username: str | None = Field(default=None, description="User name; null for a broker without logins.")
    password: SecretStr | None = Field(default=None, description="Password of username (never printed).")
    password_file: Path | None = Field(
        default=None,
        description="File holding the password (its first line), read when the client is made; keeps the secret "
        "out of the site config. Not together with password.",
    )
    tls: BrokerTls | None = Field(default=None, description="TLS settings; null: plain TCP.")
    keepalive_s: int = Field(
        default=30, ge=5, le=65535, description="MQTT keepalive, seconds: how soon a dead link is noticed."
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
    reconnect_backoff: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=1.0, ceiling_s=60.0),
        description="Delay between reconnect tries: exponential, full jitter, a ceiling.",
    )

    @model_validator(mode="after")
    def _check(self) -> BrokerConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password is set without a username")
        return self

    def client_id_for(self, agent_id: str) -> str:
        """The configured client id, or one derived from ``agent_id`` (stable across restarts)."""
        if self.client_id is not None:
            return self.client_id
        return (CLIENT_ID_PREFIX + _CLIENT_ID_UNSAFE.sub("_", agent_id))[:128]

    def read_password(self) -> str | None:
        """The password, from the config or the first line of ``password_file``."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is None:
            return None
        return read_secret_file(self.password_file, "the MQTT password_file")


def tls_context(tls: BrokerTls) -> ssl.SSLContext:
    """A client TLS context: the broker's chain verified against ``ca_file`` (or the system store)."""
    return client_tls_context(tls.ca_file, tls.cert_file, tls.key_file, check_hostname=tls.check_hostname)


def new_client(config: BrokerConfig, *, agent_id: str, manual_ack: bool = True) -> Client:
    """A paho 2.x client (callback API 2) set up from ``config``; connect it with ``connect_async`` below.

    ``manual_ack`` (default on): messages are acknowledged by the caller, after storing them.
    """
    v5 = config.protocol == "5"
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=config.client_id_for(agent_id),
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        # MQTT 3.1.1 keeps the session through clean_session=False; MQTT 5 through clean_start (connect_async).
        clean_session=None if v5 else False,
        manual_ack=manual_ack,
    )
    if config.username is not None:
        client.username_pw_set(config.username, config.read_password())
    if config.tls is not None:
        client.tls_set_context(tls_context(config.tls))
    return client


def connect_properties(config: BrokerConfig) -> Properties | None:
    """MQTT 5 CONNECT properties (session expiry, Receive Maximum); None for MQTT 3.1.1."""
    if config.protocol != "5":
        return None
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = config.session_expiry_s
    properties.ReceiveMaximum = config.receive_maximum
    return properties


def connect_async(client: Client, config: BrokerConfig) -> None:
    """Start connecting (in paho's network thread, once ``loop_start`` runs) and keep the session."""
    if config.protocol == "5":
        client.connect_async(
            config.host,
            config.port,
            keepalive=config.keepalive_s,
            clean_start=False,
            properties=connect_properties(config),
        )
    else:
        client.connect_async(config.host, config.port, keepalive=config.keepalive_s)
