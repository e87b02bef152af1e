"""``AlertService``: evaluates the rules as events arrive and on a schedule, and publishes each transition.

Ingest calls ``notify_ingested(events)`` after each stored batch, on the event loop. It does no I/O:
it maps the events to the (rule, subject) pairs they may change and adds them to a bounded
coalescing map (a subject touched by 1,000 events of one batch is evaluated once). When the map
is full new subjects are dropped and counted, and a flag makes the engine run a full pass at
once, which evaluates everything and so loses nothing. Ingest never waits for the engine.

``run()`` is the engine's task: it wakes on a notification (so a dirty subject is evaluated
within milliseconds, far inside the 2 s target from arrival to alert) and every
``evaluate_every_s`` for a full pass (silence, period roll-over, resolutions). Each subject is
evaluated in its own transaction that locks its ``alert_state`` row (see ``store``); notices are
published after the commit. A database error is logged and counted, never ends the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Literal
from uuid import UUID

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from central_ingest.alerts import runners, store
from central_ingest.alerts.history import subject_states
from central_ingest.alerts.lifecycle import Finding, as_float, decide
from central_ingest.alerts.messages import Subject, render
from central_ingest.alerts.notice import AlertNotice, Transition
from central_ingest.alerts.rules import AlertRulesConfig, Rule, SourceSilentRule
from event_contract import Event

log = logging.getLogger(__name__)
DEFAULT_MAX_PENDING = 10_000
CLOSE_WAIT_S = 5.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Fraction):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _detail(finding: Finding) -> dict[str, Any]:
    """What GET /api/v1/alerts/rules shows of the last evaluation."""
    return {
        "level": finding.level,
        "value": as_float(finding.value),
        "baseline": as_float(finding.baseline),
        "threshold": as_float(finding.threshold),
        "window": finding.window,
        **{key: _jsonable(value) for key, value in finding.facts.items()},
    }


class AlertService:
    """The alert rule engine of one central process (see the module docstring)."""

    def __init__(  # noqa: PLR0917 - the positional signature is the interface ingest wires
        self,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        rules: AlertRulesConfig,
        publish: Callable[[AlertNotice], None],
        timezone: str,
        evaluate_every_s: float,
        clock: Callable[[], dt.datetime] = utc_now,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self._pool = pool
        self._config = rules
        self._rules: tuple[Rule, ...] = tuple(rule for rule in rules.rules if rule.enabled)
        self._silence_rules = tuple(rule for rule in self._rules if isinstance(rule, SourceSilentRule))
        self._watched_kinds = runners.watched_kinds(self._rules)
        self._publish = publish
        self._timezone = timezone
        self._every_s = evaluate_every_s
        self._clock = clock
        self._max_pending = max_pending
        # (rule_id, subject key) -> (rule, subject), in arrival order; bounded by max_pending (drop newest).
        self._pending: dict[tuple[str, str], tuple[Rule, Subject]] = {}
        self._full_pass_requested = False
        self._wake = asyncio.Event()
        self._closed = False
        self._stopped: asyncio.Event | None = None
        # Subjects with an open silence alert: an event from them is worth an evaluation (it resolves it).
        self._silent: set[tuple[str, str]] = set()
        self._stats: Counter[str] = Counter()

    # --- ingest side: no I/O, never blocks -------------------------------------------------------

    def notify_ingested(self, events: Sequence[Event]) -> None:
        """Mark the subjects these stored events may change; returns at once."""
        for event in events:
            if event.kind in self._watched_kinds:  # most events (counts, health) concern no rule but silence
                for rule, subject in runners.touched(self._config, self._rules, event):
                    self._mark(rule, subject)
            if self._silent:
                subject = runners.silent_subject(event)
                for rule in self._silence_rules:
                    if (rule.id, subject.key) in self._silent:
                        self._mark(rule, subject)
        if self._pending or self._full_pass_requested:
            self._wake.set()

    def _mark(self, rule: Rule, subject: Subject) -> None:
        key = (rule.id, subject.key)
        if key in self._pending:
            return
        if len(self._pending) >= self._max_pending:
            self._stats["notifications_dropped"] += 1
            self._full_pass_requested = True
            return
        self._pending[key] = (rule, subject)

    # --- the engine's task -----------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate dirty subjects promptly and everything every evaluate_every_s, until ``close``."""
        self._stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        next_full_pass = loop.time()
        try:
            while not self._closed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_full_pass - loop.time())):
                        await self._wake.wait()
                self._wake.clear()
                if self._closed:
                    break
                if self._full_pass_requested or loop.time() >= next_full_pass:
                    self._full_pass_requested = False
                    self._pending.clear()  # the full pass evaluates every one of them
                    await self.evaluate_all()
                    next_full_pass = loop.time() + self._every_s
                    continue
                batch, self._pending = self._pending, {}
                for rule, subject in batch.values():
                    if self._closed:
                        break
                    await self._evaluate_guarded(rule, subject, self._clock())
        finally:
            self._stopped.set()

    async def evaluate_all(self, now: dt.datetime | None = None) -> None:
        """One full pass: every enabled rule, every subject it watches or has an open alert for."""
        self._stats["full_passes"] += 1
        for rule in self._rules:
            if self._closed:
                return
            at = now or self._clock()
            try:
                async with self._pool.connection() as conn:
                    listed = await runners.subjects(conn, self._config, rule, at)
                    cur = await conn.execute(
                        "SELECT subject FROM alert_state WHERE rule_id = %s AND alert_id IS NOT NULL", (rule.id,)
                    )
                    with_open_alert = [key for (key,) in await cur.fetchall()]
            except Exception:
                log.exception("listing the subjects of rule %s failed", rule.id)
                self._stats["errors"] += 1
                continue
            keys = {subject.key for subject in listed}
            extra = [runners.subject_from_key(self._config, key) for key in with_open_alert if key not in keys]
            for subject in [*listed, *extra]:
                await self._evaluate_guarded(rule, subject, now or self._clock())

    async def _evaluate_guarded(self, rule: Rule, subject: Subject, now: dt.datetime) -> None:
        try:
            notices = await self._evaluate(rule, subject, now)
        except Exception:
            log.exception("evaluating rule %s for %s failed", rule.id, subject.key)
            self._stats["errors"] += 1
            return
        for notice in notices:
            self._emit(notice)

    async def _evaluate(self, rule: Rule, subject: Subject, now: dt.datetime) -> list[AlertNotice]:
        notices: list[AlertNotice] = []
        async with self._pool.connection() as conn, conn.transaction():
            state = await store.lock_state(conn, rule.id, subject.key)
            open_rank = state.open_alert.rank if state.open_alert else 0
            finding = await runners.find(
                conn, self._config, rule, subject, open_rank=open_rank, now=now, tz=self._timezone
            )
            decision = decide(state.open_alert, state.latched, state.latched_episode, finding)
            if decision.resolve is not None:
                notices.append(await store.resolve_open_alert(conn, state, decision.resolve, now))
                state = dataclasses.replace(state, open_alert=None)
            if decision.action == "open":
                messages = render(rule, subject, finding)
                notices.append(await store.open_alert(conn, state, rule.kind, finding, messages=messages, now=now))
            elif decision.action in ("escalate", "update"):
                transition: Transition = "escalated" if decision.action == "escalate" else "updated"
                messages = render(rule, subject, finding)
                changed = await store.change_alert(conn, state, transition, finding, messages=messages, now=now)
                notices.extend([changed] if changed else [])
            elif decision.action == "refresh":
                await store.change_alert(conn, state, "updated", finding, messages=None, now=now)
            await store.record_evaluation(
                conn, state, finding, latched=decision.latched, now=now, detail=_detail(finding)
            )
        self._stats["evaluations"] += 1
        if isinstance(rule, SourceSilentRule):
            key = (rule.id, subject.key)
            is_open = decision.action == "open" or (state.open_alert is not None and decision.resolve is None)
            (self._silent.add if is_open else self._silent.discard)(key)
        return notices

    def _emit(self, notice: AlertNotice) -> None:
        self._stats[f"alerts_{notice.transition}"] += 1
        try:
            self._publish(notice)
        except Exception:  # a sink's bug must not undo a committed transition
            log.exception("publishing alert %s failed", notice.alert_id)
            self._stats["publish_errors"] += 1

    # --- operators -------------------------------------------------------------------------------

    async def acknowledge(self, alert_id: UUID, by: str, comment: str) -> AlertNotice:
        return await self._operator(alert_id, "acknowledged", by, comment)

    async def resolve(self, alert_id: UUID, by: str, comment: str) -> AlertNotice:
        return await self._operator(alert_id, "resolved", by, comment)

    async def _operator(
        self, alert_id: UUID, transition: Literal["acknowledged", "resolved"], by: str, comment: str
    ) -> AlertNotice:
        """Raises store.AlertNotFoundError or store.TransitionNotAllowedError."""
        async with self._pool.connection() as conn, conn.transaction():
            notice = await store.operator_transition(
                conn, alert_id, transition, by=by, comment=comment, now=self._clock()
            )
        self._emit(notice)
        return notice

    @property
    def config(self) -> AlertRulesConfig:
        """The rules file the engine runs (read-only)."""
        return self._config

    async def rules_status(self) -> list[dict[str, Any]]:
        """Every configured rule with each subject's last evaluation (insufficient baseline, low coverage...)."""
        async with self._pool.connection() as conn:
            states = await subject_states(conn)
        return [{**rule.model_dump(mode="json"), "subjects": states.get(rule.id, [])} for rule in self._config.rules]

    # --- lifecycle -------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters since start: evaluations, alerts_<transition>, notifications_dropped, errors, full_passes."""
        base = {
            "evaluations": 0,
            "alerts_opened": 0,
            "alerts_escalated": 0,
            "alerts_updated": 0,
            "alerts_acknowledged": 0,
            "alerts_resolved": 0,
            "notifications_dropped": 0,
            "errors": 0,
            "publish_errors": 0,
            "full_passes": 0,
        }
        return {**base, **self._stats, "pending": len(self._pending)}

    async def close(self) -> None:
        """Stop ``run`` after the subject it is evaluating (waits up to CLOSE_WAIT_S)."""
        self._closed = True
        self._wake.set()
        if self._stopped is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_S):
                    await self._stopped.wait()
