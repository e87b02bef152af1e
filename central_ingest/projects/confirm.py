"""A PMU confirms or corrects a project's or a package's % complete, with a note and optionally a photo.

The figure is stored as a progress row like any other (so the alert and the pages read it the same
way): method ``manual``, ``confirmed`` true, confidence 1, agent ``central``, source the user's name
when it is a valid identifier (else ``pmu``), dated within the confirmed local day (now for today,
the day's last second for an earlier day). A confirmed figure wins over the cameras on its day and
calibrates their later estimates (``actual``).

The photo (JPEG or PNG, checked by its first bytes) is sealed into the evidence store under its
SHA-256, like the cameras' keyframes, and referenced as the row's evidence, so the project's keyframe
route serves it. Photo, row and the ``progress_confirm`` audit entry commit in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, field_validator

from central_ingest.alerts.scope import PMU_AGENT
from central_ingest.audit import AuditEntry, append_audit
from central_ingest.plates.evidence_routes import image_type
from central_ingest.plates.evidence_store import store_evidence
from central_ingest.plates.vault import PlateVault
from central_ingest.projects.views import keyframe_url
from event_contract import EvidenceRef, ProgressEvent
from event_contract.models import IDENTIFIER_PATTERN

Conn = psycopg.AsyncConnection[Any]
CONFIRM_ACTION = "progress_confirm"
PMU_SOURCE = "pmu"
MAX_PHOTO_BYTES = 5 * 1000 * 1000
"""Largest photo accepted (5 MB): a phone photo, not a video."""
MAX_PHOTO_BASE64_CHARS = (MAX_PHOTO_BYTES + 2) // 3 * 4 + 64
DATA_URL_PREFIX = re.compile(r"^data:image/[a-z0-9.+-]+;base64,")


class ConfirmError(ValueError):
    """A confirmation that cannot be stored as given; the message says why (answered 422)."""


class ConfirmIn(BaseModel):
    """``POST /api/v1/projects/{id}/progress/confirm``: the PMU's figure for a package ('' = project) on a day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package_id: Annotated[str, Field(pattern=f"({IDENTIFIER_PATTERN})|^$")] = Field(
        default="", description="Work package id; '' (the default) confirms the project as a whole."
    )
    date: dt.date = Field(description="The local day the figure is true on (today or earlier).")
    percent_complete: float = Field(ge=0, le=100, allow_inf_nan=False, description="% complete on that day.")
    note: str = Field(min_length=1, max_length=1000, description="Why: the inspection, the minutes' number...")
    photo_base64: str | None = Field(
        default=None,
        max_length=MAX_PHOTO_BASE64_CHARS,
        description="Optional site photo, JPEG or PNG, base64 (a data: URL prefix is accepted), at most 5 MB.",
    )

    @field_validator("note")
    @classmethod
    def _note_not_blank(cls, note: str) -> str:
        if not note.strip():
            raise ValueError("the note must say something (who checked, how)")
        return note.strip()


@dataclass(frozen=True, slots=True)
class Photo:
    sha256: str
    content_type: str
    data: bytes


def decode_photo(text: str) -> Photo:
    """The photo's bytes, checked: base64, at most MAX_PHOTO_BYTES, a JPEG or PNG; ``ConfirmError`` otherwise."""
    try:
        data = base64.b64decode(DATA_URL_PREFIX.sub("", text.strip()), validate=True)
    except (binascii.Error, ValueError):
        raise ConfirmError("photo_base64 is not valid base64") from None
    if not data:
        raise ConfirmError("photo_base64 is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise ConfirmError(f"the photo is {len(data)} bytes; at most {MAX_PHOTO_BYTES}")
    content_type = image_type(data)
    if content_type is None:
        raise ConfirmError("the photo is neither a JPEG nor a PNG image (checked by its first bytes)")
    return Photo(hashlib.sha256(data).hexdigest(), content_type, data)


def source_for(username: str) -> str:
    """The user's name as the row's source_id when it is a valid identifier, else ``pmu``."""
    return username if re.fullmatch(IDENTIFIER_PATTERN, username) else PMU_SOURCE


def row_time(day: dt.date, now: dt.datetime, timezone: str) -> dt.datetime:
    """When the figure is dated: now for today, the last second of an earlier local day; a later day is refused."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    if day > today:
        raise ConfirmError(f"date {day.isoformat()} is after today ({today.isoformat()}): confirm what is done")
    if day == today:
        return now.astimezone(dt.UTC)
    return (dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone) - dt.timedelta(seconds=1)).astimezone(
        dt.UTC
    )


@dataclass(frozen=True, slots=True)
class Confirmer:
    """Who confirms: the audit's actor (also the row's source_id when it fits) and role, the client address."""

    actor: str
    role: str
    client: str | None


_INSERT = b"""
INSERT INTO progress (time, event_id, agent_id, source_id, project_id, package_id, percent_complete, method,
                      confidence, confirmed, note, evidence, schema_version)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def confirmation_event(
    project_id: str, body: ConfirmIn, who: Confirmer, *, time: dt.datetime, now: dt.datetime, photo: Photo | None
) -> ProgressEvent:
    """The confirmation as a contract event (validated like an agent's), referencing the photo."""
    evidence: tuple[EvidenceRef, ...] = ()
    if photo is not None:
        ref = EvidenceRef(kind="keyframe", uri=keyframe_url(project_id, photo.sha256), time=now, sha256=photo.sha256)
        evidence = (ref,)
    return ProgressEvent(
        agent_id=PMU_AGENT,
        source_id=source_for(who.actor),
        time=time,
        project_id=project_id,
        package_id=body.package_id or None,
        percent_complete=body.percent_complete,
        method="manual",
        confidence=1.0,
        confirmed=True,
        note=body.note,
        evidence=evidence,
    )


async def store_confirmation(
    conn: Conn,
    project_id: str,
    event: ProgressEvent,
    who: Confirmer,
    *,
    photo: Photo | None,
    vault: PlateVault | None,
    now: dt.datetime,
) -> None:
    """Photo (sealed), progress row and audit entry, in one transaction (the audit entry last)."""
    if photo is not None and vault is None:
        raise ConfirmError("photos are kept sealed and no plate keyring is configured; send the figure without one")
    async with conn.transaction():
        if photo is not None:
            assert vault is not None
            await store_evidence(
                conn,
                vault,
                agent_id=PMU_AGENT,
                sha256=photo.sha256,
                content_type=photo.content_type,
                time=now,
                data=photo.data,
                max_bytes=MAX_PHOTO_BYTES,
            )
        evidence = [ref.model_dump(mode="json", exclude_none=True) for ref in event.evidence]
        await conn.execute(
            _INSERT,
            (
                event.time, event.event_id, event.agent_id, event.source_id, project_id, event.package_id or "",
                event.percent_complete, event.method, event.confidence, event.confirmed, event.note, Jsonb(evidence),
                event.schema_version,
            ),
        )  # fmt: skip
        target = {
            "project_id": project_id,
            "package_id": event.package_id or "",
            "date_time": event.time.isoformat(),
            "percent_complete": event.percent_complete,
            "event_id": str(event.event_id),
            "photo_sha256": None if photo is None else photo.sha256,
        }
        await append_audit(conn, AuditEntry(who.actor, who.role, CONFIRM_ACTION, target, event.note, 1, who.client))


async def plan_packages(conn: Conn, project_id: str) -> tuple[str, ...] | None:
    """The packages of the project's latest plan; None without a plan or when it has no packages."""
    cur = await conn.execute(
        "SELECT k.package_id FROM project_plan_packages k WHERE k.project_id = %(p)s AND k.plan_version = "
        "(SELECT max(plan_version) FROM project_plans WHERE project_id = %(p)s) ORDER BY k.position",
        {"p": project_id},
    )
    packages = tuple(package for (package,) in await cur.fetchall())
    return packages or None
