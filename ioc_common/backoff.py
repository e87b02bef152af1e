"""Retry delays: exponential growth, full jitter, a ceiling.

Full jitter (a uniform draw between 0 and the exponential cap) spreads the
retries of many agents that lost central at the same moment, so they do not
come back in lock step when it returns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BackoffConfig(BaseModel):
    """How long to wait before retry number ``attempt`` (0-based)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_s: float = Field(default=0.5, gt=0, le=3600, description="Cap of the first retry's delay, seconds.")
    ceiling_s: float = Field(default=30.0, gt=0, le=3600, description="No retry waits longer than this, seconds.")

    @model_validator(mode="after")
    def _base_below_ceiling(self) -> BackoffConfig:
        if self.base_s > self.ceiling_s:
            raise ValueError(f"base_s ({self.base_s}) must not exceed ceiling_s ({self.ceiling_s})")
        return self


def exponential_cap(attempt: int, config: BackoffConfig) -> float:
    """The largest delay retry ``attempt`` may draw: base * 2**attempt, at most the ceiling."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    # Cap the exponent so 2**attempt cannot overflow a float after days of retrying.
    return min(config.ceiling_s, config.base_s * 2.0 ** min(attempt, 64))


@dataclass
class Backoff:
    """Delays for consecutive failures; ``reset()`` after a success."""

    config: BackoffConfig
    rng: random.Random

    def __post_init__(self) -> None:
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """Failures since the last reset."""
        return self._attempt

    def next_delay(self, at_least_s: float = 0.0) -> float:
        """Delay before the next try; ``at_least_s`` honours a server's Retry-After, still under the ceiling."""
        cap = exponential_cap(self._attempt, self.config)
        self._attempt += 1
        # Not for cryptography: spreading retries only needs a uniform draw.
        drawn = self.rng.uniform(0.0, cap)
        return min(self.config.ceiling_s, max(drawn, at_least_s))

    def reset(self) -> None:
        self._attempt = 0


def retry_after_s(header: str | None) -> float:
    """Seconds from an HTTP ``Retry-After`` header to feed ``Backoff.next_delay``; 0 when absent or an HTTP
    date or garbage (not worth parsing: the caller's own backoff applies)."""
    try:
        return max(0.0, float(header or ""))
    except ValueError:
        return 0.0
