"""The pure drawing function and the overlay values it draws."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.analytics.lines import Crossing, LineConfig
from edge_agent.annotate import IN_COLOUR, OUT_COLOUR, annotate, ascii_label
from edge_agent.overlay import Overlay, RunningCounts, overlay_message
from edge_agent.perception.types import Detections
from event_contract import VEHICLE_CLASSES

T0 = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)
HORIZONTAL = LineConfig(id="h", start=(0.0, 0.5), end=(1.0, 0.5), in_label="vào cầu", out_label="ra")


def cars(boxes: list[tuple[float, float, float, float]], ids: list[int]) -> Detections:
    n = len(boxes)
    return Detections(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.full(n, 0.8, np.float32),
        np.full(n, VEHICLE_CLASSES.index("car"), np.int64),
        tuple(VEHICLE_CLASSES),
        tracker_id=np.array(ids, np.int64),
    )


def crossing(line_id: str, direction: str, vehicle_class: str = "car") -> Crossing:
    return Crossing(line_id, 1, vehicle_class, direction, T0)  # type: ignore[arg-type]


def grey(height: int = 360, width: int = 640) -> npt.NDArray[np.uint8]:
    image = np.full((height, width, 3), 90, np.uint8)
    image.flags.writeable = False  # like a decoded Frame: drawing on it would raise
    return image


def overlay(tracked: Detections, lines: tuple[LineConfig, ...] = (), counts: RunningCounts | None = None) -> Overlay:
    return Overlay(640, 360, tracked, lines, counts or RunningCounts.zero(lines))


def test_annotate_returns_a_new_picture_and_leaves_its_input_untouched() -> None:
    image = grey()
    before = image.copy()
    out = annotate(image, overlay(cars([(400, 200, 500, 300)], [7]), (HORIZONTAL,)))

    assert out is not image
    assert not np.shares_memory(out, image)
    assert np.array_equal(image, before)
    assert out.shape == image.shape
    assert out.dtype == np.uint8


def test_box_edges_are_drawn_where_the_box_is_and_far_pixels_stay() -> None:
    out = annotate(grey(), overlay(cars([(400, 200, 500, 300)], [7])))
    changed = np.any(out != 90, axis=2)

    assert changed[200, 400:500].all()
    assert changed[300, 400:500].all()
    assert changed[220:300, 400].all()
    assert changed[220:300, 500].all()
    assert not changed[230:270, 430:470].any()  # inside the box
    assert not changed[330:, :300].any()  # nowhere near the box or its label


def test_boxes_scale_to_a_downscaled_picture() -> None:
    half = grey(180, 320)
    out = annotate(half, overlay(cars([(400, 200, 500, 300)], [7])))  # boxes measured on 640x360
    changed = np.any(out != 90, axis=2)

    assert changed[150, 205:245].all()  # bottom edge at y=300/2, x=200..250
    assert not changed[150, 260:].any()


def test_the_in_arrow_and_label_point_to_the_lines_in_side() -> None:
    def exact(out: npt.NDArray[np.uint8], colour: tuple[int, int, int]) -> npt.NDArray[np.bool_]:
        return np.asarray(np.all(out == np.array(colour, np.uint8), axis=2))

    for line, in_below in ((HORIZONTAL, True), (LineConfig(id="r", start=(1.0, 0.5), end=(0.0, 0.5)), False)):
        out = annotate(grey(), overlay(cars([], []), (line,)))
        in_rows = np.nonzero(exact(out, IN_COLOUR))[0]
        out_rows = np.nonzero(exact(out, OUT_COLOUR))[0]
        # Left -> right: 'in' crosses downwards (side_of_line is positive below), so its label sits below.
        assert (np.median(in_rows) > 180) == in_below
        assert (np.median(out_rows) > 180) != in_below


def test_counts_appear_on_the_picture_and_change_it() -> None:
    lines = (HORIZONTAL,)
    zero = annotate(grey(), overlay(cars([], []), lines))
    counted = RunningCounts.zero(lines).plus([crossing("h", "in"), crossing("h", "in", "bus")])
    some = annotate(grey(), overlay(cars([], []), lines, counted))

    assert not np.array_equal(zero, some)


def test_ascii_label_strips_vietnamese_diacritics() -> None:
    assert ascii_label("Vạch đếm lên cầu Trường Tiền - ĐƯỜNG") == "Vach dem len cau Truong Tien - DUONG"
    assert ascii_label("xe 🚗") == "xe ?"


def test_annotate_rejects_pictures_that_are_not_bgr() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        annotate(np.zeros((10, 10), np.uint8), overlay(cars([], [])))


def test_running_counts_add_without_changing_earlier_values() -> None:
    lines = (HORIZONTAL, LineConfig(id="v", start=(0.5, 0.0), end=(0.5, 1.0)))
    zero = RunningCounts.zero(lines)
    one = zero.plus([crossing("h", "in")])
    two = one.plus([crossing("h", "out", "bus"), crossing("v", "in")])

    assert zero.get("h").in_total == 0
    assert (one.get("h").in_total, one.get("h").out_total) == (1, 0)
    assert dict(two.get("h").inbound) == {"car": 1}
    assert dict(two.get("h").outbound) == {"bus": 1}
    assert two.get("v").in_total == 1
    assert one.plus([]) is one
    with pytest.raises(ValueError, match="unknown lines"):
        zero.plus([crossing("nope", "in")])


def test_overlay_message_is_json_with_boxes_ids_and_counts() -> None:
    lines = (HORIZONTAL,)
    counts = RunningCounts.zero(lines).plus([crossing("h", "out")])
    message = overlay_message(
        overlay(cars([(1.25, 2, 30, 40), (100, 100, 150, 160)], [3, 9]), lines, counts),
        camera_id="cam-1",
        sequence=12,
        timestamp=T0,
    )

    assert json.loads(json.dumps(message)) == message
    assert (message["width"], message["height"], message["time"]) == (640, 360, "2025-03-01T07:00:00Z")
    assert [(d["track_id"], d["class"], d["box"]) for d in message["detections"]] == [
        (3, "car", [1.2, 2.0, 30.0, 40.0]),
        (9, "car", [100.0, 100.0, 150.0, 160.0]),
    ]
    assert message["lines"][0]["out"] == {"car": 1}
    assert message["lines"][0]["in_total"] == 0
