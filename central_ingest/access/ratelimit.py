"""Sign-in rate limit: failures counted per username and per client address, with growing lockouts.

After ``free_failures`` failures a key is locked for ``base_s * 2**n`` seconds (n = failures beyond
the free ones, capped at ``ceiling_s``), and a sign-in is refused while ANY of its keys is locked,
before the password is even hashed: guessing one account from many addresses, or many accounts
from one address, both slow down. A success forgets the username's failures only (an attacker
with one valid account must not be able to clear the address's count). A key with no failure for
``forget_s`` starts afresh.

Memory is bounded: at most ``max_keys`` keys, ordered by last failure; when full, forgotten keys
go first, then the least recently failed one is evicted (drop policy "evict oldest", counted in
``evicted``). The limiter is per process; several processes behind a balancer each hold their own.
Time comes from the caller (monotonic seconds), so tests are exact.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from ioc_common.backoff import BackoffConfig, exponential_cap


@dataclass
class _Failures:
    count: int
    last_failure: float
    locked_until: float


@dataclass
class RateLimitStats:
    refused: int = 0
    """Sign-ins refused because a key was locked."""
    failures: int = 0
    evicted: int = 0
    """Keys forgotten early because the table was full."""


class LoginRateLimiter:
    def __init__(self, free_failures: int, backoff: BackoffConfig, forget_s: float, max_keys: int) -> None:
        if free_failures < 1 or forget_s <= 0 or max_keys < 1:
            raise ValueError("free_failures, forget_s and max_keys must be positive")
        self._free = free_failures
        self._backoff = backoff
        self._forget_s = forget_s
        self._max_keys = max_keys
        self._keys: OrderedDict[str, _Failures] = OrderedDict()
        self.stats = RateLimitStats()

    def __len__(self) -> int:
        return len(self._keys)

    def _current(self, key: str, now: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and now - entry.last_failure > self._forget_s:
            del self._keys[key]
            return None
        return entry

    def retry_after(self, keys: Iterable[str], now: float) -> float:
        """Seconds until a sign-in with these keys may be tried (0: now); a refusal is counted."""
        wait = 0.0
        for key in keys:
            entry = self._current(key, now)
            if entry is not None:
                wait = max(wait, entry.locked_until - now)
        if wait > 0:
            self.stats.refused += 1
        return max(wait, 0.0)

    def failed(self, keys: Iterable[str], now: float) -> None:
        """Record one failed sign-in against each key."""
        self.stats.failures += 1
        for key in keys:
            entry = self._current(key, now)
            if entry is None:
                self._make_room(now)
                entry = _Failures(0, now, now)
                self._keys[key] = entry
            entry.count += 1
            entry.last_failure = now
            beyond = entry.count - self._free
            if beyond > 0:
                entry.locked_until = now + exponential_cap(beyond - 1, self._backoff)
            self._keys.move_to_end(key)

    def succeeded(self, key: str) -> None:
        """Forget a key's failures (the username's, after a correct sign-in)."""
        self._keys.pop(key, None)

    def _make_room(self, now: float) -> None:
        while self._keys:
            oldest_key, oldest = next(iter(self._keys.items()))
            if now - oldest.last_failure > self._forget_s:
                del self._keys[oldest_key]
            elif len(self._keys) >= self._max_keys:
                del self._keys[oldest_key]
                self.stats.evicted += 1
            else:
                return
