"""The circuit breaker on a hand-driven clock: states, pauses that grow to a ceiling, counted transitions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge_agent.delivery.circuit_breaker import BreakerConfig, CircuitBreaker
from ioc_common.backoff import BackoffConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, threshold: int = 3) -> CircuitBreaker:
    config = BreakerConfig(
        failure_threshold=threshold, open_backoff=BackoffConfig(base_s=10.0, ceiling_s=35.0), probe_events=4
    )
    return CircuitBreaker(config, clock)


def test_stays_closed_below_the_threshold_and_a_success_resets_the_count() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"
    assert breaker.wait_s() == 0.0
    assert breaker.batch_limit(500) == 500
    assert breaker.stats().consecutive_failures == 2
    assert breaker.stats().transitions == {}


def test_opens_at_the_threshold_then_lets_one_small_probe_through_after_the_pause() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.failure()
    assert breaker.state == "open"
    assert breaker.wait_s() == 10.0
    clock.now += 9.5
    assert breaker.wait_s() == pytest.approx(0.5)
    assert breaker.stats().open_remaining_s == pytest.approx(0.5)
    clock.now += 0.5
    assert breaker.stats().state == "half_open"
    assert breaker.wait_s() == 0.0
    assert breaker.batch_limit(500) == 4
    assert breaker.batch_limit(2) == 2
    breaker.success()
    assert breaker.stats().state == "closed"
    assert breaker.batch_limit(500) == 500
    assert breaker.stats().transitions == {"closed->open": 1, "open->half_open": 1, "half_open->closed": 1}


def test_a_failed_probe_reopens_with_a_pause_that_doubles_up_to_the_ceiling() -> None:
    clock = Clock()
    breaker = _breaker(clock, threshold=1)
    pauses = []
    for _ in range(4):
        breaker.failure()  # closed -> open the first time, then each failed probe re-opens
        assert breaker.state == "open"
        pauses.append(breaker.wait_s())
        clock.now += pauses[-1]
        assert breaker.stats().state == "half_open"
    assert pauses == [10.0, 20.0, 35.0, 35.0]
    assert breaker.stats().opens_in_a_row == 4
    breaker.success()
    breaker.failure()
    assert breaker.wait_s() == 10.0  # a success resets the pause
    transitions = breaker.stats().transitions
    assert transitions == {"closed->open": 2, "open->half_open": 4, "half_open->open": 3, "half_open->closed": 1}


def test_config_rejects_unknown_keys_and_a_zero_threshold() -> None:
    with pytest.raises(ValidationError):
        BreakerConfig(failure_threshold=0)
    with pytest.raises(ValidationError, match="extra"):
        BreakerConfig.model_validate({"threshold": 3})
