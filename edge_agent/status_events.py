"""Health events the agent reports about itself and its sensors (cameras report their own).

- The agent's own health event (``source_id`` = the agent id) carries ``DeliveryHealth``: the spool
  backlog, every event its full spool dropped (by kind, with their time range) and the dead letters,
  so central can show the gap a site left and why.
- A sensor that goes silent (no reading for its ``silent_after_s``) gets a ``down`` health event, and a
  ``live`` one when it speaks again.

Pure functions: values in, events out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from edge_agent.delivery.dead_letters import DeadLetterStats
from edge_agent.delivery.sender import DeliveryStats
from edge_agent.delivery.spool import SpoolStats
from event_contract import DeliveryHealth, HealthEvent
from ioc_common.sensors.silence import SilenceChange

REASON_LIMIT = 500


def delivery_health(delivery: DeliveryStats, spool: SpoolStats, dead_letters: DeadLetterStats) -> DeliveryHealth:
    """The contract's view of the spool and the dead letters; ``degraded`` when the disk refuses writes."""
    problems: list[str] = []
    if spool.state != "ok":
        problems.append(f"spool {spool.state}: {spool.last_error or 'no detail'}")
    if dead_letters.state != "ok":
        problems.append(f"dead-letter store {dead_letters.state}: {dead_letters.last_error or 'no detail'}")
    if delivery.breaker_state != "closed":
        problems.append(f"uplink circuit {delivery.breaker_state}: {delivery.last_error or 'no detail'}")
    return DeliveryHealth(
        spool_events=delivery.backlog_events,
        spool_bytes=delivery.backlog_bytes,
        oldest_pending=_time(spool.oldest_pending_time),
        dropped_events=spool.dropped_events,
        dropped_by_kind=dict(spool.dropped_by_kind),
        dropped_first=_time(spool.dropped_first_time),
        dropped_last=_time(spool.dropped_last_time),
        memory_held=spool.memory_held,
        dead_letters=dead_letters.kept,
        state="degraded" if spool.state != "ok" or dead_letters.state != "ok" else "ok",
        reason="; ".join(problems)[:REASON_LIMIT],
    )


def agent_health_event(agent_id: str, now: dt.datetime, uptime_s: float, delivery: DeliveryHealth) -> HealthEvent:
    """The agent's own periodic health event."""
    reason = delivery.reason or f"spool: {delivery.spool_events} events waiting, {delivery.dropped_events} dropped"
    return HealthEvent(
        agent_id=agent_id,
        source_id=agent_id,
        time=now,
        state="live",
        reason=reason[:REASON_LIMIT],
        uptime_s=max(0.0, uptime_s),
        delivery=delivery,
    )


def sensor_health_events(agent_id: str, changes: Sequence[SilenceChange], now: dt.datetime) -> list[HealthEvent]:
    """``down`` for a sensor gone silent, ``live`` for one that speaks again."""
    return [
        HealthEvent(
            agent_id=agent_id,
            source_id=change.sensor_id,
            time=now,
            state="down" if change.state == "silent" else "live",
            reason=change.reason[:REASON_LIMIT],
        )
        for change in changes
    ]


def _time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)
