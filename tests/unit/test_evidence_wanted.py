"""Evidence on demand at the edge: the ack field, the evidence store's requested list, the sender's hand-over,
the HTTP transport's announcement; plus the traffic metrics, validate-config's camera lines and the audited
retention plan of the licensed path."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from central_ingest.plates.evidence_requests import (
    EvidenceRequestSettings,
)
from central_ingest.plates.police_settings import PoliceSettings
from central_ingest.settings import RetentionSettings, Settings
from central_ingest.store import maintenance
from central_ingest.store.edition import features_for_license
from central_ingest.store.maintenance import (
    AUDITED_TABLES,
    PolicyReport,
    audited_targets,
    licensed_retention_policies,
)
from central_ingest.store.retention import RetentionReport, RetentionStep
from edge_agent.cli import traffic_summary
from edge_agent.config import load_config
from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.http_uplink import ACK_FEATURES_HEADER, HttpTransport
from edge_agent.delivery.sender import Delivery
from edge_agent.delivery.transport import Acked
from edge_agent.evidence.config import EvidenceConfig
from edge_agent.evidence.requests import EvidenceRequestHandler
from edge_agent.evidence.store import EvidenceStore
from edge_agent.evidence.uploader import UploaderStats
from edge_agent.preview.config import PreviewConfig
from edge_agent.preview.metrics import ServerMetrics, TrafficMetrics, render_metrics
from edge_agent.preview.server import PreviewServer, PreviewSources
from edge_agent.traffic.camera import CameraTrafficStats
from edge_agent.traffic.plate_worker import PlateWorkerStats
from event_contract import BatchAck
from event_contract.batch import MAX_EVIDENCE_WANTED
from tests.unit.test_delivery_sender import (
    MemoryDeadLetters,
    MemorySpool,
    ScriptedTransport,
    _config,
    eventually,
    health,
)

NOW = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)
REPO = Path(__file__).resolve().parents[2]


def picture(seed: int) -> bytes:
    return bytes([0xFF, 0xD8]) + bytes((seed + i) % 251 for i in range(500))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_store(directory: Path, **settings: object) -> EvidenceStore:
    return EvidenceStore(EvidenceConfig.model_validate(settings), directory, wall_clock=lambda: NOW)


# ----------------------------------------------------------------- the contract


def test_an_ack_without_requests_is_what_older_agents_read() -> None:
    plain = BatchAck(received=2, stored=2, duplicates=0)
    assert json.loads(plain.model_dump_json()) == {
        "received": 2,
        "stored": 2,
        "duplicates": 0,
        "rejected": 0,
        "rejections": [],
    }
    digest = "a" * 64
    asking = BatchAck(received=1, stored=1, duplicates=0, evidence_wanted=(digest,))
    assert json.loads(asking.model_dump_json())["evidence_wanted"] == [digest]
    assert BatchAck.model_validate_json(asking.model_dump_json()) == asking


def test_an_ack_ignores_fields_it_does_not_know_and_checks_the_digests() -> None:
    later = BatchAck.model_validate({"received": 1, "stored": 1, "duplicates": 0, "something_new": {"x": 1}})
    assert later.evidence_wanted == ()
    with pytest.raises(ValidationError):
        BatchAck(received=1, stored=1, duplicates=0, evidence_wanted=("A" * 64,))  # upper case: not a digest
    with pytest.raises(ValidationError):
        BatchAck(received=1, stored=1, duplicates=0, evidence_wanted=tuple(f"{i:064x}" for i in range(101)))
    assert MAX_EVIDENCE_WANTED == 100


def test_request_settings_live_under_the_police_settings_and_are_validated() -> None:
    assert PoliceSettings().evidence_requests == EvidenceRequestSettings()
    assert PoliceSettings.model_validate({"evidence_requests": {"expire_hours": 2}}).evidence_requests.expire_hours == 2
    with pytest.raises(ValidationError):
        EvidenceRequestSettings.model_validate({"expire_hours": 0})
    with pytest.raises(ValidationError):
        EvidenceRequestSettings.model_validate({"unknown": 1})


# ----------------------------------------------------------------- the evidence store


def test_policy_never_keeps_a_keyframe_until_central_asks_for_it(tmp_path: Path) -> None:
    with open_store(tmp_path, upload="never") as store:
        first, second, third = picture(1), picture(2), picture(3)
        for data in (first, second, third):
            store.put(data, time=NOW, purpose="violation")
        assert store.pending(10) == []

        outcome = store.mark_wanted([sha(second), "f" * 64, "not a digest"])
        assert (outcome.marked, outcome.already, outcome.missing) == (1, 0, 2)
        assert store.pending(10) == [sha(second)]
        again = store.mark_wanted([sha(second)])  # the same ack seen twice (a resent batch)
        assert (again.marked, again.already, again.missing) == (0, 1, 0)

        stats = store.stats()
        assert (stats.requested, stats.requested_missing, stats.requested_pending, stats.pending) == (1, 2, 1, 1)
        store.mark_uploaded(sha(second))
        stats = store.stats()
        assert (stats.requested_uploaded, stats.requested_pending, stats.pending, stats.uploaded) == (1, 0, 0, 1)


def test_a_requested_keyframe_jumps_the_upload_list_and_is_never_dropped_from_it(tmp_path: Path) -> None:
    with open_store(tmp_path, upload="all", pending_max=3) as store:
        pictures = [picture(seed) for seed in range(6)]
        for data in pictures[:3]:
            store.put(data, time=NOW, purpose="plate_pass")
        store.mark_wanted([sha(pictures[2])])
        assert store.pending(10) == [sha(pictures[2]), sha(pictures[0]), sha(pictures[1])]
        for data in pictures[3:]:  # the full list drops its oldest, never the requested one
            store.put(data, time=NOW, purpose="plate_pass")
        listed = store.pending(10)
        assert listed[0] == sha(pictures[2])
        assert len(listed) == 3
        assert store.stats().pending_dropped == 3


def test_requests_survive_a_restart_and_leave_with_their_file(tmp_path: Path) -> None:
    data = picture(7)
    with open_store(tmp_path, upload="never") as store:
        store.put(data, time=NOW, purpose="plate_pass")
        store.mark_wanted([sha(data)])
    with open_store(tmp_path, upload="never") as store:
        assert store.pending(10) == [sha(data)]
        stats = store.stats()
        assert (stats.requested, stats.requested_pending) == (1, 1)
        store.prune(NOW + dt.timedelta(days=365))  # past max_age_days: the file and its request go
        stats = store.stats()
        assert (stats.files, stats.pending, stats.requested_pending) == (0, 0, 0)


def test_the_handler_marks_and_wakes_or_ignores_when_requests_are_off(tmp_path: Path) -> None:
    class Waker:
        woken = 0

        def wake(self) -> None:
            self.woken += 1

    data = picture(9)
    with open_store(tmp_path, upload="never") as store:
        store.put(data, time=NOW, purpose="plate_pass")
        off, on = Waker(), Waker()
        EvidenceRequestHandler(store, off, enabled=False)((sha(data),))
        assert (store.pending(10), off.woken) == ([], 0)
        handler = EvidenceRequestHandler(store, on, enabled=True)
        handler((sha(data), "e" * 64))
        assert (store.pending(10), on.woken) == ([sha(data)], 1)
        stats = handler.stats()
        assert (stats.acks, stats.digests, stats.marked, stats.missing, stats.ignored) == (1, 2, 1, 1, 0)


# ----------------------------------------------------------------- the sender and the transport


def test_the_sender_hands_the_wanted_digests_to_the_handler_and_counts_failures() -> None:
    digest = "b" * 64
    asking = Acked(BatchAck(received=1, stored=1, duplicates=0, evidence_wanted=(digest,)))
    transport = ScriptedTransport(script=[asking, asking, asking])
    delivery = _delivery(transport)
    received: list[tuple[str, ...]] = []
    try:
        delivery.submit(health(0))  # no handler yet: counted as unhandled
        eventually("first ack", lambda: delivery.stats().sent_batches == 1)
        delivery.set_evidence_wanted_handler(received.append)
        delivery.submit(health(1))
        eventually("second ack", lambda: delivery.stats().sent_batches == 2)

        def broken(_digests: tuple[str, ...]) -> None:
            raise OSError("disk full")

        delivery.set_evidence_wanted_handler(broken)
        delivery.submit(health(2))
        eventually("third ack", lambda: delivery.stats().sent_batches == 3)
    finally:
        stats = delivery.close(timeout=5)
    assert received == [(digest,)]
    assert (stats.evidence_wanted, stats.evidence_wanted_unhandled, stats.sent_events) == (3, 2, 3)
    assert "evidence request handler" in stats.last_error


def _delivery(transport: ScriptedTransport) -> Delivery:
    return Delivery("agent-hue-01", _config(), MemorySpool(), transport, dead_letters=MemoryDeadLetters())


def test_the_http_transport_announces_that_it_reads_evidence_wanted() -> None:
    seen: list[httpx.Request] = []
    digest = "c" * 64

    def central(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"received": 1, "stored": 1, "duplicates": 0, "evidence_wanted": [digest]})

    config = UplinkConfig.model_validate({"url": "http://central.test", "token": "t", "gzip": False})
    with httpx.Client(transport=httpx.MockTransport(central)) as client:
        outcome = HttpTransport(config, client=client).send("agent-1", [health(0).model_dump_json().encode()])
    assert isinstance(outcome, Acked)
    assert outcome.ack is not None
    assert outcome.ack.evidence_wanted == (digest,)
    assert seen[0].headers[ACK_FEATURES_HEADER] == "evidence_wanted"


# ----------------------------------------------------------------- metrics, validate-config, retention plan


def test_traffic_counters_are_in_the_metrics_text() -> None:
    camera = CameraTrafficStats(
        violations=4,
        violations_with_plate=3,
        plates_unfit=0,
        held=0,
        released_early=0,
        plate_passes=11,
        congestion=2,
        keyframes=9,
        keyframes_failed=1,
    )
    worker = PlateWorkerStats(
        jobs=20,
        jobs_dropped=5,
        queued=1,
        reads=15,
        plates_found=12,
        read_errors=0,
        results_dropped=0,
        busy_s=3.5,
        last_error=None,
    )
    upload = UploaderStats(
        uploaded=2,
        bytes_uploaded=10,
        failures=1,
        refused=0,
        missing=0,
        next_retry_s=0.0,
        last_error=None,
        enabled=False,
        serves_requests=True,
    )
    server = ServerMetrics()
    traffic = TrafficMetrics(cameras={"cam-1": camera}, plate_worker=worker, evidence_upload=upload)
    text = render_metrics("agent-1", (), None, server, traffic)
    assert 'ioc_edge_violations_total{camera="cam-1"} 4\n' in text
    assert 'ioc_edge_plate_passes_total{camera="cam-1"} 11\n' in text
    assert "ioc_edge_plate_reads_total 15\n" in text
    assert "ioc_edge_plate_reads_dropped_total 5\n" in text
    assert "ioc_edge_evidence_upload_serves_requests 1\n" in text
    assert "# TYPE ioc_edge_violations_total counter" in text


def test_validate_config_summarises_each_traffic_camera_on_one_line() -> None:
    config = load_config(REPO / "configs" / "edge.traffic.example.yaml")
    lines = [traffic_summary(camera) for camera in config.cameras]
    assert all(line is not None and "\n" not in line for line in lines)
    first = lines[0]
    assert first is not None
    assert "red_light red-north (signal sig-north-feed)" in first
    assert "plates ppocr, pass line pass" in first


def test_the_licensed_path_leaves_personal_data_to_the_audited_service_path() -> None:
    retention = RetentionSettings()
    jobs = licensed_retention_policies(retention)
    assert AUDITED_TABLES.isdisjoint(jobs)
    assert {"health", "count_intervals", "congestion", "counts_hourly_cagg"} <= set(jobs)
    targets = [target.table for target in audited_targets(retention)]
    assert targets == ["violations", "plate_passes", "evidence_blobs"]  # images after the violations they need


def test_the_preview_server_renders_the_traffic_counters_of_its_sources() -> None:
    traffic = TrafficMetrics(cameras={"cam-9": _camera_stats(violations=2)})
    sources = PreviewSources("agent-1", (), {}, pipeline_stats=lambda: [], traffic_stats=lambda: traffic)
    text = PreviewServer(PreviewConfig(port=0), sources).metrics_text()
    assert text.startswith("# HELP ioc_edge_agent_info")
    assert 'ioc_edge_violations_total{camera="cam-9"} 2\n' in text
    quiet = PreviewSources("agent-1", (), {}, pipeline_stats=lambda: [], traffic_stats=lambda: None)
    assert "violations_total" not in PreviewServer(PreviewConfig(port=0), quiet).metrics_text()


def _camera_stats(violations: int) -> CameraTrafficStats:
    return CameraTrafficStats(
        violations=violations,
        violations_with_plate=0,
        plates_unfit=0,
        held=0,
        released_early=0,
        plate_passes=0,
        congestion=0,
        keyframes=0,
        keyframes_failed=0,
    )


def test_a_licensed_pass_deletes_personal_data_through_the_audited_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_policy_pass`` with the database's side stubbed: which steps reach ``apply_retention``."""
    seen: list[RetentionStep] = []

    async def policies(_conn: object, _settings: Settings) -> PolicyReport:
        return PolicyReport((), (), (), ("plate_passes",))

    async def retention(_conn: object, steps: tuple[RetentionStep, ...]) -> RetentionReport:
        seen.extend(steps)
        return RetentionReport(())

    class Conn:
        async def execute(self, _query: object, _params: object = None) -> None:
            return None

    monkeypatch.setattr(maintenance, "ensure_timescale_policies", policies)
    monkeypatch.setattr(maintenance, "apply_retention", retention)
    settings = Settings(database_url="postgresql://unused/db")
    report = asyncio.run(
        maintenance._policy_pass(Conn(), settings, NOW, features_for_license("timescale"))  # type: ignore[arg-type]
    )
    assert [step.table for step in seen] == ["violations", "plate_passes", "evidence_blobs", "dead_letters"]
    by_table = {step.table: step for step in seen}
    assert by_table["plate_passes"].cutoff == NOW - dt.timedelta(days=settings.retention.plate_passes_days)
    assert by_table["evidence_blobs"].referenced_cutoff == NOW - dt.timedelta(days=settings.retention.violations_days)
    assert report.policies is not None
    assert report.policies.retention_policies_removed == ("plate_passes",)
