"""The traffic-police chain whole, with real processes: junction clip -> RTSP server -> ``edge-agent`` (plates, a
red-light rule fed by a simulated signal controller over MQTT, evidence ``upload: all``) -> ``central-ingest serve``
(generated plate keyring) -> TimescaleDB -> a police officer made with the CLI searching through the API.

Checks, against the database and the API: every car's pass is stored with its plate sealed (no clear plate in any
column; the sealed plates open to the clip's truth), the red-light runner's ViolationEvent is stored with its
plate sealed, every evidence image referenced was uploaded (sealed); the officer signs in with the TOTP secret
the CLI printed, finds exactly the runner's pass by plate with a case number and opens its image through the
audited route, a witness's partial pattern finds the car too, an operator is refused; ``central-ingest audit
verify`` passes and the audit log holds the searches and the image view with their reason and result count.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from central_ingest.plates.evidence_store import evidence_aad
from central_ingest.plates.keyring import read_keyring_file
from central_ingest.plates.partial import compact_plate
from central_ingest.plates.vault import PlateVault, plate_aad
from devstack.apps import (
    CentralService,
    edge_config,
    provision_agent,
    start_central,
    start_edge,
    write_edge_config,
    write_secret,
)
from devstack.mosquitto import MosquittoBroker
from devstack.plate_clip import ClipVehicle, PlateClip, render_plate_clip
from devstack.ports import LOCALHOST, free_port
from devstack.traffic_site import (
    RED_LIGHT_RULE_ID,
    ApiAnswer,
    BrokerLogin,
    CentralApi,
    LampController,
    TrafficCounts,
    audit_head,
    ensure_police_user,
    read_password,
    red_light_runner,
    traffic_camera,
    traffic_counts,
    traffic_sections,
    write_password_file,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

AGENT_ID = "junction-agent"
CAMERA_ID = "cam-junction"
OFFICER = "officer.e2e"
OPERATOR = "operator.e2e"
CASE_NUMBER = "45/2026/CSGT"
NOTE = "Xe vượt đèn đỏ tại nút giao mô phỏng"


@dataclass(frozen=True)
class Chain:
    """One run of the whole chain, shared by the checks below."""

    dsn: str
    clip: PlateClip
    runner: ClipVehicle
    central: CentralService
    vault: PlateVault
    since: dt.datetime
    officer_password: str
    officer_totp: str
    operator_password: str
    controller_counts: dict[str, int]


@pytest.fixture(scope="module")
def chain(
    pg_dsn: str,
    mqtt_broker: MosquittoBroker,
    rtsp_server_factory: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Chain]:
    tmp = tmp_path_factory.mktemp("police_chain")
    clip = render_plate_clip(tmp / "clip")
    camera_url = str(rtsp_server_factory(clip.path, loop=False))
    token_file = write_secret(tmp / "agent.token", provision_agent(pg_dsn, AGENT_ID))
    officer_password = write_password_file(tmp / "officer.password")
    operator_password = write_password_file(tmp / "operator.password")
    officer_totp = ensure_police_user(pg_dsn, OFFICER, officer_password)
    assert officer_totp is not None, "the CLI prints the TOTP secret of a police user"
    assert ensure_police_user(pg_dsn, OPERATOR, operator_password, role="operator") is None

    central = start_central(pg_dsn, tmp / "central.log")
    broker = BrokerLogin(mqtt_broker.host, mqtt_broker.port, mqtt_broker.username, mqtt_broker.password)
    preview_port = free_port()
    controller = LampController(broker, f"http://{LOCALHOST}:{preview_port}", CAMERA_ID, client_id="e2e-controller")
    try:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        camera = traffic_camera(clip, camera_id=CAMERA_ID, camera_url=camera_url, on_end="stop")
        config = edge_config(
            agent_id=AGENT_ID,
            central_url=central.url,
            token_file=token_file,
            camera_id=CAMERA_ID,
            camera_url=camera_url,
            lines=camera["lines"],
            interval_s=10,
            on_end="stop",
            camera_extra=camera,
            preview_port=preview_port,
            sections=traffic_sections(broker, upload="all"),
        )
        controller.start()
        edge = start_edge(write_edge_config(tmp / "edge.yaml", config), tmp / "edge.log")
        code = edge.wait(timeout_s=clip.duration_s + 60)
        edge.stop()
        assert code == 0, edge.log_tail()
        controller.stop()
        vault = PlateVault.from_keyring(read_keyring_file(tmp / "plate-keys.json"))
        yield Chain(
            dsn=pg_dsn,
            clip=clip,
            runner=red_light_runner(clip),
            central=central,
            vault=vault,
            since=since,
            officer_password=read_password(officer_password),
            officer_totp=officer_totp,
            operator_password=read_password(operator_password),
            controller_counts=controller.counts,
        )
    finally:
        controller.stop()
        central.process.stop()


def rows(dsn: str, query: str, *params: object) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(query, params).fetchall()


def opened_plate(chain: Chain, row: dict[str, Any]) -> str:
    """The plate sealed in a plate_passes or violations row (its AAD binds it to the agent and the event)."""
    return chain.vault.open(row["plate_key_id"], row["plate_ct"], aad=plate_aad(AGENT_ID, row["event_id"]))


def search(
    api: CentralApi, token: str, chain: Chain, *, plate: str | None = None, pattern: str | None = None
) -> ApiAnswer:
    """A search over the run's window, with the case number and note of this investigation."""
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    return api.search(
        token, since=chain.since, until=until, case_number=CASE_NUMBER, note=NOTE, plate=plate, pattern=pattern
    )


def clear_forms(plates: list[str]) -> list[str]:
    """Every way a plate could sit in a column in clear: printed (30A-123.45) and compact (30A12345)."""
    return [form for plate in plates for form in (plate, compact_plate(plate))]


def assert_no_clear_plate(dsn: str, table: str, plates: list[str]) -> None:
    """No column of any row holds a plate in clear: text, json, arrays, and the raw bytes of bytea columns."""
    for row in rows(dsn, f"SELECT to_jsonb(t)::text AS doc, t.* FROM {table} t WHERE agent_id = %s", AGENT_ID):
        doc = str(row["doc"]).upper()
        binary = b"".join(bytes(value) for value in row.values() if isinstance(value, bytes | memoryview))
        for form in clear_forms(plates):
            assert form.upper() not in doc, f"{table}: {form} in clear"
            assert form.encode() not in binary, f"{table}: {form} in a binary column"


def test_passes_and_the_violation_are_stored_sealed_with_their_evidence(chain: Chain) -> None:
    truth = [vehicle.plate for vehicle in chain.clip.vehicles]
    assert chain.controller_counts.get("published_green", 0) > 0
    assert chain.controller_counts.get("published_red", 0) > 0

    passes = rows(chain.dsn, "SELECT * FROM plate_passes WHERE agent_id = %s ORDER BY time", AGENT_ID)
    assert sorted(opened_plate(chain, p) for p in passes) == sorted(truth), "one pass per car, its exact plate"
    assert {(p["source_id"], p["direction"], p["line_id"], p["format_valid"]) for p in passes} == {
        (CAMERA_ID, "in", "pass", True)
    }

    violations = rows(chain.dsn, "SELECT * FROM violations WHERE agent_id = %s", AGENT_ID)
    assert [(v["violation_type"], v["rule_id"], v["signal_state"]) for v in violations] == [
        ("red_light", RED_LIGHT_RULE_ID, "red")
    ], "exactly the runner crossed on red"
    violation = violations[0]
    assert opened_plate(chain, violation) == chain.runner.plate
    for table in ("plate_passes", "violations"):
        assert_no_clear_plate(chain.dsn, table, truth)

    # Every image an event references was uploaded, sealed (never the JPEG in clear), and opens to its digest.
    assert violation["evidence"], "the violation carries its keyframe"
    assert all(p["evidence"] for p in passes), "each pass carries its plate crop"
    referenced = {ref["sha256"] for row in [*passes, *violations] for ref in row["evidence"]}
    blobs = {b["sha256"]: b for b in rows(chain.dsn, "SELECT * FROM evidence_blobs WHERE agent_id = %s", AGENT_ID)}
    assert referenced <= set(blobs), f"not uploaded: {sorted(referenced - set(blobs))}"
    for sha in referenced:
        sealed = bytes(blobs[sha]["sealed"])
        assert not sealed.startswith(b"\xff\xd8"), "an image stored in clear"
        aad = evidence_aad(sha, AGENT_ID, blobs[sha]["content_type"])
        assert hashlib.sha256(chain.vault.open_blob(blobs[sha]["key_id"], sealed, aad)).hexdigest() == sha
    # The demo's printed summary counts the same things.
    assert traffic_counts(chain.dsn, AGENT_ID, CAMERA_ID, chain.since) == TrafficCounts(
        violations={"red_light": 1},
        plate_passes=len(truth),
        evidence_referenced=len(referenced),
        evidence_uploaded=len(referenced),
    )


def test_an_officer_finds_the_runner_and_every_step_is_audited(chain: Chain) -> None:
    api = CentralApi(chain.central.url)
    stored = rows(chain.dsn, "SELECT * FROM plate_passes WHERE agent_id = %s", AGENT_ID)
    runner_passes = [str(p["event_id"]) for p in stored if opened_plate(chain, p) == chain.runner.plate]
    assert len(runner_passes) == 1

    # An operator signs in (no second factor for that role) but may not search plates.
    operator = api.login(OPERATOR, chain.operator_password)
    assert search(api, operator, chain, plate=chain.runner.plate).status == 403

    # The officer signs in with a code of the TOTP secret the CLI printed, and searches the exact plate.
    token = api.login(OFFICER, chain.officer_password, chain.officer_totp)
    answer = search(api, token, chain, plate=chain.runner.plate)
    assert answer.status == 200, answer.body
    found = answer.json()
    assert [(r["event_id"], r["plate"], r["source_id"]) for r in found["records"]] == [
        (event_id, chain.runner.plate, CAMERA_ID) for event_id in runner_passes
    ]
    evidence = found["records"][0]["evidence"]
    assert evidence, "the pass carries its image"
    assert evidence[0]["url"], "the image is reachable through the audited route"
    image = api.call("GET", evidence[0]["url"].removeprefix(chain.central.url), token=token)
    assert (image.status, image.content_type) == (200, "image/jpeg")
    assert hashlib.sha256(image.body).hexdigest() == evidence[0]["sha256"]

    # A witness saw part of the plate: one character unknown, the end of the number a blur.
    pattern = chain.runner.plate[:4] + "?" + chain.runner.plate[5:6] + "*"
    witness = search(api, token, chain, pattern=pattern)
    assert witness.status == 200, witness.body
    assert [r["plate"] for r in witness.json()["records"]] == [chain.runner.plate]

    # The chain verifies; the head it prints is the entry just before its own audit_verify entry.
    head = audit_head(chain.dsn)
    entries = rows(chain.dsn, "SELECT * FROM audit_log ORDER BY seq")
    assert (entries[-1]["action"], entries[-1]["target"]["ok"]) == ("audit_verify", True)
    assert head == f"{entries[-2]['seq']}:{entries[-2]['hash']}"
    why = f"{CASE_NUMBER}: {NOTE}"
    searches = [e for e in entries if e["action"] == "plate_search"]
    assert [(e["actor"], e["reason"], e["result_count"]) for e in searches] == [(OFFICER, why, 1), (OFFICER, why, 1)]
    assert (searches[0]["seq"], searches[0]["target"]["plate"]) == (found["search_id"], chain.runner.plate)
    assert searches[1]["target"]["pattern"] == pattern
    views = [e for e in entries if e["action"] == "evidence_view"]
    assert [(e["actor"], e["reason"], e["result_count"]) for e in views] == [(OFFICER, why, 1)]
    assert views[0]["target"]["sha256"] == evidence[0]["sha256"]
    assert views[0]["target"]["search_id"] == found["search_id"]
    assert [e["actor"] for e in entries if e["action"] == "access_denied"] == [OPERATOR]
    # The plate searched is in the search entries on purpose (the auditor must see what was looked for), and
    # nowhere else in the log.
    others = json.dumps([[e["target"], e["reason"]] for e in entries if e["action"] != "plate_search"])
    for form in clear_forms([chain.runner.plate]):
        assert form not in others
