"""``SseBroker``: in-memory fan-out of alert notices to the operator pages' event streams.

Each connected client has its own bounded queue (drop policy "drop_oldest", counted per client and
in total), so a page on a slow link, or one that stopped reading, loses its oldest notices and
never holds back the other clients or the dispatcher. The broker is itself a dispatcher sink whose
``deliver`` only appends to those queues: it cannot fail. Everything runs on the app's event loop.

Frames follow the SSE format (``text/event-stream``)::

    event: alert
    id: <alert_id>:<changed_at ISO 8601>
    data: <the notice's JSON on one line>

A page that reconnects gets what happens from then on; the database is the place for history.

Area scope: a subscription's ``StreamFilter`` carries the subject keys its user may see
(``alerts.scope.visible_subjects``), so a commune user's queue never even holds another commune's
notices; the stream route rechecks the user and refreshes that set while the client stays connected
(``set_filter``), and ends the stream when the user's session or reader role is gone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from typing import Final

from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.scope import subject_visible

log = logging.getLogger(__name__)

DROP_POLICY: Final = "drop_oldest"
HEARTBEAT_FRAME: Final = b": heartbeat\n\n"


@dataclass(frozen=True)
class StreamFilter:
    """Which notices a client wants and may see; ``None`` matches everything."""

    rule_kind: str | None = None
    severity: str | None = None
    subjects: frozenset[str] | None = None
    """The subject keys the client's user may see (``alerts.scope.visible_subjects``); None: all."""

    def matches(self, notice: AlertNotice) -> bool:
        return (
            (self.rule_kind is None or notice.rule_kind == self.rule_kind)
            and (self.severity is None or notice.severity == self.severity)
            and subject_visible(notice.subject, self.subjects)
        )


class Subscription:
    """One client's bounded queue of notices."""

    def __init__(self, client_id: int, wanted: StreamFilter, queue_size: int) -> None:
        self.client_id = client_id
        self.wanted = wanted
        self.dropped = 0
        self._queue_size = queue_size
        self._queue: deque[AlertNotice] = deque()
        self._ready = asyncio.Event()

    def offer(self, notice: AlertNotice) -> bool:
        """Queue ``notice``; False when the oldest one had to be dropped to make room."""
        kept_all = True
        if len(self._queue) >= self._queue_size:
            self._queue.popleft()
            self.dropped += 1
            kept_all = False
        self._queue.append(notice)
        self._ready.set()
        return kept_all

    def set_filter(self, wanted: StreamFilter) -> None:
        """Replace the filter (a refreshed area scope); notices already queued stay queued."""
        self.wanted = wanted

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def next(self, timeout_s: float) -> AlertNotice | None:
        """The oldest queued notice, or None when nothing came within ``timeout_s`` (time for a heartbeat)."""
        if not self._queue:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout_s)
            except TimeoutError:
                return None
        return self._queue.popleft()


class SseBroker:
    """Fan-out to every subscribed client; also the dispatcher's ``sse`` sink."""

    def __init__(self, *, client_queue_size: int = 100, heartbeat_s: float = 15.0) -> None:
        if client_queue_size < 1:
            raise ValueError(f"client_queue_size must be >= 1, got {client_queue_size}")
        if heartbeat_s <= 0:
            raise ValueError(f"heartbeat_s must be > 0, got {heartbeat_s}")
        self.client_queue_size = client_queue_size
        self.heartbeat_s = heartbeat_s
        self._clients: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        self._dropped_total = 0
        self._fanned_out = 0
        self.scope_refresh_failures = 0
        """Stream routes that could not recheck a subscriber's session and area scope (it kept the previous set)."""
        self.streams_revoked = 0
        """Streams ended by a recheck: the session was gone or the user no longer held a reader role."""

    @property
    def name(self) -> str:
        return "sse"

    def subscribe(self, wanted: StreamFilter | None = None) -> Subscription:
        subscription = Subscription(next(self._ids), wanted or StreamFilter(), self.client_queue_size)
        self._clients[subscription.client_id] = subscription
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._clients.pop(subscription.client_id, None)

    async def deliver(self, notice: AlertNotice) -> None:
        """Append to every matching client's queue; never fails, never waits."""
        self._fanned_out += 1
        for subscription in list(self._clients.values()):
            if subscription.wanted.matches(notice) and not subscription.offer(notice):
                self._dropped_total += 1
                if subscription.dropped in (1, 10, 100) or subscription.dropped % 1000 == 0:
                    log.warning(
                        "SSE client %d is not keeping up: %d notices dropped",
                        subscription.client_id,
                        subscription.dropped,
                    )

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def stats(self) -> dict[str, int]:
        """clients connected, notices fanned out, notices dropped over all clients, scope rechecks failed and
        streams ended by a recheck (ever)."""
        return {
            "clients": len(self._clients),
            "fanned_out": self._fanned_out,
            "dropped": self._dropped_total,
            "scope_refresh_failures": self.scope_refresh_failures,
            "streams_revoked": self.streams_revoked,
        }

    def client_stats(self) -> dict[int, dict[str, int]]:
        return {cid: {"queued": s.queued, "dropped": s.dropped} for cid, s in self._clients.items()}


def event_id(notice: AlertNotice) -> str:
    return f"{notice.alert_id}:{notice.changed_at.isoformat()}"


def alert_frame(notice: AlertNotice) -> bytes:
    """One ``event: alert`` frame. The JSON has no raw newlines, so one ``data:`` line carries it."""
    return f"event: alert\nid: {event_id(notice)}\ndata: {notice.model_dump_json()}\n\n".encode()
