"""Evidence images (keyframes with the vehicle boxed) kept sealed in ``evidence_blobs``.

An image is stored under the SHA-256 of its bytes (the digest its event's ``EvidenceRef`` carries), sealed
with the plate vault's active data key; the additional authenticated data is the digest, the agent and the
content type, so a sealed image cannot be served under another digest or type. Re-sending the same image
is a no-op (``store_evidence`` answers False). ``central-ingest plates rotate`` re-seals images of old keys
as it does plates.

Images show plates: they are served only through the police routes' checks (who, which search, audit).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

from psycopg import AsyncConnection

from central_ingest.plates.vault import PlateVault

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
CONTENT_TYPE_PATTERN = re.compile(r"^[a-z]+/[a-z0-9.+-]+$")
MAX_EVIDENCE_BYTES = 4 * 1024 * 1024
"""Largest image accepted: a keyframe is tens to hundreds of KB."""
EVIDENCE_AAD_LABEL = b"ioc.evidence.v1\x00"

STORE = b"""
INSERT INTO evidence_blobs (sha256, agent_id, content_type, time, key_id, sealed)
VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING
"""
LOAD = b"SELECT agent_id, content_type, key_id, sealed FROM evidence_blobs WHERE sha256 = %s"


class EvidenceError(ValueError):
    """An upload that cannot be stored as given (digest mismatch, size, type); the message says which."""


def evidence_aad(sha256: str, agent_id: str, content_type: str) -> bytes:
    return EVIDENCE_AAD_LABEL + b"\x00".join(part.encode("utf-8") for part in (sha256, agent_id, content_type))


def _check(sha256: str, content_type: str, data: bytes, max_bytes: int) -> None:
    if not SHA256_PATTERN.fullmatch(sha256):
        raise EvidenceError("sha256 must be 64 lower-case hexadecimal characters")
    if not CONTENT_TYPE_PATTERN.fullmatch(content_type):
        raise EvidenceError(f"content type {content_type!r} is not a media type such as image/jpeg")
    if not data:
        raise EvidenceError("the evidence is empty")
    if len(data) > max_bytes:
        raise EvidenceError(f"the evidence is {len(data)} bytes; at most {max_bytes}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise EvidenceError(f"the bytes hash to {actual}, not {sha256}: upload damaged or wrong digest")


async def store_evidence(
    conn: AsyncConnection[Any],
    vault: PlateVault,
    *,
    agent_id: str,
    sha256: str,
    content_type: str,
    time: dt.datetime,
    data: bytes,
    max_bytes: int = MAX_EVIDENCE_BYTES,
) -> bool:
    """Seal and store one image (at most ``max_bytes``: an agent's keyframe by default, a PMU's photo may be
    larger); False when an image with this digest is already stored."""
    _check(sha256, content_type, data, max_bytes)
    key_id, sealed = vault.seal_blob(data, evidence_aad(sha256, agent_id, content_type))
    cursor = await conn.execute(STORE, (sha256, agent_id, content_type, time, key_id, sealed))
    return cursor.rowcount == 1


async def load_evidence(conn: AsyncConnection[Any], vault: PlateVault, sha256: str) -> tuple[str, bytes] | None:
    """(content type, image bytes), or None when no image has this digest; ``PlateVaultError`` if it won't open."""
    cursor = await conn.execute(LOAD, (sha256,))
    row = await cursor.fetchone()
    if row is None:
        return None
    agent_id, content_type, key_id, sealed = row
    data = vault.open_blob(key_id, bytes(sealed), evidence_aad(sha256, agent_id, content_type))
    return str(content_type), data
