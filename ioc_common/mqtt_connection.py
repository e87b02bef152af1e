"""How the agent reaches a broker (``BrokerConnection``) and a paho-mqtt 2.x client made from it (``new_client``).

One connection model for both of the agent's MQTT clients: the sensor subscriber (``BrokerConfig``)
and the MQTT uplink (``MqttUplinkConfig``) add only what their side needs. The client id must be
the same after a restart, so a persistent session is found again: by default it is derived from
the agent id, never random.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import ClassVar, Literal

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ioc_common.backoff import Backoff, BackoffConfig
from ioc_common.mqtt_tls import client_tls_context
from ioc_common.secret_files import read_secret_file

MQTT_MAX_SESSION_EXPIRY_S = 4_294_967_295
"""MQTT 5 carries Session Expiry Interval in four bytes (this value: never expires)."""
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


class BrokerConnection(BaseModel):
    """Address, protocol, login, TLS and session of one broker connection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    CLIENT_ID_FORMAT: ClassVar[str] = "ioc-{agent_id}"
    """The default client id; subclasses name their side, so two clients of one agent never share one."""

    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 is the usual TLS port).")
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT version: '5' or '3.1.1' for older brokers.")
    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="MQTT client id; null: derived from the agent id, the same after every restart, so the broker "
        "finds this client's session again. Two clients must never share one.",
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
        description="How long the broker keeps this client's session after a disconnect, seconds (MQTT 5).",
    )
    reconnect_backoff: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=1.0, ceiling_s=60.0),
        description="Delay between reconnect tries: exponential, full jitter, a ceiling.",
    )

    @model_validator(mode="after")
    def _login(self) -> BrokerConnection:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password is set without a username")
        return self

    def client_id_for(self, agent_id: str) -> str:
        """The configured client id, or one derived from ``agent_id`` (stable across restarts)."""
        if self.client_id is not None:
            return self.client_id
        return self.CLIENT_ID_FORMAT.format(agent_id=_CLIENT_ID_UNSAFE.sub("_", agent_id))[:128]

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


def new_client(
    config: BrokerConnection, *, agent_id: str, manual_ack: bool = True, keep_311_session: bool = True
) -> Client:
    """A paho 2.x client (callback API 2) with ``config``'s id, login and TLS; not connected yet.

    ``manual_ack``: messages are acknowledged by the caller, after storing them. MQTT 5 keeps the
    session through ``clean_start=False`` at connect; MQTT 3.1.1 through ``clean_session=False``
    here, unless ``keep_311_session`` is off.
    """
    v5 = config.protocol == "5"
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=config.client_id_for(agent_id),
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else not keep_311_session,
        manual_ack=manual_ack,
    )
    if config.username is not None:
        client.username_pw_set(config.username, config.read_password())
    if config.tls is not None:
        client.tls_set_context(tls_context(config.tls))
    return client


def connect_properties(session_expiry_s: int, receive_maximum: int | None = None) -> Properties:
    """MQTT 5 CONNECT properties: how long the broker keeps the session, and optionally Receive Maximum."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        properties.ReceiveMaximum = receive_maximum
    return properties


def connect_async(
    client: Client, connection: BrokerConnection, *, session_expiry_s: int, receive_maximum: int | None = None
) -> None:
    """Start connecting in paho's network thread (once ``loop_start`` runs), resuming the kept session.

    MQTT 5: the session lives ``session_expiry_s`` after a disconnect, and a client that keeps none
    (0) starts clean. MQTT 3.1.1 has no expiry: the client's ``clean_session`` (``new_client``) decides.
    """
    if connection.protocol == "5":
        client.connect_async(
            connection.host,
            connection.port,
            keepalive=connection.keepalive_s,
            clean_start=session_expiry_s == 0,
            properties=connect_properties(session_expiry_s, receive_maximum),
        )
    else:
        client.connect_async(connection.host, connection.port, keepalive=connection.keepalive_s)


def set_next_reconnect_delay(client: Client, backoff: Backoff) -> float:
    """Draw the wait before paho's next reconnect from ``backoff``; returns it (seconds).

    paho waits min_delay after a reset and doubles it itself; setting min = max = a fresh full-jitter
    draw before each wait turns that fixed doubling into our exponential backoff with jitter and ceiling.
    """
    delay = backoff.next_delay()
    client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]
    return delay
