"""BrokerConfig, the paho client made from it, and the site's sensors config."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from pydantic import ValidationError

from ioc_common.mqtt_connection import BrokerTls, new_client, tls_context
from ioc_common.sensors.broker import BrokerConfig, connect_properties
from ioc_common.sensors.config import SensorConfig
from ioc_common.sensors.site import SensorsSiteConfig


def test_defaults_are_the_documented_ones() -> None:
    config = BrokerConfig()
    assert (config.host, config.port, config.protocol, config.qos) == ("127.0.0.1", 1883, "5", 1)
    assert config.session_expiry_s == 86_400
    assert config.tls is None
    assert config.receive_maximum == 1000


def test_client_id_is_derived_from_the_agent_id_and_stable() -> None:
    config = BrokerConfig()
    assert config.client_id_for("hue-cam-07") == "ioc-sensors-hue-cam-07"
    assert config.client_id_for("hue-cam-07") == BrokerConfig().client_id_for("hue-cam-07")
    assert config.client_id_for("odd id/#") == "ioc-sensors-odd_id__"
    assert BrokerConfig(client_id="mine").client_id_for("hue-cam-07") == "mine"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"port": 0}, "greater than or equal to 1"),
        ({"protocol": "3.1"}, "'5' or '3.1.1'"),
        ({"qos": 2}, "1"),
        ({"password": "x"}, "without a username"),
        ({"username": "u", "password": "x", "password_file": "/p"}, "not both"),
        ({"tls": {"key_file": "/k.pem"}}, "key_file is set without"),
        ({"hots": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_broker_configs_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BrokerConfig.model_validate(values)


def test_password_is_read_from_its_file_and_never_printed(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.pass"
    secret.write_text("s3cret\nignored\n")
    assert BrokerConfig(username="u", password_file=secret).read_password() == "s3cret"
    config = BrokerConfig.model_validate({"username": "u", "password": "hunter2"})
    assert config.read_password() == "hunter2"
    assert "hunter2" not in repr(config)
    with pytest.raises(ValueError, match="cannot read the MQTT password_file"):
        BrokerConfig(username="u", password_file=tmp_path / "missing").read_password()


def test_mqtt5_client_keeps_its_session_with_clean_start_and_an_expiry() -> None:
    config = BrokerConfig(session_expiry_s=3600, receive_maximum=200)
    client = new_client(config, agent_id="a1")
    assert client._client_id == b"ioc-sensors-a1"
    assert client.protocol == MQTTProtocolVersion.MQTTv5
    assert client._manual_ack is True
    properties = connect_properties(config)
    assert properties is not None
    assert (properties.SessionExpiryInterval, properties.ReceiveMaximum) == (3600, 200)  # type: ignore[attr-defined]


def test_mqtt311_client_keeps_its_session_with_clean_session_false() -> None:
    config = BrokerConfig(protocol="3.1.1", username="u", password="p")
    client = new_client(config, agent_id="a1")
    assert client.protocol == MQTTProtocolVersion.MQTTv311
    assert client._clean_session is False
    assert (client._username, client._password) == (b"u", b"p")
    assert connect_properties(config) is None


def test_tls_context_verifies_the_server_and_checks_its_name_by_default() -> None:
    context = tls_context(BrokerTls())
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    relaxed = tls_context(BrokerTls(check_hostname=False))
    assert relaxed.verify_mode == ssl.CERT_REQUIRED
    assert relaxed.check_hostname is False


def test_a_missing_client_certificate_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        tls_context(BrokerTls(cert_file=tmp_path / "client.pem"))


def _sensor(sensor_id: str, topic: str = "site/+/reading") -> SensorConfig:
    return SensorConfig(id=sensor_id, kind="water_level", topic=topic)


def test_site_config_lists_silence_thresholds_and_refuses_duplicate_ids() -> None:
    site = SensorsSiteConfig(sensors=(_sensor("s1"), _sensor("s2")))
    assert site.silent_after_s() == {"s1": 900.0, "s2": 900.0}
    assert (site.queue_capacity, site.batch_max) == (10_000, 500)
    with pytest.raises(ValidationError, match="used twice"):
        SensorsSiteConfig(sensors=(_sensor("s1"), _sensor("s1", "other/#")))
    with pytest.raises(ValidationError, match="Extra inputs"):
        SensorsSiteConfig.model_validate({"queue": 5})
