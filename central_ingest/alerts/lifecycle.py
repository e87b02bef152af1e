"""What a rule says about one subject now (``Finding``), and what that does to its open alert (``decide``).

Pure values and functions, no I/O. An evaluation reads numbers, a rule function in
``evaluate`` turns them into a ``Finding``, and ``decide`` compares it with the subject's
open alert (at most one per rule and subject: deduplication) to choose a transition:

- no open alert and a breach: open (unless an operator resolved this episode by hand and
  the condition has not cleared since: the *latch*, so a resolved alert does not reopen
  every few seconds);
- open alert and a breach at a higher level: escalate; at a lower level: update; at the
  same level: refresh its numbers without a notification;
- open alert and a clear finding: resolve;
- open alert of another episode (violation_increase: another period): resolve it as
  ``period_ended``, then judge the finding afresh;
- an ``unknown`` finding (insufficient baseline, low coverage, no data) changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal
from uuid import UUID

from central_ingest.alerts.notice import Severity

FindingState = Literal["breach", "clear", "unknown"]
Action = Literal["open", "escalate", "update", "refresh", "none"]
ResolveReason = Literal["cleared", "period_ended", "operator"]


@dataclass(frozen=True)
class Finding:
    """A rule's verdict on one subject, with the numbers behind it.

    ``status`` is what the rule state and ``GET /api/v1/alerts/rules`` show: ``breach``, ``ok``,
    ``pending`` (reached, not yet for min_duration_s), ``insufficient_baseline``,
    ``undetermined_low_coverage``, ``needs_confirmation``, ``no_data``, ``no_plan``.
    ``rank`` orders the levels of one rule (0: none); ``episode`` ties an alert to a period.
    """

    state: FindingState
    status: str
    level: str | None = None
    rank: int = 0
    severity: Severity = "warning"
    value: Fraction | None = None
    baseline: Fraction | None = None
    threshold: Fraction | None = None
    window: str | None = None
    episode: str | None = None
    pending_since: dt.datetime | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenAlert:
    """The subject's open or acknowledged alert, as ``alert_state`` holds it."""

    alert_id: UUID
    opened_at: dt.datetime
    level: str | None
    rank: int
    severity: Severity
    episode: str | None


@dataclass(frozen=True)
class Decision:
    """First resolve the open alert (when ``resolve`` says why), then do ``action``; ``latched`` is the new latch."""

    resolve: ResolveReason | None
    action: Action
    latched: bool


def decide(current: OpenAlert | None, latched: bool, latched_episode: str | None, finding: Finding) -> Decision:
    """The transition that ``finding`` causes; see the module docstring."""
    resolve: ResolveReason | None = None
    if current is not None and current.episode != finding.episode:
        resolve, current = "period_ended", None
    # The latch holds while the same episode is still in breach (or unknown); a clear finding or a new episode frees it.
    still_latched = latched and latched_episode == finding.episode and finding.state != "clear"
    if current is None:
        if finding.state == "breach" and not still_latched:
            return Decision(resolve, "open", False)
        return Decision(resolve, "none", still_latched)
    if finding.state == "clear":
        return Decision("cleared", "none", False)
    action: Action = "none"
    if finding.state == "breach":
        action = "escalate" if finding.rank > current.rank else "update" if finding.rank < current.rank else "refresh"
    return Decision(None, action, False)


def as_float(value: Fraction | None) -> float | None:
    return None if value is None else float(value)
