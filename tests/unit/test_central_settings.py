"""Settings from the environment, and the summary page's rendering (no database)."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from pydantic import ValidationError

from central_ingest.settings import Settings
from central_ingest.store.migrate import available_migrations
from central_ingest.store.queries import LatestInterval
from central_ingest.web.summary import render_summary, summary_window
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


def test_summary_page_is_vietnamese_first_and_escapes_values() -> None:
    start = dt.datetime(2025, 1, 1, 0, 0, tzinfo=dt.UTC)
    latest = LatestInterval("agent-1", "cam<1>", "line-1", start, start + dt.timedelta(minutes=1))
    totals = [
        {
            "agent_id": "agent-1",
            "source_id": "cam<1>",
            "line_id": "line-1",
            "vehicle_class": "motorbike",
            "direction": "in",
            "count": 42,
        }
    ]
    page = render_summary(totals, latest, summary_window(latest))
    assert "<meta charset='utf-8'>" in page
    assert page.index("Tổng lượt xe qua vạch đếm") < page.index("Vehicle counts by line")
    assert "Xe máy / Motorbike" in page
    assert "cam&lt;1&gt;" in page
    assert "cam<1>" not in page
    assert "2025-01-01 07:01:00 (UTC+7)" in page
    assert "<td class='count'>42</td>" in page


def test_summary_page_without_data() -> None:
    assert "Chưa có dữ liệu" in render_summary([], None, None)


def test_summary_page_shows_coverage_and_lines_without_crossings() -> None:
    start = dt.datetime(2025, 1, 1, 0, 0, tzinfo=dt.UTC)
    latest = LatestInterval("agent-1", "cam-1", "line-1", start, start + dt.timedelta(minutes=1))
    line: dict[str, Any] = {"agent_id": "agent-1", "source_id": "cam-1", "line_id": "line-1"}
    totals: list[dict[str, Any]] = [
        line | {"vehicle_class": "car", "direction": "out", "count": 3, "coverage": 0.984, "downtime_s": 0.0},
        line | {"vehicle_class": None, "direction": None, "count": 0, "coverage": 0.0, "downtime_s": 3600.0},
        line | {"vehicle_class": "bus", "direction": "in", "count": 1, "coverage": None, "downtime_s": None},
    ]
    page = render_summary(totals, latest, summary_window(latest))
    assert "Độ phủ phân tích" in page
    assert "<td class='count'>98%</td>" in page
    assert "<td>—</td><td>—</td><td class='count'>0</td><td class='count'>0% (mất tín hiệu / down 60 min)</td>" in page
    assert "không rõ / unknown" in page
