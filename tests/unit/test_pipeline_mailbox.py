"""The bounded queue behind the frame mailbox and the uplink."""

from __future__ import annotations

import threading

import pytest

from edge_agent.delivery.queues import BoundedQueue, QueueClosedError


def test_latest_frame_mailbox_keeps_the_newest_and_counts_drops() -> None:
    mailbox: BoundedQueue[int] = BoundedQueue(1, "drop_oldest")
    accepted = [mailbox.put(i) for i in range(5)]
    assert accepted == [True, False, False, False, False]
    assert mailbox.get(timeout=0) == 4
    stats = mailbox.stats()
    assert (stats.put, stats.dropped, stats.depth) == (5, 4, 0)


def test_block_policy_loses_nothing_and_waits_for_room() -> None:
    queue: BoundedQueue[int] = BoundedQueue(2, "block")
    produced = threading.Thread(target=lambda: [queue.put(i) for i in range(10)])
    produced.start()
    taken: list[int] = []
    while len(taken) < 10:
        item = queue.get(timeout=5)
        assert item is not None
        taken.append(item)
    produced.join()
    assert taken == list(range(10))
    assert queue.stats().dropped == 0


def test_close_wakes_a_blocked_producer_and_lets_the_consumer_drain() -> None:
    queue: BoundedQueue[int] = BoundedQueue(1, "block")
    queue.put(1)
    errors: list[Exception] = []

    def blocked_put() -> None:
        try:
            queue.put(2)
        except QueueClosedError as error:
            errors.append(error)

    producer = threading.Thread(target=blocked_put)
    producer.start()
    queue.close()
    producer.join(timeout=5)
    assert not producer.is_alive()
    assert len(errors) == 1
    assert not queue.drained()
    assert queue.get(timeout=0) == 1
    assert queue.drained()
    assert queue.get(timeout=5) is None  # closed and empty: returns at once


def test_get_many_takes_what_is_there_without_waiting() -> None:
    queue: BoundedQueue[str] = BoundedQueue(10, "drop_oldest")
    for item in "abcde":
        queue.put(item)
    assert queue.get_many(3) == ["a", "b", "c"]
    assert queue.get_many(10) == ["d", "e"]
    assert queue.get_many(10) == []


@pytest.mark.parametrize(("capacity", "policy"), [(0, "block"), (1, "drop_newest")])
def test_bad_queue_settings_are_refused(capacity: int, policy: str) -> None:
    with pytest.raises(ValueError, match=r"capacity|policy"):
        BoundedQueue(capacity, policy)  # type: ignore[arg-type]
