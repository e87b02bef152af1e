"""Plate-reading parts without models: quality, colour, CTC decoding, DB boxes, line grouping, config, render."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from devstack.plate_render import (
    CONDITIONS,
    PlateSpec,
    plate_font,
    render_flat_plate,
    render_sample,
)
from edge_agent.plates.colour import plate_colour
from edge_agent.plates.config import PlateReadingConfig
from edge_agent.plates.grouping import LineRead, best_candidate, plate_candidates, split_two_line_blocks
from edge_agent.plates.quality import crop_quality, sharpness
from edge_agent.plates.recognise import CtcDecoder, LineText, softmax_if_logits
from edge_agent.plates.result import PlateInputError, ReaderCounters, check_crop
from edge_agent.plates.text_detect import TextBox, boxes_from_map, order_corners


def test_quality_prefers_sharp_and_big_crops() -> None:
    sharp = render_sample(11, "clean", "car_long").image
    blurred = np.asarray(cv2.GaussianBlur(sharp, (0, 0), 3), np.uint8)
    small = np.asarray(
        cv2.resize(sharp, (sharp.shape[1] // 3, sharp.shape[0] // 3), interpolation=cv2.INTER_AREA), np.uint8
    )
    assert sharpness(sharp) > sharpness(blurred)
    assert crop_quality(sharp) > crop_quality(blurred)
    assert crop_quality(sharp) > crop_quality(small)
    assert 0.0 < crop_quality(blurred) < crop_quality(sharp) <= 1.0
    assert crop_quality(np.zeros((1, 1, 3), np.uint8)) == 0.0
    assert crop_quality(np.zeros((100, 100, 3), np.uint8)) == 0.0  # flat: no edges at all


@pytest.mark.parametrize("colour", ["white", "yellow", "blue", "red"])
def test_plate_colour_from_the_background(colour: str) -> None:
    plate = render_flat_plate(PlateSpec("car_long", "30", "A", "12345", colour), px_per_mm=1.0)  # type: ignore[arg-type]
    inner = plate[20:90, 40:480]
    assert plate_colour(inner) == colour
    dark = (inner.astype(np.float32) * 0.35).astype(np.uint8)  # a dim white plate is still white, not grey
    assert plate_colour(dark) == colour


def test_plate_colour_refuses_what_it_cannot_tell() -> None:
    assert plate_colour(np.zeros((3, 3, 3), np.uint8)) is None
    assert plate_colour(np.full((40, 100, 3), 5, np.uint8)) is None  # too dark


def one_hot(indices: list[int], classes: int, p: float = 0.9) -> np.ndarray:
    probs = np.full((len(indices), classes), (1 - p) / (classes - 1), np.float32)
    for t, i in enumerate(indices):
        probs[t, i] = p
    return probs


def test_ctc_collapses_repeats_drops_blanks_and_keeps_only_plate_characters() -> None:
    dictionary = ["3", "0", "A", "a", "-", "中", "〇"]  # class i+1 = dictionary[i]
    decoder = CtcDecoder(dictionary)
    # 3 3 _ 0 0 _ 0 a - : "300A-"; a lower-case 'a' counts as 'A'
    seq = [1, 1, 0, 2, 2, 0, 2, 4, 5]
    line = decoder(one_hot(seq, len(dictionary) + 1))
    assert line.text == "300A-"
    assert len(line.char_probs) == 5
    assert line.confidence == pytest.approx(0.9, abs=0.01)
    # A Chinese class winning a step is not a plate character: the best plate character or blank wins.
    probs = one_hot([6, 7], len(dictionary) + 1, p=0.6)
    probs[0, 1] = 0.3  # '3' is the best plate character of step 0
    probs[1, 0] = 0.3  # blank is the best of step 1
    assert decoder(probs).text == "3"


def test_ctc_rejects_dictionaries_without_plate_characters_and_short_outputs() -> None:
    with pytest.raises(ValueError, match="none of the plate characters"):
        CtcDecoder(["中", "文"])
    decoder = CtcDecoder(list("0123456789"))
    with pytest.raises(ValueError, match="classes"):
        decoder(np.zeros((4, 5), np.float32))


def test_softmax_only_for_logits() -> None:
    probs = np.array([[0.2, 0.8], [0.5, 0.5]], np.float32)
    assert softmax_if_logits(probs) is probs
    logits = np.array([[0.0, 2.0]], np.float32)
    out = softmax_if_logits(logits)
    assert out.sum() == pytest.approx(1.0)
    assert out[0, 1] > 0.85


def test_db_boxes_grow_the_kernel_and_scale_back() -> None:
    prob = np.zeros((64, 128), np.float32)
    prob[20:30, 20:100] = 0.95  # one text kernel, 80 x 10
    boxes = boxes_from_map(prob, threshold=0.3, box_threshold=0.5, unclip_ratio=1.6, scale_x=2.0, scale_y=2.0)
    assert len(boxes) == 1
    x1, y1, x2, y2 = boxes[0].xyxy
    # Grown by area*ratio/perimeter = 80*10*1.6/180 ~ 7 px each side, then x2.
    assert (x1, y1) < (40, 40)
    assert (x2, y2) > (200, 60)
    assert 0.8 < boxes[0].score <= 0.95  # the mean over the (dilated) region
    weak = prob * 0.4
    assert boxes_from_map(weak, threshold=0.3, box_threshold=0.5, unclip_ratio=1.6, scale_x=1, scale_y=1) == []


def test_corners_are_ordered_clockwise_from_top_left() -> None:
    pts = np.array([[10, 10], [0, 10], [10, 0], [0, 0]], np.float32)
    assert order_corners(pts).tolist() == [[0, 0], [10, 0], [10, 10], [0, 10]]


def box(x1: float, y1: float, x2: float, y2: float, score: float = 0.9) -> TextBox:
    return TextBox(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32), score)


def line(b: TextBox, text: str, p: float = 0.95) -> LineRead:
    return LineRead(b, LineText(text, (p,) * len(text)))


def test_stacked_lines_make_a_two_line_plate() -> None:
    top, bottom = box(100, 100, 160, 125), box(95, 128, 170, 155)
    best = best_candidate(plate_candidates([line(top, "59-X1"), line(bottom, "234.56")]))
    assert best is not None
    assert best.parse.text == "59X1-234.56"
    assert best.layout_hint == "two_line"
    assert len(best.char_probs) == 9
    x1, y1, x2, y2 = best.box(400, 300)
    assert (x1, y1) < (95, 100)
    assert x2 > 170
    assert y2 > 155


def test_a_line_split_at_its_dash_is_joined() -> None:
    left, right = box(100, 100, 150, 125), box(160, 101, 240, 126)
    best = best_candidate(plate_candidates([line(left, "30A-"), line(right, "123.45")]))
    assert best is not None
    assert best.parse.text == "30A-123.45"


def test_valid_beats_confident_garbage_and_nothing_plate_like_gives_none() -> None:
    sticker, plate = box(10, 10, 100, 30), box(100, 200, 260, 230)
    best = best_candidate(plate_candidates([line(sticker, "TOYOTA", 0.99), line(plate, "30A-123.45", 0.8)]))
    assert best is not None
    assert best.parse.text == "30A-123.45"
    assert best_candidate(plate_candidates([line(sticker, "ABC")])) is None


def test_square_blocks_are_also_tried_as_two_lines() -> None:
    block = box(0, 0, 60, 45)
    lines = split_two_line_blocks([block, box(0, 100, 300, 130)])
    assert len(lines) == 4  # the block, its two halves, and the wide line
    assert lines[1].xyxy == (0.0, 0.0, 60.0, 22.5)


def test_config_needs_the_files_of_its_backend_and_forbids_unknown_keys() -> None:
    assert PlateReadingConfig().backend == "ppocr"
    with pytest.raises(ValidationError, match="recogniser_path"):
        PlateReadingConfig(backend="onnx")
    with pytest.raises(ValidationError, match="alphabet"):
        PlateReadingConfig(backend="onnx", recogniser_path=Path("rec.onnx"))
    with pytest.raises(ValidationError):
        PlateReadingConfig(thresholds=1)  # type: ignore[call-arg]
    for name, field in PlateReadingConfig.model_fields.items():
        assert field.description, f"{name} has no description"


def test_bad_crops_are_refused_with_a_reason_and_counted() -> None:
    counters = ReaderCounters()
    for crop, reason in (
        (np.zeros((40, 40), np.uint8), "HxWx3"),
        (np.zeros((40, 40, 3), np.float32), "uint8"),
        (np.zeros((8, 40, 3), np.uint8), "smaller than"),
    ):
        with pytest.raises(PlateInputError, match=reason):
            check_crop(crop, counters)  # type: ignore[arg-type]
    assert counters.snapshot()["rejected_input"] == 3


def test_render_is_deterministic_and_the_truth_is_the_spec() -> None:
    a, b = render_sample(42, "angle_mild"), render_sample(42, "angle_mild")
    assert np.array_equal(a.image, b.image)
    assert a.truth == b.truth == a.spec.truth
    assert not np.array_equal(a.image, render_sample(43, "angle_mild").image)
    x1, y1, x2, y2 = a.plate_box
    assert 0 <= x1 < x2 <= a.image.shape[1]
    assert 0 <= y1 < y2 <= a.image.shape[0]
    # The plate is a small part of the vehicle crop: the reader has to find it.
    assert (x2 - x1) * (y2 - y1) < 0.25 * a.image.shape[0] * a.image.shape[1]


def test_every_condition_renders_and_degrades_the_plate() -> None:
    clean = render_sample(5, "clean", "car_long")
    for condition in CONDITIONS:
        sample = render_sample(5, condition, "car_long")
        assert sample.truth == clean.truth
        assert sample.image.dtype == np.uint8
        if condition != "clean":
            assert not np.array_equal(sample.image, clean.image), condition


def test_the_plate_font_draws_holes_in_closed_glyphs() -> None:
    if plate_font() is None:
        pytest.fail("fonts-dejavu-core is missing: devstack/setup_system.sh installs it")
    spec = PlateSpec("motorbike", "80", "B8", "88888", "white")
    plate = render_flat_plate(spec, px_per_mm=2.0)
    grey = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY)
    # Inside the first '8' of the bottom line there is background (its counters are holes, not ink).
    ink = (grey < 128).mean()
    assert 0.15 < ink < 0.5
