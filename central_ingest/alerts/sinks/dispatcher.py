"""``NotificationDispatcher``: hands alert notices to every sink without ever blocking the caller.

The rule engine runs on the ingest path, so ``publish()`` only appends to one bounded in-memory
queue per sink and returns: no I/O, no await, no exception. One worker task per sink drains its
queue in order (an alert's transitions arrive in the order they happened) and retries a failing
delivery with exponential backoff, full jitter and a ceiling, at most ``max_attempts`` times; then
the notice counts as failed and is logged. The alert itself is already in the database, so a sink
that is down loses notifications, never alerts, and never fails an ingest.

Queues drop their oldest notice when full ("drop_oldest", counted as ``dropped``): for a backlog
of alerts the newest state is worth more than an old one. Notices are kept in memory only; what is
still queued when the process stops is counted as dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, runtime_checkable

from central_ingest.alerts.notice import AlertNotice
from ioc_common.backoff import Backoff, BackoffConfig

log = logging.getLogger(__name__)

DROP_POLICY: Final[Literal["drop_oldest"]] = "drop_oldest"
STAT_KEYS: Final = ("delivered", "retried", "failed", "dropped", "queued")


@runtime_checkable
class AlertSink(Protocol):
    """Something that carries a notice out; ``deliver`` raises when this try failed."""

    @property
    def name(self) -> str: ...

    async def deliver(self, notice: AlertNotice) -> None: ...


@runtime_checkable
class ManagedSink(AlertSink, Protocol):
    """A sink holding a connection: opened by ``start`` and released by ``close``."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class PermanentDeliveryError(Exception):
    """This notice can never be delivered as it is (e.g. HTTP 400): do not retry it."""


class RetryableDeliveryError(Exception):
    """This try failed but a later one may work; ``retry_after_s`` is the receiver's wish, if it said."""

    def __init__(self, message: str, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RetryPolicy:
    """One sink's queue bound and retry rules."""

    queue_size: int
    max_attempts: int
    backoff: BackoffConfig


@dataclass
class _Counters:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0


class _SinkLane:
    """One sink, its bounded queue and the worker that drains it (all on the dispatcher's loop)."""

    def __init__(self, sink: AlertSink, policy: RetryPolicy, rng: random.Random) -> None:
        self.sink = sink
        self.policy = policy
        self.counters = _Counters()
        self._queue: deque[AlertNotice] = deque()
        self._wakeup = asyncio.Event()
        self._rng = rng
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def enqueue(self, notice: AlertNotice) -> None:
        if len(self._queue) >= self.policy.queue_size:
            dropped = self._queue.popleft()
            self.counters.dropped += 1
            log.warning(
                "alert sink %s: queue full (%d), dropped the oldest notice %s/%s",
                self.sink.name,
                self.policy.queue_size,
                dropped.alert_id,
                dropped.transition,
            )
        self._queue.append(notice)
        self._wakeup.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"alert-sink:{self.sink.name}")

    def stop_when_drained(self) -> None:
        self._closing = True
        self._wakeup.set()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def drop_rest(self) -> None:
        """Count what is left as dropped (shutdown): notifications are memory-only by design."""
        if self._queue:
            log.warning("alert sink %s: %d notices not sent before shutdown", self.sink.name, len(self._queue))
            self.counters.dropped += len(self._queue)
            self._queue.clear()

    async def _run(self) -> None:
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            notice = self._queue.popleft()
            try:
                await self._deliver_with_retries(notice)
            except asyncio.CancelledError:
                self.counters.dropped += 1  # cut off by close(): it was neither delivered nor given up on
                raise

    async def _deliver_with_retries(self, notice: AlertNotice) -> None:
        backoff = Backoff(self.policy.backoff, self._rng)
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                await self.sink.deliver(notice)
            except PermanentDeliveryError as error:
                self._give_up(notice, attempt, error, permanent=True)
                return
            except Exception as error:  # any failure of a sink is that sink's problem, never ours
                if attempt >= self.policy.max_attempts:
                    self._give_up(notice, attempt, error, permanent=False)
                    return
                self.counters.retried += 1
                retry_after = error.retry_after_s if isinstance(error, RetryableDeliveryError) else 0.0
                delay = backoff.next_delay(at_least_s=retry_after)
                log.info(
                    "alert sink %s: try %d for %s failed (%s), retrying in %.2f s",
                    self.sink.name,
                    attempt,
                    notice.alert_id,
                    _describe(error),
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                self.counters.delivered += 1
                return

    def _give_up(self, notice: AlertNotice, attempts: int, error: Exception, *, permanent: bool) -> None:
        self.counters.failed += 1
        log.error(
            "alert sink %s: gave up on notice %s/%s after %d tries (%s): %s",
            self.sink.name,
            notice.alert_id,
            notice.transition,
            attempts,
            "permanent error" if permanent else "max_attempts reached",
            _describe(error),
        )


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class NotificationDispatcher:
    """Fans each notice out to every sink's queue; see the module docstring."""

    def __init__(self, sinks: Sequence[tuple[AlertSink, RetryPolicy]], *, rng: random.Random | None = None) -> None:
        names = [sink.name for sink, _ in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique, got {names}")
        # Not for cryptography: jitter only needs a uniform draw.
        shared_rng = rng if rng is not None else random.Random()  # noqa: S311
        self._lanes = [_SinkLane(sink, policy, shared_rng) for sink, policy in sinks]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closed = False
        self._dropped_after_close = 0

    @property
    def sink_names(self) -> list[str]:
        return [lane.sink.name for lane in self._lanes]

    async def start(self) -> None:
        """Open the sinks' connections (a sink that cannot connect yet retries later) and start the workers."""
        if self._loop is not None:
            raise RuntimeError("the dispatcher was already started")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        for lane in self._lanes:
            if isinstance(lane.sink, ManagedSink):
                try:
                    await lane.sink.start()
                except Exception as error:  # a sink failing to start must not stop the service
                    log.error("alert sink %s failed to start: %s", lane.sink.name, _describe(error))
            lane.start()

    def publish(self, notice: AlertNotice) -> None:
        """Queue ``notice`` for every sink and return at once; never blocks, never raises.

        Meant for the event loop's thread; from another thread the enqueue is handed to the loop.
        Before ``start()`` notices wait in the queues; after ``close()`` they are counted as dropped.
        """
        try:
            if self._closed:
                self._dropped_after_close += 1
                log.warning("alert dispatcher is closed: notice %s not sent", notice.alert_id)
                return
            if self._loop is not None and threading.get_ident() != self._loop_thread:
                self._loop.call_soon_threadsafe(self._enqueue, notice)
                return
            self._enqueue(notice)
        except Exception:  # publishing is best effort by contract
            log.exception("alert dispatcher: could not queue notice %s", getattr(notice, "alert_id", "?"))

    def _enqueue(self, notice: AlertNotice) -> None:
        for lane in self._lanes:
            lane.enqueue(notice)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued within ``timeout_s``, then stop the workers and close the sinks."""
        self._closed = True
        tasks: list[asyncio.Task[None]] = []
        for lane in self._lanes:
            lane.stop_when_drained()
            if lane.task is not None:
                tasks.append(lane.task)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for lane in self._lanes:
            lane.drop_rest()
            if isinstance(lane.sink, ManagedSink):
                try:
                    await lane.sink.close()
                except Exception as error:  # closing the others matters more
                    log.error("alert sink %s failed to close: %s", lane.sink.name, _describe(error))

    def stats(self) -> dict[str, dict[str, int]]:
        """Per sink: delivered, retried (tries that failed and were retried), failed, dropped, queued (waiting)."""
        return {
            lane.sink.name: {
                "delivered": lane.counters.delivered,
                "retried": lane.counters.retried,
                "failed": lane.counters.failed,
                "dropped": lane.counters.dropped,
                "queued": lane.queued,
            }
            for lane in self._lanes
        }

    @property
    def dropped_after_close(self) -> int:
        """Notices published after ``close()`` (sent nowhere)."""
        return self._dropped_after_close
