"""Vehicle-pass history: find the passes of a plate (exact) or of a witness pattern (partial), newest first.

Exact: the blind index of the plate (under the current index key, and under old ones while a rotation
runs) picks rows through the (plate_bidx, time DESC) index; every row is decrypted and checked against
the plate (a 128-bit index collision, however unlikely, never returns a wrong row).

Partial: the pattern's tokens pick candidate rows through the GIN index of ``plate_grams``, one day of
the range at a time from the newest, so a common pattern stops as soon as ``limit`` passes are found;
every candidate is decrypted and matched against the exact pattern. At most ``max_candidates`` are
decrypted per search (``truncated`` then says more may exist).

This module does no access control or audit: the police routes do (who may search, the case number,
the audit record in the same transaction).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from central_ingest.access.scope import Source, named_source_condition
from central_ingest.plates.partial import PatternError, PlatePattern, compact_plate
from central_ingest.plates.vault import PlateVault, PlateVaultError, plate_aad

log = logging.getLogger(__name__)

MAX_LIMIT = 5000
MAX_RANGE = dt.timedelta(days=400)
DEFAULT_MAX_CANDIDATES = 50_000
"""Partial search: most candidate rows decrypted in one search (about 0.1 s of AES-GCM per 20,000)."""
PARTIAL_SLICE = dt.timedelta(days=1)
"""Partial search reads the range one slice at a time, newest first (one chunk: the hypertables' chunk size)."""

RECORD_COLUMNS = (
    "time, event_id, agent_id, source_id, plate_key_id, plate_ct, plate_confidence, direction, vehicle_class, "
    "vehicle_colour, plate_colour, line_id, track_id, evidence"
)


class PassQueryError(ValueError):
    """A search that cannot run as asked; the message says what to change."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PassQuery:
    plate: str | None = None
    """Exact plate in any printed form ("30A-123.45", "30a12345"); normalised inside."""
    pattern: str | None = None
    """Partial: '?' = one unknown character, '*' = any run; needs >= 3 known characters in a row."""
    since: dt.datetime
    until: dt.datetime
    source_ids: tuple[str, ...] = ()
    """Cameras to search; empty = all."""
    limit: int = 500

    def __post_init__(self) -> None:
        if (self.plate is None) == (self.pattern is None):
            raise PassQueryError("give either plate (exact) or pattern (partial), not both and not neither")
        if self.plate is not None and len(compact_plate(self.plate)) < 2:
            raise PassQueryError(f"plate {self.plate!r} has fewer than 2 letters or digits")
        if self.pattern is not None:
            try:
                PlatePattern.parse(self.pattern)
            except PatternError as error:
                raise PassQueryError(str(error)) from None
        for name in ("since", "until"):
            value: dt.datetime = getattr(self, name)
            if value.tzinfo is None:
                raise PassQueryError(f"{name} must carry a timezone")
        if self.since >= self.until:
            raise PassQueryError("since must be before until")
        if self.until - self.since > MAX_RANGE:
            raise PassQueryError(f"a search covers at most {MAX_RANGE.days} days")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise PassQueryError(f"limit must be 1..{MAX_LIMIT}")


@dataclass(frozen=True, slots=True)
class PassRecord:
    event_id: UUID
    time: dt.datetime
    agent_id: str
    source_id: str
    plate: str
    plate_confidence: float
    direction: str | None
    vehicle_class: str | None
    vehicle_colour: str | None
    plate_colour: str | None
    line_id: str | None
    track_id: int
    evidence: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class PassSearchResult:
    records: tuple[PassRecord, ...]
    truncated: bool
    """True when more passes may match: ``limit`` was reached, or the candidate cap of a partial search."""
    candidates_checked: int
    """Rows decrypted to answer (exact: the index hits; partial: token candidates, false ones included)."""
    unreadable: int = 0
    """Rows whose plate did not open (unknown key, tampered, moved): skipped, and logged without the plate."""


def _filters(query: PassQuery, visible: frozenset[Source] | None) -> tuple[sql.Composable, dict[str, Any]]:
    """The camera filters: the query's camera ids, and the caller's visible (agent, camera) pairs in SQL, so a
    pass outside the caller's area is never read, let alone decrypted (ids are unique per agent only)."""
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if query.source_ids:
        parts.append(sql.SQL(" AND source_id = ANY(%(sources)s)"))
        params["sources"] = list(query.source_ids)
    if visible is not None:
        condition, scope_params = named_source_condition(visible, "agent_id", "source_id")
        parts.append(sql.SQL(" AND ") + condition)
        params |= scope_params
    return sql.Composed(parts), params


def _record(row: dict[str, Any], plate: str) -> PassRecord:
    return PassRecord(
        event_id=row["event_id"],
        time=row["time"],
        agent_id=row["agent_id"],
        source_id=row["source_id"],
        plate=plate,
        plate_confidence=float(row["plate_confidence"]),
        direction=row["direction"],
        vehicle_class=row["vehicle_class"],
        vehicle_colour=row["vehicle_colour"],
        plate_colour=row["plate_colour"],
        line_id=row["line_id"],
        track_id=int(row["track_id"]),
        evidence=tuple(row["evidence"] or ()),
    )


class _Opener:
    """Decrypts candidate rows and counts the ones that do not open."""

    def __init__(self, vault: PlateVault) -> None:
        self.vault = vault
        self.checked = 0
        self.unreadable = 0

    def plate_of(self, row: dict[str, Any]) -> str | None:
        self.checked += 1
        try:
            return self.vault.open(
                row["plate_key_id"], bytes(row["plate_ct"]), aad=plate_aad(row["agent_id"], row["event_id"])
            )
        except PlateVaultError as error:
            self.unreadable += 1
            log.warning("plate pass %s (%s) does not open: %s", row["event_id"], row["time"].isoformat(), error)
            return None


async def _fetch(conn: AsyncConnection[Any], statement: sql.Composed, params: dict[str, Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        # Never a prepared statement: its generic plan cannot exclude chunks by the time range at plan time
        # and reads every chunk's index (measured 7x slower on 40 chunks, see benchmarks/plate_search.md).
        await cursor.execute(statement, params, prepare=False)
        return await cursor.fetchall()


async def _search_exact(
    conn: AsyncConnection[Any], vault: PlateVault, query: PassQuery, visible: frozenset[Source] | None
) -> PassSearchResult:
    assert query.plate is not None
    wanted = compact_plate(query.plate)
    keys = [vault.blind_index(query.plate, index_key=key.index_key) for key in vault.search_keys()]
    where, params = _filters(query, visible)
    # One index key (no rotation running): a plain equality, which plans faster than = ANY(array).
    match = sql.SQL("plate_bidx = %(bidx)s") if len(keys) == 1 else sql.SQL("plate_bidx = ANY(%(bidx)s)")
    statement = sql.SQL(
        "SELECT {columns} FROM plate_passes WHERE {match}"
        " AND time >= %(since)s AND time < %(until)s{where} ORDER BY time DESC, event_id DESC LIMIT %(limit)s"
    ).format(columns=sql.SQL(RECORD_COLUMNS), match=match, where=where)
    params |= {"bidx": keys[0] if len(keys) == 1 else keys, "since": query.since, "until": query.until}
    params["limit"] = query.limit + 1
    rows = await _fetch(conn, statement, params)
    opener = _Opener(vault)
    records: list[PassRecord] = []
    for row in rows[: query.limit]:
        plate = opener.plate_of(row)
        if plate is not None and compact_plate(plate) == wanted:
            records.append(_record(row, plate))
    return PassSearchResult(tuple(records), len(rows) > query.limit, opener.checked, opener.unreadable)


def _slices(since: dt.datetime, until: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """[since, until) cut into PARTIAL_SLICE pieces, newest first."""
    slices: list[tuple[dt.datetime, dt.datetime]] = []
    end = until
    while end > since:
        start = max(since, end - PARTIAL_SLICE)
        slices.append((start, end))
        end = start
    return slices


def _token_condition(vault: PlateVault, pattern: PlatePattern) -> tuple[sql.Composable, dict[str, Any]]:
    """Rows holding every token of the pattern, under any index key still in use."""
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    for number, key in enumerate(vault.search_keys()):
        tokens, key_id = f"tokens_{number}", f"index_key_{number}"
        parts.append(
            sql.SQL("(plate_index_key = {} AND plate_grams @> {}::int4[])").format(
                sql.Placeholder(key_id), sql.Placeholder(tokens)
            )
        )
        params[tokens] = pattern.tokens(key.index_key)
        params[key_id] = key.index_key_id
    return sql.SQL("(") + sql.SQL(" OR ").join(parts) + sql.SQL(")"), params


async def _search_partial(
    conn: AsyncConnection[Any],
    vault: PlateVault,
    query: PassQuery,
    max_candidates: int,
    visible: frozenset[Source] | None,
) -> PassSearchResult:
    assert query.pattern is not None
    pattern = PlatePattern.parse(query.pattern)
    tokens, token_params = _token_condition(vault, pattern)
    where, params = _filters(query, visible)
    statement = sql.SQL(
        "SELECT {columns} FROM plate_passes WHERE {tokens} AND time >= %(since)s AND time < %(until)s{where}"
        " ORDER BY time DESC, event_id DESC LIMIT %(cap)s"
    ).format(columns=sql.SQL(RECORD_COLUMNS), tokens=tokens, where=where)
    opener = _Opener(vault)
    records: list[PassRecord] = []
    for start, end in _slices(query.since, query.until):
        cap = max_candidates - opener.checked
        rows = await _fetch(conn, statement, {**params, **token_params, "since": start, "until": end, "cap": cap + 1})
        for row in rows[:cap]:
            plate = opener.plate_of(row)
            if plate is not None and pattern.matches(compact_plate(plate)):
                records.append(_record(row, plate))
                if len(records) > query.limit:
                    return PassSearchResult(tuple(records[: query.limit]), True, opener.checked, opener.unreadable)
        if len(rows) > cap:
            return PassSearchResult(tuple(records[: query.limit]), True, opener.checked, opener.unreadable)
    return PassSearchResult(tuple(records), False, opener.checked, opener.unreadable)


async def search_passes(
    conn: AsyncConnection[Any],
    vault: PlateVault,
    query: PassQuery,
    *,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    visible: frozenset[Source] | None = None,
) -> PassSearchResult:
    """The passes matching ``query`` (of the ``visible`` cameras only, when given), newest first, plates
    decrypted (see the module doc)."""
    if query.plate is not None:
        return await _search_exact(conn, vault, query, visible)
    return await _search_partial(conn, vault, query, max_candidates, visible)
