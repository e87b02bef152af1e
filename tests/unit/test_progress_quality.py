"""Frame quality gates on synthetic pictures: night, glare, blur (rain on the lens), fog and occlusion are
rejected with their reason; a day's ordinary light changes are not."""

from __future__ import annotations

import pytest

from edge_agent.progress.appearance import AppearanceModel, reference_sets, to_working, working_size
from edge_agent.progress.config import QualityConfig
from edge_agent.progress.photometry import sharpness
from edge_agent.progress.quality import FrameQuality, QualityReference, judge, measure
from tests.unit import progress_images as pi

CONFIG = QualityConfig()


@pytest.fixture(scope="module")
def model() -> AppearanceModel:
    config = pi.config()
    size = working_size(*pi.SIZE, config.appearance.working_width)
    refs = [(s, p, to_working(i, size)) for s, p, i in reference_sets(config, pi.references())]
    return AppearanceModel(config, refs, size)


def quality_of(model: AppearanceModel, image: pi.Image, occlusion: float = 0.0) -> FrameQuality:
    reference = QualityReference.from_measures([measure(pi.render({}), 1.0)])
    sharp = sharpness(model.align(image), model.photometric)
    return judge(measure(image, sharp), reference, occlusion, CONFIG)


@pytest.mark.parametrize(
    "light",
    [
        {},
        {"gain": 0.6},
        {"gain": 1.3},
        {"cast": (0.8, 1.0, 1.2)},
        {"cast": (1.2, 1.0, 0.8)},
        {"haze": 0.25},
        {"blur": 0.6},
        {"noise": 5.0},
    ],
)
def test_ordinary_days_are_usable(model: AppearanceModel, light: dict[str, object]) -> None:
    quality = quality_of(model, pi.light(pi.render({"mong": 0.4}), **light))  # type: ignore[arg-type]
    assert quality.usable, quality
    assert quality.score >= CONFIG.min_score
    assert 0.6 <= quality.sharpness <= 1.3


@pytest.mark.parametrize(
    ("light", "reason"),
    [
        ({"gain": 0.1}, "dark"),
        ({"gain": 0.02, "noise": 4.0}, "dark"),
        ({"gain": 3.0}, "washed_out"),
        ({"blur": 2.5}, "blurred"),
        ({"blur": 4.0, "gain": 0.8}, "blurred"),
        ({"haze": 0.75}, "fogged"),
    ],
)
def test_bad_frames_are_rejected_with_their_reason(
    model: AppearanceModel, light: dict[str, object], reason: str
) -> None:
    quality = quality_of(model, pi.light(pi.render({"mong": 0.4}), **light))  # type: ignore[arg-type]
    assert not quality.usable
    assert reason in quality.reasons, quality


def test_black_frame_is_dark_and_scores_low(model: AppearanceModel) -> None:
    quality = quality_of(model, pi.light(pi.render({}), gain=0.0, noise=0.0))
    assert quality.reasons[0] == "dark"
    assert quality.brightness == 0.0
    assert quality.score < 0.5


def test_occlusion_over_the_limit_rejects(model: AppearanceModel) -> None:
    image = pi.render({})
    assert quality_of(model, image, occlusion=0.2).usable
    occluded = quality_of(model, image, occlusion=0.6)
    assert occluded.reasons == ("occluded",)
    assert occluded.occlusion == 0.6


def test_fog_grows_with_haze(model: AppearanceModel) -> None:
    fogs = [quality_of(model, pi.light(pi.render({}), haze=h)).fog for h in (0.0, 0.3, 0.6, 0.9)]
    assert fogs == sorted(fogs)
    assert fogs[0] < 0.1 < fogs[-1]
    assert fogs[-1] > CONFIG.max_fog


def test_sharpness_falls_with_blur_but_not_with_noise(model: AppearanceModel) -> None:
    image = pi.render({"tuong": 1.0})
    blurs = [quality_of(model, pi.light(image, blur=b)).sharpness for b in (0.0, 1.0, 2.0, 3.0)]
    assert blurs == sorted(blurs, reverse=True)
    noisy = quality_of(model, pi.light(image, blur=3.0, noise=12.0)).sharpness
    assert noisy < CONFIG.min_sharpness  # noise does not make a blurred frame look sharp
