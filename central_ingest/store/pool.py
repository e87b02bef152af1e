"""The database connection pool, configured the same way for the HTTP app and the MQTT worker."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from central_ingest.settings import Settings


def open_pool(settings: Settings) -> AsyncConnectionPool[AsyncConnection[Any]]:
    """A pool sized and timed by ``settings`` (not opened yet: ``await pool.open()``)."""
    return AsyncConnectionPool(
        settings.database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout_s,
        # A connection broken by a database restart is replaced instead of failing a request.
        check=AsyncConnectionPool.check_connection,
        open=False,
    )
