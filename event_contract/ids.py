"""Event ids: UUIDv7 (RFC 9562), time-ordered so database indexes stay compact."""

from __future__ import annotations

import os
import time
from uuid import UUID


def new_event_id(unix_ms: int | None = None) -> UUID:
    """Return a fresh UUIDv7; ``unix_ms`` fixes the time part (tests, replays)."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"unix_ms out of range for UUIDv7: {ms}")
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 62 & 0xFFF  # 12 bits
    rand_b = rand & ((1 << 62) - 1)  # 62 bits
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return UUID(int=value)
