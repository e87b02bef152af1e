"""Officers' requests for keyframes, as central's acks carry them (``BatchAck.evidence_wanted``).

Central cannot call an agent behind NAT or 4G, so it answers the agent's next batch with the digests
an officer asked for; the sender hands them here (on its own thread). The keyframes this store holds
go to the front of the upload list and the uploader is woken; the ones it no longer holds are counted
(``requested_missing``) and central's request expires. With ``evidence.upload_on_request: false`` the
request is counted and ignored.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from edge_agent.evidence.store import EvidenceStore

log = logging.getLogger(__name__)


class Wakeable(Protocol):
    def wake(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RequestHandlerStats:
    acks: int
    """Acks that carried requests."""
    digests: int
    """Digests received (a digest central repeats is counted again)."""
    marked: int
    already: int
    missing: int
    ignored: int
    """Digests received while upload_on_request is off."""


class EvidenceRequestHandler:
    """``handler(digests)`` from the sender thread; ``stats()`` from any thread."""

    def __init__(self, store: EvidenceStore, uploader: Wakeable | None, *, enabled: bool) -> None:
        self._store = store
        self._uploader = uploader
        self._enabled = enabled
        self._lock = threading.Lock()
        self._acks = self._digests = self._marked = self._already = self._missing = self._ignored = 0

    def __call__(self, digests: tuple[str, ...]) -> None:
        if not digests:
            return
        if not self._enabled:
            with self._lock:
                self._acks += 1
                self._digests += len(digests)
                self._ignored += len(digests)
            log.info("central asked for %d keyframes; evidence.upload_on_request is off: ignored", len(digests))
            return
        outcome = self._store.mark_wanted(digests)
        with self._lock:
            self._acks += 1
            self._digests += len(digests)
            self._marked += outcome.marked
            self._already += outcome.already
            self._missing += outcome.missing
        if outcome.marked and self._uploader is not None:
            self._uploader.wake()
        log.info(
            "central asked for %d keyframes: %d put first on the upload list, %d already there, %d not held here",
            len(digests),
            outcome.marked,
            outcome.already,
            outcome.missing,
        )

    def stats(self) -> RequestHandlerStats:
        with self._lock:
            return RequestHandlerStats(
                self._acks, self._digests, self._marked, self._already, self._missing, self._ignored
            )
