"""The pure, per-frame traffic analytics of one camera: signal states and the violation engine.

``AnalyticsStep`` owns one of these per camera with ``violations:``. Like counting lines, the engine and
the signal heads are drawn in normalised coordinates and built once the frame size is known (rebuilt,
memory restarting, when a camera's resolution changes). Each frame, every signal's state is decided:
a region signal by classifying its pixels (``SignalHead``), a feed signal by the latest controller
message on the ``SignalBoard`` ("unknown" when stale or when the agent has no feed). No threads, no
I/O: the board is read, never waited on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.perception.types import Detections
from edge_agent.violations.config import ViolationRulesConfig
from edge_agent.violations.findings import ViolationStep
from event_contract.traffic import SignalState

if TYPE_CHECKING:
    from edge_agent.violations.engine import ViolationEngine
    from edge_agent.violations.signals import SignalHead

NO_SIGNALS: Mapping[str, SignalState] = MappingProxyType({})


class SignalStates(Protocol):
    """The controller feed's latest states by configured signal id (``traffic.signal_feed.SharedSignalBoard``)."""

    def state_at(self, signal_id: str, now: dt.datetime) -> SignalState: ...


class TrafficAnalytics:
    """Signals + violation engine of one camera; ``update`` per frame, ``expire`` without frames."""

    def __init__(self, config: ViolationRulesConfig, board: SignalStates | None = None) -> None:
        self.config = config
        self._board = board
        self._size: tuple[int, int] | None = None
        self._engine: ViolationEngine | None = None
        self._heads: dict[str, SignalHead] = {}

    def update(
        self, image: npt.NDArray[np.uint8], tracked: Detections, timestamp: dt.datetime
    ) -> tuple[ViolationStep, Mapping[str, SignalState]]:
        height, width = image.shape[:2]
        engine = self._engine_for(width, height)
        signals = self._signals(image, timestamp)
        return engine.update(tracked, timestamp, signals), signals

    def expire(self, now: dt.datetime) -> ViolationStep:
        """No frame came (camera down): close what must close; nothing before the first frame."""
        if self._engine is None:
            return ViolationStep()
        return self._engine.expire(now)

    def _engine_for(self, width: int, height: int) -> ViolationEngine:
        if self._engine is None or self._size != (width, height):
            # Imported here so that loading the pipeline never needs the rule engine (cameras without violations).
            from edge_agent.violations.engine import ViolationEngine  # noqa: PLC0415
            from edge_agent.violations.signals import SignalHead  # noqa: PLC0415

            self._size = (width, height)
            self._engine = ViolationEngine(self.config, width, height)
            self._heads = {
                signal.id: SignalHead(signal, width, height) for signal in self.config.signals if signal.region
            }
        return self._engine

    def _signals(self, image: npt.NDArray[np.uint8], timestamp: dt.datetime) -> Mapping[str, SignalState]:
        if not self.config.signals:
            return NO_SIGNALS
        states: dict[str, SignalState] = {}
        for signal in self.config.signals:
            head = self._heads.get(signal.id)
            if head is not None:
                states[signal.id] = head.update(image, timestamp)
            elif signal.mqtt is not None:
                states[signal.id] = self._board.state_at(signal.id, timestamp) if self._board else "unknown"
        return MappingProxyType(states)
