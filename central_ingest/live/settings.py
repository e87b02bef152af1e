"""Settings of the live proxy: how many streams, how patient with an agent, how much a slow viewer may lag.

They belong under ``Settings.live`` (environment ``IOC_CENTRAL_LIVE__...``); ``live_settings`` falls back to
the defaults while ``Settings`` has no such field, and a test may put its own ``LiveSettings`` in
``app.state.ioc_live_settings`` before the first live request.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ioc_common.backoff import BackoffConfig
from ioc_common.live_records import MAX_HEADER_BYTES, MAX_JPEG_BYTES


class LiveSettings(BaseModel):
    """Bounds and timings of central's live proxy (docs/live_view.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_upstreams: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="Cameras relayed at once (one agent connection each); a viewer of one more camera is refused "
        "(close 1013, counted).",
    )
    max_viewers: int = Field(
        default=256, ge=1, le=10_000, description="Viewer WebSockets open at once over all cameras; more are refused."
    )
    max_viewers_per_camera: int = Field(
        default=32, ge=1, le=1000, description="Viewer WebSockets of one camera at once; more are refused."
    )
    viewer_queue_records: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Records waiting for one viewer; a viewer that falls behind loses the oldest (counted per "
        "camera), so it always shows the newest picture instead of lagging.",
    )
    idle_close_s: float = Field(
        default=5.0,
        ge=0,
        le=600,
        description="The agent connection of a camera stays open this long after its last viewer left (a page "
        "reload or a grid change reuses it).",
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120, description="Connecting to an agent, seconds.")
    read_timeout_s: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="An agent stream that sends nothing (not even a keepalive record) for this long is dropped and "
        "reconnected; above the agent's preview.keepalive_s (5 s by default).",
    )
    stall_after_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="With keepalives but no new frame for this long, viewers are told the camera is stalled.",
    )
    reconnect_backoff: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=0.5, ceiling_s=10.0),
        description="Delays between reconnects to an agent (exponential, full jitter, ceiling).",
    )
    down_after_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="After this many failed connects in a row viewers are told the camera is down, and retries "
        "slow to down_retry_s while viewers remain.",
    )
    down_retry_s: float = Field(
        default=30.0, gt=0, le=3600, description="Delay between reconnects to an agent reported down."
    )
    status_every_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="A viewer that got nothing for this long (agent down) is sent the current status again, so "
        "the page knows the connection to central still works.",
    )
    max_header_bytes: int = Field(
        default=MAX_HEADER_BYTES, ge=1024, le=16 << 20, description="Largest record header accepted from an agent."
    )
    max_jpeg_bytes: int = Field(
        default=MAX_JPEG_BYTES, ge=1024, le=64 << 20, description="Largest record picture accepted from an agent."
    )
    extra_origins: tuple[str, ...] = Field(
        default=(),
        max_length=32,
        description="Origins (scheme://host[:port]) allowed to open viewer WebSockets besides the service's own, "
        "e.g. the public address of a reverse proxy that rewrites Host.",
    )


def live_settings(settings: Any) -> LiveSettings:
    """``settings.live`` of the service settings (``Settings.live``); the defaults for any other object."""
    found = getattr(settings, "live", None)
    return found if isinstance(found, LiveSettings) else LiveSettings()
