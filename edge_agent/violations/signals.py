"""Signal states: a colour classifier of a signal head in the image, and a signal-controller feed over MQTT.

``SignalHead`` (image): in the configured region, a pixel is LIT in a colour when its HSV value is at least
``min_value`` and at least half the region's brightest value (so a dim, dusk-lit head and a sunlit one work
alike), its saturation at least ``min_saturation`` (white glare is no lamp), and its hue in that colour's band
(OpenCV hue 0..179: red <= 10 or >= 165, amber 11..35, green 40..100). The colour with the most lit pixels, if
they are at least ``min_lit_fraction`` of the region, is the frame's reading; none is ``dark``. A new reading
becomes the reported state after ``confirm_frames`` consecutive frames agree (hysteresis); until the first is
confirmed the state is ``unknown``.

Feed (``parse_signal_message``), one JSON object per message (UTF-8, at most 4 KiB), schema
``ioc.signal_state/1``::

    {"schema": "ioc.signal_state/1", "signal_id": "j12-north", "state": "red", "time": "2026-05-01T08:00:00.120Z"}

``schema`` is optional (if given it must be that value); ``signal_id`` is the controller's id (an identifier,
matched with ``signals[].mqtt``); ``state`` is one of red, amber, green, dark, unknown (``yellow`` is read as
amber); ``time`` is ISO 8601 with a UTC offset, when the controller switched or confirmed the state. Controllers
must repeat the current state at least every ``stale_after_s``: ``SignalBoard`` answers ``unknown`` for a
signal whose latest message is older than that, or newer than now by more than ``MAX_FUTURE_S`` (a bad clock).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast, get_args

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.violations.config import SignalConfig
from event_contract.models import IDENTIFIER_PATTERN
from event_contract.traffic import SignalState

SIGNAL_SCHEMA = "ioc.signal_state/1"
MAX_MESSAGE_BYTES = 4096
MAX_FUTURE_S = 5.0
_STATES: frozenset[str] = frozenset(get_args(SignalState))
_ID = re.compile(IDENTIFIER_PATTERN)


class SignalMessageError(ValueError):
    """A signal-controller message that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class SignalUpdate:
    signal_id: str
    state: SignalState
    time: dt.datetime


def parse_signal_message(payload: bytes) -> SignalUpdate:
    """One controller message -> ``SignalUpdate``; raises ``SignalMessageError`` with a clear reason."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise SignalMessageError(f"message is {len(payload)} bytes, more than {MAX_MESSAGE_BYTES}")
    try:
        data: Any = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise SignalMessageError(f"message is not UTF-8: {error}") from None
    except json.JSONDecodeError as error:
        raise SignalMessageError(f"message is not JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(data, dict):
        raise SignalMessageError(f"message must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"schema", "signal_id", "state", "time"})
    if unknown:
        raise SignalMessageError(f"unknown field(s) {unknown}: expected schema, signal_id, state, time")
    schema = data.get("schema", SIGNAL_SCHEMA)
    if schema != SIGNAL_SCHEMA:
        raise SignalMessageError(f"schema {schema!r} is not {SIGNAL_SCHEMA!r}")
    signal_id = data.get("signal_id")
    if not isinstance(signal_id, str) or not _ID.match(signal_id):
        raise SignalMessageError(f"signal_id must be an identifier (letters, digits, _.:-), got {signal_id!r}")
    state = data.get("state")
    if isinstance(state, str):
        state = state.strip().lower()
        state = "amber" if state == "yellow" else state
    if state not in _STATES:
        raise SignalMessageError(f"state must be one of {sorted(_STATES)}, got {data.get('state')!r}")
    raw_time = data.get("time")
    if not isinstance(raw_time, str):
        raise SignalMessageError(f"time must be an ISO 8601 string with a UTC offset, got {raw_time!r}")
    try:
        time = dt.datetime.fromisoformat(raw_time)
    except ValueError:
        raise SignalMessageError(f"time {raw_time!r} is not ISO 8601") from None
    if time.tzinfo is None:
        raise SignalMessageError(f"time {raw_time!r} has no UTC offset (add Z or +07:00)")
    return SignalUpdate(signal_id, cast(SignalState, state), time.astimezone(dt.UTC))


class SignalBoard:
    """Latest state per signal from the controller feed, with staleness. Not thread-safe."""

    def __init__(self, signals: Iterable[SignalConfig]) -> None:
        feeds = [s for s in signals if s.mqtt is not None]
        self._by_feed_id = {s.mqtt: s for s in feeds}
        self._latest: dict[str, SignalUpdate] = {}
        self.accepted = 0
        self.out_of_order = 0
        """Messages older than the latest one for their signal (kept out)."""
        self.unknown_signal = 0
        """Messages for a controller id no signal is configured for."""

    def offer(self, update: SignalUpdate) -> bool:
        """Take a feed update; False (and counted) when it is for no configured signal or older than the latest."""
        config = self._by_feed_id.get(update.signal_id)
        if config is None:
            self.unknown_signal += 1
            return False
        latest = self._latest.get(config.id)
        if latest is not None and update.time < latest.time:
            self.out_of_order += 1
            return False
        self._latest[config.id] = update
        self.accepted += 1
        return True

    def state_at(self, signal_id: str, now: dt.datetime) -> SignalState:
        """State of configured signal ``signal_id`` (signals[].id) at ``now``: 'unknown' when stale or never heard."""
        latest = self._latest.get(signal_id)
        if latest is None:
            return "unknown"
        config = next(c for c in self._by_feed_id.values() if c.id == signal_id)
        age = (now - latest.time).total_seconds()
        if age > config.stale_after_s or age < -MAX_FUTURE_S:
            return "unknown"
        return latest.state

    def states_at(self, now: dt.datetime) -> dict[str, SignalState]:
        """Every feed signal's state at ``now`` (for ``ViolationEngine.update``)."""
        return {config.id: self.state_at(config.id, now) for config in self._by_feed_id.values()}


# OpenCV hue bands (0..179).
_HUE_BANDS: tuple[tuple[SignalState, tuple[tuple[int, int], ...]], ...] = (
    ("red", ((0, 10), (165, 179))),
    ("amber", ((11, 35),)),
    ("green", ((40, 100),)),
)


def classify_lamp(region_bgr: npt.NDArray[np.uint8], config: SignalConfig) -> SignalState:
    """One frame's reading of a signal-head crop: the lit colour with the most pixels, or 'dark'."""
    if region_bgr.size == 0:
        return "unknown"
    hsv = cv2.cvtColor(region_bgr, cv2.COLOR_BGR2HSV)
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    brightest = int(np.percentile(value, 99.5))
    threshold = max(config.min_value, brightest // 2)
    lit = (value >= threshold) & (saturation >= config.min_saturation)
    total = hue.size
    best: SignalState = "dark"
    best_count = math.ceil(config.min_lit_fraction * total)
    for state, bands in _HUE_BANDS:
        in_band = np.zeros(hue.shape, dtype=np.bool_)
        for low, high in bands:
            in_band |= (hue >= low) & (hue <= high)
        count = int(np.count_nonzero(lit & in_band))
        if count >= best_count and count > 0:
            best, best_count = state, count + 1
    return best


class SignalHead:
    """Colour classifier of one signal head's image region, with hysteresis over frames."""

    def __init__(self, config: SignalConfig, frame_width: int, frame_height: int) -> None:
        if config.region is None:
            raise ValueError(f"signal {config.id!r} has no image region (it is read from the feed)")
        if frame_width <= 0 or frame_height <= 0:
            raise ValueError(f"frame size must be positive, got {frame_width}x{frame_height}")
        (x1, y1), (x2, y2) = config.region
        self._config = config
        self._x1, self._x2 = math.floor(x1 * frame_width), max(math.ceil(x2 * frame_width), 1)
        self._y1, self._y2 = math.floor(y1 * frame_height), max(math.ceil(y2 * frame_height), 1)
        self._state: SignalState = "unknown"
        self._pending: SignalState | None = None
        self._pending_frames = 0
        self._last_time: dt.datetime | None = None

    @property
    def state(self) -> SignalState:
        return self._state

    def update(self, image: npt.NDArray[np.uint8], timestamp: dt.datetime) -> SignalState:
        """Classify ``image`` (the whole BGR frame) at ``timestamp``; returns the confirmed state."""
        if timestamp.tzinfo is None:
            raise ValueError("signal timestamp must be timezone-aware (UTC)")
        if self._last_time is not None and timestamp < self._last_time:
            return self._state  # an older frame than one already seen: ignore
        self._last_time = timestamp
        reading = classify_lamp(image[self._y1 : self._y2, self._x1 : self._x2], self._config)
        if reading == self._state:
            self._pending, self._pending_frames = None, 0
            return self._state
        if reading != self._pending:
            self._pending, self._pending_frames = reading, 0
        self._pending_frames += 1
        if self._pending_frames >= self._config.confirm_frames:
            self._state, self._pending, self._pending_frames = reading, None, 0
        return self._state
