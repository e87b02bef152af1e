"""``GET /api/v1/alerts/stream``: alert notices as server-sent events for the operator pages.

The route subscribes the client to the app's ``SseBroker`` (``app.state.ioc_sse``), streams
``event: alert`` frames as notices arrive and a comment line every ``heartbeat_s`` so proxies and
the browser keep the connection open, and unsubscribes when the client goes away (Starlette
cancels the stream when it sees the disconnect).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from central_ingest.alerts.notice import Severity
from central_ingest.alerts.sinks.sse import HEARTBEAT_FRAME, SseBroker, StreamFilter, alert_frame

router = APIRouter(prefix="/api/v1/alerts")

RECONNECT_HINT_MS = 3000
"""Sent as ``retry:`` so a browser's EventSource reconnects after 3 s instead of its default."""


def get_sse_broker(request: Request) -> SseBroker:
    broker = getattr(request.app.state, "ioc_sse", None)
    if not isinstance(broker, SseBroker):  # only before the lifespan ran, i.e. a wiring bug
        raise RuntimeError("app.state.ioc_sse is not an SseBroker: the alert stream is not wired")
    return broker


async def _frames(broker: SseBroker, wanted: StreamFilter) -> AsyncIterator[bytes]:
    # Subscribed here, not in the handler: a generator that never starts must not leave a subscriber behind.
    subscription = broker.subscribe(wanted)
    try:
        # The first frame tells the client it is subscribed: nothing published after it is missed.
        yield f"retry: {RECONNECT_HINT_MS}\n: connected\n\n".encode()
        while True:
            notice = await subscription.next(broker.heartbeat_s)
            yield HEARTBEAT_FRAME if notice is None else alert_frame(notice)
    finally:
        broker.unsubscribe(subscription)


@router.get(
    "/stream",
    summary="Alert transitions as server-sent events (text/event-stream)",
    description="Frames: `event: alert`, `id: <alert_id>:<changed_at>`, `data: <AlertNotice JSON>`; a comment "
    "line as heartbeat. Live only: what happened before connecting is in the database. A client that reads too "
    "slowly loses its oldest queued notices.",
    response_class=StreamingResponse,
)
async def stream_alerts(
    broker: Annotated[SseBroker, Depends(get_sse_broker)],
    rule_kind: Annotated[str | None, Query(max_length=64, description="Only notices of this rule kind.")] = None,
    severity: Annotated[Severity | None, Query(description="Only notices of this severity.")] = None,
) -> StreamingResponse:
    return StreamingResponse(
        _frames(broker, StreamFilter(rule_kind=rule_kind, severity=severity)),
        media_type="text/event-stream",
        # no-transform and X-Accel-Buffering keep proxies (nginx) from buffering the stream.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )
