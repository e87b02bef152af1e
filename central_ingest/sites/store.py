"""The ``camera_sites`` table: import a sites file (CLI, plain connection) and read it (app, async).

An import upserts every site of the file in one transaction and, with ``prune``, deletes the sites
the file no longer lists, so the table can be kept equal to a file under version control.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from central_ingest.access.scope import AreaScope, site_area_path
from central_ingest.sites.config import SiteConfig

SiteKey = tuple[str, str]
"""(agent_id, source id), as events carry them."""

_FIELDS = (
    "kind", "name", "lat", "lon", "area", "province", "district", "commune", "preview_url", "live_url", "project_id"
)  # fmt: skip
_UPSERT = (
    "INSERT INTO camera_sites (agent_id, id, " + ", ".join(_FIELDS) + ")"
    " VALUES (%(agent_id)s, %(id)s, " + ", ".join(f"%({name})s" for name in _FIELDS) + ")"
    " ON CONFLICT (agent_id, id) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in _FIELDS)
    + ", updated_at = now()"
    " WHERE (" + ", ".join(f"camera_sites.{name}" for name in _FIELDS) + ")"
    " IS DISTINCT FROM (" + ", ".join(f"EXCLUDED.{name}" for name in _FIELDS) + ")"
    " RETURNING (xmax = 0) AS inserted"
).encode()
_COLUMNS = "agent_id, id, " + ", ".join(_FIELDS)


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """What an import changed."""

    added: int
    updated: int
    unchanged: int
    removed: int


def import_sites(conn: psycopg.Connection[Any], sites: Iterable[SiteConfig], *, prune: bool = False) -> ImportCounts:
    """Upsert ``sites`` in one transaction; with ``prune`` also delete every site not among them."""
    added = updated = unchanged = removed = 0
    keys: list[SiteKey] = []
    with conn.transaction():
        for site in sites:
            keys.append((site.agent_id, site.id))
            row = conn.execute(_UPSERT, site.model_dump()).fetchone()
            if row is None:  # the WHERE of DO UPDATE kept an identical row
                unchanged += 1
            elif row[0]:
                added += 1
            else:
                updated += 1
        if prune:
            agents = [agent for agent, _ in keys]
            ids = [site_id for _, site_id in keys]
            deleted = conn.execute(
                b"DELETE FROM camera_sites WHERE (agent_id, id) NOT IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                (agents, ids),
            )
            removed = deleted.rowcount
    return ImportCounts(added, updated, unchanged, removed)


def _with_path(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "area_path": site_area_path(row["province"], row["district"], row["commune"])}


async def list_sites(conn: AsyncConnection[Any], scope: AreaScope | None = None) -> list[dict[str, Any]]:
    """Every site (those ``scope`` allows, when given), ordered by agent and id, each with its ``area_path``."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(f"SELECT {_COLUMNS} FROM camera_sites ORDER BY agent_id, id".encode())
        rows = [_with_path(row) for row in await cursor.fetchall()]
    return rows if scope is None else [row for row in rows if scope.allows(row["area_path"])]


async def get_site(conn: AsyncConnection[Any], agent_id: str, source_id: str) -> dict[str, Any] | None:
    """One registered site with its ``area_path``, or None."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            f"SELECT {_COLUMNS} FROM camera_sites WHERE agent_id = %s AND id = %s".encode(), (agent_id, source_id)
        )
        row = await cursor.fetchone()
    return None if row is None else _with_path(row)


async def sites_by_key(conn: AsyncConnection[Any], keys: Iterable[SiteKey]) -> dict[SiteKey, dict[str, Any]]:
    """The registered sites among ``keys``; a key with no site is simply absent."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            f"SELECT {_COLUMNS} FROM camera_sites "
            "WHERE (agent_id, id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))".encode(),
            ([agent for agent, _ in wanted], [site_id for _, site_id in wanted]),
        )
        return {(row["agent_id"], row["id"]): _with_path(row) for row in await cursor.fetchall()}


async def project_sites(conn: AsyncConnection[Any], project_id: str) -> list[dict[str, Any]]:
    """The sites registered as watching ``project_id``, ordered by agent and id."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            f"SELECT {_COLUMNS} FROM camera_sites WHERE project_id = %s ORDER BY agent_id, id".encode(), (project_id,)
        )
        return [_with_path(row) for row in await cursor.fetchall()]
