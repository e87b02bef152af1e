"""At ingest: refuse plate-bearing events when no keyring is configured, and keep no plate in a dead letter.

``refuse_unsealable(checked, vault)`` runs between validation and storage. Without a vault every plate
pass, and every violation that carries a plate, becomes a refusal with a clear reason: it is answered in
the ``BatchAck`` like any other refused event (the agent keeps it in its own dead letters and can re-send it
once central has a keyring) and counted in the agent's totals, but never stored in clear. A violation
without a plate needs no key and is stored as usual.

Dead letters keep the raw JSON of a refused event; for an event with a plate (refused here, or refused by
validation for another reason) the plate is replaced by ``REDACTED`` first, so the dead-letter table holds
no plate either.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from central_ingest.ingest.validate import CheckedBatch, Refused
from central_ingest.plates.vault import PlateVault
from central_ingest.store.tables import has_plate
from event_contract import Event

REDACTED = "[redacted: plates are stored sealed only]"
NO_KEYRING_REASON = (
    "plate: central has no plate keyring (IOC_PLATE_KEYS_FILE or IOC_PLATE_KEYS_COMMAND), so events carrying "
    "a plate are refused, never stored in clear; keep this event and re-send it once the keyring is configured"
)


def redact_plate(raw: bytes) -> bytes:
    """A payload (one refused event, a whole batch envelope, anything) with every value under a plate-named key
    replaced; a payload that mentions a plate but is not JSON is replaced whole.

    Refused events and payloads refused before validation (a bad envelope, a batch claiming another agent) are
    kept as dead letters for the operator, and must not keep a plate in clear either. Any key containing
    "plate" at any depth counts, so a misnamed field ("plates", "plate_text") is redacted too; the contract's
    enumerations and numbers (plate_colour, plate_layout, plate_confidence) are kept.
    """
    if b"plate" not in raw:
        return raw
    try:
        item: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return json.dumps({"redacted": "not JSON, and it mentions a plate"}).encode()
    return json.dumps(_redacted(item), ensure_ascii=False, separators=(",", ":")).encode()


_KEPT_PLATE_FIELDS = frozenset({"plate_colour", "plate_layout", "plate_confidence"})


def _redacted(item: Any, under_plate_key: bool = False) -> Any:
    if isinstance(item, dict):
        return {
            key: _redacted(value, under_plate_key or ("plate" in str(key) and key not in _KEPT_PLATE_FIELDS))
            for key, value in item.items()
        }
    if isinstance(item, list):
        return [_redacted(value, under_plate_key) for value in item]
    if under_plate_key and isinstance(item, str | int | float) and not isinstance(item, bool):
        return REDACTED
    return item


def _raw_of(event: Event) -> bytes:
    return event.model_dump_json(exclude={"plate"}).encode()


def _valid_positions(checked: CheckedBatch) -> list[int]:
    """Batch positions of ``checked.events``: validation keeps the valid events in batch order."""
    refused = {r.position for r in checked.refused}
    positions = [p for p in range(checked.received) if p not in refused]
    if len(positions) != len(checked.events):
        raise RuntimeError(
            f"batch of {checked.received} with {len(checked.refused)} refused has {len(checked.events)} valid events"
        )
    return positions


def refuse_unsealable(checked: CheckedBatch, vault: PlateVault | None) -> CheckedBatch:
    """``checked`` with plate-bearing events refused when ``vault`` is None, and plates redacted from refusals."""
    refused = [replace(r, raw=redact_plate(r.raw)) for r in checked.refused]
    if vault is not None or not any(has_plate(event) for event in checked.events):
        return replace(checked, refused=tuple(refused))
    kept: list[Event] = []
    for event, position in zip(checked.events, _valid_positions(checked), strict=True):
        if has_plate(event):
            refused.append(Refused(position, str(event.event_id), NO_KEYRING_REASON, _raw_of(event)))
        else:
            kept.append(event)
    return replace(checked, events=tuple(kept), refused=tuple(sorted(refused, key=lambda r: r.position)))
