"""The evidence uploader against a real local HTTP server: PUT with the token, retries with backoff, refusals."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge_agent.delivery.config import UplinkConfig
from edge_agent.evidence.config import EvidenceConfig
from edge_agent.evidence.store import EvidenceStore
from edge_agent.evidence.uploader import EvidenceUploader

NOW = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)


@dataclass
class EvidenceCentral:
    """Answers each PUT with the next scripted (status, headers); 201 once the script is used up."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    stored: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(path, Authorization header) of every PUT."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""


@pytest.fixture
def central() -> Iterator[EvidenceCentral]:
    state = EvidenceCentral()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.requests.append((self.path, self.headers.get("Authorization", "")))
                status, headers = state.script.pop(0) if state.script else (201, {})
                sha = self.path.rsplit("/", 1)[-1]
                if status == 201 and hashlib.sha256(body).hexdigest() == sha:
                    state.stored[sha] = body
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def make(tmp_path: Path, url: str, **settings: object) -> tuple[EvidenceStore, EvidenceUploader]:
    config = EvidenceConfig.model_validate({"upload_backoff": {"base_s": 0.01, "ceiling_s": 0.05}, **settings})
    store = EvidenceStore(config, tmp_path / "evidence")
    central = UplinkConfig.model_validate({"url": url, "token": "agent-t0ken", "timeout_s": 2.0})
    return store, EvidenceUploader(store, central, config, rng=random.Random(1), poll_s=0.02)


def keyframe(seed: int) -> bytes:
    return bytes([0xFF, 0xD8, seed]) * 100


def wait_for(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def test_listed_keyframes_are_put_with_the_agent_token_and_leave_the_list(
    tmp_path: Path, central: EvidenceCentral
) -> None:
    store, uploader = make(tmp_path, central.url)
    refs = [store.put(keyframe(seed), time=NOW, purpose="violation") for seed in range(3)]
    store.put(keyframe(9), time=NOW, purpose="plate_pass")  # not listed under policy "violations"
    uploader.start()
    try:
        wait_for(lambda: store.stats().pending == 0)
    finally:
        uploader.stop()
        store.close()
    shas = [ref.sha256 for ref in refs if ref is not None]
    assert set(central.stored) == set(shas)
    assert all(path.startswith("/api/v1/evidence/") and auth == "Bearer agent-t0ken" for path, auth in central.requests)
    assert uploader.stats().uploaded == 3
    assert store.stats().uploaded == 3


def test_failures_are_retried_with_backoff_until_central_takes_the_keyframe(
    tmp_path: Path, central: EvidenceCentral
) -> None:
    central.script = [(503, {}), (429, {"Retry-After": "0"}), (401, {})]
    store, uploader = make(tmp_path, central.url)
    ref = store.put(keyframe(1), time=NOW, purpose="violation")
    uploader.start()
    try:
        wait_for(lambda: store.stats().pending == 0)
    finally:
        uploader.stop()
        store.close()
    assert ref is not None
    assert ref.sha256 in central.stored
    stats = uploader.stats()
    assert (stats.failures, stats.uploaded, stats.refused) == (3, 1, 0)
    assert len(central.requests) == 4
    assert stats.last_error is not None
    assert "401" in stats.last_error


def test_a_keyframe_central_refuses_for_good_is_counted_and_kept_at_the_edge(
    tmp_path: Path, central: EvidenceCentral
) -> None:
    central.script = [(422, {})]
    store, uploader = make(tmp_path, central.url)
    refused = store.put(keyframe(1), time=NOW, purpose="violation")
    accepted = store.put(keyframe(2), time=NOW, purpose="violation")
    uploader.start()
    try:
        wait_for(lambda: store.stats().pending == 0)
    finally:
        uploader.stop()
    assert refused is not None
    assert accepted is not None
    assert refused.sha256
    assert accepted.sha256
    assert set(central.stored) == {accepted.sha256}
    assert store.read(refused.sha256) == keyframe(1)
    assert (uploader.stats().refused, store.stats().refused) == (1, 1)
    store.close()


def test_an_unreachable_central_keeps_the_list_and_backs_off_to_the_ceiling(tmp_path: Path) -> None:
    store, uploader = make(tmp_path, "http://127.0.0.1:9")  # discard port: connection refused
    store.put(keyframe(1), time=NOW, purpose="violation")
    uploader.start()
    try:
        wait_for(lambda: uploader.stats().failures >= 4)
    finally:
        uploader.stop()
    stats = uploader.stats()
    assert 0 < stats.next_retry_s <= 0.05
    assert store.stats().pending == 1, "a failed upload must stay on the list"
    store.close()


def test_policy_never_uploads_nothing(tmp_path: Path, central: EvidenceCentral) -> None:
    store, uploader = make(tmp_path, central.url, upload="never")
    store.put(keyframe(1), time=NOW, purpose="violation")
    uploader.start()
    uploader.stop()
    assert not uploader.stats().enabled
    assert central.requests == []
    assert store.stats().pending == 0
    store.close()
