"""configs/central.example.env lists every setting with its default, generated from the code."""

from __future__ import annotations

from central_ingest.settings import Settings
from central_ingest.settings_doc import ENV_PATH, render


def test_env_example_is_current() -> None:
    assert ENV_PATH.read_text(encoding="utf-8") == render(), (
        "configs/central.example.env is stale: run python -m central_ingest.settings_doc"
    )


def test_every_setting_and_nested_field_is_listed_with_its_default() -> None:
    text = render()
    for name in Settings.model_fields:
        assert f"# IOC_CENTRAL_{name.upper()}=" in text
    assert "# IOC_CENTRAL_RETENTION__COUNTS_DAYS=90\n" in text
    assert "# IOC_CENTRAL_MQTT_INGEST__SHARE_GROUP=ioc-ingest\n" in text
    assert "# IOC_CENTRAL_MQTT_INGEST__CLIENT_ID=<unique per process>\n" in text
    assert "# IOC_CENTRAL_TIMEZONE=Asia/Ho_Chi_Minh\n" in text
