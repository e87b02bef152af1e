"""The FastAPI application: ``create_app(settings)`` wires routes, pool and lifespan.

Async all the way: psycopg's ``AsyncConnectionPool`` serves every request on one
event loop, so waiting on the database costs no thread, while CPU-heavy batch
parsing is pushed to a worker thread (see ``ingest.routes``). At start the app
applies pending migrations (unless ``migrate_on_start`` is off), seals any plate an older
version stored in clear (``plates.legacy``; without a keyring it refuses to start) and opens the
pool; at stop it closes the pool. The plate keyring is read in ``create_app`` (file or KMS hook),
so a bad keyring stops the service before it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import psycopg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg import AsyncConnection
from psycopg_pool import PoolTimeout

from central_ingest.access.routes import router as access_router
from central_ingest.alerts.routes import router as alerts_router
from central_ingest.alerts.rules import AlertRulesConfig, load_rules
from central_ingest.alerts.service import AlertService
from central_ingest.alerts.sinks import build_dispatcher, build_sse_broker
from central_ingest.alerts.sinks.routes import router as alert_stream_router
from central_ingest.audit.routes import router as audit_router
from central_ingest.dashboards.routes import router as dashboards_router
from central_ingest.ingest.mqtt_worker import mqtt_worker_running
from central_ingest.ingest.pipeline import Ingestor
from central_ingest.ingest.routes import router as ingest_router
from central_ingest.live.routes import close_live_hub
from central_ingest.live.routes import router as live_router
from central_ingest.mapview.health_routes import router as health_api_router
from central_ingest.mapview.routes import router as map_api_router
from central_ingest.plates.evidence_routes import router as evidence_router
from central_ingest.plates.legacy import seal_legacy_plates
from central_ingest.plates.routes import router as plate_search_router
from central_ingest.plates.vault import vault_from_settings
from central_ingest.projects.plan_routes import router as plans_router
from central_ingest.projects.progress_routes import router as project_progress_router
from central_ingest.query.families import router as families_router
from central_ingest.query.ingest_status import router as ingest_status_router
from central_ingest.query.routes import router as query_router
from central_ingest.query.routes import zones_router
from central_ingest.settings import Settings
from central_ingest.sites.routes import router as sites_router
from central_ingest.state import AppState, get_app_state
from central_ingest.store.maintenance import MaintenanceStats, maintenance_loop
from central_ingest.store.migrate import apply_migrations, available_migrations
from central_ingest.store.pool import open_pool
from central_ingest.web.alerts_page import router as alerts_page_router
from central_ingest.web.health_page import router as health_page_router
from central_ingest.web.live_page import router as live_page_router
from central_ingest.web.map_page import router as map_page_router
from central_ingest.web.overview_page import router as web_router
from central_ingest.web.police_page import router as police_page_router
from central_ingest.web.projects_page import router as projects_page_router
from central_ingest.web.sensors_page import router as sensors_page_router
from central_ingest.web.static_assets import router as common_assets_router
from central_ingest.web.traffic_page import router as traffic_page_router
from central_ingest.web.vendor import router as vendor_router

RETRY_AFTER_S = "5"
READYZ_TIMEOUT_S = 2.0
"""A probe must answer quickly; a pool that cannot lend a connection this fast is not ready."""


def _database_unavailable(_request: Request, error: Exception) -> JSONResponse:
    # Agents keep their spool and retry; say so instead of a bare 500.
    return JSONResponse(
        {"detail": f"database unavailable, retry later ({type(error).__name__})"},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_S},
    )


async def _pending_migrations(conn: AsyncConnection[Any]) -> list[str]:
    """Versions packaged with this code but not applied in the database."""
    cursor = await conn.execute(b"SELECT version FROM schema_migrations")
    applied = {str(version) for (version,) in await cursor.fetchall()}
    return [m.version for m in available_migrations() if m.version not in applied]


ROUTERS: tuple[APIRouter, ...] = (
    ingest_router,
    query_router,
    zones_router,
    families_router,
    ingest_status_router,
    alert_stream_router,
    alerts_router,
    plans_router,
    project_progress_router,
    web_router,
    plate_search_router,
    evidence_router,
    sites_router,
    police_page_router,
    projects_page_router,
    live_page_router,
    alerts_page_router,
    common_assets_router,
    access_router,
    audit_router,
    dashboards_router,
    traffic_page_router,
    sensors_page_router,
    live_router,
    map_api_router,
    health_api_router,
    map_page_router,
    health_page_router,
    vendor_router,
)


def create_app(settings: Settings) -> FastAPI:
    """A ready-to-serve app; nothing connects until its lifespan starts.

    The alert rules file is read here, so a bad file stops the service before it serves (``ConfigError``);
    so is the plate keyring (``KeyringError``).
    """
    rules = load_rules(settings.alert_rules_path) if settings.alert_rules_path else AlertRulesConfig()
    plate_vault = vault_from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await anyio.to_thread.run_sync(apply_migrations, settings.database_url)
        await anyio.to_thread.run_sync(seal_legacy_plates, settings.database_url, lambda: plate_vault)
        pool = open_pool(settings)
        await pool.open()
        sse = build_sse_broker(settings.alert_sinks)
        dispatcher = build_dispatcher(settings.alert_sinks, sse)
        await dispatcher.start()
        app.state.ioc_sse = sse
        alerts = AlertService(
            pool,
            rules,
            dispatcher.publish,
            settings.timezone,
            settings.alert_evaluate_every_s,
            max_pending=settings.alert_max_pending,
        )
        app.state.ioc_alerts = alerts
        ingestor = Ingestor(pool, settings, on_stored=alerts.notify_ingested, vault=plate_vault)
        app.state.ioc = AppState(settings=settings, pool=pool, ingestor=ingestor, plate_vault=plate_vault)
        background = [asyncio.create_task(alerts.run(), name="alert-engine")]
        if settings.maintenance_enabled:
            background.append(
                asyncio.create_task(
                    maintenance_loop(pool, settings, settings.maintenance_every_s, stats=app.state.ioc_maintenance),
                    name="maintenance",
                )
            )
        try:
            async with contextlib.AsyncExitStack() as stack:
                if settings.serve_mqtt_worker and settings.mqtt_ingest is not None:
                    await stack.enter_async_context(mqtt_worker_running(settings.mqtt_ingest, ingestor))
                yield
        finally:
            await close_live_hub(app)
            await alerts.close()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await dispatcher.close(timeout_s=5.0)
            await pool.close()

    app = FastAPI(
        title="IOC central ingest",
        version="0.1.0",
        summary="Receives edge agents' events (HTTPS batches, MQTT), stores them in TimescaleDB exactly once, "
        "raises the province's alerts and answers queries.",
        lifespan=lifespan,
    )
    app.state.ioc_maintenance = MaintenanceStats()
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Database reachable and schema migrations current")
    async def readyz(state: Annotated[AppState, Depends(get_app_state)]) -> JSONResponse:
        try:
            async with state.pool.connection(timeout=READYZ_TIMEOUT_S) as conn:
                pending = await _pending_migrations(conn)
        except (PoolTimeout, psycopg.Error) as error:
            return JSONResponse({"status": "unavailable", "detail": type(error).__name__}, status_code=503)
        if pending:
            return JSONResponse({"status": "migrations pending", "pending": pending}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app
