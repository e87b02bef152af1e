"""Write a sequence of BGR images as a video file: the one encoder loop for clips, tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt


def write_video(
    path: Path,
    images: Iterable[npt.NDArray[np.uint8]],
    *,
    fps: int,
    codec: str = "libx264",
    options: Mapping[str, str] | None = None,
    pts: Iterable[int] | None = None,
    time_base: Fraction | None = None,
    bit_rate: int | None = None,
) -> Path:
    """Encode ``images`` (HxWx3 BGR, all one size) into ``path``; returns ``path``.

    Frame i gets ``pts[i]`` in ``time_base`` (default: i in 1/fps), so a clip can have gaps or an
    irregular rate. ``options`` go to the encoder (e.g. x264's ``g``, ``bf``, ``x264-params``).
    """
    base = time_base or Fraction(1, fps)
    stamps = iter(pts) if pts is not None else None
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps), options=dict(options or {}))
        if not isinstance(stream, av.VideoStream):
            raise TypeError(f"{codec} did not give a video stream")
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = base
        if time_base is not None:
            stream.time_base = base
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        sized = False
        for index, image in enumerate(images):
            if not sized:
                stream.height, stream.width = image.shape[:2]
                sized = True
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = next(stamps) if stamps is not None else index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
