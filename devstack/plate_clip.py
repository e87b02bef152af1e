"""A short junction clip for the traffic integration test: vehicles with real-format plates, a stop line, a red phase.

A camera looks down a road (grey asphalt with lane dashes); cars drive from the top to the bottom of
the picture, one after another, each carrying a plate rendered by ``devstack.plate_render`` (exact
truth). They cross a stop line, then a pass line. The signal is green, then turns red while the last
car is still before the stop line, so exactly that car runs the red light; the signal's timeline is
part of the clip (``state_at``), for a simulated controller to publish over MQTT::

    python -m devstack.plate_clip --out DIR

writes ``DIR/plate_clip.mp4`` and prints the truth.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from devstack.plate_render import PlateShape, render_sample
from devstack.video_files import write_video

Image = npt.NDArray[np.uint8]
ROAD_GREY = 96
SignalColour = Literal["red", "green"]


@dataclass(frozen=True, slots=True)
class ClipVehicle:
    plate: str
    layout: str
    enter_s: float
    """When its box's bottom edge enters the picture at the top."""
    x: int
    """Left edge of its box, pixels."""
    runs_red: bool


@dataclass(frozen=True, slots=True)
class PlateClip:
    path: Path
    fps: int
    width: int
    height: int
    duration_s: float
    speed_px_s: float
    stop_line_y: float
    """Normalised y of the (horizontal) stop line."""
    pass_line_y: float
    red_from_s: float
    """Clip time the signal turns red (green before, red to the end)."""
    vehicles: tuple[ClipVehicle, ...]

    def state_at(self, t: float) -> SignalColour:
        return "red" if t >= self.red_from_s else "green"

    def crossing_s(self, vehicle: ClipVehicle, line_y: float) -> float:
        """Clip time the vehicle's bottom edge crosses a horizontal line at normalised ``line_y``."""
        return vehicle.enter_s + line_y * self.height / self.speed_px_s


def _road(width: int, height: int) -> Image:
    road = np.full((height, width, 3), ROAD_GREY, np.uint8)
    for x in (width // 3, 2 * width // 3):
        for y in range(0, height, 80):
            cv2.rectangle(road, (x - 3, y), (x + 3, y + 40), (200, 200, 200), -1)
    return road


def _sprite(seed: int, shape: PlateShape) -> tuple[Image, npt.NDArray[np.bool_], str, str]:
    """A vehicle picture, the mask of its body (not the road around it), its plate truth and layout."""
    sample = render_sample(seed, "clean", shape)
    image = sample.image
    road = image[:4, :4].reshape(-1, 3).mean(axis=0)
    mask = np.abs(image.astype(np.int16) - road.astype(np.int16)).max(axis=2) > 18
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8)).astype(bool)
    return image, mask, sample.truth, sample.spec.layout


def render_plate_clip(
    out_dir: Path, *, seed: int = 11, fps: int = 10, width: int = 1280, height: int = 720
) -> PlateClip:
    """Render the clip (if not there yet) and return its truth."""
    shapes: tuple[PlateShape, ...] = ("car_long", "car_square", "car_long")
    sprites = [_sprite(seed + i, shape) for i, shape in enumerate(shapes)]
    speed = 180.0
    enters = (0.5, 4.5, 8.5)
    stop_y, pass_y = 0.5, 0.7
    # Red from midway between the 2nd and the 3rd car's stop-line crossings.
    cross = [enter + stop_y * height / speed for enter in enters]
    red_from = (cross[1] + cross[2]) / 2
    xs = (420, 440, 430)
    vehicles = tuple(
        ClipVehicle(truth, layout, enter, x, runs_red=i == 2)
        for i, ((_, _, truth, layout), enter, x) in enumerate(zip(sprites, enters, xs, strict=True))
    )
    longest = max(s[0].shape[0] for s in sprites)
    duration = enters[-1] + (height + longest) / speed + 0.5
    clip = PlateClip(
        path=out_dir / "plate_clip.mp4",
        fps=fps,
        width=width,
        height=height,
        duration_s=round(duration, 2),
        speed_px_s=speed,
        stop_line_y=stop_y,
        pass_line_y=pass_y,
        red_from_s=red_from,
        vehicles=vehicles,
    )
    if clip.path.exists():
        return clip
    out_dir.mkdir(parents=True, exist_ok=True)
    road = _road(width, height)

    def frames() -> Iterator[Image]:
        for index in range(round(duration * fps)):
            t = index / fps
            frame = road.copy()
            for vehicle, (image, mask, _, _) in zip(vehicles, sprites, strict=True):
                bottom = round((t - vehicle.enter_s) * speed)
                top = bottom - image.shape[0]
                y1, y2 = max(0, top), min(height, bottom)
                if y2 <= y1:
                    continue
                part = slice(y1 - top, y2 - top)
                region = frame[y1:y2, vehicle.x : vehicle.x + image.shape[1]]
                region[mask[part]] = image[part][mask[part]]
            lamp = (0, 0, 230) if clip.state_at(t) == "red" else (0, 200, 0)
            cv2.circle(frame, (width - 40, 40), 14, lamp, -1)
            yield frame

    write_video(clip.path, frames(), fps=fps, bit_rate=8_000_000)
    return clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    clip = render_plate_clip(args.out)
    print(json.dumps({**asdict(clip), "path": str(clip.path)}, indent=2))


if __name__ == "__main__":
    main()
