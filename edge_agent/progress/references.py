"""Reading a site camera's reference images (``progress.references[].image``) from disk.

They are read once, when the agent starts (and by ``validate-config`` and ``edge-agent progress check``): a
missing or unreadable picture, or pictures of different sizes, stop the start with an error naming the camera
and the path, rather than a camera that silently reports nothing for weeks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.progress.config import ProgressCameraConfig

Image = npt.NDArray[np.uint8]


class ReferenceImageError(ValueError):
    """A reference image is missing, unreadable or of another size than the camera's others."""


def reference_path(image: str, base_dir: Path | None = None) -> Path:
    """Where ``image`` (as written in the config) is: relative paths are from ``base_dir`` (default: the cwd)."""
    path = Path(image).expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path


def load_references(camera_id: str, config: ProgressCameraConfig, base_dir: Path | None = None) -> dict[str, Image]:
    """Every reference image of the camera, BGR, keyed by the path string as written in the config.

    Raises ``ReferenceImageError`` naming the camera and the path of the first picture that cannot be used.
    """
    images: dict[str, Image] = {}
    for reference in config.references:
        if reference.image in images:
            continue
        path = reference_path(reference.image, base_dir)
        if not path.is_file():
            raise ReferenceImageError(
                f"camera {camera_id}: reference image {path} does not exist (capture it with edge-agent snapshot)"
            )
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            raise ReferenceImageError(f"camera {camera_id}: reference image {path} is not a readable JPEG/PNG")
        images[reference.image] = np.ascontiguousarray(image, dtype=np.uint8)
    check_sizes(camera_id, images)
    return images


def check_sizes(camera_id: str, images: Mapping[str, Image]) -> tuple[int, int]:
    """The one (width, height) of the references; ``ReferenceImageError`` when they differ."""
    sizes = {name: (int(image.shape[1]), int(image.shape[0])) for name, image in images.items()}
    distinct = sorted(set(sizes.values()))
    if len(distinct) > 1:
        listed = ", ".join(f"{name} {w}x{h}" for name, (w, h) in sizes.items())
        raise ReferenceImageError(
            f"camera {camera_id}: reference images must all have one size (the camera's picture), got {listed}"
        )
    if not distinct:
        raise ReferenceImageError(f"camera {camera_id}: no reference image")
    return distinct[0]
