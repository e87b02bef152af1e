"""JPEG pictures of preview samples: annotated and downscaled for viewing, or raw for drawing lines.

Encoding runs in the HTTP client threads, never in the analytics thread. Each camera's last
annotated picture is cached by sample sequence, so several viewers of one camera cost one encode.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.annotate import annotate
from edge_agent.preview.feed import PreviewSample

Image = npt.NDArray[np.uint8]


def downscale(image: Image, max_width: int) -> Image:
    """``image`` no wider than ``max_width`` (aspect kept); the input itself when it already fits."""
    height, width = image.shape[:2]
    if width <= max_width:
        return image
    new_height = max(1, round(height * max_width / width))
    return np.asarray(cv2.resize(image, (max_width, new_height), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def encode_jpeg(image: Image, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} picture as JPEG")
    return bytes(buffer)


class JpegRenderer:
    """Annotated preview JPEGs, one encode per camera and sample however many clients watch."""

    def __init__(self, *, max_width: int, quality: int) -> None:
        self.max_width = max_width
        self.quality = quality
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, bytes]] = {}
        self.encodes = 0
        """Pictures encoded (cache misses); the cost of the preview."""

    def preview(self, camera_id: str, sample: PreviewSample) -> bytes:
        with self._lock:
            cached = self._cache.get(camera_id)
        if cached is not None and cached[0] == sample.sequence:
            return cached[1]
        # Downscale first: drawing and encoding a 640-wide picture is far cheaper than a 1080p one.
        picture = annotate(downscale(sample.frame.image, self.max_width), sample.overlay)
        jpeg = encode_jpeg(picture, self.quality)
        with self._lock:
            self.encodes += 1
            current = self._cache.get(camera_id)
            if current is None or current[0] < sample.sequence:
                self._cache[camera_id] = (sample.sequence, jpeg)
        return jpeg

    def raw(self, sample: PreviewSample) -> bytes:
        """The frame as the camera sent it, full size and unannotated (to draw lines and zones on)."""
        return encode_jpeg(sample.frame.image, self.quality)
