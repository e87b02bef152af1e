"""Site sampling cost: client CPU-seconds per camera-hour for a 1080p H.264 camera sampled once a minute.

    python -m benchmarks.site_sampling [--minutes 4] [--grabs 20] [--quick] [--out DIR]

A rendered construction-site clip (textured ground, concrete frame, scaffolding, a slewing crane, a
passing truck, walking workers, sensor noise), encoded as a camera sends it (1080p25 H.264, 4 Mbit/s
CBR, a keyframe every 2 s, no B-frames), is served in a loop at real time by the real GStreamer RTSP
server (``devstack.rtsp``) and read over RTSP/TCP. Side by side in one run, each in its own client
process (so ``getrusage`` of that process, all its threads, is the strategy's CPU and nothing else; the
server's CPU is not counted):

- ``persistent`` (strategy a, the agent's mode): ``PyAVReader`` with ``decode: keyframes`` and
  ``max_fps: 1/60``, which only hands the due keyframe to the decoder (``KeyframeGate``), connected for
  ``--minutes`` of real time, scaled to an hour.
- ``persistent_baseline``: the same reader as it was before that gate (``lean_keyframes=False``: every
  packet to the frame-threaded decoder, every keyframe decoded, one converted a minute).
- ``demux_floor``: the connection demuxed, nothing decoded: what any persistent strategy pays at least.
- ``grab`` (strategy b, the agent's mode): ``GrabReader`` (``sampling: grab``): connect, first keyframe,
  disconnect, on its own schedule; ``--grabs`` timed grabs, times 60 per hour. The server starts every
  session at a keyframe (a real camera often does too).
- ``grab_worst_case``: a hand-written grab that lets the first keyframe pass and decodes the second: a
  whole GOP demuxed first, as for a camera joined just after a keyframe.

Results: ``benchmarks/results/site_sampling.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

from benchmarks.common import package_versions, save_result
from devstack.rtsp import RtspServer
from devstack.video_files import write_video
from edge_agent.sources.config import ReaderConfig
from edge_agent.sources.grab_reader import GrabReader, open_container
from edge_agent.sources.pyav_reader import PyAVReader

Image = npt.NDArray[np.uint8]
REPO = Path(__file__).resolve().parents[1]
TARGET_CAMERAS_PER_CORE = 100.0
HOUR_S = 3600.0
OPEN_OPTIONS = {"rtsp_transport": "tcp", "allowed_media_types": "video", "fpsprobesize": "0"}
"""The agent reader's own RTSP open options (``PyAVReader._open``), so both strategies open alike."""
PERSISTENT = ("persistent", "persistent_baseline", "demux_floor")
GRABS = ("grab", "grab_worst_case")
STRATEGIES = (*PERSISTENT, *GRABS)
MIN_GRAB_SPACING_S = 1.0
"""GrabReader's smallest ``grab_every_s``."""
CLIP_VERSION = 1
"""Bump when the rendered scene or its encoding changes, so cached clips are made again."""


@dataclass(frozen=True, slots=True)
class SiteClip:
    """The camera: size, rate, GOP and bitrate of the clip the server loops."""

    width: int = 1920
    height: int = 1080
    fps: int = 25
    seconds: int = 20
    gop_frames: int = 50
    bitrate_bps: int = 4_000_000
    noise_sigma: float = 3.0

    def digest(self) -> str:
        canonical = json.dumps({"version": CLIP_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def encoder_options(self) -> dict[str, str]:
        """x264 as an IP camera's main stream: constant bitrate, fixed GOP, no B-frames."""
        return {
            "preset": "veryfast",
            "maxrate": str(self.bitrate_bps),
            "bufsize": str(2 * self.bitrate_bps),
            "x264-params": f"keyint={self.gop_frames}:min-keyint={self.gop_frames}:scenecut=0:bframes=0:nal-hrd=cbr",
        }


# -- the scene -----------------------------------------------------------------------------------------


def _fractal(height: int, width: int, scales: Sequence[int], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Smooth noise at several scales in 0..1: dirt, concrete stains, cloud."""
    out = np.zeros((height, width), np.float32)
    for scale in scales:
        small = rng.random((max(2, height // scale), max(2, width // scale))).astype(np.float32)
        out += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) * float(scale) ** 0.5
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def site_background(width: int, height: int, seed: int = 0) -> Image:
    """The still part of the site: sky, dirt with rubble, a concrete frame with scaffolding."""
    rng = np.random.default_rng(seed)
    horizon = height // 3
    image = np.zeros((height, width, 3), np.float32)
    sky = np.linspace(235.0, 170.0, horizon, dtype=np.float32)[:, None]
    image[:horizon] = np.dstack(
        [np.repeat(sky + 15, width, 1), np.repeat(sky, width, 1), np.repeat(sky - 25, width, 1)]
    )
    dirt = _fractal(height - horizon, width, (4, 16, 64, 256), rng)
    for channel, base in enumerate((70.0, 95.0, 120.0)):
        image[horizon:, :, channel] = base + 60.0 * dirt
    concrete = np.zeros((height, width), bool)
    left, right, bottom, top = width * 26 // 100, width * 73 // 100, height * 83 // 100, height * 31 // 100
    floor_h, column_w = (bottom - top) // 6, (right - left) // 9
    for floor in range(6):
        y = bottom - floor * floor_h
        concrete[max(0, y - height // 77) : y, left:right] = True
    for column in range(10):
        x = left + column * column_w
        concrete[top:bottom, x : x + width // 87] = True
    stains = _fractal(height, width, (2, 8, 32), rng)
    image[concrete] = (150.0 + 40.0 * stains[concrete] - 20.0)[:, None]
    canvas = np.clip(image, 0, 255).astype(np.uint8)
    for i in range((right - left) // 24 + 4):  # scaffolding tubes
        x = left - 60 + i * 25
        cv2.line(canvas, (x, top - 40), (x, bottom), (40, 90, 200), 2)
    for j in range((bottom - top) // 30 + 2):
        y = top - 40 + j * 30
        cv2.line(canvas, (left - 60, y), (right + 15, y), (40, 90, 200), 2)
    for _ in range(300):  # rubble and stones
        centre = (int(rng.integers(0, width)), int(rng.integers(height * 2 // 3, height)))
        grey = int(rng.integers(60, 170))
        colour = (grey, grey + int(rng.integers(0, 20)), grey + int(rng.integers(0, 40)))
        cv2.circle(canvas, centre, int(rng.integers(3, 14)), colour, -1)
    return canvas


def site_frames(clip: SiteClip, seed: int = 0) -> Iterator[Image]:
    """The clip's frames: the background with a slewing crane jib, a truck and workers moving, and noise."""
    rng = np.random.default_rng(seed)
    w, h = clip.width, clip.height
    background = site_background(w, h, seed)
    noise = [rng.normal(0.0, clip.noise_sigma, (h, w, 3)).astype(np.int16) for _ in range(12)]
    workers = [
        (rng.uniform(0, w), rng.uniform(0.79 * h, 0.97 * h), rng.uniform(-40, 40), rng.uniform(-10, 10))
        for _ in range(12)
    ]
    s = w / 1920  # drawing scale
    for index in range(clip.fps * clip.seconds):
        t = index / clip.fps
        frame = background.copy()
        angle = 0.2 * np.sin(2 * np.pi * t / clip.seconds)
        mast = (int(0.83 * w), int(0.14 * h))
        cv2.line(frame, mast, (mast[0], int(0.83 * h)), (0, 180, 240), max(1, int(12 * s)))
        jib_end = (int(mast[0] - 0.47 * w * np.cos(angle)), int(mast[1] + 0.11 * h * np.sin(angle)))
        cv2.line(frame, mast, jib_end, (0, 180, 240), max(1, int(10 * s)))
        truck_x = int((t * 120 * s) % (w + 400 * s) - 400 * s)
        cv2.rectangle(frame, (truck_x, int(0.81 * h)), (truck_x + int(380 * s), int(0.94 * h)), (30, 140, 220), -1)
        cab = (truck_x + int(280 * s), int(0.77 * h))
        cv2.rectangle(frame, cab, (cab[0] + int(100 * s), int(0.88 * h)), (50, 50, 200), -1)
        for x0, y0, vx, vy in workers:
            x, y = int((x0 + vx * t) % w), int(y0 + vy * np.sin(t))
            cv2.rectangle(frame, (x, y), (x + int(14 * s), y + int(40 * s)), (0, 140, 255), -1)
            cv2.circle(frame, (x + int(7 * s), y - int(6 * s)), max(1, int(7 * s)), (0, 220, 255), -1)
        yield np.clip(frame.astype(np.int16) + noise[index % len(noise)], 0, 255).astype(np.uint8)


def site_clip(clip: SiteClip, directory: Path) -> Path:
    """The clip as an .mp4, made once and cached in ``directory`` by its parameters."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"site-{clip.height}p"
    path, stamp = directory / f"{name}.mp4", directory / f"{name}.digest"
    if path.is_file() and stamp.is_file() and stamp.read_text(encoding="ascii") == clip.digest():
        return path
    partial = path.with_suffix(".partial.mp4")
    write_video(partial, site_frames(clip), fps=clip.fps, options=clip.encoder_options(), bit_rate=clip.bitrate_bps)
    partial.replace(path)
    stamp.write_text(clip.digest(), encoding="ascii")
    return path


def clip_facts(path: Path) -> dict[str, Any]:
    """What the encoder made: measured bitrate, GOP, keyframe sizes, profile."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        sizes: list[int] = []
        keyframes: list[int] = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.is_keyframe:
                keyframes.append(len(sizes))
            sizes.append(packet.size)
        seconds = len(sizes) / float(stream.average_rate or 25)
        return {
            "frames": len(sizes),
            "profile": stream.codec_context.profile,
            "measured_bitrate_bps": round(8 * sum(sizes) / seconds),
            "keyframe_interval_frames": sorted({b - a for a, b in itertools.pairwise(keyframes)}),
            "keyframe_bytes_mean": round(float(np.mean([sizes[k] for k in keyframes]))),
        }


# -- measuring inside a client process -----------------------------------------------------------------


def cpu_s() -> float:
    """This process's CPU time, user + system, all threads (the decoder's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True, slots=True)
class Window:
    """CPU and wall seconds between two marks."""

    cpu_s: float
    wall_s: float

    @staticmethod
    def since(cpu0: float, wall0: float) -> Window:
        return Window(cpu_s() - cpu0, time.perf_counter() - wall0)


def _persistent_result(
    window: Window, connect: Window, frames: int, size: str, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "measured_wall_s": round(window.wall_s, 2),
        "measured_cpu_s": round(window.cpu_s, 4),
        "cpu_s_per_camera_hour": round(window.cpu_s / window.wall_s * HOUR_S, 2),
        "connect_cpu_s": round(connect.cpu_s, 4),
        "connect_wall_s": round(connect.wall_s, 3),
        "frames": frames,
        "frame_size": size,
        **extra,
    }


def run_reader(url: str, seconds: float, interval_s: float, *, lean: bool) -> dict[str, Any]:
    """Strategy a as the agent runs it: PyAVReader, decode: keyframes, max_fps one per interval.

    ``lean``: the agent's mode (only the due keyframe reaches the decoder); False: the mode before it (every
    packet to the frame-threaded decoder, every keyframe decoded, one converted per interval): the baseline.
    """
    config = ReaderConfig(url=url, decode="keyframes", max_fps=1.0 / interval_s, decoder="cpu")
    reader = PyAVReader("site", config, lean_keyframes=lean)
    cpu0, wall0 = cpu_s(), time.perf_counter()
    marks: dict[str, Window] = {}
    frames, size = 0, ""
    start: tuple[float, float] | None = None

    def stop_at_deadline() -> None:
        while start is None and not reader.stopping:
            time.sleep(0.05)
        if start is not None:
            time.sleep(max(0.0, start[1] + seconds - time.perf_counter()))
            marks["run"] = Window.since(*start)
        reader.stop()

    stopper = threading.Thread(target=stop_at_deadline, name="deadline", daemon=True)
    stopper.start()
    for frame in reader.frames():
        if start is None:
            marks["connect"] = Window.since(cpu0, wall0)
            start = (cpu_s(), time.perf_counter())
        frames += 1
        size = f"{frame.image.shape[1]}x{frame.image.shape[0]}"
    stopper.join()
    stats = reader.stats()
    if "run" not in marks:
        raise RuntimeError(f"the reader delivered no frame: {stats.last_error or stats.reason}")
    extra = {
        "keyframes_decoded": stats.frames_decoded,
        "frames_rate_limited": stats.frames_rate_limited,
        "packets_not_decoded": reader.packets_not_decoded,
        "lean": reader.lean,
        "decode_wall_s": round(stats.decode_seconds, 4),
        "reader_config": config.model_dump(mode="json", include={"decode", "max_fps", "decoder", "rtsp_transport"}),
    }
    return _persistent_result(marks["run"], marks["connect"], frames, size, extra)


def run_demux(url: str, seconds: float) -> dict[str, Any]:
    """One connection demuxed for ``seconds``, nothing decoded: what any persistent strategy pays at least."""
    cpu0, wall0 = cpu_s(), time.perf_counter()
    packets = 0
    with av.open(url, options=OPEN_OPTIONS, timeout=(10.0, 10.0)) as container:
        stream = container.streams.video[0]
        connect = Window.since(cpu0, wall0)
        start = (cpu_s(), time.perf_counter())
        for packet in container.demux(stream):
            if time.perf_counter() - start[1] >= seconds:
                break
            packets += packet.size > 0
        window = Window.since(*start)
    return _persistent_result(window, connect, 0, "", {"packets": packets, "keyframes_decoded": 0})


@dataclass(frozen=True, slots=True)
class Grab:
    cpu_s: float
    wall_s: float
    open_wall_s: float
    keyframe_bytes: int
    frame_size: str


def grab_keyframe(url: str, *, skip_keyframes: int = 0, timeout_s: float = 10.0) -> Grab:
    """A hand-written grab: open, let ``skip_keyframes`` keyframes pass (a mid-GOP join), decode the next, close.

    The server starts every client at a keyframe; skipping one makes the client demux a whole GOP first, as
    on a camera joined just after a keyframe: the worst case of the agent's ``GrabReader``.
    """
    cpu0, wall0 = cpu_s(), time.perf_counter()
    with av.open(url, options=OPEN_OPTIONS, timeout=(timeout_s, timeout_s)) as container:
        opened = time.perf_counter() - wall0
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        stream.codec_context.skip_frame = "NONKEY"
        passed = 0
        for packet in container.demux(stream):
            if not packet.is_keyframe or packet.size == 0:
                continue  # never handed to the decoder
            if passed < skip_keyframes:
                passed += 1
                continue
            for picture in packet.decode():
                image = picture.to_ndarray(format="bgr24")
                window = Window.since(cpu0, wall0)
                return Grab(window.cpu_s, window.wall_s, opened, packet.size, f"{image.shape[1]}x{image.shape[0]}")
    raise RuntimeError(f"{url}: the stream ended before a keyframe decoded")


def run_grab_reader(url: str, count: int, every_s: float) -> dict[str, Any]:
    """The agent's ``GrabReader`` (``sampling: grab``): one untimed warm-up grab, then ``count`` timed ones.

    Each grab is timed from the moment the reader opens the camera (its opener is wrapped) to the frame in
    the caller's hands: CPU of this process over that span (all threads), so the schedule's idle waits
    between grabs are not counted, and everything the reader does for a grab is.
    """
    opens: list[tuple[float, float]] = []
    open_walls: list[float] = []

    def timed_open(url: str, options: dict[str, str], timeouts: tuple[float, float]) -> av.container.InputContainer:
        opens.append((cpu_s(), time.perf_counter()))
        container = open_container(url, options, timeouts)
        open_walls.append(time.perf_counter() - opens[-1][1])
        return container

    config = ReaderConfig(url=url, sampling="grab", grab_every_s=every_s, timestamps="arrival")
    reader = GrabReader("site", config, opener=timed_open)
    grabs: list[Grab] = []
    frames = reader.frames()
    try:
        for index, frame in enumerate(frames):
            window = Window.since(*opens[-1])
            if index > 0:  # the first pays first-use costs (codec tables) once per process, not per grab
                size = f"{frame.image.shape[1]}x{frame.image.shape[0]}"
                grabs.append(Grab(window.cpu_s, window.wall_s, open_walls[-1], 0, size))
            if len(grabs) == count:
                break
    finally:
        frames.close()
    stats, counts = reader.stats(), reader.grab_counts()
    if len(grabs) < count:
        raise RuntimeError(f"GrabReader gave {len(grabs)} of {count} grabs: {stats.last_error or stats.reason}")
    return summarise_grabs(grabs) | {
        "keyframe_bytes_mean": None,
        "grab_every_s": every_s,
        "attempts": counts.attempts,
        "failed": counts.failed,
        "slots_missed": counts.slots_missed,
        "packets_not_decoded": counts.packets_not_decoded,
        "keyframes_decoded": stats.frames_decoded,
    }


def run_grab_worst_case(url: str, count: int, spacing_s: float) -> dict[str, Any]:
    """``count`` hand-written grabs that wait a whole GOP first, ``spacing_s`` apart, after one warm-up."""
    grab_keyframe(url, skip_keyframes=1)
    grabs: list[Grab] = []
    next_at = time.perf_counter()
    for _ in range(count):
        time.sleep(max(0.0, next_at - time.perf_counter()))
        next_at = time.perf_counter() + spacing_s
        grabs.append(grab_keyframe(url, skip_keyframes=1))
    return summarise_grabs(grabs)


def summarise_grabs(grabs: Sequence[Grab]) -> dict[str, Any]:
    cpu = np.array([g.cpu_s for g in grabs])
    wall = np.array([g.wall_s for g in grabs])
    return {
        "grabs": len(grabs),
        "cpu_s_per_grab_mean": round(float(cpu.mean()), 4),
        "cpu_s_per_grab_p50": round(float(np.median(cpu)), 4),
        "cpu_s_per_grab_max": round(float(cpu.max()), 4),
        "wall_s_per_grab_mean": round(float(wall.mean()), 3),
        "wall_s_per_grab_p95": round(float(np.percentile(wall, 95)), 3),
        "open_wall_s_mean": round(float(np.mean([g.open_wall_s for g in grabs])), 3),
        "keyframe_bytes_mean": round(float(np.mean([g.keyframe_bytes for g in grabs]))),
        "frame_size": grabs[0].frame_size,
        "frames": len(grabs),
        "cpu_s_per_camera_hour": round(float(cpu.mean()) * 60, 3),
    }


def worker(args: argparse.Namespace) -> int:
    """One client process: runs one strategy and prints its result as one JSON line."""
    if args.worker in ("persistent", "persistent_baseline"):
        result = run_reader(args.url, args.seconds, args.interval, lean=args.worker == "persistent")
    elif args.worker == "demux_floor":
        result = run_demux(args.url, args.seconds)
    elif args.worker == "grab":
        result = run_grab_reader(args.url, args.grabs, args.spacing)
    else:
        result = run_grab_worst_case(args.url, args.grabs, args.spacing)
    print(json.dumps(result), flush=True)
    return 0


# -- the run ---------------------------------------------------------------------------------------------


def _spawn(kind: str, url: str, args: argparse.Namespace, seconds: float, spacing_s: float) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "benchmarks.site_sampling", "--worker", kind, "--url", url]
    argv += ["--seconds", str(seconds), "--interval", str(args.interval)]
    argv += ["--grabs", str(args.grabs), "--spacing", str(spacing_s)]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def measure(url: str, args: argparse.Namespace) -> tuple[dict[str, Any], list[float]]:
    """Every client at once against the same server; the 1-minute load average sampled meanwhile."""
    seconds = args.minutes * 60.0
    spacing_s = max(MIN_GRAB_SPACING_S, seconds / (args.grabs + 1))
    children = {kind: _spawn(kind, url, args, seconds, spacing_s) for kind in (*PERSISTENT, *GRABS)}
    loads: list[float] = []
    while any(child.poll() is None for child in children.values()):
        loads.append(os.getloadavg()[0])
        time.sleep(min(5.0, seconds / 10))
    results: dict[str, Any] = {}
    for kind, child in children.items():
        out, err = child.communicate()
        if child.returncode != 0 or not out.strip():
            raise RuntimeError(f"client {kind} failed ({child.returncode}):\n{err[-3000:]}")
        results[kind] = json.loads(out.strip().splitlines()[-1])
    for result in results.values():
        result["cameras_per_core"] = round(HOUR_S / result["cpu_s_per_camera_hour"], 1)
    return results, loads


def headline(strategies: dict[str, Any]) -> dict[str, Any]:
    """The plain keys: CPU-seconds per camera-hour and cameras per core of the agent's two modes, then the rest."""
    persistent, grab = strategies["persistent"], strategies["grab"]
    better = "grab" if grab["cpu_s_per_camera_hour"] <= persistent["cpu_s_per_camera_hour"] else "persistent"
    best = strategies[better]["cameras_per_core"]
    return {
        **{f"cpu_s_per_camera_hour_{name}": strategies[name]["cpu_s_per_camera_hour"] for name in STRATEGIES},
        **{f"cameras_per_core_{name}": strategies[name]["cameras_per_core"] for name in STRATEGIES},
        "wall_s_per_grab": grab["wall_s_per_grab_mean"],
        "frame_size": grab["frame_size"],
        "better_strategy": better,
        "target_cameras_per_core": TARGET_CAMERAS_PER_CORE,
        "target_met": best >= TARGET_CAMERAS_PER_CORE,
        "target_met_worst_case": min(best, strategies["grab_worst_case"]["cameras_per_core"])
        >= TARGET_CAMERAS_PER_CORE,
        "why": explain(strategies),
    }


def explain(strategies: dict[str, Any]) -> str:
    """The reading of the numbers, in words, so the JSON says why one strategy wins."""
    floor, lean = strategies["demux_floor"], strategies["persistent"]
    baseline, grab, worst = strategies["persistent_baseline"], strategies["grab"], strategies["grab_worst_case"]
    keyframes_per_hour = baseline["keyframes_decoded"] / baseline["measured_wall_s"] * HOUR_S
    return (
        f"A persistent connection receives and demuxes the whole stream all hour: that alone costs "
        f"{floor['cpu_s_per_camera_hour']:g} CPU-s per camera-hour ({floor['cameras_per_core']:g} cameras per "
        f"core at most, before decoding anything). The agent's reader in its lean keyframe mode (decode: keyframes, "
        f"max_fps 1/60: only the due keyframe reaches the decoder) costs {lean['cpu_s_per_camera_hour']:g} CPU-s = "
        f"{lean['cameras_per_core']:g} cameras per core; before that mode it decoded every keyframe (about "
        f"{keyframes_per_hour:.0f} an hour for 60 used): {baseline['cpu_s_per_camera_hour']:g} CPU-s = "
        f"{baseline['cameras_per_core']:g}. The agent's GrabReader (sampling: grab: connect, first keyframe, "
        f"disconnect) pays only for the RTSP handshake, stream probing and one keyframe decode, 60 times an hour: "
        f"{grab['cpu_s_per_grab_mean'] * 1000:.0f} ms per grab, {grab['cpu_s_per_camera_hour']:g} CPU-s = "
        f"{grab['cameras_per_core']:g} cameras per core, {grab['wall_s_per_grab_mean']:g} s of wall time per grab "
        f"(this server starts each session at a keyframe); a camera joined just after a keyframe makes it demux a "
        f"whole GOP first: {worst['cpu_s_per_camera_hour']:g} CPU-s = {worst['cameras_per_core']:g} cameras per "
        f"core, {worst['wall_s_per_grab_mean']:g} s per grab."
    )


def software_versions() -> dict[str, Any]:
    gst = subprocess.run(
        ["/usr/bin/python3", "-c", "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; "
         "print(Gst.version_string())"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return {
        **package_versions(("av", "numpy", "opencv-python-headless")),
        "ffmpeg_libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        "ffmpeg_libavformat": ".".join(map(str, av.library_versions["libavformat"])),
        "gstreamer": gst.stdout.strip() or f"unknown: {gst.stderr.strip()[-200:]}",
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="real minutes each client runs (default 4)")
    parser.add_argument("--grabs", type=int, default=20, help="timed grabs of each grab strategy (default 20)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples (default 60)")
    parser.add_argument("--quick", action="store_true", help="a short clip and run: a smoke test (about 20 s)")
    parser.add_argument("--clips-dir", type=Path, help="where the clip is cached (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results)")
    parser.add_argument("--worker", choices=STRATEGIES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--spacing", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    clip = SiteClip(seconds=3) if args.quick else SiteClip()
    if args.quick:
        args.minutes, args.grabs = 0.1, 1
    clips_dir = args.clips_dir or Path(tempfile.gettempdir()) / "ioc-bench-clips"
    video = site_clip(clip, clips_dir)
    facts = clip_facts(video)
    print(f"clip {video}: {clip.width}x{clip.height}@{clip.fps}, {facts['measured_bitrate_bps'] / 1e6:.2f} Mbit/s")
    load_before = os.getloadavg()
    server = RtspServer(clips_dir / "rtsp-state", {"site": video}, loop=True, name="bench-site-sampling")
    server.start()
    try:
        print(f"measuring {args.minutes:g} min, {args.grabs} grabs of each kind, all clients at once", flush=True)
        strategies, loads = measure(server.url("site"), args)
    finally:
        server.stop()
    summary = headline(strategies)
    for key, value in summary.items():
        print(f"  {key}: {value}")
    cores = os.cpu_count() or 1
    load_after = os.getloadavg()
    highest = max([load_before[0], load_after[0], *loads])
    document = {
        **summary,
        "config": {
            "clip": {**asdict(clip), **facts},
            "sample_interval_s": args.interval,
            "persistent_minutes": args.minutes,
            "grabs_per_kind": args.grabs,
            "transport": "RTSP over TCP (interleaved), GStreamer RTSP server looping the clip at real time",
            "clients": "one process per strategy, all at once; CPU = getrusage(RUSAGE_SELF) of that process",
            "grab_scaling": "cpu_s_per_grab_mean x 60 grabs per hour (GrabReader: CPU from its open to the frame "
            "in hand, one untimed warm-up grab first)",
            "persistent_scaling": "CPU seconds / wall seconds of the connected run x 3600",
            "quick": args.quick,
        },
        "versions": software_versions(),
        "strategies": strategies,
        "load_average": {
            "cpu_count": cores,
            "before_1_5_15": [round(x, 2) for x in load_before],
            "after_1_5_15": [round(x, 2) for x in load_after],
            "max_1min_during": round(max(loads, default=0.0), 2),
            "quiet": round(highest, 2) < cores / 2,  # as the rounded figures above show it
            "quiet_rule": "the 1-minute load before, after and at every sample during the run stayed under half "
            "the cores",
        },
        "note": "client CPU only (the RTSP server's is not counted); CPU time grows a little on a loaded box "
        "(caches, frequency): trust runs whose load_average.quiet is true",
    }
    path = save_result("site_sampling", document, args.out) if args.out else save_result("site_sampling", document)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
