"""Which reader a source gets (``sampling``), and the interface every reader offers the pipeline."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from edge_agent.perception.types import Frame
from edge_agent.sources.config import ReaderConfig
from edge_agent.sources.grab_reader import GrabReader
from edge_agent.sources.pyav_reader import PyAVReader, utc_now
from edge_agent.sources.status import ReaderStats, StateChange

__all__ = ["FrameSource", "open_reader"]


class FrameSource(Protocol):
    """What the pipeline needs of a reader: frames from one thread, ``stop``/``stats`` from any.

    ``frames()`` ends when the source ends or ``stop()`` is called and raises ``SourceGaveUpError``
    past ``max_reconnects``; ``stats()`` and ``state_changes()`` feed the health events.
    """

    source_id: str

    def frames(self) -> Iterator[Frame]: ...

    def stop(self) -> None: ...

    @property
    def stopping(self) -> bool: ...

    def stats(self) -> ReaderStats: ...

    def state_changes(self, since: int = 0) -> tuple[StateChange, ...]: ...


def open_reader(
    source_id: str,
    config: ReaderConfig,
    *,
    wall_clock: Callable[[], dt.datetime] = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
) -> PyAVReader | GrabReader:
    """``GrabReader`` for ``sampling: grab`` (connect, one keyframe, disconnect), else the persistent reader."""
    if config.sampling == "grab":
        return GrabReader(source_id, config, wall_clock=wall_clock, monotonic=monotonic)
    return PyAVReader(source_id, config, wall_clock=wall_clock, monotonic=monotonic)
