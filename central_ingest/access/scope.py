"""Area scope: which sites a user may see (a commune-level user sees only its communes, the province all).

An *area path* names a place from the top: ``"Province/District/Commune"`` (1 to 3 segments). A user's
scope is a list of such paths, or none at all for the whole province; a site's path comes from its
``province``, ``district`` and ``commune`` in the sites registry. A scope allows a site when one of its
paths is a segment prefix of the site's path (``Huế/Phú Xuân`` allows ``Huế/Phú Xuân/Phú Hội`` but not
``Huế/Phú Xuân Mới``). A site with no place is visible only to unrestricted users: scoping fails closed.

Names are compared in Unicode NFC and case-folded (a name typed on one keyboard as composed and on another
as decomposed characters is the same place). Paths are matched level by level from the top, and a missing
district is skipped, so the sites file must use one scheme per province: all its sites with a district, or
none (``sites.config.load_sites`` refuses a file that mixes them); otherwise ``Huế/Phú Xuân`` could mean a
district in one row and a ward in another.

Routes filter their SQL with ``source_condition`` (the visible ``(agent_id, source_id)`` pairs), and a
route that names one source calls ``require_visible_source``, which answers 404 rather than 403 so a
scoped user cannot learn what exists outside its area.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from psycopg import AsyncConnection, sql

MAX_SEGMENTS = 3
MAX_SEGMENT_CHARS = 200
SEPARATOR = "/"
WHOLE_PROVINCE = "toàn tỉnh / whole province"
NOT_IN_AREA = "Không có camera/trạm này trong khu vực của bạn. / No such camera or station in your area."

Source = tuple[str, str]
"""(agent_id, source_id), as events carry them."""


class AreaError(ValueError):
    """An area path that is not ``Province[/District[/Commune]]``."""


def parse_area_path(text: str) -> str:
    """The normalised form of ``text`` (segments trimmed); ``AreaError`` saying what is wrong otherwise."""
    segments = [segment.strip() for segment in nfc(text).split(SEPARATOR)]
    if not text.strip() or any(not segment for segment in segments):
        raise AreaError(f"area {text[:80]!r} must be 'Province/District/Commune' with no empty part")
    if len(segments) > MAX_SEGMENTS:
        raise AreaError(
            f"area {text[:80]!r} has {len(segments)} parts; at most {MAX_SEGMENTS} (province/district/commune)"
        )
    if any(len(segment) > MAX_SEGMENT_CHARS for segment in segments):
        raise AreaError(f"each part of an area has at most {MAX_SEGMENT_CHARS} characters")
    return SEPARATOR.join(segments)


def site_area_path(province: str | None, district: str | None, commune: str | None) -> str | None:
    """A site's path from its registry fields, the levels it has joined from the top.

    A missing district is skipped (since the 2025 reform most provinces have only provinces and communes:
    ``Huế/Phú Hội``); a site without a province has no path (the registry refuses district/commune alone).
    """
    if not province:
        return None
    return SEPARATOR.join(nfc(value).strip() for value in (province, district, commune) if value)


def nfc(text: str) -> str:
    """``text`` in Unicode NFC: Vietnamese letters typed composed or decomposed compare equal."""
    return unicodedata.normalize("NFC", text)


def _segments(path: str) -> tuple[str, ...]:
    return tuple(segment.strip().casefold() for segment in nfc(path).split(SEPARATOR))


@dataclass(frozen=True, slots=True)
class AreaScope:
    """The areas one user may see; ``areas=None`` is the whole province."""

    areas: tuple[str, ...] | None = None

    @property
    def unrestricted(self) -> bool:
        return self.areas is None

    def allows(self, area_path: str | None) -> bool:
        if self.areas is None:
            return True
        if not area_path:
            return False
        site = _segments(area_path)
        return any(site[: len(allowed)] == allowed for allowed in map(_segments, self.areas))

    def label(self) -> str:
        return WHOLE_PROVINCE if self.areas is None else "; ".join(self.areas)


_SITE_PLACES = b"SELECT agent_id, id, province, district, commune FROM camera_sites"


async def visible_sources(conn: AsyncConnection[Any], scope: AreaScope) -> frozenset[Source] | None:
    """None when ``scope`` is unrestricted; otherwise the registered sites whose place it allows."""
    if scope.unrestricted:
        return None
    cursor = await conn.execute(_SITE_PLACES)
    return frozenset(
        (str(agent), str(source))
        for agent, source, province, district, commune in await cursor.fetchall()
        if scope.allows(site_area_path(province, district, commune))
    )


def source_condition(
    visible: frozenset[Source] | None, agent_column: str, source_column: str
) -> tuple[sql.Composable, tuple[Any, ...]]:
    """A SQL boolean restricting ``(agent_column, source_column)`` to ``visible`` (TRUE when None), and its params.

    Columns may be qualified (``"v.agent_id"``); each part is quoted as an identifier.
    """
    if visible is None:
        return sql.SQL("TRUE"), ()
    agents, sources = _columns(visible)
    return _pairs_in(agent_column, source_column, sql.SQL("%s"), sql.SQL("%s")), (agents, sources)


def named_source_condition(
    visible: frozenset[Source] | None, agent_column: str, source_column: str
) -> tuple[sql.Composable, dict[str, Any]]:
    """``source_condition`` with NAMED parameters (``visible_agents``, ``visible_sources``), for statements that
    use ``%(name)s`` placeholders throughout (psycopg does not mix them with positional ones)."""
    if visible is None:
        return sql.SQL("TRUE"), {}
    agents, sources = _columns(visible)
    condition = _pairs_in(agent_column, source_column, sql.SQL("%(visible_agents)s"), sql.SQL("%(visible_sources)s"))
    return condition, {"visible_agents": agents, "visible_sources": sources}


def _columns(visible: frozenset[Source]) -> tuple[list[str], list[str]]:
    ordered = sorted(visible)
    return [agent for agent, _ in ordered], [source for _, source in ordered]


def _pairs_in(agent_column: str, source_column: str, agents: sql.SQL, sources: sql.SQL) -> sql.Composable:
    return sql.SQL("({}, {}) IN (SELECT a, s FROM unnest({}::text[], {}::text[]) AS v(a, s))").format(
        sql.Identifier(*agent_column.split(".")), sql.Identifier(*source_column.split(".")), agents, sources
    )


def require_in_visible(visible: frozenset[Source] | None, agent_id: str, source_id: str) -> None:
    """``require_visible_source`` for a route that already holds ``visible_sources``: no second query."""
    if visible is not None and (agent_id, source_id) not in visible:
        raise HTTPException(404, NOT_IN_AREA)


async def require_visible_source(conn: AsyncConnection[Any], scope: AreaScope, agent_id: str, source_id: str) -> None:
    """Nothing when ``scope`` may see that source; HTTP 404 otherwise (the same answer as for no such source)."""
    if scope.unrestricted:
        return
    cursor = await conn.execute(_SITE_PLACES + b" WHERE agent_id = %s AND id = %s", (agent_id, source_id))
    row = await cursor.fetchone()
    if row is None or not scope.allows(site_area_path(row[2], row[3], row[4])):
        raise HTTPException(404, NOT_IN_AREA)
