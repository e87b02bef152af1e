"""Ships events to central: a bounded queue, batches, gzip, bearer token, retries.

``submit(event)`` never blocks the caller (a camera's analytics thread): a full
queue drops its oldest event and counts it. A worker thread takes up to
``batch_max_events`` events (or what arrived within ``flush_interval_s``),
POSTs them as one ``EventBatch`` to ``{url}/api/v1/events`` and:

- 2xx: done (events central refused one by one are logged and counted, not resent);
- network error, timeout, 5xx or 429: retries the same batch (same event ids, so
  central can drop duplicates) after exponential backoff with full jitter,
  honouring ``Retry-After`` up to the ceiling;
- 413 (body too large for central): the batch is split in halves and each is sent;
- any other 4xx: the batch can never succeed, so it is logged with central's
  message and counted as dead (not retried).

The queue lives in memory; a later milestone swaps it for a durable spool behind
the same three calls: ``submit``, ``stats``, ``close``.
"""

from __future__ import annotations

import gzip
import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator

from edge_agent.delivery.queues import BoundedQueue, QueueClosedError
from event_contract import MAX_BATCH_EVENTS, BatchAck, Event, EventBatch
from ioc_common.backoff import Backoff, BackoffConfig

log = logging.getLogger(__name__)

EVENTS_PATH = "/api/v1/events"

AnyEvent = Event
"""Any contract event (count and zone intervals, health)."""


class UplinkConfig(BaseModel):
    """Where and how events go to central."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl = Field(
        description="Base URL of central ingest, e.g. https://ioc.example.vn; /api/v1/events is added."
    )
    token: SecretStr | None = Field(default=None, description="Bearer token of this agent. Prefer token_file.")
    token_file: Path | None = Field(
        default=None, description="File holding the bearer token (first line), read when the uplink starts."
    )
    batch_max_events: int = Field(default=500, ge=1, le=MAX_BATCH_EVENTS, description="Most events in one POST.")
    flush_interval_s: float = Field(
        default=2.0, gt=0, le=3600, description="Longest an event waits for its batch to fill before it is sent."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="HTTP connect/read timeout per request.")
    retry: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=0.5, ceiling_s=60.0),
        description="Backoff between retries of a batch.",
    )
    queue_capacity: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Events held in memory while central is unreachable."
    )
    queue_policy: Literal["drop_oldest"] = Field(
        default="drop_oldest",
        description="A full queue discards its oldest event (counted as dropped), so fresh data wins.",
    )
    gzip: bool = Field(default=True, description="Compress request bodies (Content-Encoding: gzip).")

    @model_validator(mode="after")
    def _one_token_source(self) -> UplinkConfig:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set either token or token_file, not both")
        if self.token is None and self.token_file is None:
            raise ValueError("set token or token_file: central accepts only authenticated agents")
        return self

    def resolve_token(self) -> str:
        """The bearer token; reads ``token_file`` now, with an error that names the file."""
        if self.token is not None:
            return self.token.get_secret_value()
        assert self.token_file is not None  # guaranteed by the validator
        try:
            lines = self.token_file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ValueError(f"cannot read central token_file {self.token_file}: {error}") from error
        token = lines[0].strip() if lines else ""
        if not token:
            raise ValueError(f"central token_file {self.token_file} is empty")
        return token


@dataclass(frozen=True, slots=True)
class UplinkStats:
    submitted: int
    """Events given to ``submit``."""
    dropped: int
    """Events discarded because the queue was full (drop_oldest) or the uplink was closed."""
    sent_events: int
    sent_batches: int
    retries: int
    """Failed attempts that were retried."""
    dead_batches: int
    """Batches central rejected with a 4xx other than 429; never retried."""
    dead_events: int
    rejected_events: int
    """Events of accepted batches that central refused one by one (kept in its dead letters); never resent."""
    lost_at_close: int
    """Events still unsent when ``close`` ran out of time."""
    queue_depth: int
    last_error: str


class HttpUplink:
    """Background sender of events to central ingest over HTTP."""

    def __init__(
        self,
        agent_id: str,
        config: UplinkConfig,
        *,
        client: httpx.Client | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.config = config
        self._token = config.resolve_token()
        self._client = client or httpx.Client(timeout=config.timeout_s)
        self._owns_client = client is None
        self._queue: BoundedQueue[AnyEvent] = BoundedQueue(config.queue_capacity, "drop_oldest")
        self._backoff = Backoff(config.retry, rng or random.Random())  # noqa: S311 - jitter, not crypto
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self._submitted = 0
        self._refused_closed = 0
        self._sent_events = 0
        self._sent_batches = 0
        self._retries = 0
        self._dead_batches = 0
        self._dead_events = 0
        self._rejected_events = 0
        self._lost_at_close = 0
        self._last_error = ""
        self._endpoint = str(config.url).rstrip("/") + EVENTS_PATH
        self._thread = threading.Thread(target=self._run, name="http-uplink", daemon=True)
        self._thread.start()

    def submit(self, event: AnyEvent) -> None:
        """Queue one event for sending; never blocks. Events of another agent are refused."""
        if event.agent_id != self.agent_id:
            raise ValueError(
                f"event {event.event_id} is from agent {event.agent_id!r}, this uplink is {self.agent_id!r}"
            )
        with self._lock:
            self._submitted += 1
        try:
            if not self._queue.put(event):
                log.debug("uplink queue full: dropped the oldest event")
        except QueueClosedError:
            with self._lock:
                self._refused_closed += 1
            log.warning("uplink closed: event %s dropped", event.event_id)

    def stats(self) -> UplinkStats:
        queue = self._queue.stats()
        with self._lock:
            return UplinkStats(
                submitted=self._submitted,
                dropped=queue.dropped + self._refused_closed,
                sent_events=self._sent_events,
                sent_batches=self._sent_batches,
                retries=self._retries,
                dead_batches=self._dead_batches,
                dead_events=self._dead_events,
                rejected_events=self._rejected_events,
                lost_at_close=self._lost_at_close,
                queue_depth=queue.depth,
                last_error=self._last_error,
            )

    def close(self, timeout: float = 10.0) -> UplinkStats:
        """Stop taking events, send what is queued (retrying) for up to ``timeout`` seconds, then stop."""
        self._queue.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join(self.config.timeout_s + 1.0)
        if self._owns_client:
            self._client.close()
        return self.stats()

    # -- worker thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch:
                self._deliver(batch)
            elif self._queue.drained():
                return
            if self._abort.is_set():
                self._count_lost(self._queue.get_many(self.config.queue_capacity))
                return

    def _next_batch(self) -> list[AnyEvent]:
        """Wait for a first event, then up to ``flush_interval_s`` for the batch to fill."""
        first = self._queue.get(timeout=self.config.flush_interval_s)
        if first is None:
            return []
        batch = [first]
        deadline = time.monotonic() + self.config.flush_interval_s
        while len(batch) < self.config.batch_max_events:
            batch.extend(self._queue.get_many(self.config.batch_max_events - len(batch)))
            remaining = deadline - time.monotonic()
            if len(batch) >= self.config.batch_max_events or remaining <= 0 or self._queue.closed:
                break
            more = self._queue.get(timeout=remaining)
            if more is None:
                break
            batch.append(more)
        return batch

    def _deliver(self, events: list[AnyEvent]) -> None:
        body = EventBatch(agent_id=self.agent_id, events=tuple(events)).model_dump_json().encode("utf-8")
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        if self.config.gzip:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        while True:
            retry_after = 0.0
            try:
                response = self._client.post(self._endpoint, content=body, headers=headers)
            except httpx.HTTPError as error:
                self._note_error(f"{type(error).__name__}: {error}")
            else:
                if response.is_success:
                    self._backoff.reset()
                    rejected = _rejected_events(response)
                    with self._lock:
                        self._sent_events += len(events)
                        self._sent_batches += 1
                        self._rejected_events += rejected
                    return
                message = _server_message(response)
                if response.status_code == 413 and len(events) > 1:
                    # Central's body limit is smaller than our batch: send it in halves instead of losing it.
                    log.warning("central: batch of %d events too large (%s); splitting", len(events), message)
                    half = len(events) // 2
                    self._deliver(events[:half])
                    self._deliver(events[half:])
                    return
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    log.error(
                        "central rejected a batch of %d events with HTTP %d: %s (not retried)",
                        len(events),
                        response.status_code,
                        message,
                    )
                    with self._lock:
                        self._dead_batches += 1
                        self._dead_events += len(events)
                        self._last_error = f"HTTP {response.status_code}: {message}"
                    return
                self._note_error(f"HTTP {response.status_code}: {message}")
                retry_after = _retry_after_s(response)
            delay = self._backoff.next_delay(at_least_s=retry_after)
            with self._lock:
                self._retries += 1
            log.warning("uplink: %s; retrying %d events in %.2f s", self._last_error, len(events), delay)
            if self._abort.wait(delay):
                self._count_lost(events)
                return

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._last_error = message

    def _count_lost(self, events: list[AnyEvent]) -> None:
        if events:
            log.error("uplink closing: %d events could not be delivered", len(events))
        with self._lock:
            self._lost_at_close += len(events)


def _rejected_events(response: httpx.Response) -> int:
    """How many events central refused in an accepted batch (logged with the first reasons); 0 if unreadable."""
    try:
        ack = BatchAck.model_validate_json(response.content)
    except ValueError:
        return 0
    if ack.rejected:
        reasons = "; ".join(f"#{r.index}: {r.reason}" for r in ack.rejections[:3])
        log.error("central refused %d event(s) of a batch (not resent): %s", ack.rejected, reasons)
    return ack.rejected


def _server_message(response: httpx.Response) -> str:
    text = response.text.strip()
    return text[:500] if text else response.reason_phrase


def _retry_after_s(response: httpx.Response) -> float:
    """Seconds from a numeric Retry-After header; 0 when absent or a date (not worth parsing here)."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0
