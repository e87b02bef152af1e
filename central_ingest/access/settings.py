"""Settings of sign-in: session lifetimes, cookies, the password KDF, TOTP and the login rate limit.

They belong under ``Settings.access`` (environment ``IOC_CENTRAL_ACCESS__...``); ``access_settings``
falls back to the defaults while ``Settings`` has no such field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from central_ingest.access.roles import DEFAULT_TOTP_ROLES, Role
from ioc_common.backoff import BackoffConfig


class AccessSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    session_idle_s: float = Field(
        default=1800.0, ge=60, description="A session unused for this many seconds ends (idle expiry)."
    )
    session_absolute_s: float = Field(
        default=12 * 3600.0,
        ge=300,
        description="A session ends this many seconds after sign-in however active it is (absolute expiry).",
    )
    max_sessions_per_user: int = Field(
        default=10, ge=1, le=1000, description="Open sessions per user; a new sign-in beyond it ends the oldest."
    )
    cookie_secure: bool = Field(
        default=True,
        description="Mark the session cookies Secure (sent over HTTPS only); turn off only for plain-HTTP tests.",
    )
    totp_roles: tuple[Role, ...] = Field(
        default=DEFAULT_TOTP_ROLES, description="Roles that must give a TOTP code (RFC 6238) at sign-in."
    )
    totp_issuer: str = Field(
        default="IOC", min_length=1, max_length=64, description="Issuer shown by authenticator apps (otpauth URI)."
    )
    password_kdf_log2_n: int = Field(
        default=17,
        ge=10,
        le=20,
        description="scrypt cost N = 2**value (r=8, p=1; 17 = 128 MiB per hash, OWASP's minimum). Raising it "
        "re-hashes each password at its next successful sign-in.",
    )
    password_min_chars: int = Field(default=12, ge=8, le=128, description="Shortest password accepted.")
    kdf_max_concurrent: int = Field(
        default=4, ge=1, le=64, description="Password hashes computed at once (each takes memory and CPU)."
    )
    kdf_max_waiting: int = Field(
        default=32,
        ge=0,
        le=10_000,
        description="Sign-ins waiting for a hash slot; beyond it a sign-in is refused with 503 and counted.",
    )
    login_free_failures: int = Field(
        default=5, ge=1, le=100, description="Failed sign-ins per username or client address before backoff starts."
    )
    login_backoff: BackoffConfig = Field(
        default=BackoffConfig(base_s=2.0, ceiling_s=900.0),
        description="Lockout after each further failure: base_s * 2**n seconds, at most ceiling_s.",
    )
    login_forget_s: float = Field(
        default=3600.0, ge=60, description="A username or address with no failure for this long starts afresh."
    )
    login_tracked_keys: int = Field(
        default=10_000,
        ge=100,
        le=1_000_000,
        description="Usernames and addresses tracked by the rate limit; beyond it the least recently failed one "
        "is forgotten (counted).",
    )

    @model_validator(mode="after")
    def _absolute_covers_idle(self) -> AccessSettings:
        if self.session_absolute_s < self.session_idle_s:
            raise ValueError(
                f"session_absolute_s ({self.session_absolute_s}) must be >= session_idle_s ({self.session_idle_s})"
            )
        return self


def access_settings(settings: Any) -> AccessSettings:
    """``settings.access`` when the service settings have it, else the defaults."""
    found = getattr(settings, "access", None)
    return found if isinstance(found, AccessSettings) else AccessSettings()
