"""The demo's construction site: weeks of a generated site replayed through a site camera, its approved plan
written as a PMU keeps it (CSV), a PMU user, and a live site camera for the meeting view.

The replay camera reads an H.264 file whose frames are hours apart (``devstack.site_video``), with its
``start_time`` set so that the site's last day is yesterday: the agent sees the weeks pass in seconds, sends a
daily progress figure per work package with its timelapse keyframe, and central compares them with the plan
today. The scenario stalls for a week, so the project ends more than 10 points behind and "chậm tiến độ 10%"
fires. The live camera loops a short clip of the site as it stands (workers moving) over RTSP, for the
``/projects`` page's live grid and the hourly activity figures.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from devstack.errors import DevstackError
from devstack.site_scenes import (
    SiteScenario,
    default_scenario,
    planned_package,
    progress_config,
    reference_images,
    render_site,
    true_alert_day,
)
from devstack.site_video import first_frame_time, write_site_video
from devstack.traffic_site import CentralApi
from devstack.video_files import write_video

SITE_CAMERA_ID = "cam-cong-truong"
"""The replay camera: weeks of the site in one file."""
LIVE_CAMERA_ID = "cam-cong-truong-live"
"""The live camera: the site as it stands, looping over RTSP."""
PMU_USER = "pmu-demo"
FRAMES_PER_DAY = 12
SIZE = (640, 360)
DAYS_AFTER_ALERT = 4
"""The replay ends this many days after the true gap first exceeds 10 points, so the alert is open today."""
CRITICAL_PACKAGES = ("tang-1", "tang-2")
"""On the critical path: the building's frame floors (each gets its own alert subject)."""
LIVE_SECONDS, LIVE_FPS = 20, 2


@dataclass(frozen=True)
class DemoSite:
    scenario: SiteScenario
    video: Path
    live_clip: Path
    plan_csv: Path
    start_time: dt.datetime
    """When the replay file's first frame was taken (its reader's ``start_time``)."""
    progress: dict[str, Any]
    """The cameras' ``progress:`` section (reference images by absolute path)."""

    @property
    def project_id(self) -> str:
        return str(self.progress["project_id"])


def demo_scenario(today: dt.date) -> SiteScenario:
    """The default site, started so that its last simulated day is yesterday and the alert is due today."""
    alert_day = true_alert_day(default_scenario(seed=0))
    if alert_day is None:  # the default scenario is built to fall behind; guard against a changed generator
        raise RuntimeError("the default site scenario never falls 10 points behind its plan")
    days = alert_day + DAYS_AFTER_ALERT
    return default_scenario(seed=0, days=days, start=today - dt.timedelta(days=days))


def prepare_site(directory: Path, today: dt.date) -> DemoSite:
    """Render (cached per start date) the replay file, the live clip and the references; write the plan CSV."""
    scenario = demo_scenario(today)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"site-{scenario.start.isoformat()}-{scenario.days}d"
    video = directory / f"{stem}.mp4"
    if not video.is_file():
        partial = video.with_suffix(".partial.mp4")
        write_site_video(partial, scenario, FRAMES_PER_DAY, SIZE)
        partial.replace(video)
    live_clip = directory / f"{stem}-live.mp4"
    if not live_clip.is_file():
        partial = live_clip.with_suffix(".partial.mp4")
        write_live_clip(partial, scenario)
        partial.replace(live_clip)
    references = {}
    for name, image in reference_images(scenario, SIZE).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), image):
            raise RuntimeError(f"could not write the reference image {path}")
        references[name] = str(path)
    progress = progress_config(scenario).model_dump(mode="json")
    for reference in progress["references"]:
        reference["image"] = references[reference["image"]]
    return DemoSite(
        scenario=scenario,
        video=video,
        live_clip=live_clip,
        plan_csv=write_plan_csv(directory / "ke-hoach.csv", scenario),
        start_time=first_frame_time(scenario, FRAMES_PER_DAY),
        progress=progress,
    )


def write_live_clip(path: Path, scenario: SiteScenario) -> Path:
    """A short clip of the site at its last simulated noon, clear weather, workers moving between frames."""
    noon = scenario.local(scenario.days - 1, 12.0)
    frames = (
        render_site(scenario, noon, "crowd", np.random.default_rng(index), SIZE).image
        for index in range(LIVE_SECONDS * LIVE_FPS)
    )
    return write_video(path, frames, fps=LIVE_FPS, options={"g": str(LIVE_FPS), "crf": "26", "preset": "veryfast"})


def write_plan_csv(path: Path, scenario: SiteScenario) -> Path:
    """The approved plan as a PMU's spreadsheet saved as CSV: one row per package, planned % at month ends."""
    dates = sorted(
        {scenario.start + dt.timedelta(days=d) for p in scenario.packages for d in (p.plan_start, p.plan_finish)}
    )
    header = ["STT", "Mã hạng mục", "Tên hạng mục", "Tỷ trọng (%)", "Bắt đầu", "Kết thúc", "Trọng yếu"]
    header += [f"{date:%d/%m/%Y}" for date in dates]
    total = sum(p.weight for p in scenario.packages)
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        writer = csv.writer(file, delimiter=";")
        writer.writerow(header)
        for number, package in enumerate(scenario.packages, start=1):
            start = scenario.start + dt.timedelta(days=package.plan_start)
            finish = scenario.start + dt.timedelta(days=package.plan_finish)
            planned = [planned_package(package, (date - scenario.start).days) for date in dates]
            writer.writerow(
                [
                    number,
                    package.id,
                    package.name,
                    _percent(100 * package.weight / total),
                    f"{start:%d/%m/%Y}",
                    f"{finish:%d/%m/%Y}",
                    "x" if package.id in CRITICAL_PACKAGES else "",
                    *(_percent(value) for value in planned),
                ]
            )
    return path


def _percent(value: float) -> str:
    """Vietnamese decimal comma, as Excel writes it here: 12,5%."""
    return f"{value:.4g}".replace(".", ",") + "%"


def site_cameras(site: DemoSite, live_url: str) -> list[dict[str, Any]]:
    """The two site cameras of the demo agent's config."""
    # The SSD keeps workers (Person) and machinery and trucks (its generic Vehicle: the activity group "machine").
    detector = {"backend": "ssd_mobilenet_oidv4", "label_map": {"Person": "person", "Vehicle": "other_vehicle"}}
    replay = {
        "id": SITE_CAMERA_ID,
        "name": "Công trường trường học - toàn cảnh (phát lại 5 tuần) / school site, 5 weeks replayed",
        "url": str(site.video),
        "realtime": False,
        "on_end": "stop",
        "decode": "keyframes",
        "queue_policy": "block",
        "start_time": site.start_time.isoformat(),
        "max_frame_gap_s": 600,
        "detector": detector,
        "progress": site.progress,
    }
    live = {
        "id": LIVE_CAMERA_ID,
        "name": "Công trường trường học - trực tiếp / school site, live",
        "url": live_url,
        "on_end": "reconnect",
        "max_fps": 1.0,
        "detector": detector,
        "progress": {**site.progress, "report_project": False},
    }
    return [replay, live]


PROJECT_NAME_VI = "Trường tiểu học (mô phỏng)"
PROJECT_NAME_EN = "Primary school (simulated)"
SITE_LAT, SITE_LON = 16.4702, 107.5921
"""Where the demo site stands (Huế), for the map and the registry."""


def import_plan(api: CentralApi, token: str, site: DemoSite) -> int:
    """Approve the plan from its CSV through the API, as the PMU would upload it; returns the version.

    A second demo run on the same day finds the same file approved already and keeps that version."""
    data = site.plan_csv.read_bytes()
    current = api.call("GET", f"/api/v1/projects/{site.project_id}/plan", token=token)
    if current.status == 200 and (current.json().get("source") or {}).get("sha256") == hashlib.sha256(data).hexdigest():
        return int(current.json()["plan_version"])
    query = urllib.parse.urlencode(
        {
            "filename": site.plan_csv.name,
            "note": "Quyết định phê duyệt tiến độ (mô phỏng) / approval decision (demo)",
            "name_vi": PROJECT_NAME_VI,
            "name_en": PROJECT_NAME_EN,
        }
    )
    answer = api.call(
        "POST",
        f"/api/v1/projects/{site.project_id}/plan/import?{query}",
        token=token,
        raw=(data, "text/csv"),
    )
    if answer.status != 200:
        raise DevstackError(f"the demo plan import failed: {answer.status} {answer.body[:500]!r}")
    return int(answer.json()["plan_version"])


DEMO_PROVINCE = "Thành phố Huế"
"""The province of every demo site (configs/boundaries.demo.geojson draws illustrative boxes around them)."""
SITE_COMMUNE = "Phường Vỹ Dạ"


def site_entries(agent_id: str, preview: str, project_id: str) -> list[dict[str, object]]:
    """The site registry entries of the two site cameras: their place, their live view (central reaches the
    agent's live stream next to its MJPEG preview) and the project they watch (so the live camera is in the
    project's live grid before it sends anything)."""
    return [
        {
            "id": camera_id,
            "agent_id": agent_id,
            "kind": "camera",
            "name": name,
            "lat": SITE_LAT + offset,
            "lon": SITE_LON + offset,
            "area": SITE_COMMUNE,
            "province": DEMO_PROVINCE,
            "commune": SITE_COMMUNE,
            "preview_url": f"{preview}/cameras/{camera_id}/preview.mjpg",
            "project_id": project_id,
        }
        for camera_id, name, offset in (
            (SITE_CAMERA_ID, "Công trường trường học - toàn cảnh", 0.0),
            (LIVE_CAMERA_ID, "Công trường trường học - cổng chính", 0.0004),
        )
    ]


def write_sites_file(path: Path, entries: list[dict[str, object]]) -> Path:
    """A sites file (``central-ingest cameras import``) holding ``entries``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"sites": entries}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def format_projects(api: CentralApi, token: str) -> str:
    """Each project's planned vs actual % today, as central computes them for the alert."""
    answer = api.call("GET", "/api/v1/projects", token=token)
    if answer.status != 200:
        return f"[demo] Dự án / projects: not readable ({answer.status})"
    projects = answer.json()
    if not projects:
        return "[demo] Dự án / projects: none"
    lines = ["[demo] Tiến độ dự án / project progress (today, as the alert sees it):"]
    for project in projects:
        actual = project["actual_pct"]
        planned = project["planned_pct"]
        gap = project["gap_points"]
        lines.append(
            f"  {project['project_id']}: kế hoạch / planned {_maybe(planned)}%, thực tế / actual {_maybe(actual)}% "
            f"(ngày / day {project['actual_date']}, {project['basis']}, confidence {project['confidence']}), "
            f"chậm / behind {_maybe(gap)} points"
        )
    return "\n".join(lines)


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
