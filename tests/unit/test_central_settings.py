"""Settings from the environment and the packaged migrations (no database)."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from central_ingest.settings import Settings
from central_ingest.store.migrate import available_migrations
from event_contract import MAX_BATCH_EVENTS


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("IOC_CENTRAL_")]:
        monkeypatch.delenv(name)
    defaults = Settings()
    assert (defaults.host, defaults.port, defaults.max_batch_events) == ("127.0.0.1", 8080, MAX_BATCH_EVENTS)
    monkeypatch.setenv("IOC_CENTRAL_PORT", "9123")
    monkeypatch.setenv("IOC_CENTRAL_DATABASE_URL", "postgresql://db.example/ioc")
    settings = Settings()
    assert settings.port == 9123
    assert settings.database_url == "postgresql://db.example/ioc"


def test_settings_refuse_unknown_and_out_of_range_values() -> None:
    with pytest.raises(ValidationError):
        Settings(port_number=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(max_batch_events=MAX_BATCH_EVENTS + 1)
    with pytest.raises(ValidationError, match="pool_min_size"):
        Settings(pool_min_size=5, pool_max_size=2)


def test_migrations_are_packaged_in_order() -> None:
    versions = [m.version for m in available_migrations()]
    assert versions[:2] == ["0001", "0002"]
    assert versions == sorted(versions)
