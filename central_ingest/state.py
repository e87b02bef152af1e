"""What the running app shares between requests, and the dependencies that hand it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from central_ingest.ingest.pipeline import Ingestor
from central_ingest.plates.vault import PlateVault
from central_ingest.settings import Settings


@dataclass(frozen=True)
class AppState:
    settings: Settings
    pool: AsyncConnectionPool[AsyncConnection[Any]]
    ingestor: Ingestor
    plate_vault: PlateVault | None = None
    """Seals and opens plates; None when no keyring is configured (plate events are then refused)."""


def get_app_state(request: Request) -> AppState:
    state = request.app.state.ioc
    if not isinstance(state, AppState):  # only before the lifespan ran, i.e. a wiring bug
        raise RuntimeError("the app was used before its lifespan started")
    return state
