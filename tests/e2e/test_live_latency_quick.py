"""The live latency benchmark end to end, short: the clock camera through the RTSP server, an agent, central's
live proxy and the /live page in Chromium, against the agent's MJPEG preview; and the page-side clock reader
agreeing with the Python one. Numbers are checked for presence and shape only (the box is shared)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Browser

from benchmarks.live_latency import PAGES, main
from devstack.clock_source import READ_CLOCK_STRIPE_JS, ClockRenderer, ClockSpec

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

STAMP_MS = 1_767_225_600_123  # 2026-01-01 00:00:00.123 UTC


def test_page_reader_agrees_with_the_python_reader(browser: Browser) -> None:
    """The JavaScript reader the benchmark injects reads a rendered frame (as a JPEG, full size and scaled down
    on the canvas) to the same value, and refuses a canvas without a stripe."""
    spec = ClockSpec()
    grey = np.frombuffer(ClockRenderer(spec).render(STAMP_MS), dtype=np.uint8).reshape(spec.height, spec.width)
    ok, jpeg = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    source = "data:image/jpeg;base64," + base64.b64encode(bytes(jpeg)).decode()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content("<canvas id='c'></canvas>")
        page.evaluate(READ_CLOCK_STRIPE_JS)
        values = page.evaluate(
            """async (source) => {
              const image = new Image();
              image.src = source;
              await image.decode();
              const canvas = document.getElementById("c"), out = [];
              for (const width of [640, 427]) {
                canvas.width = width; canvas.height = Math.round(width * 9 / 16);
                canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
                out.push(window.iocReadClockStripe(canvas));
              }
              canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
              out.push(window.iocReadClockStripe(canvas));
              return out;
            }""",
            source,
        )
    finally:
        context.close()
    assert values == [STAMP_MS, STAMP_MS, None]


def test_quick_run_measures_the_live_view_and_its_baseline(tmp_path: Path, pg_dsn: str, browser: Browser) -> None:
    out = tmp_path / "results"
    shot = tmp_path / "live_latency.png"
    assert (
        main(["--quick", "--database-url", pg_dsn, "--out", str(out), "--screenshot", str(shot)], browser=browser) == 0
    )
    assert shot.stat().st_size > 0
    document = json.loads((out / "live_latency.json").read_text(encoding="utf-8"))

    frames = document["config"]["frames"]
    for key in ("glass_to_glass_ms", "baseline_glass_to_glass_ms"):
        figures = document[key]
        assert figures["n"] == frames, key  # every sampled frame's clock was read back
        assert figures["p50"] <= figures["p95"] <= figures["max"], key
    live = document["live"]
    assert live["to_agent_ms"]["n"] == live["agent_to_page_ms"]["n"] == frames
    assert live["frames_drawn"] >= frames

    first = document["first_frame"]
    assert first["loads_without_a_frame"] == 0
    assert document["time_to_first_frame_ms"] == first["time_to_first_frame_ms"]["p50"] > 0
    assert isinstance(first["time_to_first_frame_cold_ms"], float)

    loads = document["page_load_ms"]
    assert set(loads) == set(PAGES)
    assert isinstance(loads["live"], float), "the live page exists: it must have been measured"
    for name, value in loads.items():
        assert value == "not built" or (isinstance(value, float) and value > 0), (name, value)
        if value != "not built":
            assert document["page_loads"][name]["timeouts"] == 0, name
    assert {"cpu_model", "cpu_count"} <= set(document["machine"])
    assert document["versions"]["chromium"]
    assert document["config"]["h264_encoder"] in ("x264enc", "openh264enc")
