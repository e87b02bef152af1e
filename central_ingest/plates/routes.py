"""``POST /api/v1/plates/search``: the audited vehicle-pass search for police officers.

Plates are personal data (Law 91/2025, Decree 356/2025): only the police role may search, every
search states its reason (a case number and a note), and the search and its audit record are ONE
transaction, so no search can run without its record: when the audit append fails, the
transaction rolls back and the officer gets a 500 with no results. The audit record's ``seq`` is the
answer's ``search_id``, which the evidence route (``evidence_routes``) checks before it serves an
image.

The answer is ready for the page: ``records`` newest first, a ``timeline`` oldest first with step
numbers (the route on the map), and the ``cameras`` involved with their registered coordinates
(null when the site registry does not know the camera).

Area scope: an officer scoped to some communes searches only the cameras there (``scoped_query``
narrows the cameras asked for to the visible ones, and the passes of another agent's camera with the
same id are dropped); the audit record holds the narrowed query, so re-running it gives what was shown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Annotated, Any, Self

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from central_ingest.access.dependencies import client_address, require_role
from central_ingest.access.principal import Principal
from central_ingest.access.scope import Source, visible_sources
from central_ingest.audit import AuditEntry, append_audit
from central_ingest.plates.partial import PatternError, PlatePattern, compact_plate
from central_ingest.plates.police_settings import PoliceSettings
from central_ingest.plates.search import (
    PassQuery,
    PassQueryError,
    PassRecord,
    PassSearchResult,
    search_passes,
)
from central_ingest.plates.vault import PlateVault
from central_ingest.sites.store import sites_by_key
from central_ingest.state import AppState, get_app_state
from event_contract.models import Identifier

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/plates", tags=["police search"])

SEARCH_ACTION = "plate_search"
POLICE_ROLE = "police"
CASE_NUMBER_PATTERN = r"^[\w][\w./:# -]{0,63}$"
"""Letters (Vietnamese included), digits and ``. / : # - _`` and spaces, 1..64 characters: e.g. 123/2025/QĐ-CA."""
MAX_LIMIT = 2000


def get_police_settings(app: Annotated[AppState, Depends(get_app_state)]) -> PoliceSettings:
    """``Settings.police`` of the running service (tests override this dependency)."""
    return app.settings.police


def get_plate_vault(app: Annotated[AppState, Depends(get_app_state)]) -> PlateVault:
    """The vault, or 503 when no keyring is configured (plates are never kept or searched in clear)."""
    vault = app.plate_vault
    if vault is None:
        raise HTTPException(503, "plate search is unavailable: no plate keyring is configured (IOC_PLATE_KEYS_FILE)")
    return vault


class SearchReason(BaseModel):
    """Why the officer searches: recorded in the audit log with the search."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_number: Annotated[str, StringConstraints(strip_whitespace=True, pattern=CASE_NUMBER_PATTERN)] = Field(
        description="The case (hồ sơ vụ việc) the search serves."
    )
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=1000)] = Field(
        description="What the search is for, in a sentence."
    )

    def as_text(self) -> str:
        """The audit log's ``reason``: the case number first, so auditors can filter on it."""
        return f"{self.case_number}: {self.note}"


class SearchRequest(BaseModel):
    """A search by exact plate or by witness pattern, over a time range and optionally some cameras."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plate: str | None = Field(default=None, min_length=1, max_length=20, description="Exact plate, any printed form.")
    pattern: str | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="Partial plate: '?' one unknown character, '*' any run; at least 3 known characters in a row.",
    )
    since: AwareDatetime
    until: AwareDatetime
    source_ids: tuple[Identifier, ...] = Field(default=(), max_length=500, description="Cameras; empty: all.")
    reason: SearchReason
    limit: int = Field(default=500, ge=1, le=MAX_LIMIT, description="Most records returned (newest first).")

    @field_validator("plate")
    @classmethod
    def _plate_has_characters(cls, value: str | None) -> str | None:
        if value is not None and len(compact_plate(value)) < 2:
            raise ValueError("a plate needs at least 2 letters or digits, e.g. 30A-123.45")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern_searchable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                PlatePattern.parse(value)
            except PatternError as error:
                raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _one_plate_and_a_range(self) -> Self:
        if (self.plate is None) == (self.pattern is None):
            raise ValueError("give exactly one of plate (exact) or pattern (partial)")
        if self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    def query(self) -> PassQuery:
        return PassQuery(
            plate=self.plate,
            pattern=self.pattern,
            since=self.since,
            until=self.until,
            source_ids=tuple(sorted(set(self.source_ids))),
            limit=self.limit,
        )


class EvidenceOut(BaseModel):
    kind: str | None
    sha256: str | None
    time: dt.datetime | None
    url: str | None = Field(description="The image through the audited evidence route; null: not fetchable.")


class PassOut(BaseModel):
    event_id: str
    time: dt.datetime
    agent_id: str
    source_id: str
    camera_key: str = Field(description="agent_id/source_id, the key of `cameras`.")
    plate: str
    plate_confidence: float
    direction: str | None
    vehicle_class: str | None
    vehicle_colour: str | None
    plate_colour: str | None
    line_id: str | None
    track_id: int
    evidence: list[EvidenceOut]


class TimelineStep(BaseModel):
    step: int = Field(description="1 for the oldest pass: the numbers of the route on the map.")
    time: dt.datetime
    camera_key: str
    event_id: str


class CameraOut(BaseModel):
    key: str
    agent_id: str
    source_id: str
    name: str | None
    lat: float | None
    lon: float | None
    area: str | None
    passes: int
    first_time: dt.datetime
    last_time: dt.datetime


class SearchAnswer(BaseModel):
    search_id: int = Field(description="The audit record of this search; needed to open its evidence images.")
    searched_at: dt.datetime
    truncated: bool = Field(description="More passes matched than `limit`: narrow the range.")
    records: list[PassOut] = Field(description="Newest first.")
    timeline: list[TimelineStep] = Field(description="Oldest first.")
    cameras: list[CameraOut] = Field(description="In order of their first pass.")


def camera_key(agent_id: str, source_id: str) -> str:
    return f"{agent_id}/{source_id}"


def query_target(query: PassQuery) -> dict[str, Any]:
    """The audit record's ``target``: the whole query, so it can be re-run (the evidence check does)."""
    target: dict[str, Any] = {
        "since": query.since.astimezone(dt.UTC).isoformat(),
        "until": query.until.astimezone(dt.UTC).isoformat(),
        "source_ids": list(query.source_ids),
        "limit": query.limit,
    }
    if query.plate is not None:
        target["plate"] = query.plate
    if query.pattern is not None:
        target["pattern"] = query.pattern
    return target


def query_from_target(target: dict[str, Any]) -> PassQuery:
    """The query a search record describes (``query_target`` read back)."""
    return PassQuery(
        plate=target.get("plate"),
        pattern=target.get("pattern"),
        since=dt.datetime.fromisoformat(str(target["since"])),
        until=dt.datetime.fromisoformat(str(target["until"])),
        source_ids=tuple(str(source) for source in target.get("source_ids", ())),
        limit=int(target["limit"]),
    )


NO_CAMERA = "-"
"""The camera list of a scoped search with no camera left: not a valid source id, so it matches nothing (an empty
list would mean every camera), also when the evidence route re-runs the audited query."""


def scoped_query(query: PassQuery, visible: frozenset[Source] | None) -> PassQuery:
    """``query`` limited to the cameras (ids) of ``visible``; unchanged when ``visible`` is None."""
    if visible is None:
        return query
    ids = {source for _, source in visible}
    wanted = sorted(ids.intersection(query.source_ids) if query.source_ids else ids)
    return dataclasses.replace(query, source_ids=tuple(wanted) or (NO_CAMERA,))


class AuditAppendFailedError(RuntimeError):
    """The audit record could not be written; the search's transaction is rolled back with it."""


async def audited_search(
    conn: psycopg.AsyncConnection[Any],
    vault: PlateVault,
    query: PassQuery,
    entry: AuditEntry,
    visible: frozenset[Source] | None = None,
) -> tuple[PassSearchResult, int, dt.datetime]:
    """Search (only the ``visible`` cameras when given) and append the audit record in one transaction;
    (result, audit seq, audit time)."""
    async with conn.transaction():
        result = await search_passes(conn, vault, scoped_query(query, visible), visible=visible)
        try:
            record = await append_audit(conn, dataclasses.replace(entry, result_count=len(result.records)))
        except Exception as error:  # any failure: the search must not outlive its missing record
            raise AuditAppendFailedError(f"{type(error).__name__}: {error}") from error
    return result, record.seq, record.time


def _evidence_out(evidence: dict[str, Any], search_id: int) -> EvidenceOut:
    sha = evidence.get("sha256")
    sha = sha if isinstance(sha, str) else None
    time = evidence.get("time")
    kind = evidence.get("kind")
    return EvidenceOut(
        kind=kind if isinstance(kind, str) else None,
        sha256=sha,
        time=dt.datetime.fromisoformat(time) if isinstance(time, str) else None,
        url=f"/api/v1/plates/evidence/{sha}?search_id={search_id}" if sha else None,
    )


def _pass_out(record: PassRecord, search_id: int) -> PassOut:
    return PassOut(
        event_id=str(record.event_id),
        time=record.time,
        agent_id=record.agent_id,
        source_id=record.source_id,
        camera_key=camera_key(record.agent_id, record.source_id),
        plate=record.plate,
        plate_confidence=record.plate_confidence,
        direction=record.direction,
        vehicle_class=record.vehicle_class,
        vehicle_colour=record.vehicle_colour,
        plate_colour=record.plate_colour,
        line_id=record.line_id,
        track_id=record.track_id,
        evidence=[_evidence_out(evidence, search_id) for evidence in record.evidence],
    )


def build_answer(
    records: tuple[PassRecord, ...],
    truncated: bool,
    search_id: int,
    searched_at: dt.datetime,
    sites: dict[tuple[str, str], dict[str, Any]],
) -> SearchAnswer:
    """The page-ready answer: records newest first, the numbered timeline, the cameras with coordinates."""
    oldest_first = sorted(records, key=lambda r: (r.time, str(r.event_id)))
    cameras: dict[tuple[str, str], list[PassRecord]] = {}
    for record in oldest_first:
        cameras.setdefault((record.agent_id, record.source_id), []).append(record)
    camera_list = []
    for (agent_id, source_id), passes in cameras.items():
        site = sites.get((agent_id, source_id), {})
        camera_list.append(
            CameraOut(
                key=camera_key(agent_id, source_id),
                agent_id=agent_id,
                source_id=source_id,
                name=site.get("name"),
                lat=site.get("lat"),
                lon=site.get("lon"),
                area=site.get("area"),
                passes=len(passes),
                first_time=passes[0].time,
                last_time=passes[-1].time,
            )
        )
    return SearchAnswer(
        search_id=search_id,
        searched_at=searched_at,
        truncated=truncated,
        records=[_pass_out(record, search_id) for record in reversed(oldest_first)],
        timeline=[
            TimelineStep(
                step=step,
                time=record.time,
                camera_key=camera_key(record.agent_id, record.source_id),
                event_id=str(record.event_id),
            )
            for step, record in enumerate(oldest_first, start=1)
        ],
        cameras=camera_list,
    )


@router.post(
    "/search",
    response_model=SearchAnswer,
    summary="Search vehicle passes by plate (police; audited)",
    responses={
        401: {"description": "Not logged in."},
        403: {"description": "The user does not have the police role."},
        422: {"description": "Invalid body: exactly one of plate/pattern, a reason, a range within the limit."},
        500: {"description": "The audit record could not be written: the search was not performed."},
        503: {"description": "No plate keyring configured, or the database is unavailable."},
    },
)
async def search(
    *,
    body: SearchRequest,
    request: Request,
    principal: Annotated[Principal, Depends(require_role(POLICE_ROLE))],
    app: Annotated[AppState, Depends(get_app_state)],
    vault: Annotated[PlateVault, Depends(get_plate_vault)],
    settings: Annotated[PoliceSettings, Depends(get_police_settings)],
) -> SearchAnswer | JSONResponse:
    if body.until - body.since > dt.timedelta(days=settings.search_max_days):
        raise HTTPException(422, f"the time range may cover at most {settings.search_max_days} days")
    try:
        query = body.query()
    except PassQueryError as error:
        raise HTTPException(422, str(error)) from None
    async with app.pool.connection() as conn:
        visible = await visible_sources(conn, principal.scope)
        entry = AuditEntry(
            actor=principal.username,
            role=POLICE_ROLE,
            action=SEARCH_ACTION,
            target=query_target(scoped_query(query, visible)),
            reason=body.reason.as_text(),
            result_count=None,  # set inside the transaction, once the search has run
            client=client_address(request),
        )
        if visible is not None:
            entry = dataclasses.replace(entry, target={**entry.target, "area": principal.scope.label()})
        try:
            result, search_id, searched_at = await audited_search(conn, vault, query, entry, visible)
        except AuditAppendFailedError as error:
            logger.error("plate search by %s refused: audit append failed: %s", principal.username, error)
            return JSONResponse(
                {"detail": "the audit log could not record this search, so it was not performed; try again later"},
                status_code=500,
            )
        sites = await sites_by_key(conn, {(r.agent_id, r.source_id) for r in result.records})
    return build_answer(result.records, result.truncated, search_id, searched_at, sites)
