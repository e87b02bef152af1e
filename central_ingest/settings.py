"""Settings of the central ingest service, read from ``IOC_CENTRAL_*`` environment variables.

Every knob has a default that suits a single-machine install; override one with
e.g. ``IOC_CENTRAL_PORT=9000`` or by passing it to ``Settings(...)``.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from event_contract import MAX_BATCH_EVENTS

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Configuration of one central ingest process."""

    model_config = SettingsConfigDict(env_prefix="IOC_CENTRAL_", extra="forbid")

    database_url: str = Field(
        default="postgresql:///ioc_central",
        description="libpq connection string of the PostgreSQL+TimescaleDB database "
        "(default: local socket, database ioc_central, current OS user).",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds to (loopback by default).")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port of the HTTP server.")
    max_batch_events: int = Field(
        default=MAX_BATCH_EVENTS,
        ge=1,
        le=MAX_BATCH_EVENTS,
        description="Most events accepted in one batch; can only lower the contract's own limit.",
    )
    max_body_bytes: int = Field(
        default=8 * MIB,
        ge=1024,
        description="Largest request body, checked on the wire AND after gzip decompression (gzip bombs).",
    )
    pool_min_size: int = Field(default=1, ge=0, description="Database connections kept open when idle.")
    pool_max_size: int = Field(
        default=8, ge=1, description="Most database connections; requests beyond it wait for a free one."
    )
    pool_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a request waits for a database connection before answering 503."
    )
    migrate_on_start: bool = Field(
        default=True, description="Apply pending schema migrations when the server starts (safe: advisory lock)."
    )

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"pool_min_size ({self.pool_min_size}) must not exceed pool_max_size ({self.pool_max_size})"
            )
        return self
