from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from ioc_common.backoff import Backoff, BackoffConfig, exponential_cap


def test_cap_doubles_until_the_ceiling() -> None:
    config = BackoffConfig(base_s=0.5, ceiling_s=4.0)
    assert [exponential_cap(a, config) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert exponential_cap(10_000, config) == 4.0


def test_full_jitter_stays_between_zero_and_cap_and_resets() -> None:
    config = BackoffConfig(base_s=1.0, ceiling_s=8.0)
    backoff = Backoff(config, random.Random(7))
    delays = [backoff.next_delay() for _ in range(50)]
    caps = [exponential_cap(a, config) for a in range(50)]
    assert all(0.0 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert len(set(delays)) > 40  # jittered, not a fixed schedule
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 1.0


def test_retry_after_raises_the_delay_but_not_past_the_ceiling() -> None:
    backoff = Backoff(BackoffConfig(base_s=0.1, ceiling_s=2.0), random.Random(1))
    assert backoff.next_delay(at_least_s=1.5) == 1.5
    assert backoff.next_delay(at_least_s=100.0) == 2.0


def test_base_above_ceiling_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must not exceed"):
        BackoffConfig(base_s=10, ceiling_s=1)
