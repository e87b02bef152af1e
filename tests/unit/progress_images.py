"""Synthetic site pictures for the progress core's unit tests: a fixed view with two work-package regions.

The view is deterministic per seed: sky, a textured static background (sheds, ground), and two regions whose
ground is bare earth until built; built parts are a brick pattern, filled left to right by a given share.
``light`` applies what a day does to the picture (gain, colour cast, haze, blur, noise).
"""

from __future__ import annotations

import datetime as dt

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.progress.config import PackageRegion, ProgressCameraConfig, ReferenceImage

SIZE = (640, 360)
REGIONS = {"mong": (0.08, 0.55, 0.48, 0.85), "tuong": (0.55, 0.50, 0.92, 0.80)}
"""Package id -> normalised (x0, y0, x1, y1) of its rectangular region."""
Image = npt.NDArray[np.uint8]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> npt.NDArray[np.float32]:
    noise = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), sigma)
    return np.asarray(noise / (noise.std() + 1e-6), dtype=np.float32)


def _brick(shape: tuple[int, int], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    h, w = shape
    image = np.empty((h, w, 3), dtype=np.float32)
    image[:] = (60, 80, 170)  # BGR brick red
    image += 18 * _smooth_noise(rng, (h, w), 3)[:, :, None]
    for y in range(0, h, 8):
        image[y : y + 2, :] = (190, 195, 200)  # mortar courses
        offset = 0 if (y // 8) % 2 == 0 else 9
        for x in range(offset, w, 18):
            image[y : y + 8, x : x + 2] = (190, 195, 200)
    return image


def base_view(seed: int = 0, size: tuple[int, int] = SIZE) -> npt.NDArray[np.float32]:
    """The static view (float BGR 0..255) with every region bare."""
    width, height = size
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), dtype=np.float32)
    sky_h = int(0.3 * height)
    ramp = np.linspace(0, 1, sky_h, dtype=np.float32)[:, None, None]
    image[:sky_h] = (230, 190, 140) * (1 - 0.3 * ramp)
    ground = np.array((70, 100, 130), dtype=np.float32)
    image[sky_h:] = ground + 25 * _smooth_noise(rng, (height - sky_h, width), 6)[:, :, None]
    image[sky_h:] += 10 * rng.normal(0, 1, (height - sky_h, width, 1)).astype(np.float32)
    # Static structures: a shed, a container and a fence, textured.
    cv2.rectangle(
        image, (int(0.05 * width), int(0.32 * height)), (int(0.3 * width), int(0.5 * height)), (150, 150, 140), -1
    )
    cv2.rectangle(
        image, (int(0.6 * width), int(0.33 * height)), (int(0.9 * width), int(0.47 * height)), (140, 90, 40), -1
    )
    for x in range(int(0.6 * width), int(0.9 * width), 7):
        cv2.line(image, (x, int(0.33 * height)), (x, int(0.47 * height)), (110, 70, 30), 2)
    for x in range(0, width, 23):
        cv2.line(image, (x, int(0.88 * height)), (x, int(0.97 * height)), (200, 200, 200), 2)
    return image


def render(done: dict[str, float], seed: int = 0, size: tuple[int, int] = SIZE, brick_seed: int = 7) -> Image:
    """The view with each package's region built left to right by ``done[package]`` (0..1)."""
    width, height = size
    image = base_view(seed, size)
    rng = np.random.default_rng(brick_seed)
    for package, share in done.items():
        x0, y0, x1, y1 = REGIONS[package]
        a, b, c, d = int(x0 * width), int(x1 * width), int(y0 * height), int(y1 * height)
        built = round((b - a) * min(max(share, 0.0), 1.0))
        if built:
            image[c:d, a : a + built] = _brick((d - c, built), rng)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def light(
    image: Image,
    *,
    gain: float = 1.0,
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0),
    haze: float = 0.0,
    blur: float = 0.0,
    noise: float = 2.0,
    seed: int = 1,
) -> Image:
    """What light and weather do to the picture."""
    out: npt.NDArray[np.float32] = image.astype(np.float32) * gain * np.array(cast, dtype=np.float32)
    if haze:
        out = out * (1 - haze) + 215.0 * haze
    if blur:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), blur), dtype=np.float32)
    out += np.random.default_rng(seed).normal(0, noise, out.shape).astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def config(done_reference: bool = True, **overrides: object) -> ProgressCameraConfig:
    packages = tuple(
        PackageRegion(id=pid, region=((x0, y0), (x1, y0), (x1, y1), (x0, y1)), fill="left_right", weight=w)
        for (pid, (x0, y0, x1, y1)), w in zip(REGIONS.items(), (3.0, 1.0), strict=True)
    )
    refs = [ReferenceImage(image="ref/ns.png", state="not_started")]
    if done_reference:
        refs.append(ReferenceImage(image="ref/done.png", state="done"))
    fields: dict[str, object] = {"project_id": "du-an-a", "packages": packages, "references": tuple(refs), **overrides}
    return ProgressCameraConfig.model_validate(fields)


def references(done_reference: bool = True) -> dict[str, Image]:
    refs = {"ref/ns.png": render({})}
    if done_reference:
        refs["ref/done.png"] = render(dict.fromkeys(REGIONS, 1.0), brick_seed=99)
    return refs


def local(day: dt.date, hour: float, timezone: str = "Asia/Ho_Chi_Minh") -> dt.datetime:
    """UTC instant of local ``hour`` on ``day`` at the site."""
    import zoneinfo

    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=zoneinfo.ZoneInfo(timezone))
    return (midnight + dt.timedelta(hours=hour)).astimezone(dt.UTC)
