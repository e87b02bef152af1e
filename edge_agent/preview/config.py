"""Settings of the agent's preview / metrics / health HTTP server (``preview:`` in a site config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PREVIEW_PORT = 8091
"""Where the agent serves /cameras, the previews, /metrics and /healthz unless configured otherwise."""


class PreviewConfig(BaseModel):
    """The agent's local HTTP server: live annotated preview, snapshot, detections as SSE, metrics, health."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="IPv4 address to listen on. 127.0.0.1 keeps it on the box; 0.0.0.0 exposes it to the site network.",
    )
    port: int = Field(
        default=DEFAULT_PREVIEW_PORT,
        ge=0,
        le=65535,
        description="TCP port; 0 turns the server off (no preview, no /metrics, no /healthz).",
    )
    max_fps: float = Field(
        default=5.0, gt=0, le=30, description="Most frames per second sent to each MJPEG or live client."
    )
    max_width: int = Field(
        default=640, ge=160, le=3840, description="Preview pictures wider than this are downscaled to it."
    )
    jpeg_quality: int = Field(default=70, ge=10, le=100, description="JPEG quality of previews and snapshots.")
    max_stream_clients: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Concurrent MJPEG, SSE and live clients over all cameras; more are refused with 503 (and counted).",
    )
    client_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="A client that accepts no data for this long is disconnected."
    )
    keepalive_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="While a camera sends no new frame, streams repeat the last one (MJPEG), a comment (SSE) or "
        "a keepalive record (live) this often, so a client that went away is noticed and its slot freed.",
    )
