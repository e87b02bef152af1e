"""Region states from cell features against references, on synthetic pictures under changing light."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.progress.appearance import (
    CALIBRATION_SHARES,
    TEXTURE_MARGIN,
    AppearanceModel,
    RegionJudgement,
    contiguous_front,
    fill_fractions,
    layout_region,
    reference_sets,
    share_of_position,
    to_working,
    working_size,
)
from edge_agent.progress.config import PackageRegion
from tests.unit import progress_images as pi

LIGHTS = [{}, {"gain": 0.6}, {"gain": 1.3}, {"cast": (0.8, 1.0, 1.2)}, {"haze": 0.3}, {"noise": 5.0}]


def model(done_reference: bool = True) -> AppearanceModel:
    config = pi.config(done_reference)
    size = working_size(*pi.SIZE, config.appearance.working_width)
    refs = [(s, p, to_working(i, size)) for s, p, i in reference_sets(config, pi.references(done_reference))]
    return AppearanceModel(config, refs, size)


def judge(m: AppearanceModel, image: pi.Image, occluders: np.ndarray | None = None) -> dict[str, RegionJudgement]:
    mask = m.occluder_mask(occluders, 1.0)
    return {r.package_id: r for r in m.judge(m.prepare(image), mask)}


@pytest.fixture(scope="module")
def with_done() -> AppearanceModel:
    return model(True)


@pytest.mark.parametrize("light", LIGHTS)
@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 0.8, 1.0])
def test_percent_tracks_the_built_share_under_any_light(
    with_done: AppearanceModel, share: float, light: dict[str, object]
) -> None:
    image = pi.light(pi.render({"mong": share, "tuong": 1.0 - share}), **light)  # type: ignore[arg-type]
    result = judge(with_done, image)
    assert result["mong"].percent == pytest.approx(100 * share, abs=6)
    assert result["tuong"].percent == pytest.approx(100 * (1 - share), abs=6)
    assert result["mong"].occluded == 0.0
    assert result["mong"].confidence > 0.5


@pytest.mark.parametrize("light", LIGHTS)
def test_change_from_not_started_without_a_done_reference(light: dict[str, object]) -> None:
    m = model(False)
    for share in (0.0, 0.5, 1.0):
        image = pi.light(pi.render({"mong": share}), **light)  # type: ignore[arg-type]
        assert judge(m, image)["mong"].percent == pytest.approx(100 * share, abs=10)


def test_change_threshold_is_above_the_reference_noise() -> None:
    m = model(False)
    for region in m.regions:
        assert np.all(region.threshold >= m._config.appearance.min_change_distance)
        assert region.anomaly > region.threshold.max()


def test_cells_under_detected_objects_are_not_judged(with_done: AppearanceModel) -> None:
    width, height = pi.SIZE
    x0, y0, x1, y1 = pi.REGIONS["mong"]
    # A worker standing on the built half and a truck over the bare half: without masking they would read wrong.
    box = np.array([[x0 * width, y0 * height, (x0 + x1) / 2 * width, y1 * height]], dtype=np.float32)
    result = judge(with_done, pi.render({"mong": 0.5}), box)["mong"]
    assert 0.4 <= result.occluded <= 0.6
    assert result.hidden == round(result.occluded * result.cells)
    assert judge(with_done, pi.render({"mong": 0.5}))["mong"].occluded == 0.0


def test_an_undetected_blob_unlike_every_reference_is_hidden() -> None:
    m = model(True)
    judge(m, pi.render({"mong": 0.3}))  # the cells' recent look
    image = pi.render({"mong": 0.3})
    width, height = pi.SIZE
    x0, y0, x1, _ = pi.REGIONS["mong"]
    image[int(y0 * height) :, int(x0 * width) : int((x0 + 0.6 * (x1 - x0)) * width)] = (20, 200, 240)  # yellow truck
    result = judge(m, image)["mong"]
    assert result.occluded > 0.4
    assert result.percent == pytest.approx(0.0, abs=6)  # only the bare right part is judged (bare -> front at 0)


def test_a_persistent_change_is_adopted_after_a_few_samples() -> None:
    m = model(False)
    judge(m, pi.render({}))
    image = pi.render({})
    width, height = pi.SIZE
    x0, y0, x1, y1 = pi.REGIONS["tuong"]
    image[int(y0 * height) : int(y1 * height), int(x0 * width) : int(x1 * width)] = (20, 200, 240)
    adopt = m._config.appearance.anomaly_adopt_samples
    hidden = [judge(m, image)["tuong"].occluded for _ in range(adopt + 1)]
    assert hidden[0] >= 0.9  # cells along the region edge may be partly bare
    assert hidden[-1] == 0.0


def test_layout_keeps_only_cells_mostly_inside() -> None:
    triangle = PackageRegion(id="tam-giac", region=((0.1, 0.1), (0.9, 0.1), (0.1, 0.9)))
    layout = layout_region(triangle, (640, 360), grid=4, min_inside=0.5)
    assert 6 <= layout.cells < 16
    assert (layout.rows + layout.cols <= 4).all()  # cells below the diagonal are left out
    with pytest.raises(ValueError, match=r"covers no pixel|too small"):
        layout_region(
            PackageRegion(id="x", region=((0.5, 0.5), (0.52, 0.5), (0.52, 0.52), (0.5, 0.52))), (32, 18), 4, 0.5
        )


def test_contiguous_front_ignores_scattered_false_cells() -> None:
    lines = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    judged = np.ones(8, dtype=bool)
    front = np.array([100, 100, 100, 100, 50, 0, 0, 0], dtype=float)
    assert contiguous_front(front, judged, lines) == pytest.approx((100 + 100 + 25) / 4)
    scattered = np.array([0, 0, 0, 0, 0, 0, 100, 100], dtype=float)
    assert contiguous_front(scattered, judged, lines) == 0.0
    hidden_line = judged.copy()
    hidden_line[2:4] = False
    assert contiguous_front(np.array([100, 100, 0, 0, 100, 100, 0, 0.0]), hidden_line, lines) == pytest.approx(200 / 3)


def test_texture_leaves_out_the_cell_edges_across_the_fill() -> None:
    """The edge of a finished course or neighbour must not leak into the texture of the cell beyond the front."""
    wall = PackageRegion(id="tuong", region=((0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)), fill="bottom_up")
    layout = layout_region(wall, (640, 360), grid=4, min_inside=0.5)
    ys = layout.pixels // 640
    for cell in range(layout.cells):
        rows = ys[layout.labels == cell]
        inner = ys[(layout.labels == cell) & layout.inner]
        assert inner.min() == rows.min() + TEXTURE_MARGIN
        assert inner.max() == rows.max() - TEXTURE_MARGIN
    assert layout.inner_counts.sum() == layout.inner.sum()
    road = layout_region(wall.model_copy(update={"fill": "left_right"}), (640, 360), grid=4, min_inside=0.5)
    xs = road.pixels % 640
    first = road.labels == 0
    assert xs[first & road.inner].min() == xs[first].min() + TEXTURE_MARGIN


def test_fill_fractions_follow_the_fill_order_inside_each_cell() -> None:
    wall = PackageRegion(id="tuong", region=((0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)), fill="bottom_up")
    layout = layout_region(wall, (640, 360), grid=4, min_inside=0.5)
    fractions = fill_fractions(layout, 640)
    ys = layout.pixels // 640
    for cell in range(layout.cells):
        mine = layout.labels == cell
        assert 0.0 < fractions[mine].min() < 0.01
        assert 0.99 < fractions[mine].max() < 1.0
        lowest, highest = ys[mine].max(), ys[mine].min()  # built from the bottom row up
        assert fractions[mine & (ys == lowest)].max() < fractions[mine & (ys == highest)].min()


def test_share_of_position_inverts_a_non_linear_curve() -> None:
    """A busy material dominates a part-built cell: position sqrt(share) must read back as the share."""
    curve = np.repeat(np.sqrt(CALIBRATION_SHARES)[:, None], 3, axis=1)
    shares = np.array([0.0, 0.25, 0.64])
    assert share_of_position(np.sqrt(shares), curve) == pytest.approx(shares, abs=0.02)
    flat = np.repeat(np.minimum(1.0, 2 * CALIBRATION_SHARES)[:, None], 1, axis=1)  # saturates at half built
    assert share_of_position(np.array([0.5]), flat) == pytest.approx([0.25])
