"""Live view: time to first frame, glass-to-glass latency through central vs the agent's MJPEG preview, page loads.

    python -m benchmarks.live_latency [--quick] [--frames 150] [--detector ssd|motion] [--preview-fps 5]
                                      [--database-url DSN] [--out DIR] [--screenshot PNG]

A private stack, started the way the e2e tests and the demo start theirs: PostgreSQL + TimescaleDB (a
private cluster unless ``--database-url``), the real RTSP server with a clock mount (``devstack.clock_source``:
every frame carries the wall clock of the moment it was made, as digits and as a machine-readable stripe,
H.264, 25 fps, 1 s GOP), ``central-ingest serve`` and an ``edge-agent`` process analysing that camera (the SSD
detector by default, a zone so the config is valid; no counting line, whose counts panel would cover the
stripe in the MJPEG). An operator signs in in headless Chromium (Debian's, Playwright) and:

- ``glass_to_glass_ms``: opens ``/live?cameras=AGENT/CAMERA&grid=1``; inside the page's ``ioc-live-frame``
  listener (fired right after a frame is drawn) the clock stripe is read back from the tile's canvas:
  ``drawn_at_ms - stamp`` per frame, i.e. camera encode, RTSP, agent decode + detection, JPEG, the agent's
  live stream, central's proxy, the WebSocket and the browser's decode + draw. Split into ``to_agent_ms``
  (``analysed_at_ms - stamp``) and ``agent_to_page_ms`` (``drawn_at_ms - analysed_at_ms``).
- ``baseline_glass_to_glass_ms``: the same camera through the agent's annotated MJPEG preview opened directly
  in an ``<img>`` (a page on the agent's own origin, so its pixels can be read), sampled every animation frame:
  ``Date.now() - stamp`` when a new picture shows (so it includes up to one animation frame, ~17 ms, of wait).
- ``time_to_first_frame_ms``: the page's own ``IOC_LIVE_STATS.first_frame_ms`` (WebSocket open request to the
  first drawn frame) over ``--repeats`` fresh loads of the live page; the first load is ``cold`` (central opens
  its agent connection), later ones reuse it while it idles (``live.idle_close_s``).
- ``page_load_ms``: navigation start to the app visible and its first data drawn (the animation frame after the
  last API answer, with no request pending for 0.5 s; the live page also waits for its first frame), median of
  ``--repeats`` loads, for /, /map, /live, /alerts, /traffic, /sensors and /health; a page the service does not
  serve yet is recorded as "not built".

Every clock involved is this machine's, so the stamps and ``Date.now()`` compare directly. Results:
``benchmarks/results/live_latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psycopg
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from benchmarks.common import RESULTS_DIR, package_versions, save_result
from central_ingest.access.admin import Actor, create_user
from central_ingest.access.settings import AccessSettings
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from devstack.apps import edge_config, provision_agent, start_central, start_edge, write_edge_config, write_secret
from devstack.clock_source import READ_CLOCK_STRIPE_JS, ClockSpec, now_ms, read_clock_stripe
from devstack.errors import DevstackError
from devstack.ports import LOCALHOST, free_port, wait_until
from devstack.postgres import PostgresCluster, PostgresSettings
from devstack.rtsp import RtspServer

NAME = "live_latency"
CHROMIUM = Path("/usr/bin/chromium")
AGENT = "clock-agent"
CAMERA = "cam-clock"
CLOCK_MOUNT = "clock"
OPERATOR_PREFIX = "bench.operator."
PAGES = {
    "overview": "/",
    "map": "/map",
    "live": "/live",
    "alerts": "/alerts",
    "traffic": "/traffic",
    "sensors": "/sensors",
    "health": "/health",
}
"""Each page measured and its path (/live is opened on the clock camera's layout)."""
QUIET_MS = 500
"""A page counts as loaded once no API request has been pending for this long."""
PAGE_TIMEOUT_S = 30.0
WARMUP_FRAMES = 5
"""Frames drawn before sampling starts (the first ones can be a burst the decoder or the proxy had queued)."""

LIVE_PROBE_JS = """
(() => {
  const bench = window.__iocBench = { samples: [], unreadable: 0, firstFrameAt: null };
  window.addEventListener("ioc-live-frame", (event) => {
    const detail = event.detail;
    if (bench.firstFrameAt === null) bench.firstFrameAt = performance.now();
    const stamp = window.iocReadClockStripe(detail.canvas);
    if (stamp === null) { bench.unreadable += 1; return; }
    bench.samples.push({ stamp, drawn: detail.drawn_at_ms, analysed: detail.analysed_at_ms ?? null });
  });
})();
"""
"""Reads the clock of every frame the live page draws, inside its ``ioc-live-frame`` listener."""

LOAD_PROBE_JS = """
(() => {
  const load = window.__iocLoad = { pending: 0, lastEnd: 0, appVisibleAt: null };
  const fetchFirst = window.fetch.bind(window);
  window.fetch = (...args) => {
    load.pending += 1;
    return fetchFirst(...args).finally(() => {
      load.pending -= 1;
      setTimeout(() => requestAnimationFrame(() => { load.lastEnd = performance.now(); }), 0);
    });
  };
  const watch = () => {
    const app = document.getElementById("app");
    if (app && !app.hidden && getComputedStyle(app).display !== "none") load.appVisibleAt = performance.now();
    else requestAnimationFrame(watch);
  };
  requestAnimationFrame(watch);
})();
"""
"""Counts the page's pending API requests and notes when ``#app`` shows (times from navigation start)."""

BASELINE_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>MJPEG baseline</title></head>
<body><img id="feed" alt="preview"><canvas id="probe"></canvas></body></html>"""

BASELINE_PROBE_JS = """
(src) => {
  const bench = window.__iocBench = { samples: [], unreadable: 0, firstFrameAt: null };
  const img = document.getElementById("feed"), canvas = document.getElementById("probe");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  let last = null;
  const sample = () => {
    if (img.naturalWidth > 0) {
      if (canvas.width !== img.naturalWidth) { canvas.width = img.naturalWidth; canvas.height = img.naturalHeight; }
      ctx.drawImage(img, 0, 0);
      const now = Date.now(), stamp = window.iocReadClockStripe(canvas);
      if (stamp === null) bench.unreadable += 1;
      else if (stamp !== last) {
        if (bench.firstFrameAt === null) bench.firstFrameAt = performance.now();
        bench.samples.push({ stamp, drawn: now, analysed: null });
        last = stamp;
      }
    }
    requestAnimationFrame(sample);
  };
  img.src = src;
  requestAnimationFrame(sample);
}
"""
"""Shows the agent's MJPEG preview in an <img> and reads the clock of each new picture at animation frames."""


@dataclass(frozen=True)
class BenchConfig:
    """What one run measures and how."""

    frames: int = 150
    repeats: int = 5
    detector: str = "ssd"
    preview_fps: float = 5.0
    quick: bool = False


@dataclass(frozen=True)
class LiveStack:
    """The running stack's addresses."""

    central_url: str
    preview_url: str
    camera_url: str
    encoder: str
    username: str
    password: str
    """The operator's name and password (made for this run, so a reused database never holds a stale one)."""

    @property
    def live_path(self) -> str:
        return f"/live?cameras={AGENT}/{CAMERA}&grid=1"


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50 / p95 / max / mean / n of ``values`` (ms, rounded to 0.1)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None, "mean": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50": round(float(statistics.median(ordered)), 1),
        "p95": round(float(p95), 1),
        "max": round(float(ordered[-1]), 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


# ---- the stack ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def database(state_dir: Path, database_url: str | None) -> Iterator[str]:
    """``database_url`` as given, else a fresh database on a private throw-away cluster."""
    if database_url:
        yield database_url
        return
    cluster = PostgresCluster(state_dir, PostgresSettings(durable=False))
    cluster.start()
    try:
        yield cluster.create_database("live_latency")
    finally:
        cluster.destroy()


def _provision(dsn: str, preview_url: str, username: str, password: str) -> str:
    """Agent token, the clock camera's site (its live stream found from the preview URL) and the operator."""
    token = provision_agent(dsn, AGENT)
    site = SiteConfig(
        id=CAMERA,
        agent_id=AGENT,
        name="Đồng hồ đo độ trễ",
        lat=16.4637,
        lon=107.5909,
        preview_url=f"{preview_url}/cameras/{CAMERA}/preview.mjpg",
    )
    with psycopg.connect(dsn) as conn:
        import_sites(conn, [site])

    async def operator() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await create_user(
                conn,
                Actor("benchmark", "admin"),
                AccessSettings(password_kdf_log2_n=10),
                username=username,
                password=password,
                roles=frozenset({"operator"}),
            )

    # Its own thread: a caller may already run an event loop here (Playwright's sync API does).
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, operator()).result()
    return token


def _snapshot_stamp(preview_url: str) -> int | None:
    """The clock in the agent's latest raw picture, or None (no picture yet)."""
    try:
        with urllib.request.urlopen(f"{preview_url}/cameras/{CAMERA}/snapshot.jpg?raw=1", timeout=2) as answer:  # noqa: S310
            data = answer.read()
    except (urllib.error.URLError, OSError):
        return None
    picture = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return None if picture is None else read_clock_stripe(picture)


def _encoder(server: RtspServer) -> str:
    for line in server.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("clock encoder:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


@contextlib.contextmanager
def live_stack(work: Path, config: BenchConfig, database_url: str | None) -> Iterator[LiveStack]:
    """Clock camera -> RTSP server -> edge agent -> central, with the operator and the site registered."""
    with database(work, database_url) as dsn:
        rtsp = RtspServer(work, clocks=(CLOCK_MOUNT,), name="rtsp-clock")
        rtsp.start()
        try:
            preview_port = free_port()
            preview_url = f"http://{LOCALHOST}:{preview_port}"
            username, password = OPERATOR_PREFIX + secrets.token_hex(4), secrets.token_urlsafe(18)
            token_file = write_secret(work / "agent.token", _provision(dsn, preview_url, username, password))
            central = start_central(dsn, work / "central.log")
            try:
                edge = start_edge(
                    _edge_config_file(
                        work,
                        config,
                        central_url=central.url,
                        token_file=token_file,
                        rtsp=rtsp,
                        preview_port=preview_port,
                    ),
                    work / "edge.log",
                )
                try:
                    if not wait_until(
                        lambda: _snapshot_stamp(preview_url) is not None,
                        timeout_s=90.0,
                        still_worth_waiting=edge.running,
                    ):
                        raise DevstackError(f"the agent never analysed a clock frame:\n{edge.log_tail()}")
                    yield LiveStack(central.url, preview_url, rtsp.url(CLOCK_MOUNT), _encoder(rtsp), username, password)
                finally:
                    edge.stop()
            finally:
                central.process.stop()
        finally:
            rtsp.stop()


def _edge_config_file(
    work: Path, config: BenchConfig, *, central_url: str, token_file: Path, rtsp: RtspServer, preview_port: int
) -> Path:
    detector: dict[str, Any] = {"backend": "ssd_mobilenet_oidv4"} if config.detector == "ssd" else {"backend": "motion"}
    document = edge_config(
        agent_id=AGENT,
        central_url=central_url,
        token_file=token_file,
        camera_id=CAMERA,
        camera_url=rtsp.url(CLOCK_MOUNT),
        lines=[],
        interval_s=60,
        on_end="reconnect",
        detector=detector,
        camera_extra={
            "name": "Đồng hồ đo độ trễ",
            "zones": [{"id": "zone-clock", "name": "Vùng dưới", "polygon": [[0, 0.7], [1, 0.7], [1, 1], [0, 1]]}],
        },
        preview_port=preview_port,
    )
    document["preview"] = {"port": preview_port, "max_fps": config.preview_fps}
    return write_edge_config(work / "edge.yaml", document)


# ---- the browser --------------------------------------------------------------------------------------


def signed_in_context(browser: Browser, stack: LiveStack) -> BrowserContext:
    """A context with the operator's session cookies and the probes installed in every page."""
    context = browser.new_context(
        locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh", viewport={"width": 1280, "height": 900}
    )
    answer = context.request.post(
        f"{stack.central_url}/api/v1/auth/login", data={"username": stack.username, "password": stack.password}
    )
    if not answer.ok:
        raise DevstackError(f"sign-in refused: {answer.status} {answer.text()}")
    context.add_init_script(READ_CLOCK_STRIPE_JS)
    context.add_init_script(LIVE_PROBE_JS)
    context.add_init_script(LOAD_PROBE_JS)
    return context


def _wait_for(page: Page, expression: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.evaluate(expression):
            return True
        page.wait_for_timeout(50)
    return False


def _latencies(samples: list[dict[str, Any]], frames: int) -> dict[str, Any]:
    kept = samples[WARMUP_FRAMES : WARMUP_FRAMES + frames]
    result: dict[str, Any] = {"glass_to_glass_ms": summary([s["drawn"] - s["stamp"] for s in kept])}
    analysed = [s for s in kept if s.get("analysed") is not None]
    if analysed:
        result["to_agent_ms"] = summary([s["analysed"] - s["stamp"] for s in analysed])
        result["agent_to_page_ms"] = summary([s["drawn"] - s["analysed"] for s in analysed])
    return result


def _collect(page: Page, frames: int) -> list[dict[str, Any]]:
    wanted = WARMUP_FRAMES + frames
    # At the slowest preview rate (1 fps) plus a margin: a stalled stream ends the wait, not the run.
    _wait_for(page, f"window.__iocBench && window.__iocBench.samples.length >= {wanted}", wanted * 1.2 + 20)
    samples: list[dict[str, Any]] = page.evaluate("window.__iocBench.samples")
    return samples


def measure_live(context: BrowserContext, stack: LiveStack, frames: int, screenshot: Path | None) -> dict[str, Any]:
    page = context.new_page()
    try:
        page.goto(stack.central_url + stack.live_path)
        samples = _collect(page, frames)
        unreadable = int(page.evaluate("window.__iocBench.unreadable"))
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        return {**_latencies(samples, frames), "frames_drawn": len(samples) + unreadable, "unreadable": unreadable}
    finally:
        page.close()


def measure_baseline(browser: Browser, stack: LiveStack, frames: int) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{stack.preview_url}/healthz")  # the agent's origin: the <img> pixels stay readable
        page.set_content(BASELINE_PAGE)
        page.evaluate(READ_CLOCK_STRIPE_JS)
        page.evaluate(BASELINE_PROBE_JS, f"/cameras/{CAMERA}/preview.mjpg")
        samples = _collect(page, frames)
        unreadable = int(page.evaluate("window.__iocBench.unreadable"))
        return {**_latencies(samples, frames), "unreadable_samples": unreadable}
    finally:
        context.close()


def measure_first_frames(context: BrowserContext, stack: LiveStack, repeats: int) -> dict[str, Any]:
    key = f"{AGENT}/{CAMERA}"
    page_ms: list[float] = []
    navigation_ms: list[float] = []
    for _ in range(repeats):
        page = context.new_page()
        try:
            page.goto(stack.central_url + stack.live_path)
            if _wait_for(page, f"(window.IOC_LIVE_STATS?.first_frame_ms || {{}})[{json.dumps(key)}] != null", 30):
                page_ms.append(float(page.evaluate(f"window.IOC_LIVE_STATS.first_frame_ms[{json.dumps(key)}]")))
                navigation_ms.append(float(page.evaluate("window.__iocBench.firstFrameAt")))
        finally:
            page.close()
    return {
        "time_to_first_frame_ms": summary(page_ms),
        "time_to_first_frame_cold_ms": round(float(page_ms[0]), 1) if page_ms else None,
        "navigation_to_first_frame_ms": summary(navigation_ms),
        "loads": repeats,
        "loads_without_a_frame": repeats - len(page_ms),
    }


def _served(central_url: str, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"{central_url}{path}", timeout=5) as answer:  # noqa: S310 - our own service
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _load_once(context: BrowserContext, url: str, *, wants_frame: bool) -> float | None:
    page = context.new_page()
    try:
        page.goto(url)
        ready = (
            f"(() => {{ const l = window.__iocLoad, b = window.__iocBench;"
            f" return l && l.appVisibleAt !== null && l.pending === 0 && performance.now() - l.lastEnd > {QUIET_MS}"
            f" && ({'b.firstFrameAt !== null' if wants_frame else 'true'}); }})()"
        )
        if not _wait_for(page, ready, PAGE_TIMEOUT_S):
            return None
        times = page.evaluate(
            "[window.__iocLoad.appVisibleAt, window.__iocLoad.lastEnd, window.__iocBench.firstFrameAt]"
        )
        return round(max(float(t) for t in times if t is not None), 1)
    finally:
        page.close()


def measure_page_loads(context: BrowserContext, stack: LiveStack, repeats: int) -> dict[str, Any]:
    loads: dict[str, Any] = {}
    for name, page_path in PAGES.items():
        if not _served(stack.central_url, page_path):
            loads[name] = "not built"
            continue
        path = stack.live_path if name == "live" else page_path
        times = [_load_once(context, stack.central_url + path, wants_frame=name == "live") for _ in range(repeats)]
        done = [t for t in times if t is not None]
        loads[name] = {"ms": summary(done)["p50"], "samples_ms": done, "timeouts": len(times) - len(done)}
    return loads


# ---- the run ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def chromium(given: Browser | None) -> Iterator[Browser]:
    """``given`` (a caller already running Playwright's sync API, e.g. a test's fixture), else our own headless
    Debian Chromium: a second sync Playwright cannot start inside the first."""
    if given is not None:
        yield given
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def run(
    config: BenchConfig, work: Path, database_url: str | None, screenshot: Path | None, browser: Browser | None = None
) -> dict[str, Any]:
    with live_stack(work, config, database_url) as stack, chromium(browser) as chosen:
        context = signed_in_context(chosen, stack)
        try:
            live = measure_live(context, stack, config.frames, screenshot)
            baseline = measure_baseline(chosen, stack, config.frames)
            first = measure_first_frames(context, stack, config.repeats)
            loads = measure_page_loads(context, stack, config.repeats)
        finally:
            context.close()
        chromium_version = chosen.version
    spec = ClockSpec()
    return {
        "time_to_first_frame_ms": first["time_to_first_frame_ms"]["p50"],
        "glass_to_glass_ms": live["glass_to_glass_ms"],
        "baseline_glass_to_glass_ms": baseline["glass_to_glass_ms"],
        "page_load_ms": {name: (value if isinstance(value, str) else value["ms"]) for name, value in loads.items()},
        "live": live,
        "baseline_mjpeg": baseline,
        "first_frame": first,
        "page_loads": loads,
        "config": {
            "quick": config.quick,
            "frames": config.frames,
            "warmup_frames": WARMUP_FRAMES,
            "repeats": config.repeats,
            "detector": config.detector,
            "preview_max_fps": config.preview_fps,
            "clock": {"width": spec.width, "height": spec.height, "fps": spec.fps, "gop_frames": spec.fps},
            "h264_encoder": stack.encoder,
            "rtsp_transport": "tcp",
            "page_loaded_when": f"#app visible, no API request pending for {QUIET_MS} ms (the animation frame after "
            "the last answer); /live also its first frame",
        },
        "versions": {
            **package_versions(("av", "numpy", "onnxruntime", "playwright", "fastapi")),
            "chromium": chromium_version,
        },
        "clock_read_at_end_ms": now_ms(),
    }


def main(argv: Sequence[str] | None = None, *, browser: Browser | None = None) -> int:
    """The command line; ``browser``: measure in this (already launched) browser instead of launching one."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (tests): 12 frames, 1 load per page")
    parser.add_argument("--frames", type=int, default=150, help="frames sampled per path (>= 100 for a report)")
    parser.add_argument("--repeats", type=int, default=5, help="loads per page and first-frame measurements")
    parser.add_argument("--detector", choices=("ssd", "motion"), default="ssd")
    parser.add_argument("--preview-fps", type=float, default=5.0, help="the agent's preview.max_fps (its default: 5)")
    parser.add_argument("--database-url", help="an existing database (default: a private cluster)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--screenshot", type=Path, help="save the live page as this PNG")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    config = BenchConfig(
        frames=12 if args.quick else args.frames,
        repeats=1 if args.quick else args.repeats,
        detector=args.detector,
        preview_fps=args.preview_fps,
        quick=args.quick,
    )
    with tempfile.TemporaryDirectory(prefix="ioc-live-latency-") as work:
        try:
            result = run(config, Path(work), args.database_url, args.screenshot, browser)
        except DevstackError as error:
            print(f"live latency benchmark failed: {error}", file=sys.stderr)
            return 1
    path = save_result(NAME, result, args.out)
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("time_to_first_frame_ms", "glass_to_glass_ms", "baseline_glass_to_glass_ms", "page_load_ms")
            },
            indent=2,
        )
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
