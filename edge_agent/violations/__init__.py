"""Traffic violations, incidents and congestion at the edge: pure rules on tracks (no I/O).

``ViolationEngine(config, width, height).update(tracked, timestamp, signals)`` -> ``ViolationStep`` with
``Finding``s (red light, wrong way, illegal stopping, lane violation; incidents: stopped in lane, queue
growth, possible accident) and ``CongestionReport``s. Signals come from ``SignalHead`` (colour of an image
region) or a controller feed (``parse_signal_message`` -> ``SignalBoard``). See ``docs/violations.md``.
"""

from edge_agent.violations.config import SignalConfig, ViolationRulesConfig
from edge_agent.violations.engine import ViolationEngine
from edge_agent.violations.findings import CongestionReport, Finding, ViolationStep
from edge_agent.violations.signals import (
    SignalBoard,
    SignalHead,
    SignalMessageError,
    SignalUpdate,
    parse_signal_message,
)

__all__ = [
    "CongestionReport",
    "Finding",
    "SignalBoard",
    "SignalConfig",
    "SignalHead",
    "SignalMessageError",
    "SignalUpdate",
    "ViolationEngine",
    "ViolationRulesConfig",
    "ViolationStep",
    "parse_signal_message",
]
