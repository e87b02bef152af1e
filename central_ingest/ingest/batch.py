"""Validation errors as messages with field paths, e.g. ``events.3.counts.0.count: Input should be >= 0``.

So an agent's operator finds the bad field without reading pydantic's internals. The
checking itself is in ``validate``: a bad envelope refuses the batch, a bad event only itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from event_contract import EVENT_MODELS

# pydantic puts the discriminator's value into the path of a tagged-union member
# (events.3.count_interval.counts...); it is not a field, so it is left out.
_EVENT_KINDS = frozenset(kind for model in EVENT_MODELS for kind in get_args(model.model_fields["kind"].annotation))
MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidBatchError(Exception):
    """The batch failed validation; ``errors`` says where and why."""

    def __init__(self, errors: tuple[FieldError, ...], total: int) -> None:
        self.errors = errors
        self.total = total
        shown = "; ".join(str(e) for e in errors)
        more = f" (and {total - len(errors)} more)" if total > len(errors) else ""
        super().__init__(f"invalid batch, {total} error(s): {shown}{more}")


def _dotted(loc: tuple[int | str, ...], tag_position: int) -> str:
    """``loc`` joined with dots, leaving out the union tag pydantic puts at ``tag_position``."""
    return ".".join(
        str(item)
        for position, item in enumerate(loc)
        if not (position == tag_position and isinstance(item, str) and item in _EVENT_KINDS)
    )


def field_path(loc: tuple[int | str, ...]) -> str:
    """Dotted path of a pydantic error location in a batch, without union tags; ``(batch)`` for the whole body."""
    return _dotted(loc, 2 if loc[:1] == ("events",) else -1) or "(batch)"


def event_field_path(loc: tuple[int | str, ...]) -> str:
    """Dotted path of an error location inside one event, without its union tag; ``(event)`` for the event."""
    return _dotted(loc, 0) or "(event)"
