"""Exact time arithmetic for the analytics: aware datetimes <-> integer microseconds since the epoch."""

from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
US = 1_000_000


def epoch_us(timestamp: dt.datetime) -> int:
    if timestamp.tzinfo is None:
        raise ValueError("analytics timestamps must be timezone-aware (UTC)")
    return (timestamp - EPOCH) // dt.timedelta(microseconds=1)


def from_epoch_us(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=value)
