"""One frame from a camera or a file, saved as an image for a technician to draw lines and zones on."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import cv2

from edge_agent.perception.types import Frame
from edge_agent.sources.config import ReaderConfig
from edge_agent.sources.pyav_reader import PyAVReader
from edge_agent.sources.urls import short_name
from ioc_common.backoff import BackoffConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_STEP_TIMEOUT_S = 300.0
"""The reader's own limit for one open or read; a longer --timeout keeps retrying within it."""
JPEG_QUALITY = 95
"""High enough that thin lane markings stay sharp for drawing lines on."""


class SnapshotError(RuntimeError):
    """No frame could be taken; the message says why (for the technician)."""


def default_snapshot_path(url: str, now: dt.datetime) -> Path:
    return Path(f"snapshot-{short_name(url)}-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.jpg")


def check_image_path(path: Path) -> None:
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: the file name must end in .jpg, .jpeg or .png")


def grab_frame(url: str, *, timeout_s: float, rtsp_transport: str = "tcp") -> Frame:
    """The first clean frame of ``url`` (RTSP, HTTP or a file), within ``timeout_s`` seconds overall."""
    per_step_s = min(timeout_s, MAX_STEP_TIMEOUT_S)
    config = ReaderConfig.model_validate(
        {
            "url": url,
            "rtsp_transport": rtsp_transport,
            "realtime": False,
            "on_end": "stop",
            "open_timeout_s": per_step_s,
            "read_timeout_s": per_step_s,
            "stall_timeout_s": per_step_s,
            # Keep retrying within the deadline: a camera busy with another client often answers on a second try.
            "reconnect": BackoffConfig(base_s=0.5, ceiling_s=1.0),
            "timestamps": "arrival",
        }
    )
    reader = PyAVReader("snapshot", config)
    taken: list[Frame] = []
    failures: list[str] = []

    def take_one() -> None:
        frames = reader.frames()
        try:
            for frame in frames:
                taken.append(frame)
                return
        except Exception as error:  # reported to the technician below, not lost in a thread
            failures.append(f"{type(error).__name__}: {error}")
        finally:
            frames.close()

    worker = threading.Thread(target=take_one, name="snapshot", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not taken:
        reader.stop()
        worker.join(timeout_s)
        stats = reader.stats()
        problem = (failures and failures[0]) or stats.last_error or stats.reason or "the source sent nothing"
        raise SnapshotError(f"no frame from the source within {timeout_s:g} s: {problem}")
    return taken[0]


def save_image(frame: Frame, path: Path) -> None:
    check_image_path(path)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if path.suffix.lower() in (".jpg", ".jpeg") else []
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), frame.image, params):
        raise OSError(f"cannot write {path}")
