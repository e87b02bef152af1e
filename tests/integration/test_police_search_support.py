"""Shared setup of the police search tests (no tests here): a database with sealed plate passes, their
evidence images, registered camera sites, users with sessions, and the real app's settings.

Used by ``test_police_search.py``, ``test_evidence_routes.py`` and ``tests/e2e/test_police_page.py``.
Times are relative to now, because the evidence route checks a search's age against the wall clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psycopg

from central_ingest.access.admin import Actor, create_user
from central_ingest.access.roles import Role
from central_ingest.access.sessions import open_session
from central_ingest.access.settings import AccessSettings
from central_ingest.plates.evidence_store import store_evidence
from central_ingest.plates.keyring import new_keyring, write_keyring_file
from central_ingest.plates.vault import PlateVault, vault_from_settings
from central_ingest.settings import Settings
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.writer import store_events
from event_contract import EvidenceRef, PlatePassEvent

AGENT = "hue-agent-1"
TARGET = "30A-123.45"
NEIGHBOUR = "30A-128.45"  # matches the witness pattern 30A-12?.45 too
OTHER = "51F-999.99"
PASSWORD = "mat-khau-that-dai-2025"
USERS: dict[str, Role] = {
    "officer.an": "police",
    "officer.binh": "police",
    "operator.chi": "operator",
    "auditor.dung": "auditor",
}
SITES = (
    SiteConfig(id="cam-1", agent_id=AGENT, name="Cầu Trường Tiền", lat=16.4685, lon=107.5857, area="Phú Hội"),
    SiteConfig(id="cam-2", agent_id=AGENT, name="Ngã tư Hùng Vương", lat=16.4622, lon=107.5963, area="Phú Hội"),
    SiteConfig(id="cam-3", agent_id=AGENT, name="Hầm chui Kim Long", lat=16.4580, lon=107.5512, area="Kim Long"),
    SiteConfig(id="tram-1", agent_id=AGENT, kind="sensor", name="Trạm Kim Long", lat=16.4641, lon=107.5545),
)
UNREGISTERED_CAMERA = "cam-x"
REASON = {"case_number": "123/2025/QĐ-CA", "note": "Truy tìm xe gây tai nạn bỏ chạy tại cầu"}


def plate_image(text: str, seed: int) -> bytes:
    """A real JPEG keyframe: a grey scene with a white plate showing ``text`` (distinct per seed)."""
    image = np.full((120, 200, 3), 60 + (seed * 37) % 120, dtype=np.uint8)
    cv2.rectangle(image, (30, 40), (170, 80), (255, 255, 255), thickness=-1)
    cv2.putText(image, text, (36, 68), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 2)
    cv2.rectangle(image, (10, 10), (190, 110), (0, 0, 255), thickness=2)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return bytes(encoded)


@dataclass
class Pass:
    plate: str
    camera: str
    minutes_ago: float
    uploaded: bool = True
    event: PlatePassEvent | None = None
    image: bytes = b""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.image).hexdigest()


@dataclass
class PoliceWorld:
    settings: Settings
    vault: PlateVault
    agent_token: str
    now: dt.datetime
    passes: list[Pass]
    sessions: dict[str, str] = field(default_factory=dict)
    """username -> session bearer token."""
    totp_secrets: dict[str, bytes] = field(default_factory=dict)

    def of(self, plate: str) -> list[Pass]:
        """The passes of one plate, newest first."""
        return sorted((p for p in self.passes if p.plate == plate), key=lambda p: p.minutes_ago)

    def bearer(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sessions[username]}"}

    def search_body(self, **fields: Any) -> dict[str, Any]:
        """A valid search for TARGET over the last day, with ``fields`` replacing or (None) removing keys."""
        body: dict[str, Any] = {
            "plate": TARGET,
            "since": (self.now - dt.timedelta(days=1)).isoformat(),
            "until": (self.now + dt.timedelta(minutes=5)).isoformat(),
            "reason": dict(REASON),
        }
        body.update(fields)
        return {key: value for key, value in body.items() if value is not None}


def default_passes() -> list[Pass]:
    return [
        Pass(TARGET, "cam-1", 180),
        Pass(TARGET, "cam-2", 120),
        Pass(TARGET, "cam-3", 60),
        Pass(TARGET, UNREGISTERED_CAMERA, 30, uploaded=False),  # referenced, never uploaded
        Pass(TARGET, "cam-1", 10 * 24 * 60),  # ten days ago: outside the default range
        Pass(NEIGHBOUR, "cam-2", 90),
        Pass(OTHER, "cam-1", 100),
    ]


async def _populate(world: PoliceWorld, dsn: str, access: AccessSettings) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        events = [p.event for p in world.passes if p.event is not None]
        await store_events(conn, events, vault=world.vault)
        for p in world.passes:
            if p.uploaded:
                assert p.event is not None
                await store_evidence(
                    conn,
                    world.vault,
                    agent_id=AGENT,
                    sha256=p.sha256,
                    content_type="image/jpeg",
                    time=p.event.time,
                    data=p.image,
                )
        actor = Actor("test-setup", "admin")
        for username, role in USERS.items():
            change = await create_user(
                conn, actor, access, username=username, password=PASSWORD, roles=frozenset({role})
            )
            if change.totp_secret is not None:
                world.totp_secrets[username] = change.totp_secret
            grant = await open_session(conn, change.user.user_id, access, dt.datetime.now(dt.UTC), "test")
            world.sessions[username] = grant.token


def build_world(dsn: str, state_dir: Path, passes: list[Pass] | None = None) -> PoliceWorld:
    """Migrate, write a keyring, register the sites, store the passes and images, create users and sessions."""
    apply_migrations(dsn)
    keys = state_dir / "plate_keys.json"
    write_keyring_file(keys, new_keyring())
    settings = Settings(
        database_url=dsn, plate_keys_file=keys, pool_max_size=4, maintenance_enabled=False, migrate_on_start=False
    )
    vault = vault_from_settings(settings)
    assert vault is not None
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    chosen = default_passes() if passes is None else passes
    for seed, p in enumerate(chosen):
        p.image = plate_image(p.plate, seed)
        time = now - dt.timedelta(minutes=p.minutes_ago)
        p.event = PlatePassEvent(
            agent_id=AGENT,
            source_id=p.camera,
            time=time,
            plate=p.plate,
            plate_confidence=0.93,
            track_id=100 + seed,
            direction="in",
            vehicle_class="car",
            evidence=(EvidenceRef(kind="keyframe", uri=f"evidence/{p.sha256}.jpg", time=time, sha256=p.sha256),),
        )
    with psycopg.connect(dsn) as conn:
        token = add_agent(conn, AGENT)
        import_sites(conn, SITES)
    world = PoliceWorld(settings=settings, vault=vault, agent_token=token, now=now, passes=chosen)
    # A cheap password hash: the tests are about search and audit, not the KDF's cost.
    asyncio.run(_populate(world, dsn, AccessSettings(password_kdf_log2_n=10)))
    return world
