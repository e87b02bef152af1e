"""Settings of the central ingest service, read from ``IOC_CENTRAL_*`` environment variables.

Every knob has a default that suits a single-machine install; override one with
e.g. ``IOC_CENTRAL_PORT=9000`` or by passing it to ``Settings(...)``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from central_ingest.access.settings import AccessSettings
from central_ingest.alerts.sinks.config import SinksConfig
from central_ingest.ingest.mqtt_config import MqttIngestConfig
from central_ingest.live.settings import LiveSettings
from central_ingest.mapview.config import BoundariesPath, TileUrl
from central_ingest.plates.police_settings import PoliceSettings
from event_contract import MAX_BATCH_EVENTS

MIB = 1024 * 1024


class RetentionSettings(BaseModel):
    """How long each family's raw rows are kept (days); events older than that are refused at ingest.

    Defaults: counts and zones 90 days (the monthly baselines need 31; rollups keep the history),
    health 30, violations 400 (a year of police records plus a margin), plate passes 90 (personal
    data: the police issue sets the lawful period), congestion 400 (hotspot comparisons across a
    year), progress 3650 (a project's life), site activity 730 (two years of working hours, the
    length of most works), sensor readings 400, dead letters 30, hourly rollups 730; daily rollups
    are kept forever.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    counts_days: int = Field(default=90, ge=2, description="count_intervals, line_counts, zone tables.")
    health_days: int = Field(default=30, ge=2, description="health.")
    violations_days: int = Field(default=400, ge=2, description="violations.")
    plate_passes_days: int = Field(default=90, ge=2, description="plate_passes (personal data).")
    congestion_days: int = Field(default=400, ge=2, description="congestion (zone levels, schema 1.4).")
    progress_days: int = Field(default=3650, ge=2, description="progress.")
    site_activity_days: int = Field(
        default=730, ge=2, description="site_activity (construction sites' hourly work per zone, schema 1.5)."
    )
    sensor_readings_days: int = Field(default=400, ge=2, description="sensor_readings.")
    dead_letters_days: int = Field(default=30, ge=1, description="dead_letters (plain table, pruned by age).")
    hourly_rollup_days: int = Field(default=730, ge=2, description="hourly count rollups.")

    def for_kind(self, kind: str) -> dt.timedelta:
        """The raw retention of an event kind (the ``kind`` field of the contract)."""
        days = {
            "count_interval": self.counts_days,
            "zone_interval": self.counts_days,
            "health": self.health_days,
            "violation": self.violations_days,
            "plate_pass": self.plate_passes_days,
            "congestion": self.congestion_days,
            "progress": self.progress_days,
            "site_activity": self.site_activity_days,
            "sensor_reading": self.sensor_readings_days,
        }[kind]
        return dt.timedelta(days=days)


class Settings(BaseSettings):
    """Configuration of one central ingest process."""

    # populate_by_name: the plate key settings are also read from IOC_PLATE_KEYS_* (aliases), and
    # Settings(plate_keys_file=...) must still work.
    model_config = SettingsConfigDict(
        env_prefix="IOC_CENTRAL_", env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    database_url: str = Field(
        default="postgresql:///ioc_central",
        description="libpq connection string of the PostgreSQL+TimescaleDB database "
        "(default: local socket, database ioc_central, current OS user).",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds to (loopback by default).")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port of the HTTP server.")
    tls_certfile: Path | None = Field(
        default=None, description="PEM certificate (chain) of the HTTPS server; unset: plain HTTP (behind a TLS proxy)."
    )
    tls_keyfile: Path | None = Field(default=None, description="PEM private key of tls_certfile.")
    tls_client_ca_file: Path | None = Field(
        default=None,
        description="mTLS: PEM CA bundle; when set, every client must present a certificate signed by it "
        "(agents still send their bearer token).",
    )
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
    max_future_skew_s: float = Field(
        default=600.0,
        ge=0,
        description="Events dated more than this many seconds after central's clock are refused (clock sanity).",
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings,
        description="Raw retention per family, also the oldest event time accepted "
        "(environment: e.g. IOC_CENTRAL_RETENTION__HEALTH_DAYS=14).",
    )
    timezone: str = Field(
        default="Asia/Ho_Chi_Minh", description="IANA zone that alert periods (days) and daily rollups align to."
    )
    maintenance_enabled: bool = Field(
        default=True,
        description="Run database maintenance (rollups, then retention) in this process; an advisory lock lets "
        "one process at a time work when several share the database.",
    )
    maintenance_every_s: float = Field(
        default=300.0, ge=10, description="Seconds between maintenance passes (rollups, retention, dead letters)."
    )
    alert_rules_path: Path | None = Field(
        default=None,
        description="YAML alert rules (junctions, rule kinds, thresholds; see configs/alert_rules.example.yaml); "
        "unset: no rules. Check a file with `central-ingest validate-rules FILE`.",
    )
    alert_evaluate_every_s: float = Field(
        default=30.0, gt=0, description="Seconds between full rule passes (silence, period roll-over, resolutions)."
    )
    alert_max_pending: int = Field(
        default=10_000,
        ge=1,
        description="Subjects waiting for evaluation after ingest; beyond it they are dropped, counted, and the "
        "next full pass evaluates everything.",
    )
    alert_sinks: SinksConfig = Field(
        default_factory=SinksConfig,
        description="Where alert notifications go: signed webhooks, an MQTT topic, the server-sent event stream "
        "(only the stream is on by default). JSON in IOC_CENTRAL_ALERT_SINKS.",
    )
    mqtt_ingest: MqttIngestConfig | None = Field(
        default=None,
        description="MQTT ingest worker settings (broker, share group, ...); null: `serve` runs no MQTT worker and "
        "`mqtt-worker` uses the defaults. Environment: e.g. IOC_CENTRAL_MQTT_INGEST__HOST=broker.example.vn.",
    )
    serve_mqtt_worker: bool = Field(
        default=False, description="Also run one MQTT ingest worker inside `serve` (needs mqtt_ingest)."
    )
    migrate_on_start: bool = Field(
        default=True, description="Apply pending schema migrations when the server starts (safe: advisory lock)."
    )
    plate_keys_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("IOC_PLATE_KEYS_FILE", "IOC_CENTRAL_PLATE_KEYS_FILE"),
        description="Plate keyring (JSON or YAML, mode 0600; see docs/plate_vault.md), also read from "
        "IOC_PLATE_KEYS_FILE. Unset together with plate_keys_command: plate passes and violations with a plate "
        "are refused, never stored in clear.",
    )
    plate_keys_command: str | None = Field(
        default=None,
        validation_alias=AliasChoices("IOC_PLATE_KEYS_COMMAND", "IOC_CENTRAL_PLATE_KEYS_COMMAND"),
        description="KMS hook, also read from IOC_PLATE_KEYS_COMMAND: a command (no shell) that prints the "
        "keyring on stdout; run once at start, its output never logged. Exclusive with plate_keys_file.",
    )
    plate_keys_command_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="How long the plate keys command may run before start fails."
    )
    access: AccessSettings = Field(
        default_factory=AccessSettings,
        description="Sign-in: sessions, cookies, password KDF, TOTP, login rate limit (docs/access_and_audit.md).",
    )
    police: PoliceSettings = Field(
        default_factory=PoliceSettings,
        description="Police plate search: widest range, how long evidence stays viewable (docs/police_search.md).",
    )
    live: LiveSettings = Field(
        default_factory=LiveSettings,
        description="Live view proxy: how many agent streams and viewers, queue per viewer, reconnect backoff "
        "(docs/live_view.md).",
    )
    map_tile_url: TileUrl | None = Field(
        default=None,
        max_length=500,
        description="Base map tiles of the map page, a {z}/{x}/{y} template on the centre's own tile or GIS server "
        "(e.g. https://tiles.ioc.example.vn/{z}/{x}/{y}.png); the page's CSP allows images from its origin only. "
        "Unset: a plain background with the boundaries (docs/map.md).",
    )
    map_tile_attribution: str = Field(
        default="", max_length=300, description="Attribution text shown on the map for the tiles (plain text)."
    )
    map_boundaries_path: BoundariesPath | None = Field(
        default=None,
        description="GeoJSON FeatureCollection of administrative areas (properties name + level: province, "
        "district, commune) drawn on the map; validated at start, at most 8 MiB (e.g. "
        "configs/boundaries.demo.geojson, illustrative only).",
    )
    map_center_lat: float = Field(default=16.4637, ge=-90, le=90, description="Latitude the map opens at.")
    map_center_lon: float = Field(default=107.5909, ge=-180, le=180, description="Longitude the map opens at.")
    map_zoom: int = Field(default=13, ge=1, le=19, description="Zoom level the map opens at (1 world .. 19 street).")

    @model_validator(mode="after")
    def _tls_files(self) -> Settings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("set tls_certfile and tls_keyfile together")
        if self.tls_client_ca_file is not None and self.tls_certfile is None:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_certfile and tls_keyfile")
        return self

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"pool_min_size ({self.pool_min_size}) must not exceed pool_max_size ({self.pool_max_size})"
            )
        return self
