"""The evidence uploader: one thread that PUTs the keyframes on the store's upload list to central.

``PUT {central.url}/api/v1/evidence/{sha256}`` with the agent's bearer token (the uplink's URL, token and
timeout), the JPEG as body. Central checks the digest, so the name is the proof of integrity.

Answers, like the event uplink's (``edge_agent.delivery.http_uplink``):

- 2xx (and 409, "already stored"): uploaded, off the list;
- network error, timeout, 5xx, 408, 429, and 401/403/404/405 (a wrong token or URL, an older central
  without the route: fixed by an operator, not by dropping evidence): retried after a backoff delay
  (exponential, full jitter, ``upload_backoff.ceiling_s``; Retry-After honoured up to the ceiling),
  the item stays first on the list and its ``attempts`` grows;
- any other 4xx (400, 413, 422): refused for good, counted, off the list; the file stays at the edge.

The list itself is the store's (persisted in its SQLite index, bounded, oldest first; keyframes an
officer asked for first), so what was not uploaded before a restart is uploaded after it. The thread
also runs the store's age pruning.

It runs whenever the uplink has an HTTP URL and either the policy uploads something or requests are
served (``upload_on_request``): with policy ``never`` the list holds only requested keyframes.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.http_uplink import RETRIED_4XX
from edge_agent.evidence.config import EvidenceConfig
from edge_agent.evidence.store import EvidenceStore
from ioc_common.backoff import Backoff, retry_after_s

log = logging.getLogger(__name__)

EVIDENCE_PATH = "/api/v1/evidence/"
POLL_S = 1.0
"""How often an idle uploader looks at the upload list (``wake`` cuts the wait short)."""
PRUNE_EVERY_S = 300.0
"""How often old keyframes are pruned."""

Outcome = Literal["uploaded", "retry", "refused"]


@dataclass(frozen=True, slots=True)
class UploaderStats:
    uploaded: int
    """Keyframes central stored (or already had) since start."""
    bytes_uploaded: int
    failures: int
    """Tries that failed and will be retried (network, 5xx, 429, auth)."""
    refused: int
    missing: int
    """Listed keyframes whose file was already gone (evicted, expired): dropped from the list."""
    next_retry_s: float
    """The current backoff delay (0 while uploads succeed)."""
    last_error: str | None
    enabled: bool
    """Uploads by policy: False with policy never or when the uplink has no HTTP URL (transport mqtt)."""
    serves_requests: bool = False
    """Uploads what officers request (``upload_on_request`` and an HTTP URL), whatever the policy."""


class EvidenceUploader:
    """``start()``, ``wake()`` after new keyframes, ``stop()``; ``stats()`` from any thread."""

    def __init__(
        self,
        store: EvidenceStore,
        central: UplinkConfig,
        config: EvidenceConfig,
        *,
        client: httpx.Client | None = None,
        rng: random.Random | None = None,
        poll_s: float = POLL_S,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._enabled = central.url is not None and config.upload != "never"
        self._serves_requests = central.url is not None and config.upload_on_request
        self._active = self._enabled or self._serves_requests
        self._base = str(central.url).rstrip("/") + EVIDENCE_PATH if central.url is not None else ""
        self._token = central.resolve_token() if self._active else ""
        self._client = client or httpx.Client(timeout=config.upload_timeout_s)
        self._owns_client = client is None
        self._backoff = Backoff(config.upload_backoff, rng or random.Random())  # noqa: S311 (jitter, not crypto)
        self._poll_s = poll_s
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._uploaded = 0
        self._bytes = 0
        self._failures = 0
        self._refused = 0
        self._missing = 0
        self._next_retry_s = 0.0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="evidence-uploader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """New keyframes are listed: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._owns_client:
            self._client.close()

    def stats(self) -> UploaderStats:
        with self._lock:
            return UploaderStats(
                uploaded=self._uploaded,
                bytes_uploaded=self._bytes,
                failures=self._failures,
                refused=self._refused,
                missing=self._missing,
                next_retry_s=self._next_retry_s,
                last_error=self._last_error,
                enabled=self._enabled,
                serves_requests=self._serves_requests,
            )

    # ----------------------------------------------------------------- the thread

    def _run(self) -> None:
        next_prune = self._monotonic()
        while not self._stop.is_set():
            if self._monotonic() >= next_prune:
                self._prune()
                next_prune = self._monotonic() + PRUNE_EVERY_S
            delay, backing_off = self._poll_s, False
            try:
                if self._active:
                    delay, backing_off = self._upload_some()
            except Exception as error:  # a bug here must not end uploads for good; count it and go on
                log.exception("evidence uploader failed")
                with self._lock:
                    self._last_error = f"internal error: {type(error).__name__}: {error}"
            self._wake.clear()
            if backing_off:
                self._stop.wait(delay)  # new keyframes do not cut a backoff short; stop() does
            elif delay > 0:
                self._wake.wait(delay)

    def _prune(self) -> None:
        try:
            gone = self._store.prune(self._wall_clock())
        except Exception:
            log.exception("evidence: pruning old keyframes failed")
            return
        if gone:
            log.info("evidence: deleted %d keyframes older than the retention period", gone)

    def _upload_some(self) -> tuple[float, bool]:
        """Upload listed keyframes until the list is empty or one fails: (wait before the next round, backoff)."""
        listed = self._store.pending(16)
        if not listed:
            return self._poll_s, False
        for sha in listed:
            if self._stop.is_set():
                return 0.0, False
            outcome, retry_after_s = self.upload_one(sha)
            if outcome == "retry":
                self._store.note_attempt(sha)
                delay = self._backoff.next_delay(retry_after_s)
                with self._lock:
                    self._next_retry_s = delay
                return delay, True
            self._backoff.reset()
            with self._lock:
                self._next_retry_s = 0.0
        return 0.0, False

    def upload_one(self, sha256: str) -> tuple[Outcome | Literal["missing"], float]:
        """One PUT; the outcome (list updated) and central's Retry-After in seconds (0 if none)."""
        data = self._store.read(sha256)
        if data is None:
            self._store.forget_pending(sha256)
            with self._lock:
                self._missing += 1
            return "missing", 0.0
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "image/jpeg"}
        try:
            response = self._client.put(self._base + sha256, content=data, headers=headers)
        except httpx.HTTPError as error:
            self._failed(f"{type(error).__name__}: {error}")
            return "retry", 0.0
        status = response.status_code
        if response.is_success or status == 409:
            self._store.mark_uploaded(sha256)
            with self._lock:
                self._uploaded += 1
                self._bytes += len(data)
            return "uploaded", 0.0
        message = f"HTTP {status}: {response.text.strip()[:300] or response.reason_phrase}"
        if status >= 500 or status in RETRIED_4XX or status < 400:
            self._failed(message)
            return "retry", retry_after_s(response.headers.get("Retry-After"))
        self._store.mark_refused(sha256)
        with self._lock:
            self._refused += 1
            self._last_error = f"central refused keyframe {sha256}: {message}"
        log.error("evidence: central refused keyframe %s for good: %s (the file stays at the edge)", sha256, message)
        return "refused", 0.0

    def _failed(self, message: str) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = message
        log.warning("evidence upload failed (%s); retrying with backoff", message)
