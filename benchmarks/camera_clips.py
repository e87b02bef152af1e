"""Rendered traffic clips re-encoded the way IP cameras send them, for throughput benchmarks.

The scene renderer's clips are smooth synthetic pictures that x264 squeezes into about 1.5 Mbit/s at
1080p, and decoding them is several times cheaper than decoding a real camera. Decode cost follows the
bitrate and the picture's fine detail, so each clip is re-encoded with light sensor noise at a camera's
constant bitrate (H.264 main-stream settings: 4 Mbit/s at 1080p25, 2 Mbit/s at 720p25, a keyframe every
2 s, no B-frames). On this box that brings 1080p decoding to about 270-360 frames/s, the speed measured
for real 1080p25 footage (see /work/shared/notes/environment.md's decode table).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from devstack.scene import SceneParams, render_scene
from devstack.video_files import write_video

CAMERA_BITRATE_BPS = {1080: 4_000_000, 720: 2_000_000}
NOISE_SIGMA = 3.0
"""Sensor noise (grey levels, Gaussian) added before encoding: what keeps the bitrate honest."""
ENCODER_VERSION = 1
"""Bump when the re-encoding changes, so cached clips are made again."""


@dataclass(frozen=True, slots=True)
class CameraClip:
    name: str
    width: int
    height: int
    fps: int
    seconds: float
    vehicles_per_minute: float

    @property
    def bitrate_bps(self) -> int:
        return CAMERA_BITRATE_BPS.get(self.height, self.width * self.height * 2)

    def digest(self) -> str:
        canonical = json.dumps({"encoder": ENCODER_VERSION, "noise": NOISE_SIGMA, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def camera_clip(clip: CameraClip, directory: Path) -> Path:
    """The clip as a camera would send it, made once and cached in ``directory`` by its parameters."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{clip.name}.mp4"
    stamp = directory / f"{clip.name}.digest"
    if path.is_file() and stamp.is_file() and stamp.read_text(encoding="ascii") == clip.digest():
        return path
    params = SceneParams(
        width=clip.width,
        height=clip.height,
        fps=clip.fps,
        duration_s=clip.seconds,
        vehicles_per_minute=clip.vehicles_per_minute,
    )
    rendered, _ = render_scene(params, directory / "rendered", clip.name)
    partial = path.with_suffix(".partial.mp4")
    _reencode(rendered, partial, clip)
    partial.replace(path)
    stamp.write_text(clip.digest(), encoding="ascii")
    return path


def _reencode(source: Path, target: Path, clip: CameraClip) -> None:
    rng = np.random.default_rng(0)
    rate = str(clip.bitrate_bps)
    options = {
        "preset": "veryfast",
        "maxrate": rate,
        "bufsize": str(2 * clip.bitrate_bps),
        "x264-params": f"keyint={2 * clip.fps}:min-keyint={2 * clip.fps}:scenecut=0:bframes=0:nal-hrd=cbr",
    }
    with av.open(str(source)) as reader:
        noisy = (
            np.clip(image + rng.normal(0.0, NOISE_SIGMA, image.shape), 0, 255).astype(np.uint8)
            for image in (picture.to_ndarray(format="bgr24").astype(np.float32) for picture in reader.decode(video=0))
        )
        write_video(target, noisy, fps=clip.fps, options=options, bit_rate=clip.bitrate_bps)
