"""Typed values that flow through the perception core: Frame -> Detections.

Both are immutable: stages return new values and never change their input, so a
frame or a detection set can be shared between stages and threads safely.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture with the time the source says it was taken."""

    image: npt.NDArray[np.uint8]
    """BGR, shape (height, width, 3)."""
    source_id: str
    sequence: int
    """Position of the frame in its stream, from 0."""
    timestamp: dt.datetime
    """UTC wall-clock time of capture, from the stream (PTS mapped to wall clock)."""
    received_monotonic: float = 0.0
    """``time.monotonic()`` when the reader handed the frame to analytics (0 = unknown); for latency."""

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"frame image must be HxWx3 uint8, got {self.image.shape} {self.image.dtype}")
        if self.timestamp.tzinfo is None:
            raise ValueError("frame timestamp must be timezone-aware (UTC)")
        self.image.flags.writeable = False

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, slots=True)
class Detections:
    """Parallel arrays describing n objects in one frame.

    ``xyxy`` holds pixel boxes (x1, y1, x2, y2); ``class_id`` indexes
    ``class_names`` (shared by every Detections of one detector); ``tracker_id``
    is -1 until a tracker assigns ids. Filter with a boolean mask: ``dets[dets.confidence > 0.4]``.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    class_names: tuple[str, ...]
    tracker_id: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __post_init__(self) -> None:
        # Always copy: the caller may keep writing to its arrays, and ours are frozen for sharing.
        xyxy = np.array(self.xyxy, dtype=np.float32).reshape(-1, 4)
        confidence = np.array(self.confidence, dtype=np.float32).reshape(-1)
        class_id = np.array(self.class_id, dtype=np.int64).reshape(-1)
        n = len(confidence)
        tracker_id = (
            np.full(n, -1, dtype=np.int64)
            if len(self.tracker_id) == 0
            else np.array(self.tracker_id, dtype=np.int64).reshape(-1)
        )
        if not (len(xyxy) == len(class_id) == len(tracker_id) == n):
            raise ValueError(
                f"detections arrays disagree in length: xyxy={len(xyxy)} confidence={n} "
                f"class_id={len(class_id)} tracker_id={len(tracker_id)}"
            )
        if n and (class_id.min() < 0 or class_id.max() >= len(self.class_names)):
            raise ValueError(f"class_id outside 0..{len(self.class_names) - 1}")
        if n and not np.all(np.isfinite(xyxy)):
            raise ValueError("detection boxes must be finite")
        for name, array in (
            ("xyxy", xyxy),
            ("confidence", confidence),
            ("class_id", class_id),
            ("tracker_id", tracker_id),
        ):
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    @classmethod
    def empty(cls, class_names: tuple[str, ...]) -> Self:
        return cls(
            xyxy=np.empty((0, 4), dtype=np.float32),
            confidence=np.empty(0, dtype=np.float32),
            class_id=np.empty(0, dtype=np.int64),
            class_names=class_names,
        )

    def __len__(self) -> int:
        return len(self.confidence)

    def __getitem__(self, index: BoolArray | IntArray | slice) -> Detections:
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            class_names=self.class_names,
            tracker_id=self.tracker_id[index],
        )

    def with_tracker_ids(self, tracker_id: IntArray) -> Detections:
        return Detections(self.xyxy, self.confidence, self.class_id, self.class_names, tracker_id)

    @property
    def names(self) -> list[str]:
        return [self.class_names[i] for i in self.class_id]

    def anchor_points(self, anchor: str = "bottom_center") -> FloatArray:
        """Point of each box that counts as the object's position: (n, 2)."""
        x1, y1, x2, y2 = self.xyxy.T
        cx = (x1 + x2) / 2
        if anchor == "center":
            return np.stack([cx, (y1 + y2) / 2], axis=1).astype(np.float32)
        if anchor == "bottom_center":
            return np.stack([cx, y2], axis=1).astype(np.float32)
        raise ValueError(f"unknown anchor {anchor!r}: use 'center' or 'bottom_center'")
