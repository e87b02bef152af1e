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

from central_ingest.sites.config import SiteConfig

SiteKey = tuple[str, str]
"""(agent_id, source id), as events carry them."""

_UPSERT = b"""
INSERT INTO camera_sites (agent_id, id, kind, name, lat, lon, area, preview_url, project_id)
VALUES (%(agent_id)s, %(id)s, %(kind)s, %(name)s, %(lat)s, %(lon)s, %(area)s, %(preview_url)s, %(project_id)s)
ON CONFLICT (agent_id, id) DO UPDATE
   SET kind = EXCLUDED.kind, name = EXCLUDED.name, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
       area = EXCLUDED.area, preview_url = EXCLUDED.preview_url, project_id = EXCLUDED.project_id,
       updated_at = now()
 WHERE (camera_sites.kind, camera_sites.name, camera_sites.lat, camera_sites.lon, camera_sites.area,
        camera_sites.preview_url, camera_sites.project_id)
       IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.name, EXCLUDED.lat, EXCLUDED.lon, EXCLUDED.area,
        EXCLUDED.preview_url, EXCLUDED.project_id)
RETURNING (xmax = 0) AS inserted
"""
_COLUMNS = "agent_id, id, kind, name, lat, lon, area, preview_url, project_id"


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


async def list_sites(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Every site, ordered by agent and id."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(f"SELECT {_COLUMNS} FROM camera_sites ORDER BY agent_id, id".encode())
        return await cursor.fetchall()


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
        return {(row["agent_id"], row["id"]): row for row in await cursor.fetchall()}


async def project_sites(conn: AsyncConnection[Any], project_id: str) -> list[dict[str, Any]]:
    """The sites registered as watching ``project_id``, ordered by agent and id."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            f"SELECT {_COLUMNS} FROM camera_sites WHERE project_id = %s ORDER BY agent_id, id".encode(), (project_id,)
        )
        return await cursor.fetchall()
