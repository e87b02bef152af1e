"""``AlertNotice``: what every sink receives when an alert opens, changes or resolves.

One value for all sinks (webhook JSON body, MQTT payload, server-sent event data), so an
operator page, a police system and a chat bot all see the same numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

AlertStatus = Literal["open", "acknowledged", "resolved"]
Transition = Literal["opened", "escalated", "updated", "acknowledged", "resolved"]
Severity = Literal["notice", "warning", "critical"]


class AlertNotice(BaseModel):
    """An alert's state after a transition, with the evidence behind it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: UUID
    rule_id: str = Field(description="The configured rule's id.")
    rule_kind: str = Field(description="violation_increase, progress_behind, sensor_threshold, ...")
    subject: str = Field(description="What the alert is about, e.g. junction:nga-tu-so or sensor:agent-1/wl-01.")
    status: AlertStatus
    transition: Transition
    severity: Severity
    level: str | None = Field(default=None, description="e.g. bao_dong_2 for a water level; null when not graded.")
    message_vi: str = Field(description="Vietnamese message (shown first).")
    message_en: str = Field(description="English message.")
    value: float | None = Field(default=None, description="The measured value that triggered the alert.")
    baseline: float | None = Field(default=None, description="What the value was compared with.")
    threshold: float | None = Field(default=None, description="The limit that was crossed.")
    window: str | None = Field(default=None, description="The period/window of the comparison, human readable.")
    evidence: tuple[str, ...] = Field(default=(), description="Links to evidence: API paths or media URIs.")
    opened_at: dt.datetime
    changed_at: dt.datetime
