"""Motion backend on synthetic arrays: blobs, fragment merging, scores, size classes, exposure, warm-up."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from edge_agent.perception.detectors import DetectorConfig, build_detector
from edge_agent.perception.detectors.blobs import CONFIDENT_SIZE, find_blobs, merge_groups, size_class_ids
from edge_agent.perception.detectors.exposure import ExposureFit, fit_exposure
from edge_agent.perception.detectors.label_map import TAXONOMY
from edge_agent.perception.detectors.motion import MotionDetector
from edge_agent.perception.detectors.motion_config import MotionConfig, SizeClass
from edge_agent.perception.detectors.nms import pairwise_iou

Image = npt.NDArray[np.uint8]


def _mask(height: int = 180, width: int = 320) -> Image:
    return np.zeros((height, width), dtype=np.uint8)


def test_a_solid_blob_becomes_one_exact_box_with_a_high_score() -> None:
    mask = _mask()
    mask[40:100, 50:90] = 255  # 40 x 60 = 2400 px, 4.2 % of the frame
    blobs = find_blobs(mask, MotionConfig())
    assert len(blobs) == 1
    np.testing.assert_array_equal(blobs.xyxy[0], [50, 40, 90, 100])
    assert blobs.foreground_px[0] == 2400
    assert blobs.confidence[0] == pytest.approx(1.0)  # fills its box, far above 4 x min_area


def test_fragments_of_one_vehicle_merge_and_separate_vehicles_do_not() -> None:
    config = MotionConfig(merge_gap=0.035, close_kernel=1)  # 11.2 px at 320 wide; no closing to bridge the gap
    mask = _mask()
    mask[20:60, 40:80] = 255  # roof and bonnet of one car ...
    mask[68:90, 40:80] = 255  # ... and its boot, split off by a dark rear window 8 px tall
    mask[20:90, 120:160] = 255  # a second car side by side, 40 px to the right
    blobs = find_blobs(mask, config)
    boxes = sorted(blobs.xyxy.tolist())
    assert boxes == [[40, 20, 80, 90], [120, 20, 160, 90]]
    merged = int(np.argmin(blobs.xyxy[:, 0]))
    assert blobs.foreground_px[merged] == 40 * 40 + 22 * 40
    # The merged box is less solid than the whole car, so it scores lower.
    assert blobs.confidence[merged] < blobs.confidence[1 - merged]


def test_merging_is_transitive_and_needs_closeness_in_both_axes() -> None:
    boxes = np.array([[0, 0, 10, 10], [14, 0, 24, 10], [28, 0, 38, 10], [0, 40, 10, 50]], np.float32)
    assert merge_groups(boxes, 5.0).tolist() == [0, 0, 0, 1]
    assert len(set(merge_groups(boxes, 3.0).tolist())) == 4
    assert merge_groups(np.empty((0, 4), np.float32), 5.0).tolist() == []


def test_stacked_fragments_merge_across_a_wider_gap_than_side_by_side_neighbours() -> None:
    # A van's dark rear window over its bumper (a road-grey panel between them), and a car beside it.
    window, bumper, neighbour = [20, 10, 60, 30], [14, 38, 66, 50], [74, 12, 110, 48]
    boxes = np.array([window, bumper, neighbour], np.float32)
    assert len(set(merge_groups(boxes, 2.0).tolist())) == 3
    assert merge_groups(boxes, 2.0, stack_gap_px=10.0).tolist() == [0, 0, 1]  # the 8 px gap is bridged
    assert len(set(merge_groups(boxes, 2.0, stack_gap_px=6.0).tolist())) == 3  # too far apart
    # Stacked means overlapping in x: a box only touching the window's x range at its edge does not join.
    shifted = np.array([window, [55, 38, 95, 50]], np.float32)
    assert len(set(merge_groups(shifted, 2.0, stack_gap_px=10.0, stack_overlap=0.6).tolist())) == 2


def test_speckle_and_small_blobs_are_dropped_and_ragged_blobs_score_low() -> None:
    config = MotionConfig(open_kernel=1, close_kernel=1, min_area=0.004, min_fragment_area=0.0005)
    frame_px = 180 * 320
    mask = _mask()
    mask[5:8, 5:8] = 255  # 9 px: below min_fragment_area (28.8 px)
    mask[100:110, 200:215] = 255  # 150 px: a fragment, but below min_area (230 px) alone
    ragged = _mask()
    ragged[10:70, 10:70] = 255
    ragged[13:67, 13:67] = 0  # a hollow outline 3 px thick: fills a fifth of its box
    assert len(find_blobs(mask, config)) == 0
    blobs = find_blobs(ragged, config)
    assert len(blobs) == 1
    assert blobs.foreground_px[0] == 60 * 60 - 54 * 54
    fill = blobs.foreground_px[0] / ((blobs.xyxy[0, 2] - blobs.xyxy[0, 0]) * (blobs.xyxy[0, 3] - blobs.xyxy[0, 1]))
    size = min(1.0, blobs.foreground_px[0] / (CONFIDENT_SIZE * config.min_area * frame_px))
    assert size < 1.0  # 684 px against 4 x 230 px
    assert blobs.confidence[0] == pytest.approx(np.sqrt(fill * size), rel=1e-5)
    assert blobs.confidence[0] < 0.5  # below the tracker's default high-score threshold


def test_size_classes_label_blobs_by_area_smallest_first() -> None:
    config = MotionConfig(
        size_classes=(SizeClass(label="motorbike", max_area=0.01), SizeClass(label="car", max_area=0.06)),
        default_class="truck",
    )
    ids = size_class_ids(np.array([0.005, 0.01, 0.03, 0.2], np.float32), config)
    assert [TAXONOMY[i] for i in ids] == ["motorbike", "motorbike", "car", "truck"]
    assert [TAXONOMY[i] for i in size_class_ids(np.array([0.5], np.float32), MotionConfig())] == ["other_vehicle"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"blur_kernel": 4}, "odd"),
        (
            {"size_classes": [{"label": "car", "max_area": 0.06}, {"label": "motorbike", "max_area": 0.01}]},
            "increasing",
        ),
        ({"min_fragment_area": 0.01, "min_area": 0.004}, "min_fragment_area"),
        ({"default_class": "tractor"}, "default_class"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_motion_config_refuses_bad_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MotionConfig.model_validate(settings)


def test_detector_config_keeps_model_settings_off_the_motion_backend() -> None:
    with pytest.raises(ValidationError, match="runs no model"):
        DetectorConfig(backend="motion", label_map={"Car": "car"})
    assert DetectorConfig(backend="motion", motion={"process_width": 256}).motion.process_width == 256


# -- exposure ------------------------------------------------------------------------------------


def _texture(height: int, width: int, seed: int = 0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(80, 150, (height // 8 + 1, width // 8 + 1))
    return np.kron(coarse, np.ones((8, 8)))[:height, :width].astype(np.float32)


def test_exposure_fit_recovers_a_gain_plane_and_offset_despite_a_bright_vehicle() -> None:
    reference = _texture(180, 320)
    truth = ExposureFit(c0=0.55, c1=0.08, c2=-0.1, e0=-12.0, inlier_share=1.0)
    frame = truth.gain_map(180, 320) * reference + truth.e0
    frame[30:150, 100:180] = 250.0  # a white car covering 17 % of the view does not pull the fit
    fit = fit_exposure(frame, reference)
    assert fit is not None
    assert (fit.c0, fit.c1, fit.c2, fit.e0) == pytest.approx((0.55, 0.08, -0.1, -12.0), abs=1e-3)
    assert 0.78 < fit.inlier_share < 0.86
    restored = fit.undo(frame)
    np.testing.assert_allclose(restored[:, :90], reference[:, :90], atol=1e-2)


def test_exposure_fit_gives_up_when_the_scene_itself_changed() -> None:
    reference = _texture(180, 320, seed=1)
    other = np.random.default_rng(2).uniform(0, 255, (180, 320)).astype(np.float32)
    assert fit_exposure(other, reference) is None
    with pytest.raises(ValueError, match="one shape"):
        fit_exposure(other[:10], reference)


# -- the detector on a synthetic clip ------------------------------------------------------------


def _scene(seed: int = 3) -> Image:
    base = _texture(360, 640, seed)
    return np.repeat(base[:, :, None], 3, axis=2).astype(np.uint8)


NOISE = np.random.default_rng(0)


def _frame(background: Image, t: int, gain: float = 1.0) -> tuple[Image, list[float]]:
    """A light-grey 60x120 'car' driving right 8 px per frame (t < -5: out of view), with sensor noise and gain."""
    image = background.astype(np.float32)
    x = 40 + 8 * t
    if x + 60 > 0:
        image[120:240, max(0, x) : x + 60] = 235.0
    image += NOISE.normal(0, 2.0, image.shape)
    image = np.clip(image * gain, 0, 255)
    return image.astype(np.uint8), [float(x), 120.0, float(x + 60), 240.0]


def test_detector_warms_up_then_boxes_the_moving_vehicle() -> None:
    detector = MotionDetector(MotionConfig(warmup_frames=10))
    background = _scene()
    for _ in range(10):
        assert len(detector.detect(_frame(background, -20)[0])) == 0  # car out of view while learning
    ious = []
    for t in range(5, 60):
        image, truth = _frame(background, t)
        dets = detector.detect(image)
        assert len(dets) == 1, f"frame {t}: {dets.xyxy}"
        assert dets.names == ["other_vehicle"]
        assert float(dets.confidence[0]) > 0.8
        ious.append(float(pairwise_iou(dets.xyxy, np.array([truth], np.float32))[0, 0]))
    assert min(ious) > 0.8
    stats = detector.stats()
    assert (stats.frames, stats.warmup_frames, stats.global_changes) == (65, 10, 0)


def test_auto_exposure_dimming_the_whole_view_is_compensated() -> None:
    background = _scene()
    for compensate in (True, False):
        detector = MotionDetector(MotionConfig(warmup_frames=10, compensate_exposure=compensate))
        for _ in range(30):
            detector.detect(_frame(background, -20)[0])
        well_boxed = 0
        for t in range(5, 40):
            gain = 1.0 - 0.5 * min(1.0, (t - 5) / 10)  # the camera halves its exposure within 10 frames
            image, truth = _frame(background, t, gain)
            dets = detector.detect(image)
            iou = pairwise_iou(dets.xyxy, np.array([truth], np.float32))
            well_boxed += int(len(dets) == 1 and float(iou.max()) > 0.8)
        if compensate:
            assert well_boxed == 35
            assert detector.stats().last_gain == pytest.approx(0.5, abs=0.02)
            assert detector.stats().global_changes == 0
        else:
            # Without it the dimmed road reads as a changed scene: the model relearns and the car is lost a while.
            assert detector.stats().global_changes == 1
            assert well_boxed <= 25


@pytest.mark.parametrize("compensate", [True, False])
def test_a_global_change_gives_no_boxes_and_relearns_the_new_scene(compensate: bool) -> None:
    detector = MotionDetector(MotionConfig(warmup_frames=5, compensate_exposure=compensate))
    for _ in range(20):
        detector.detect(_frame(_scene(3), -20)[0])
    moved = _scene(4)  # the camera was knocked: a different picture
    assert len(detector.detect(_frame(moved, -20)[0])) == 0
    assert detector.stats().global_changes == 1
    for _ in range(10):
        detector.detect(_frame(moved, -20)[0])
    image, truth = _frame(moved, 20)
    dets = detector.detect(image)
    assert len(dets) == 1
    assert float(pairwise_iou(dets.xyxy, np.array([truth], np.float32))[0, 0]) > 0.8


def test_score_threshold_and_area_cap_apply_and_each_camera_gets_its_own_detector() -> None:
    config = DetectorConfig(backend="motion", max_box_area_fraction=0.02, motion=MotionConfig(warmup_frames=5))
    first, second = build_detector(config), build_detector(config)
    assert isinstance(first, MotionDetector)
    assert first is not second  # stateful: never shared between cameras
    background = _scene()
    for _ in range(10):
        first.detect(_frame(background, -20)[0])
    # The 60x120 car covers 3.1 % of the 640x360 frame: above the 2 % cap.
    assert len(first.detect(_frame(background, 10)[0])) == 0
    with pytest.raises(ValueError, match="HxWx3"):
        first.detect(np.zeros((10, 10), np.uint8))


def _parked(background: Image, stop_x: int, t: int) -> Image:
    """The test car drives in and stops for good with its left edge at ``stop_x``."""
    x = min(40 + 8 * t, stop_x)
    image = background.astype(np.float32)
    image[120:240, x : x + 60] = 235.0
    image += NOISE.normal(0, 2.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("hold_confidence", "hold_frames", "last_seen"), [(0.5, 600, 681), (1.0, 600, 83), (0.5, 200, 281)]
)
def test_a_stopped_vehicle_is_held_out_of_the_background_until_hold_frames(
    hold_confidence: float, hold_frames: int, last_seen: int
) -> None:
    """Held: the stopped car stays one whole box for hold_frames; not held: it fades into the road.

    The car stops at frame 33 and is a confident blob from frame 0; once released (or never held) it is
    absorbed in ln(0.9) / ln(1 - 1/500) = 53 frames of the default model, minus what it learnt while moving.
    """
    detector = MotionDetector(MotionConfig(warmup_frames=10, hold_confidence=hold_confidence, hold_frames=hold_frames))
    background = _scene()
    for _ in range(10):
        detector.detect(_frame(background, -20)[0])
    boxed = []
    for t in range(800):
        dets = detector.detect(_parked(background, 300, t))
        x = min(40 + 8 * t, 300)
        truth = np.array([[x, 120, x + 60, 240]], np.float32)
        boxed.append(len(dets) == 1 and float(pairwise_iou(dets.xyxy, truth)[0, 0]) > 0.8)
    last_whole = max(t for t, ok in enumerate(boxed) if ok)
    assert all(boxed[: last_whole + 1]), "one whole box on every frame until it fades"
    assert not any(boxed[last_whole + 1 :]), "faded for good"
    assert last_whole == pytest.approx(last_seen, abs=15)
