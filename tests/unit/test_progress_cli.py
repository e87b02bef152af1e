"""A technician's checks of a site camera: validate-config reads the reference images, ``edge-agent progress check``
judges a still, and the example config is valid."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import yaml

from devstack.site_scenes import default_scenario, progress_config, reference_images, render_site
from edge_agent.agent import Agent
from edge_agent.cli import main
from edge_agent.config import load_config
from edge_agent.perception.detectors.label_map import CLASS_NAMES
from edge_agent.perception.types import Detections
from edge_agent.progress.config import ProgressCameraConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "edge.site.example.yaml"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site config in the cwd whose references exist (relative paths, as on a site box), and a midday still."""
    scenario = default_scenario(seed=1, days=20)
    monkeypatch.chdir(tmp_path)
    for name, image in reference_images(scenario).items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(name, image)
    still = render_site(scenario, scenario.local(10, 12.0), "clear", np.random.default_rng(5))
    assert cv2.imwrite("snap.png", still.image)
    config = {
        "agent_id": "site-01",
        "central": {"url": "http://127.0.0.1:9", "token": "t0k"},
        "cameras": [
            {
                "id": "cam-site",
                "url": "rtsp://192.0.2.1/s",
                "decode": "keyframes",
                "progress": progress_config(scenario).model_dump(mode="json"),
            },
            {
                "id": "cam-gate",
                "url": "rtsp://192.0.2.2/s",
                "lines": [{"id": "gate", "start": [0, 0.5], "end": [1, 0.5]}],
            },
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def test_validate_config_summarises_a_site_camera_with_its_reference_size(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate-config", str(site)]) == 0
    out = capsys.readouterr().out
    assert "camera cam-site: progress project du-an-truong-hoc" in out
    assert "packages [mong, tang-1, tang-2, mai, duong]" in out
    assert "640x360" in out
    assert "timelapse at 12:00" in out


def test_validate_config_names_the_camera_and_path_of_a_missing_reference(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("ref/done.png").unlink()
    assert main(["validate-config", str(site)]) == 2
    captured = capsys.readouterr()
    assert "camera cam-site: reference image ref/done.png does not exist" in captured.err
    assert "valid" not in captured.out


def test_validate_config_refuses_references_of_different_sizes(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = cv2.imread("ref/done.png")
    assert image is not None
    assert cv2.imwrite("ref/done.png", cv2.resize(image, (320, 180)))
    assert main(["validate-config", str(site)]) == 2
    assert "must all have one size" in capsys.readouterr().err


def test_progress_check_prints_the_verdict_and_each_package(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["progress", "check", str(site), "--camera", "cam-site", "--image", "snap.png"]) == 0
    out = capsys.readouterr().out
    assert "quality: usable" in out
    for package in ("mong", "tang-1", "tang-2", "mai", "duong", "project (weighted)"):
        assert f"\n{package}" in out


def test_progress_check_as_json_finds_the_only_site_camera_by_itself(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["progress", "check", str(site), "--image", "snap.png", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["camera_id"] == "cam-site"
    assert document["usable"] is True
    assert [p["id"] for p in document["packages"]] == ["mong", "tang-1", "tang-2", "mai", "duong"]
    mong = next(p for p in document["packages"] if p["id"] == "mong")
    assert 30 <= mong["percent"] <= 90  # the scenario's foundation is about half done on day 10
    assert 0 <= document["project_percent"] <= 100


def test_progress_check_says_why_a_dark_still_is_not_used(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cv2.imwrite("dark.png", np.full((360, 640, 3), 8, np.uint8))
    assert main(["progress", "check", str(site), "--image", "dark.png"]) == 0
    out = capsys.readouterr().out
    assert "quality: rejected: dark" in out
    assert "not judged" in out


def test_progress_check_exit_codes(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["progress", "check", str(site), "--camera", "cam-gate", "--image", "snap.png"]) == 2
    assert "not a site camera" in capsys.readouterr().err
    assert main(["progress", "check", str(site), "--image", "missing.png"]) == 1
    assert "missing.png does not exist" in capsys.readouterr().err
    Path("ref/not_started.png").write_bytes(b"not an image")
    assert main(["progress", "check", str(site), "--image", "snap.png"]) == 2
    assert "is not a readable JPEG/PNG" in capsys.readouterr().err


def test_the_site_example_is_valid_and_keeps_workers() -> None:
    config = load_config(EXAMPLE)
    (camera,) = config.cameras
    assert camera.progress is not None
    assert camera.decode == "keyframes"
    assert camera.detector.label_map is not None
    assert camera.detector.label_map["Person"] == "person"
    assert {p.id for p in camera.progress.packages} == {"mong", "tang-1", "duong"}
    assert camera.progress.activity.groups["worker"] == ("person",)


def test_the_site_doc_explains_every_knob() -> None:
    doc = (EXAMPLE.parents[1] / "docs" / "site_progress.md").read_text(encoding="utf-8")

    def names(model: type, prefix: str = "") -> list[str]:
        found = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            sub = field.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                found += names(sub, prefix + name + ".")  # a section: its keys are documented one by one
            else:
                found.append(prefix + name)
        return found

    missing = [name for name in names(ProgressCameraConfig) if f"`{name}`" not in doc]
    assert not missing, f"docs/site_progress.md does not explain {missing}"


class NoDetector:
    class_names = CLASS_NAMES

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        return Detections.empty(CLASS_NAMES)


def test_the_agent_does_not_start_without_its_references_and_says_which(site: Path) -> None:
    Path("ref/done.png").unlink()
    config = load_config(site).model_copy(update={"state_dir": site.parent / "state"})
    with pytest.raises(RuntimeError, match=r"camera cam-site: reference image ref/done.png does not exist"):
        Agent(config, detector_factory=lambda _settings: NoDetector())
    assert not (site.parent / "state").exists(), "nothing was opened before the check"
