"""Per-process sign-in state: the rate limiter, the password-hash gate, counters and clocks.

One ``AccessRuntime`` per app, made on first use from the service settings (``get_access_runtime``)
and kept in ``app.state.ioc_access``; a test may put its own there (fixed clocks, small limits).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from central_ingest.access.passwords import KdfParams, dummy_hash
from central_ingest.access.ratelimit import LoginRateLimiter
from central_ingest.access.settings import AccessSettings, access_settings
from central_ingest.state import AppState, get_app_state

T = TypeVar("T")


class KdfBusyError(RuntimeError):
    """Too many password hashes running and waiting; the sign-in is refused (503) and counted."""


class KdfGate:
    """Runs password hashes in worker threads, ``max_concurrent`` at a time, ``max_waiting`` queued.

    Bounded on purpose: each scrypt hash holds ``128 * r * N`` bytes, so an unbounded queue of
    sign-ins would be a memory exhaustion. Beyond the bound the drop policy is "refuse the newest".
    """

    def __init__(self, max_concurrent: int, max_waiting: int) -> None:
        self._limiter = anyio.CapacityLimiter(max_concurrent)
        self._max_in_flight = max_concurrent + max_waiting
        self._in_flight = 0
        self.refused = 0

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self._in_flight >= self._max_in_flight:
            self.refused += 1
            raise KdfBusyError("too many sign-ins at once; retry shortly")
        self._in_flight += 1
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)
        finally:
            self._in_flight -= 1


@dataclass
class AccessStats:
    logins: int = 0
    login_failures: int = 0
    unauthenticated: int = 0
    """Requests refused with 401 (no, unknown or expired session)."""
    forbidden: int = 0
    """Requests refused with 403 for a missing role."""
    csrf_refused: int = 0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class AccessRuntime:
    settings: AccessSettings
    limiter: LoginRateLimiter
    kdf: KdfGate
    stats: AccessStats = field(default_factory=AccessStats)
    now: Callable[[], dt.datetime] = _utc_now
    """Wall clock: session times and TOTP steps."""
    monotonic: Callable[[], float] = time.monotonic
    """Rate-limit clock."""
    _dummy_hash: str | None = None

    @classmethod
    def create(cls, settings: AccessSettings, **clocks: Any) -> AccessRuntime:
        limiter = LoginRateLimiter(
            settings.login_free_failures, settings.login_backoff, settings.login_forget_s, settings.login_tracked_keys
        )
        return cls(settings, limiter, KdfGate(settings.kdf_max_concurrent, settings.kdf_max_waiting), **clocks)

    @property
    def kdf_params(self) -> KdfParams:
        return KdfParams(self.settings.password_kdf_log2_n)

    async def dummy_hash(self) -> str:
        """A hash checked for unknown usernames (made once), so they cost what a known one costs."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.kdf.run(dummy_hash, self.kdf_params)
        return self._dummy_hash


def access_runtime(connection: HTTPConnection, state: AppState) -> AccessRuntime:
    """The app's sign-in runtime (``app.state.ioc_access``), made on first use; for requests and WebSockets."""
    runtime = getattr(connection.app.state, "ioc_access", None)
    if not isinstance(runtime, AccessRuntime):
        runtime = AccessRuntime.create(access_settings(state.settings))
        connection.app.state.ioc_access = runtime
    return runtime


def get_access_runtime(request: Request, state: Annotated[AppState, Depends(get_app_state)]) -> AccessRuntime:
    return access_runtime(request, state)
