"""A paho-mqtt 2.x client (MQTT 5) set up from a broker config: client id, credentials, TLS.

Shared by the MQTT ingest worker and the MQTT alert sink, whose configs both carry these fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import SecretStr

from ioc_common.mqtt_tls import client_tls_context


class BrokerAccess(Protocol):
    """How to reach and log in to a broker (``MqttIngestConfig``, ``MqttSinkConfig``)."""

    @property
    def client_id(self) -> str: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> SecretStr | None: ...
    @property
    def tls(self) -> bool: ...
    @property
    def ca_file(self) -> Path | None: ...


def new_client(access: BrokerAccess, *, manual_ack: bool = False) -> Client:
    """A client with ``access``'s id, user name and password, and TLS (the server certificate verified)."""
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=access.client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=manual_ack,
    )
    if access.username is not None:
        password = access.password.get_secret_value() if access.password is not None else None
        client.username_pw_set(access.username, password)
    if access.tls:
        client.tls_set_context(client_tls_context(access.ca_file))
    return client
