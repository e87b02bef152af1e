"""Helpers for the violation tests: tracked detections on a 1000x1000 frame, boxes 100 px, anchor at bottom centre."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from edge_agent.perception.types import Detections
from edge_agent.violations import Finding, ViolationEngine, ViolationRulesConfig
from event_contract.taxonomy import VEHICLE_CLASSES
from event_contract.traffic import SignalState

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
SIZE = 1000
BOX = 100.0
FPS = 10

Row = tuple[int, float, float] | tuple[int, float, float, str]
"""(track id, anchor x, anchor y[, class]): the anchor is the box's bottom centre, in pixels."""


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def tracked(rows: Sequence[Row], box: float = BOX) -> Detections:
    if not rows:
        return Detections.empty(VEHICLE_CLASSES)
    xs = np.array([r[1] for r in rows], dtype=np.float32)
    ys = np.array([r[2] for r in rows], dtype=np.float32)
    classes = [r[3] if len(r) == 4 else "car" for r in rows]
    return Detections(
        xyxy=np.stack([xs - box / 2, ys - box, xs + box / 2, ys], axis=1),
        confidence=np.full(len(rows), 0.8, dtype=np.float32),
        class_id=np.array([VEHICLE_CLASSES.index(c) for c in classes], dtype=np.int64),
        class_names=VEHICLE_CLASSES,
        tracker_id=np.array([r[0] for r in rows], dtype=np.int64),
    )


def engine(config: Mapping[str, Any]) -> ViolationEngine:
    return ViolationEngine(ViolationRulesConfig.model_validate(config), SIZE, SIZE)


def run(
    eng: ViolationEngine,
    frames: Iterable[tuple[float, Sequence[Row]]],
    signals: Mapping[str, SignalState] | None = None,
    signal_at: Any = None,
) -> list[Finding]:
    """Feed (seconds, rows) frames; ``signal_at(t)`` (or the fixed ``signals``) gives the signal states."""
    found: list[Finding] = []
    for t, rows in frames:
        states = signal_at(t) if signal_at is not None else (signals or {})
        found.extend(eng.update(tracked(rows), at(t), states).findings)
    return found


def timeline(duration_s: float, fps: int = FPS) -> list[float]:
    return [round(k / fps, 6) for k in range(round(duration_s * fps) + 1)]


def jitter(seed: int, scale: float = 2.0) -> Any:
    """A function adding seeded Gaussian jitter (pixels) to a coordinate."""
    rng = np.random.default_rng(seed)
    return lambda v: float(v + rng.normal(0.0, scale))
