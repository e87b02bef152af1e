"""The edge-delivery benchmark's functions at a tiny size, so the script cannot rot between full runs.

Each phase runs for real at a few dozen events: the spool phase on the disk, the send phase
through the real ``HttpTransport`` and ``Delivery`` to a small local HTTP server that plays central
(decodes the gzip ``EventBatch`` and answers a ``BatchAck``), the sensor phase against the
session's mosquitto with real publisher processes. The checks are about accounting (every event
and message ends up where it should, the JSON has its keys), never about speed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.edge_delivery import TARGETS, main, summarise, table
from benchmarks.edge_delivery_common import make_events, recent_t0
from benchmarks.edge_delivery_publisher import BAD_PAYLOAD, PublisherSpec, count_bad, messages, topic_of
from benchmarks.edge_delivery_send import WAYS, agent_ids, measure_send
from benchmarks.edge_delivery_sensors import sensor_configs
from benchmarks.edge_delivery_spool import measure_spool
from event_contract import BatchAck, EventBatch
from ioc_common.sensors.normalise import SensorNormaliser


def test_spool_phase_drains_every_event_it_put(tmp_path: Path) -> None:
    events = make_events("bench-spool", 45, recent_t0())
    result = measure_spool(tmp_path, events, events[:5], batch_size=10)

    assert result["put"]["events"] == 45
    assert result["drain"]["events"] == 45  # everything put came back out through lease + ack
    assert result["put_single"]["events"] == 5
    assert result["baseline_sqlite"]["drain"]["events"] == 45
    assert set(result["summary"]) >= {"spool_put_events_per_s", "spool_drain_events_per_s", "sqlite_put_events_per_s"}


class _Central:
    """A local HTTP server playing central: every event of every POSTed batch is counted by agent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[str, list[str]] = {}


@pytest.fixture
def central() -> Iterator[tuple[str, _Central]]:
    state = _Central()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            batch = EventBatch.model_validate_json(gzip.decompress(raw))
            with state.lock:
                state.events.setdefault(batch.agent_id, []).extend(str(e.event_id) for e in batch.events)
            ack = BatchAck(received=len(batch.events), stored=len(batch.events), duplicates=0)
            body = ack.model_dump_json().encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def test_send_phase_delivers_each_event_once_by_every_way(tmp_path: Path, central: tuple[str, _Central]) -> None:
    url, state = central
    rounds = 2
    tokens = {agent: f"token-{agent}" for agent in agent_ids(rounds)}

    result = measure_send(
        url, tokens, events=30, batch_size=10, rounds=rounds, warmup_events=10, workdir=tmp_path, t0=recent_t0()
    )

    assert len(result["runs"]) == rounds * len(WAYS)
    assert set(state.events) == set(tokens)  # each way and round used its own agent
    for agent, ids in state.events.items():
        assert len(ids) == len(set(ids))  # nothing sent twice
        assert len(ids) == (10 if "warmup" in agent else 30)
    summary = result["summary"]
    assert set(summary) >= {"send_events_per_s_with_spool", "send_events_per_s_without_spool", "spool_overhead_pct"}
    assert set(result["calls_over_rounds"]["with_spool"]) >= {"spool_put", "spool_lease", "spool_ack", "send"}


def test_publisher_messages_are_readings_the_normaliser_accepts_except_the_broken_ones() -> None:
    base = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    spec = PublisherSpec(
        host="127.0.0.1",
        port=1,
        username="u",
        password="p",
        topic_root="bench/t",
        stations=(0, 2),
        station_count=3,
        readings_per_station=7,
        bad_every=4,
        base_time=base.isoformat(),
    )
    normaliser = SensorNormaliser("bench-agent", sensor_configs("bench/t", 3))
    sent = messages(spec)
    results = [normaliser.normalise(topic, payload, dt.datetime.now(dt.UTC)) for topic, payload in sent]

    bad = [payload for _, payload in sent if payload == BAD_PAYLOAD]
    assert len(sent) == 14
    assert {topic for topic, _ in sent} == {topic_of("bench/t", 0), topic_of("bench/t", 2)}
    assert sum(1 for r in results if r.events and not r.rejections) == len(sent) - len(bad)
    assert [r.rejections[0].code for r in results if r.rejections] == ["not_json"] * len(bad)
    # The publishers' share of broken payloads adds up to what the load says over all stations.
    other = dataclasses.replace(spec, stations=(1,))
    assert len(bad) + sum(p == BAD_PAYLOAD for _, p in messages(other)) == count_bad(3, 7, 4)


def test_main_writes_the_json_with_config_versions_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--phases", "spool", "--spool-events", "30", "--spool-single-events", "3", "--batch-size", "10"]
    argv += ["--spool-dir", str(tmp_path / "spool"), "--out", str(tmp_path)]

    assert main(argv) == 0

    document = json.loads((tmp_path / "edge_delivery.json").read_text(encoding="utf-8"))
    assert document["benchmark"] == "edge_delivery"
    assert document["config"]["phases"] == ["spool"]
    assert document["config"]["spool_events"] == 30
    assert {"sqlite", "python", "paho-mqtt"} <= set(document["versions"])
    assert document["summary"]["spool_drain_events_per_s"] > 0
    assert "spool put, batches" in capsys.readouterr().out


def test_summary_says_which_targets_are_met() -> None:
    result = {
        "sensors": {"summary": {"sensor_messages_per_s": 4_999, "broker_messages_per_s": 9_000}},
        "send": {"summary": {"spool_overhead_pct": 12.5, "send_events_per_s_with_spool": 10}},
    }

    summary = summarise(result)

    assert summary["targets"] == TARGETS
    assert summary["targets_met"] == {"sensor_messages_per_s": False, "spool_overhead_pct": True}
    text = table(summary)
    assert "MISSED" in text
    assert "met" in text


@pytest.mark.parametrize("argv", [["--phases", "spool,nope"], ["--send-rounds", "0"]])
def test_bad_arguments_stop_with_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)

    assert stopped.value.code == 2
    assert "error:" in capsys.readouterr().err
