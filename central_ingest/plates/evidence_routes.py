"""Evidence images: agents upload them (``PUT /api/v1/evidence/{sha256}``), officers view them only through a search.

Upload: the agent's bearer token (as for ``POST /api/v1/events``), a JPEG or PNG body of at most
``MAX_EVIDENCE_BYTES``, whose SHA-256 must be the one in the URL and whose first bytes must be a
JPEG or PNG signature (a Content-Type header is checked against them, never trusted alone). The
image is sealed with the plate vault (``store_evidence``); uploading the same image again is a
no-op answered 200, so the agent's uploader may retry freely.

View: ``GET /api/v1/plates/evidence/{sha256}?search_id=N`` serves an image only when search N is the
caller's own ``plate_search``, is younger than ``evidence_view_hours``, and its query, re-run now
against the store (never the client's word), returns a pass that references the image. Each view
is written to the audit log (``evidence_view``) in the transaction that reads the image, and the
answer tells browsers and proxies not to keep it (``Cache-Control: no-store``).

Request: ``POST /api/v1/plates/evidence/{sha256}/request?search_id=N`` asks the agent for an image it
has not uploaded, under the same checks as a view; the request waits in ``evidence_requests`` for the
agent's next batch, whose ack carries it (``plates.evidence_requests``), and the upload closes it.
Audited as ``evidence_request``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from psycopg import AsyncConnection
from pydantic import AwareDatetime

from central_ingest.access.dependencies import client_address, require_role
from central_ingest.access.principal import Principal
from central_ingest.access.scope import require_visible_source
from central_ingest.audit import AuditEntry, AuditRecord, append_audit
from central_ingest.audit.log import record_at
from central_ingest.auth_tokens import bearer_token
from central_ingest.ingest.body import BodyError, check_declared_length, read_limited
from central_ingest.plates.evidence_requests import (
    EvidenceRequestSettings,
    TooManyRequestsError,
    fulfil_request,
    request_evidence,
    request_stats,
)
from central_ingest.plates.evidence_store import load_evidence, store_evidence
from central_ingest.plates.police_settings import PoliceSettings
from central_ingest.plates.routes import (
    POLICE_ROLE,
    SEARCH_ACTION,
    get_plate_vault,
    get_police_settings,
    query_from_target,
)
from central_ingest.plates.search import PassRecord, search_passes
from central_ingest.plates.vault import PlateVault, PlateVaultError
from central_ingest.state import AppState, get_app_state
from central_ingest.store.agents import find_active_agent

logger = logging.getLogger(__name__)
router = APIRouter(tags=["evidence"])

MAX_EVIDENCE_BYTES = 2 * 1024 * 1024
SHA256_PATTERN = r"^[0-9a-f]{64}$"
VIEW_ACTION = "evidence_view"
REQUEST_ACTION = "evidence_request"
REQUEST_MESSAGES = {
    "requested": "Đã gửi yêu cầu; ảnh sẽ có khi thiết bị biên tải lên. / Requested; the image appears once the "
    "edge agent uploads it.",
    "already_requested": "Ảnh này đã được yêu cầu; đang chờ thiết bị biên tải lên. / Already requested; waiting "
    "for the edge agent to upload it.",
    "uploaded": "Ảnh đã có trên máy chủ trung tâm. / The image is already at central.",
}
ImageType = Literal["image/jpeg", "image/png"]
SIGNATURES: tuple[tuple[bytes, ImageType], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff"}

Sha256 = Annotated[str, Path(pattern=SHA256_PATTERN, description="Lowercase hex SHA-256 of the image bytes.")]


def image_type(data: bytes) -> ImageType | None:
    """The image type its first bytes say, or None when neither JPEG nor PNG."""
    for signature, content_type in SIGNATURES:
        if data.startswith(signature):
            return content_type
    return None


def _error(status_code: int, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="ioc-central"'} if status_code == 401 else None
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


async def _agent_of(request: Request, app: AppState) -> str | None:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        return None
    async with app.pool.connection() as conn:
        return await find_active_agent(conn, token)


def _check_image(sha256: str, data: bytes, declared_type: str | None) -> ImageType:
    """The checked content type; ``HTTPException`` with the reason otherwise (the caller logs it)."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise HTTPException(422, f"the body's SHA-256 is {digest}, not the {sha256} of the URL (damaged upload?)")
    detected = image_type(data)
    if detected is None:
        raise HTTPException(415, "the body is neither a JPEG nor a PNG image (checked by its first bytes)")
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared not in ("", "application/octet-stream", detected):
        raise HTTPException(415, f"Content-Type {declared!r} does not match the body, which is {detected}")
    return detected


@router.put(
    "/api/v1/evidence/{sha256}",
    summary="Upload an evidence image (agent token; idempotent)",
    responses={
        200: {"description": "Already stored (a repeat upload)."},
        201: {"description": "Stored."},
        401: {"description": "Missing, unknown or revoked agent token."},
        413: {"description": "Larger than 2 MiB."},
        415: {"description": "Not a JPEG or PNG, or Content-Type does not match the bytes."},
        422: {"description": "The body's SHA-256 is not the one in the URL, or a bad time."},
        503: {"description": "No plate keyring configured (evidence is kept sealed), or the database is down."},
    },
)
async def put_evidence(
    sha256: Sha256,
    request: Request,
    app: Annotated[AppState, Depends(get_app_state)],
    time: Annotated[
        AwareDatetime | None, Query(description="Source time of the image (UTC offset required); default: now.")
    ] = None,
) -> JSONResponse:
    agent_id = await _agent_of(request, app)
    if agent_id is None:
        return _error(401, "send Authorization: Bearer <agent token> of an active agent")
    vault = get_plate_vault(app)
    try:
        check_declared_length(request.headers.get("content-length"), MAX_EVIDENCE_BYTES)
        data = await read_limited(request.stream(), MAX_EVIDENCE_BYTES)
    except BodyError as error:
        return _error(error.status_code, error.message)
    try:
        content_type = _check_image(sha256, data, request.headers.get("content-type"))
    except HTTPException as error:
        logger.warning("evidence upload %s from agent %s refused: %s", sha256, agent_id, error.detail)
        raise
    now = dt.datetime.now(dt.UTC)
    if time is not None and time - now > dt.timedelta(seconds=app.settings.max_future_skew_s):
        raise HTTPException(422, f"time {time.isoformat()} is in the future by central's clock; check the agent's")
    async with app.pool.connection() as conn:
        stored = await store_evidence(
            conn, vault, agent_id=agent_id, sha256=sha256, content_type=content_type, time=time or now, data=data
        )
        if await fulfil_request(conn, sha256, now):
            logger.info("evidence %s from agent %s fulfils an officer's request", sha256, agent_id)
    body = {"sha256": sha256, "stored": stored, "content_type": content_type}
    return JSONResponse(body, status_code=201 if stored else 200)


def _check_search(search: AuditRecord | None, search_id: int, principal: Principal, max_age: dt.timedelta) -> None:
    """Refuse unless ``search`` is the caller's own plate search and recent enough."""
    if search is None or search.action != SEARCH_ACTION:
        raise HTTPException(404, f"there is no search {search_id}")
    if search.actor != principal.username:
        raise HTTPException(403, f"search {search_id} was made by another officer; run your own search")
    if dt.datetime.now(dt.UTC) - search.time > max_age:
        hours = max_age.total_seconds() / 3600
        raise HTTPException(403, f"search {search_id} is older than {hours:g} h; search again (with its reason)")


def _referencing(records: tuple[PassRecord, ...], sha256: str) -> PassRecord | None:
    for record in records:
        if any(evidence.get("sha256") == sha256 for evidence in record.evidence):
            return record
    return None


async def _find_in_search(
    conn: AsyncConnection[Any], vault: PlateVault, search: AuditRecord, sha256: str
) -> tuple[PassRecord | None, str | None]:
    """The pass of search ``search`` that references the image, re-running its query now; or (None, why)."""
    try:
        query = query_from_target(search.target)
        # What the officer could see then: nothing stored after the search is offered now.
        query = dataclasses.replace(query, until=min(query.until, search.time))
    except (KeyError, TypeError, ValueError) as error:  # PassQueryError is a ValueError
        return None, f"search {search.seq} cannot be re-run ({error})"
    result = await search_passes(conn, vault, query)
    record = _referencing(result.records, sha256)
    return record, None if record is not None else f"this image is not among the results of search {search.seq}"


async def _own_search_with_image(
    conn: AsyncConnection[Any],
    vault: PlateVault,
    principal: Principal,
    *,
    search_id: int,
    sha256: str,
    settings: PoliceSettings,
) -> tuple[AuditRecord, PassRecord]:
    """The caller's own recent search ``search_id`` and its pass that references the image; else 404/403."""
    search = await record_at(conn, search_id)
    _check_search(search, search_id, principal, dt.timedelta(hours=settings.evidence_view_hours))
    assert search is not None  # _check_search refused a missing search
    record, why = await _find_in_search(conn, vault, search, sha256)
    if record is None:
        raise HTTPException(403, why or "not among the search's results")
    # A search narrows cameras by id; ids are unique per agent only, so check the pass's own camera too.
    await require_visible_source(conn, principal.scope, record.agent_id, record.source_id)
    return search, record


def _evidence_audit(
    principal: Principal, request: Request, action: str, search: AuditRecord, target: dict[str, Any]
) -> AuditEntry:
    """What an officer did with one image of one search, under that search's reason."""
    return AuditEntry(
        actor=principal.username,
        role=POLICE_ROLE,
        action=action,
        target={**target, "search_id": search.seq},
        reason=search.reason,
        result_count=1 if action == VIEW_ACTION else None,
        client=client_address(request),
    )


@router.get(
    "/api/v1/plates/evidence/{sha256}",
    summary="An evidence image returned by one of the caller's searches (police; audited)",
    response_class=Response,
    responses={
        200: {"description": "The image (JPEG or PNG), not to be cached.", "content": {"image/jpeg": {}}},
        401: {"description": "Not logged in."},
        403: {"description": "Not police; the search is another officer's or too old; or it did not return this."},
        404: {"description": "No such search, or the image was never uploaded (or deleted by retention)."},
        503: {"description": "No plate keyring configured, or the database is unavailable."},
    },
)
async def get_evidence(
    *,
    sha256: Sha256,
    search_id: Annotated[int, Query(ge=1, description="The search_id of the search that returned this image.")],
    request: Request,
    principal: Annotated[Principal, Depends(require_role(POLICE_ROLE))],
    app: Annotated[AppState, Depends(get_app_state)],
    vault: Annotated[PlateVault, Depends(get_plate_vault)],
    settings: Annotated[PoliceSettings, Depends(get_police_settings)],
) -> Response:
    async with app.pool.connection() as conn, conn.transaction():
        search, record = await _own_search_with_image(
            conn, vault, principal, search_id=search_id, sha256=sha256, settings=settings
        )
        image = await sealed_image(
            conn, vault, sha256, missing="the agent has not uploaded this image (yet), or retention deleted it"
        )
        target = {"sha256": sha256, "event_id": str(record.event_id)}
        await append_audit(conn, _evidence_audit(principal, request, VIEW_ACTION, search, target))
    return image


async def sealed_image(conn: AsyncConnection[Any], vault: PlateVault, sha256: str, *, missing: str) -> Response:
    """A stored evidence image, opened, as a response never to be cached; 404 ``missing`` when it is not stored
    (not uploaded yet, or deleted by retention), 500 when it does not open with the configured keys."""
    try:
        loaded = await load_evidence(conn, vault, sha256)
    except PlateVaultError as error:
        logger.error("evidence %s does not open: %s", sha256, error)
        raise HTTPException(500, "the image is stored but does not open with the configured keys") from None
    if loaded is None:
        raise HTTPException(404, missing)
    content_type, data = loaded
    return Response(data, media_type=content_type, headers=NO_STORE)


def get_evidence_request_settings(app: Annotated[AppState, Depends(get_app_state)]) -> EvidenceRequestSettings:
    """The running service's request settings (tests override this dependency)."""
    return app.settings.police.evidence_requests


@router.post(
    "/api/v1/plates/evidence/{sha256}/request",
    summary="Ask the agent for an image it has not uploaded (police; audited)",
    responses={
        200: {"description": "Central already holds the image: open it with the GET route."},
        202: {"description": "Requested (or already requested): the agent uploads it after its next batch."},
        401: {"description": "Not logged in."},
        403: {"description": "Not police; the search is another officer's or too old; or it did not return this."},
        404: {"description": "No such search."},
        429: {"description": "The agent already has too many open requests."},
        503: {"description": "No plate keyring configured, or the database is unavailable."},
    },
)
async def post_evidence_request(
    *,
    sha256: Sha256,
    search_id: Annotated[int, Query(ge=1, description="The search_id of the search that returned this image.")],
    request: Request,
    principal: Annotated[Principal, Depends(require_role(POLICE_ROLE))],
    app: Annotated[AppState, Depends(get_app_state)],
    vault: Annotated[PlateVault, Depends(get_plate_vault)],
    settings: Annotated[PoliceSettings, Depends(get_police_settings)],
    request_settings: Annotated[EvidenceRequestSettings, Depends(get_evidence_request_settings)],
) -> JSONResponse:
    async with app.pool.connection() as conn, conn.transaction():
        search, record = await _own_search_with_image(
            conn, vault, principal, search_id=search_id, sha256=sha256, settings=settings
        )
        try:
            outcome = await request_evidence(
                conn, sha256=sha256, agent_id=record.agent_id, now=dt.datetime.now(dt.UTC), settings=request_settings
            )
        except TooManyRequestsError as error:
            raise HTTPException(429, str(error)) from None
        target = {
            "sha256": sha256,
            "event_id": str(record.event_id),
            "agent_id": record.agent_id,
            "state": outcome.state,
        }
        await append_audit(conn, _evidence_audit(principal, request, REQUEST_ACTION, search, target))
    body = {
        "sha256": sha256,
        "state": outcome.state,
        "agent_id": outcome.agent_id,
        "expires_at": None if outcome.expires_at is None else outcome.expires_at.isoformat(),
        "message": REQUEST_MESSAGES[outcome.state],
    }
    return JSONResponse(body, status_code=200 if outcome.state == "uploaded" else 202, headers=NO_STORE)


@router.get(
    "/api/v1/evidence/requests/stats",
    summary="Counts of officers' evidence requests: open, waiting for the agent, fulfilled, expired",
)
async def get_evidence_request_stats(
    _principal: Annotated[Principal, Depends(require_role("admin", "technician", "auditor"))],
    app: Annotated[AppState, Depends(get_app_state)],
) -> dict[str, int]:
    async with app.pool.connection() as conn:
        stats = await request_stats(conn, dt.datetime.now(dt.UTC))
    return dataclasses.asdict(stats)
