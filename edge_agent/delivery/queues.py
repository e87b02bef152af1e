"""A bounded, closable, thread-safe queue with a named policy for when it is full.

Every hand-off between threads in the agent goes through one of these, so no
queue can grow without bound and every drop is counted.

- ``drop_oldest``: a full queue discards its oldest item to take the new one.
  With capacity 1 this is a latest-value mailbox: the consumer always gets the
  newest frame and latency never grows when analytics is slower than the camera.
- ``block``: a full queue makes the producer wait; nothing is lost. For offline
  analysis of files, where every frame should be processed.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

QueuePolicy = Literal["drop_oldest", "block"]


@dataclass(frozen=True, slots=True)
class QueueStats:
    put: int
    """Items accepted by ``put``."""
    dropped: int
    """Items discarded by the ``drop_oldest`` policy."""
    depth: int
    """Items waiting now."""


class QueueClosedError(Exception):
    """Raised by ``put`` once the queue is closed."""


class BoundedQueue(Generic[T]):
    def __init__(self, capacity: int, policy: QueuePolicy) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        if policy not in ("drop_oldest", "block"):
            raise ValueError(f"unknown queue policy {policy!r}: use 'drop_oldest' or 'block'")
        self._capacity = capacity
        self._policy = policy
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._put = 0
        self._dropped = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def policy(self) -> QueuePolicy:
        return self._policy

    def put(self, item: T) -> bool:
        """Add ``item``; returns False when an older item was dropped to make room.

        Under ``block`` this waits for room; raises ``QueueClosedError`` once closed.
        """
        with self._lock:
            if self._policy == "block":
                while len(self._items) >= self._capacity and not self._closed:
                    self._not_full.wait()
            if self._closed:
                raise QueueClosedError("queue is closed")
            dropped = False
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self._dropped += 1
                dropped = True
            self._items.append(item)
            self._put += 1
            self._not_empty.notify()
            return not dropped

    def get(self, timeout: float | None = None) -> T | None:
        """Oldest item; None when the timeout passed or the queue is closed and empty."""
        with self._lock:
            if not self._items and not self._closed:
                self._not_empty.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def get_many(self, max_items: int) -> list[T]:
        """Up to ``max_items`` waiting items, without waiting."""
        with self._lock:
            count = min(max_items, len(self._items))
            items = [self._items.popleft() for _ in range(count)]
            self._not_full.notify_all()
            return items

    def close(self) -> None:
        """Refuse new items and wake every waiter; items already queued can still be taken."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def drained(self) -> bool:
        """True once the queue is closed and empty: the consumer can stop."""
        with self._lock:
            return self._closed and not self._items

    def stats(self) -> QueueStats:
        with self._lock:
            return QueueStats(put=self._put, dropped=self._dropped, depth=len(self._items))
