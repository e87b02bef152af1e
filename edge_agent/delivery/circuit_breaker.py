"""A circuit breaker for the uplink: stop hammering a central that keeps failing, probe it gently.

Why, beside the retry backoff: backoff spaces the retries of ONE batch; the breaker decides
whether to send at all. While open, the sender sends nothing (the spool keeps everything) and
when the pause is over it sends ONE small probe batch, so a central that comes back after an
outage is not hit by full batches from every agent at once, and a slow 4G link is not saturated
by batches that time out.

States (pure: time comes from the injected ``clock``, in seconds, monotonic):

- ``closed``: sending normally; ``failure_threshold`` consecutive failures open it.
- ``open``: nothing is sent for ``open_s`` seconds; each time it opens again in a row the pause
  doubles (``open_backoff``: base doubled per re-open, at most the ceiling; no jitter, the sender's
  retry backoff already spreads agents out).
- ``half_open``: the pause is over; ONE probe batch of at most ``probe_events`` may go. Success
  closes the breaker (and resets the pause); failure opens it again with a longer pause.

Every transition is counted (``BreakerStats.transitions``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ioc_common.backoff import BackoffConfig, exponential_cap

BreakerState = Literal["closed", "open", "half_open"]


class BreakerConfig(BaseModel):
    """When the breaker opens, how long it stays open, and how big its probe is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_threshold: int = Field(
        default=5, ge=1, le=1000, description="Consecutive failed sends that open the breaker."
    )
    open_backoff: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=5.0, ceiling_s=300.0),
        description="Pause while open: base_s the first time, doubled each time it re-opens in a row, at most "
        "ceiling_s.",
    )
    probe_events: int = Field(
        default=10, ge=1, le=5000, description="Most events in the probe batch sent when the pause is over."
    )


@dataclass(frozen=True, slots=True)
class BreakerStats:
    state: BreakerState
    consecutive_failures: int
    opens_in_a_row: int
    """Times it opened since it was last closed (sets the current pause)."""
    open_remaining_s: float
    """Seconds until a probe may go (0 unless open)."""
    transitions: dict[str, int] = field(default_factory=dict)
    """Counts of ``closed->open``, ``open->half_open``, ``half_open->closed``, ``half_open->open``."""


class CircuitBreaker:
    """Not thread-safe: the sender thread alone drives it (``stats`` reads are snapshots)."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opens_in_a_row = 0
        self._reopen_at = 0.0
        self._transitions: dict[str, int] = {}

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose pause is over reads ``half_open``)."""
        if self._state == "open" and self._clock() >= self._reopen_at:
            self._move("half_open")
        return self._state

    def wait_s(self) -> float:
        """Seconds before anything may be sent: the rest of the pause when open, else 0."""
        if self.state == "open":
            return max(0.0, self._reopen_at - self._clock())
        return 0.0

    def batch_limit(self, normal: int) -> int:
        """How many events the next batch may hold: ``probe_events`` when half-open, else ``normal``."""
        return min(normal, self._config.probe_events) if self.state == "half_open" else normal

    def success(self) -> None:
        """A batch got an answer from central (stored, refused or too large: central is there)."""
        self._failures = 0
        if self._state != "closed":
            self._opens_in_a_row = 0
            self._move("closed")

    def failure(self) -> None:
        """A send failed (network, timeout, 5xx, 429): count it; open when the threshold is reached."""
        self._failures += 1
        state = self.state
        if state == "half_open" or (state == "closed" and self._failures >= self._config.failure_threshold):
            self._open()

    def stats(self) -> BreakerStats:
        state = self.state
        return BreakerStats(
            state=state,
            consecutive_failures=self._failures,
            opens_in_a_row=self._opens_in_a_row,
            open_remaining_s=max(0.0, self._reopen_at - self._clock()) if state == "open" else 0.0,
            transitions=dict(self._transitions),
        )

    def _open(self) -> None:
        pause = exponential_cap(self._opens_in_a_row, self._config.open_backoff)
        self._opens_in_a_row += 1
        self._reopen_at = self._clock() + pause
        self._move("open")

    def _move(self, to: BreakerState) -> None:
        if to == self._state:
            return
        key = f"{self._state}->{to}"
        self._transitions[key] = self._transitions.get(key, 0) + 1
        self._state = to
