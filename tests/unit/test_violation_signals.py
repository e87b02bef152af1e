"""Signals: the controller feed's messages and staleness, and the colour classifier of a signal head image."""

from __future__ import annotations

import datetime as dt
import json

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.violations import SignalBoard, SignalConfig, SignalHead, SignalMessageError, parse_signal_message
from event_contract.traffic import SignalState

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


def message(**fields: object) -> bytes:
    base: dict[str, object] = {"signal_id": "j12-north", "state": "red", "time": "2026-03-02T01:00:00Z"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_a_good_message_parses() -> None:
    update = parse_signal_message(
        message(schema="ioc.signal_state/1", state="Yellow", time="2026-03-02T08:00:00+07:00")
    )
    assert (update.signal_id, update.state, update.time) == ("j12-north", "amber", T0)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{nope", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (message(state="blue"), "state must be one of"),
        (message(signal_id="bad id"), "signal_id must be an identifier"),
        (message(time="2026-03-02T01:00:00"), "no UTC offset"),
        (message(time="yesterday"), "not ISO 8601"),
        (message(time=None), "time must be"),
        (message(schema="other/2"), "schema"),
        (message(extra=1), "unknown field"),
        (b" " * 5000, "more than 4096"),
    ],
)
def test_bad_messages_say_why(payload: bytes, reason: str) -> None:
    with pytest.raises(SignalMessageError, match=reason):
        parse_signal_message(payload)


def test_board_staleness_order_and_unknown_signals() -> None:
    board = SignalBoard([SignalConfig(id="north", mqtt="j12-north", stale_after_s=10), SignalConfig(id="x", mqtt="c9")])
    assert board.state_at("north", T0) == "unknown"
    assert board.offer(parse_signal_message(message()))
    assert board.state_at("north", T0 + dt.timedelta(seconds=9)) == "red"
    assert board.state_at("north", T0 + dt.timedelta(seconds=11)) == "unknown"  # stale
    assert board.state_at("north", T0 - dt.timedelta(seconds=60)) == "unknown"  # message from the future
    assert not board.offer(parse_signal_message(message(time="2026-03-02T00:59:59Z", state="green")))
    assert board.out_of_order == 1
    assert board.state_at("north", T0) == "red"
    assert not board.offer(parse_signal_message(message(signal_id="other")))
    assert board.unknown_signal == 1
    assert board.states_at(T0) == {"north": "red", "x": "unknown"}


# -- the signal head ---------------------------------------------------------------------------------

COLOURS_BGR: dict[str, tuple[int, int, int]] = {"red": (40, 40, 255), "amber": (0, 190, 255), "green": (170, 255, 60)}
HEAD = SignalConfig(id="head", region=((0.4, 0.2), (0.6, 0.8)))


def head_image(lit: str | None, brightness: float, noise: float, seed: int) -> npt.NDArray[np.uint8]:
    """A 100x100 frame with a dark three-lamp head (red top, amber middle, green bottom) in the region."""
    rng = np.random.default_rng(seed)
    image = np.full((100, 100, 3), (110, 120, 115), dtype=np.uint8)  # overcast sky
    cv2.rectangle(image, (40, 20), (60, 80), (25, 25, 25), -1)
    for name, cy in (("red", 30), ("amber", 50), ("green", 70)):
        on = name == lit
        colour = tuple(int(c * brightness) for c in COLOURS_BGR[name]) if on else (45, 45, 45)
        cv2.circle(image, (50, cy), 7, colour, -1)
    noisy = image.astype(np.float64) + rng.normal(0, noise, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def classify(lit: str | None, brightness: float, noise: float, seed: int) -> SignalState:
    head = SignalHead(HEAD, 100, 100)
    state: SignalState = "unknown"
    for k in range(3):
        state = head.update(head_image(lit, brightness, noise, seed * 10 + k), T0 + dt.timedelta(seconds=k / 10))
    return state


def test_signal_head_accuracy_over_colours_brightness_and_noise() -> None:
    """The documented accuracy (docs/violations.md): every case of this grid, 216 in all, is classified right."""
    cases = [
        (lit, brightness, noise, seed)
        for lit in ("red", "amber", "green", None)
        for brightness in (0.45, 0.7, 1.0)
        for noise in (0.0, 6.0, 12.0)
        for seed in range(6)
    ]
    wrong = [(c, got) for c in cases if (got := classify(*c)) != (c[0] or "dark")]
    assert len(cases) == 216
    assert wrong == []


def test_signal_head_hysteresis_needs_consecutive_frames() -> None:
    head = SignalHead(HEAD, 100, 100)
    assert head.update(head_image("green", 1.0, 0, 1), T0) == "unknown"
    assert head.update(head_image("green", 1.0, 0, 2), T0 + dt.timedelta(seconds=0.1)) == "green"
    # one red frame (a glint) does not switch; two do
    assert head.update(head_image("red", 1.0, 0, 3), T0 + dt.timedelta(seconds=0.2)) == "green"
    assert head.update(head_image("green", 1.0, 0, 4), T0 + dt.timedelta(seconds=0.3)) == "green"
    assert head.update(head_image("red", 1.0, 0, 5), T0 + dt.timedelta(seconds=0.4)) == "green"
    assert head.update(head_image("red", 1.0, 0, 6), T0 + dt.timedelta(seconds=0.5)) == "red"
    # an older frame is ignored
    assert head.update(head_image("green", 1.0, 0, 7), T0) == "red"


def test_signal_head_needs_a_region() -> None:
    with pytest.raises(ValueError, match="no image region"):
        SignalHead(SignalConfig(id="feed", mqtt="c1"), 100, 100)
