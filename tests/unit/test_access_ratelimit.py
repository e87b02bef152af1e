"""The sign-in rate limit: free failures, growing lockouts, per-key reset, bounded memory."""

from __future__ import annotations

from central_ingest.access.ratelimit import LoginRateLimiter
from ioc_common.backoff import BackoffConfig

KEYS = ("user:an", "addr:10.0.0.1")


def limiter(max_keys: int = 100) -> LoginRateLimiter:
    return LoginRateLimiter(3, BackoffConfig(base_s=2.0, ceiling_s=60.0), forget_s=600.0, max_keys=max_keys)


def test_free_failures_then_doubling_lockouts_up_to_the_ceiling() -> None:
    rl = limiter()
    now = 0.0
    for _ in range(3):
        assert rl.retry_after(KEYS, now) == 0
        rl.failed(KEYS, now)
    locks = []
    for _ in range(7):
        wait = rl.retry_after(KEYS, now)
        locks.append(wait)
        now += wait
        assert rl.retry_after(KEYS, now) == 0
        rl.failed(KEYS, now)
    assert locks == [0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert rl.stats.refused == 6
    assert rl.stats.failures == 10


def test_any_locked_key_refuses() -> None:
    rl = limiter()
    for user in ("a", "b", "c", "d"):  # four usernames from one address
        rl.failed((f"user:{user}", "addr:10.0.0.9"), 0.0)
    assert rl.retry_after(("user:fresh", "addr:10.0.0.9"), 0.5) == 1.5
    assert rl.retry_after(("user:fresh", "addr:10.0.0.10"), 0.5) == 0


def test_success_clears_the_username_not_the_address() -> None:
    rl = limiter()
    for _ in range(4):
        rl.failed(KEYS, 0.0)
    rl.succeeded("user:an")
    assert rl.retry_after(("user:an",), 0.0) == 0
    assert rl.retry_after(("addr:10.0.0.1",), 0.0) == 2.0


def test_failures_are_forgotten_after_a_quiet_period() -> None:
    rl = limiter()
    for _ in range(4):
        rl.failed(KEYS, 0.0)
    assert rl.retry_after(KEYS, 1.0) > 0
    assert rl.retry_after(KEYS, 601.0) == 0
    rl.failed(KEYS, 601.0)  # counting starts again: one failure is free
    assert rl.retry_after(KEYS, 601.0) == 0


def test_memory_is_bounded_and_evictions_counted() -> None:
    rl = limiter(max_keys=10)
    for i in range(25):
        rl.failed((f"addr:10.0.1.{i}",), float(i))
    assert len(rl) == 10
    assert rl.stats.evicted == 15
    # Forgotten keys are reclaimed before live ones are evicted.
    rl.failed(("addr:late",), 10_000.0)
    assert len(rl) == 1
    assert rl.stats.evicted == 15
