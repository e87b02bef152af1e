"""``edge-agent progress check``: judge one still (a snapshot) the way a site camera's agent would.

A technician who has drawn the package regions and captured the reference images checks them on site: the
still's quality verdict (usable, or rejected and why) and each package's % complete and confidence. The still
is judged as a sample taken in the middle of the day's daylight window, by the very estimator the agent runs.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.config import AgentConfig
from edge_agent.progress.config import ProgressCameraConfig, parse_hhmm
from edge_agent.progress.estimator import FrameAssessment, ProgressEstimator
from edge_agent.progress.references import check_sizes, load_references


class CheckError(ValueError):
    """The config cannot be checked (unknown camera, no ``progress:``, bad references)."""


@dataclass(frozen=True, slots=True)
class StillCheck:
    camera_id: str
    config: ProgressCameraConfig
    image_size: tuple[int, int]
    reference_size: tuple[int, int]
    assessment: FrameAssessment

    @property
    def project_percent(self) -> float | None:
        """The camera's project figure of this still (weighted over its packages), None when rejected."""
        readings = {r.package_id: r.percent for r in self.assessment.packages}
        if not readings:
            return None
        weights = {p.id: p.weight for p in self.config.packages if p.id in readings}
        total = sum(weights.values())
        return sum(readings[pid] * weight for pid, weight in weights.items()) / total if total else None

    def document(self) -> dict[str, object]:
        """JSON-ready (``--json``)."""
        quality = self.assessment.quality
        return {
            "camera_id": self.camera_id,
            "project_id": self.config.project_id,
            "image_size": list(self.image_size),
            "reference_size": list(self.reference_size),
            "usable": quality.usable,
            "reasons": list(quality.reasons),
            "quality": {
                "score": quality.score,
                "brightness": quality.brightness,
                "sharpness": quality.sharpness,
                "fog": quality.fog,
                "occlusion": quality.occlusion,
            },
            "packages": [
                {"id": r.package_id, "percent": r.percent, "confidence": r.confidence, "occluded": r.occluded}
                for r in self.assessment.packages
            ],
            "project_percent": self.project_percent,
        }


def progress_camera(config: AgentConfig, camera_id: str | None) -> tuple[str, ProgressCameraConfig]:
    """The site camera ``camera_id`` (default: the config's only site camera)."""
    sites = [(camera.id, camera.progress) for camera in config.cameras if camera.progress is not None]
    if not sites:
        raise CheckError("no camera of this config has a progress: section")
    if camera_id is None:
        if len(sites) > 1:
            raise CheckError(f"give --camera, one of {[cid for cid, _ in sites]}")
        return sites[0]
    for cid, progress in sites:
        if cid == camera_id:
            return cid, progress
    raise CheckError(
        f"camera {camera_id!r} is not a site camera of this config (site cameras: {[c for c, _ in sites]})"
    )


def sample_time(config: ProgressCameraConfig, day: dt.date) -> dt.datetime:
    """The middle of ``day``'s daylight window at the site, UTC: a time the estimator samples."""
    zone = zoneinfo.ZoneInfo(config.timezone)
    start = dt.datetime.combine(day, parse_hhmm(config.daylight.start), tzinfo=zone)
    end = dt.datetime.combine(day, parse_hhmm(config.daylight.end), tzinfo=zone)
    return (start + (end - start) / 2).astimezone(dt.UTC)


def read_still(path: Path) -> npt.NDArray[np.uint8]:
    """The still as BGR; ``OSError`` when it is missing or not an image."""
    if not path.is_file():
        raise OSError(f"{path} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise OSError(f"{path} is not a readable JPEG/PNG")
    return np.ascontiguousarray(image, dtype=np.uint8)


def check_still(
    camera_id: str,
    config: ProgressCameraConfig,
    image: npt.NDArray[np.uint8],
    references: Mapping[str, npt.NDArray[np.uint8]] | None = None,
    base_dir: Path | None = None,
) -> StillCheck:
    """Judge ``image`` as one sample of the camera (references read from disk unless given)."""
    refs = dict(references) if references is not None else load_references(camera_id, config, base_dir)
    reference_size = check_sizes(camera_id, refs)
    try:
        estimator = ProgressEstimator(config, refs)
    except ValueError as error:
        raise CheckError(f"camera {camera_id}: {error}") from error
    when = sample_time(config, dt.datetime.now(dt.UTC).date())
    assessment = estimator.observe(image, when)
    if assessment is None:  # cannot happen for the first sample at midday; kept as a clear error, not a crash
        raise CheckError(f"camera {camera_id}: the estimator took no sample at {when.isoformat()}")
    return StillCheck(camera_id, config, (int(image.shape[1]), int(image.shape[0])), reference_size, assessment)


def format_check(check: StillCheck, image_name: str) -> str:
    """The technician's report: verdict, then one line per package."""
    quality = check.assessment.quality
    names = {p.id: p.name or p.id for p in check.config.packages}
    w, h = check.image_size
    rw, rh = check.reference_size
    lines = [
        f"camera {check.camera_id} (project {check.config.project_id}): {image_name} {w}x{h}, references {rw}x{rh}"
    ]
    if (w, h) != (rw, rh):
        lines.append("  note: the still is not the references' size; it is scaled (aspect ratios must match)")
    measures = (
        f"score {quality.score:.2f}; brightness {quality.brightness:.2f}, sharpness {quality.sharpness:.2f}, "
        f"fog {quality.fog:.2f}, occlusion {quality.occlusion:.2f}"
    )
    verdict = "usable" if quality.usable else f"rejected: {', '.join(quality.reasons)}"
    lines.append(f"quality: {verdict} ({measures})")
    if check.assessment.packages:
        lines.append(f"{'package':<20} {'%':>6} {'confidence':>10} {'hidden':>7}  name")
        for r in check.assessment.packages:
            name = names.get(r.package_id, "")
            lines.append(f"{r.package_id:<20} {r.percent:6.1f} {r.confidence:10.2f} {r.occluded:7.2f}  {name}")
        project = check.project_percent
        if project is not None:
            lines.append(f"{'project (weighted)':<20} {project:6.1f}")
    else:
        lines.append("packages: not judged (the agent would not use this frame)")
    return "\n".join(lines)
