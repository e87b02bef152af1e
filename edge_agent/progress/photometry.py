"""Photometric alignment of a frame to the camera's reference picture, on the static background.

Light and weather change a fixed view's colours almost linearly: exposure gain, white balance (a per-channel gain),
haze (an added airlight) and overcast desaturation (channels mixed towards grey) are all a 3x3 colour matrix plus
an offset. We fit that map from the frame to the reference on pixels that cannot change as the site is built:
outside every package region, and textured in the reference (edges of sheds, trees, kerbs; flat sky is left out
because its colour changes with the weather far more than the ground's). Least squares, refitted once on the 70 %
best-fitting pixels (a worker or a parked truck in the background is an outlier). The mapped frame is then in the
reference's photometric space, so cell features can be compared with the references' directly.

The same alignment gives a blur measure that noise and rain streaks cannot fake: the high-pass detail of the mapped
frame projected on the reference's high-pass detail over those pixels. Blur removes it, added noise or streaks are
uncorrelated with it and average out; 1 = as sharp as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
MAX_FIT_PIXELS = 12_000
KEEP_SHARE = 0.7
_HP_SIGMAS = (0.7, 2.5)


def high_pass(gray: FloatArray) -> FloatArray:
    """Band of fine detail (difference of two Gaussians): texture and edges, not lighting, little pixel noise."""
    fine = cv2.GaussianBlur(gray, (0, 0), _HP_SIGMAS[0])
    coarse = cv2.GaussianBlur(gray, (0, 0), _HP_SIGMAS[1])
    return np.asarray(fine - coarse, dtype=np.float32)


def to_gray(image: FloatArray) -> FloatArray:
    """Luminance (BT.601 weights) of a float BGR image."""
    return np.asarray(image @ np.array([0.114, 0.587, 0.299], dtype=np.float32), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class PhotometricReference:
    """The reference's static textured pixels: their colours and their high-pass detail."""

    index: npt.NDArray[np.int64]  # flat pixel indices used for fitting
    colours: FloatArray  # (k, 3) reference BGR 0..1 at index
    detail: FloatArray  # (k,) reference high-pass at index
    detail_energy: float

    @classmethod
    def build(cls, reference: npt.NDArray[np.uint8], static: npt.NDArray[np.bool_]) -> PhotometricReference:
        """``static``: pixels outside every package region. Falls back to the whole picture when too few."""
        image = reference.astype(np.float32) / 255.0
        gray = to_gray(image)
        gx = cv2.Sobel(cv2.GaussianBlur(gray, (0, 0), 1.0), cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(cv2.GaussianBlur(gray, (0, 0), 1.0), cv2.CV_32F, 0, 1)
        magnitude = cv2.magnitude(gx, gy)
        mask = static if static.mean() >= 0.05 else np.ones_like(static)
        textured = mask & (magnitude >= np.percentile(magnitude[mask], 50.0))
        index = np.flatnonzero(textured)
        if len(index) > MAX_FIT_PIXELS:
            index = index[:: len(index) // MAX_FIT_PIXELS + 1]
        detail = high_pass(gray).reshape(-1)[index]
        return cls(
            index=index.astype(np.int64),
            colours=image.reshape(-1, 3)[index],
            detail=detail,
            detail_energy=max(float(np.dot(detail, detail)), 1e-9),
        )


@dataclass(frozen=True, slots=True)
class Alignment:
    """frame_bgr(0..1) @ matrix + offset ~ reference_bgr(0..1)."""

    matrix: FloatArray  # (3, 3)
    offset: FloatArray  # (3,)

    def apply(self, image: npt.NDArray[np.uint8]) -> FloatArray:
        """The frame in the reference's photometric space, float BGR (about 0..1)."""
        transform = np.hstack([self.matrix.T, self.offset[:, None]]).astype(np.float32)  # (3, 4) for OpenCV
        return np.asarray(cv2.transform(image.astype(np.float32) * np.float32(1 / 255), transform), dtype=np.float32)


IDENTITY = Alignment(np.eye(3, dtype=np.float32), np.zeros(3, dtype=np.float32))


def align(image: npt.NDArray[np.uint8], reference: PhotometricReference) -> Alignment:
    """Fit the colour map from ``image`` to the reference on the static pixels (trimmed least squares)."""
    frame = image.reshape(-1, 3)[reference.index].astype(np.float32) / 255.0
    design = np.hstack([frame, np.ones((len(frame), 1), dtype=np.float32)])
    target = reference.colours
    keep = np.ones(len(frame), dtype=bool)
    solution = np.zeros((4, 3), dtype=np.float32)
    for _ in range(2):
        solution = np.linalg.lstsq(design[keep], target[keep], rcond=1e-6)[0].astype(np.float32)
        residual = np.abs(design @ solution - target).sum(axis=1)
        keep = residual <= np.quantile(residual, KEEP_SHARE)
    return Alignment(matrix=solution[:3], offset=solution[3])


def sharpness(mapped: FloatArray, reference: PhotometricReference) -> float:
    """Share of the reference's fine detail present in the aligned frame (1 = as sharp, ~0 = very blurred)."""
    detail = high_pass(to_gray(mapped)).reshape(-1)[reference.index]
    return float(np.dot(detail, reference.detail)) / reference.detail_energy
