"""``edge-agent snapshot`` on files (the RTSP case runs against the real server in tests/integration)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import cv2
import numpy as np
import pytest

from devstack.ports import free_port
from edge_agent.cli import main
from edge_agent.sources.snapshot import default_snapshot_path
from tests.unit.test_reader_pyav import HEIGHT, WIDTH, write_h264


def test_snapshot_saves_the_first_frame_as_png_and_prints_path_and_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = write_h264(tmp_path / "clip.mp4", [0, 100, 200], noise=True)
    output = tmp_path / "out" / "frame.png"
    assert main(["snapshot", str(video), "-o", str(output)]) == 0

    assert capsys.readouterr().out == f"{output} {WIDTH}x{HEIGHT}\n"
    saved = cv2.imread(str(output))
    assert saved is not None
    assert saved.shape == (HEIGHT, WIDTH, 3)
    assert float(np.std(saved)) > 30  # the noisy first frame, not a blank picture


def test_snapshot_defaults_to_a_jpeg_named_after_the_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    video = write_h264(tmp_path / "junction.mp4", [0, 100])
    monkeypatch.chdir(tmp_path)
    assert main(["snapshot", str(video)]) == 0

    printed_path, size = capsys.readouterr().out.split()
    assert size == f"{WIDTH}x{HEIGHT}"
    assert printed_path.startswith("snapshot-junction-")
    assert printed_path.endswith("Z.jpg")
    assert cv2.imread(str(tmp_path / printed_path)) is not None


def test_snapshot_refuses_other_image_types_and_reports_an_unreachable_camera(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["snapshot", "clip.mp4", "-o", str(tmp_path / "frame.gif")]) == 2
    assert "must end in .jpg, .jpeg or .png" in capsys.readouterr().err

    url = f"rtsp://admin:secret@127.0.0.1:{free_port()}/stream"
    assert main(["snapshot", url, "-o", str(tmp_path / "x.jpg"), "--timeout", "1.5"]) == 1
    error = capsys.readouterr().err
    assert "no frame from the source within 1.5 s" in error
    assert "Connection refused" in error
    assert "secret" not in error
    assert not (tmp_path / "x.jpg").exists()


def test_default_name_survives_odd_urls() -> None:
    now = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    assert default_snapshot_path("rtsp://u:p@10.1.2.3:554/Streaming/Channels/102", now) == Path(
        "snapshot-10.1.2.3-102-20250301T000000Z.jpg"
    )
