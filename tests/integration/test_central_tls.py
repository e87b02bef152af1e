"""HTTPS with mutual TLS: the real ``central-ingest serve`` refuses a client without a certificate
signed by the configured CA, and takes a batch from one that has it (plus its bearer token)."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from devstack.ports import free_port
from event_contract import EventBatch, HealthEvent

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _issue(directory: Path, name: str, subject: str, *, ca: Path, ca_key: Path, extensions: str) -> None:
    key, csr, cert, ext = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "pem", "ext"))
    ext.write_text(extensions)
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-subj", subject, "-out", str(csr))
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(cert),
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for agent tls-agent."""
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=IOC test CA",
    )  # fmt: skip
    _issue(directory, "server", "/CN=127.0.0.1", ca=ca, ca_key=ca_key, extensions="subjectAltName=IP:127.0.0.1\n")
    _issue(directory, "client", "/CN=tls-agent", ca=ca, ca_key=ca_key, extensions="extendedKeyUsage=clientAuth\n")
    return directory


@pytest.fixture(scope="module")
def https_url(pg_dsn: str, pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    apply_migrations(pg_dsn)
    port = free_port()
    env = os.environ | {
        "IOC_CENTRAL_DATABASE_URL": pg_dsn,
        "IOC_CENTRAL_TLS_CERTFILE": str(pki / "server.pem"),
        "IOC_CENTRAL_TLS_KEYFILE": str(pki / "server.key"),
        "IOC_CENTRAL_TLS_CLIENT_CA_FILE": str(pki / "ca.pem"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    log_path = tmp_path_factory.mktemp("tls-serve") / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "central_ingest", "serve", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    url = f"https://127.0.0.1:{port}"
    client = _client(pki, with_certificate=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve not ready:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=20)


def _client(pki: Path, *, with_certificate: bool) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if with_certificate:
        context.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return httpx.Client(verify=context, timeout=10.0)


def test_client_without_certificate_is_refused_at_the_handshake(https_url: str, pki: Path) -> None:
    with _client(pki, with_certificate=False) as client, pytest.raises(httpx.TransportError):
        client.get(f"{https_url}/healthz")


def test_agent_with_certificate_and_token_stores_a_batch(pg_dsn: str, https_url: str, pki: Path) -> None:
    with psycopg.connect(pg_dsn) as conn:
        token = add_agent(conn, "tls-agent")
    batch = EventBatch(
        agent_id="tls-agent",
        events=(HealthEvent(agent_id="tls-agent", source_id="cam-1", time=dt.datetime.now(dt.UTC), state="live"),),
    )
    with _client(pki, with_certificate=True) as client:
        response = client.post(
            f"{https_url}/api/v1/events",
            content=batch.model_dump_json(),
            headers={"Authorization": f"Bearer {token}"},
        )
        no_token = client.post(f"{https_url}/api/v1/events", content=batch.model_dump_json())
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    assert no_token.status_code == 401  # a certificate does not replace the agent's token
