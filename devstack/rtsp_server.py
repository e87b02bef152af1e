"""Serves H.264 and H.265 .mp4 files over RTSP with GStreamer's RTSP server, each at rtsp://HOST:PORT/<name>,
and live clock cameras (``--clock NAME``): frames made in real time whose pixels carry the wall clock.

The codec of each file is read from its first video sample (qtdemux caps), and the matching
parser and RTP payloader (rtph264pay / rtph265pay) serve it. A clock mount renders its frames with
``clock_source.py`` (loaded from this directory by path), paced at the frame rate, and encodes them as
H.264 with no B-frames and no lookahead (x264enc tune=zerolatency where installed, else openh264enc,
which never delays frames) and a one-second GOP, so a latency measured through it is the pipeline's own.

Runs under Debian's /usr/bin/python3, where the `gi` bindings live: it uses the standard library and
`gi` only, and imports nothing from the project. Every client gets its own media, so each one starts
at the first frame. Without --loop a client sees the file once, then end of stream (tests); with
--loop the file repeats forever with timestamps that keep increasing (the demo).

    /usr/bin/python3 rtsp_server.py --port 0 --port-file PORTFILE [--loop] [--clock NAME ...] [NAME=]FILE.mp4 ...

Prints "READY <port>" and writes the bound port to --port-file once it listens.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

_MOUNT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_CODECS = {"video/x-h264": "h264", "video/x-h265": "h265"}
"""Caps name of the file's video -> the name GStreamer's parser and payloader elements use."""


@dataclass(frozen=True)
class AccessUnit:
    """One encoded picture of the file, kept in memory to be replayed with shifted timestamps."""

    buffer: Any  # Gst.Buffer
    pts: int
    dts: int
    duration: int


def parse_clock(text: str) -> str:
    if not _MOUNT_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"clock stream name {text!r} must match {_MOUNT_NAME.pattern}")
    return text


def parse_source(text: str) -> tuple[str, Path]:
    name, separator, location = text.partition("=")
    path = Path(location if separator else text)
    mount = name if separator else path.stem
    if not _MOUNT_NAME.fullmatch(mount):
        raise argparse.ArgumentTypeError(f"stream name {mount!r} must match {_MOUNT_NAME.pattern}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"video file not found: {path}")
    return mount, path.resolve()


def _quoted(path: Path) -> str:
    return str(path).replace('"', '\\"')


def probe_codec(path: Path) -> str:
    """'h264' or 'h265': the codec of the file's first video track."""
    pipeline = Gst.parse_launch(
        f'filesrc location="{_quoted(path)}" ! qtdemux name=demux demux.video_0 ! appsink name=sink sync=false'
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    sample = sink.emit("pull-sample")
    pipeline.set_state(Gst.State.NULL)
    if sample is None:
        raise RuntimeError(f"no video track in {path}")
    caps_name = sample.get_caps().get_structure(0).get_name()
    if caps_name not in _CODECS:
        raise RuntimeError(f"{path}: video is {caps_name}; only H.264 and H.265 are served")
    return _CODECS[caps_name]


def launch_string_once(path: Path, codec: str) -> str:
    return f'( filesrc location="{_quoted(path)}" ! qtdemux ! {codec}parse ! rtp{codec}pay name=pay0 pt=96 )'


def read_access_units(path: Path, codec: str) -> tuple[list[AccessUnit], Any]:
    """Demuxes the whole file into byte-stream access units (parameter sets before each keyframe) and caps."""
    pipeline = Gst.parse_launch(
        f'filesrc location="{_quoted(path)}" ! qtdemux ! {codec}parse config-interval=-1 '
        f"! video/x-{codec},stream-format=byte-stream,alignment=au ! appsink name=sink sync=false"
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units: list[AccessUnit] = []
    caps = None
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        caps = sample.get_caps()
        buffer = sample.get_buffer()
        pts = buffer.pts
        dts = buffer.dts if buffer.dts != Gst.CLOCK_TIME_NONE else pts
        units.append(AccessUnit(buffer=buffer, pts=pts, dts=dts, duration=buffer.duration))
    bus_error = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if bus_error is not None:
        error, _debug = bus_error.parse_error()
        raise RuntimeError(f"cannot read {path}: {error.message}")
    if not units or caps is None:
        raise RuntimeError(f"no {codec} video in {path}")
    return units, caps


class LoopingFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    """Feeds a file's access units forever through an appsrc, shifting each repetition by the clip length."""

    def __init__(self, units: list[AccessUnit], caps: Any, codec: str) -> None:
        super().__init__()
        self._units = units
        self._caps = caps
        last = units[-1]
        frame = last.duration if last.duration != Gst.CLOCK_TIME_NONE else Gst.SECOND // 25
        self._period = max(unit.pts for unit in units) + frame
        self.set_launch(f"( appsrc name=src format=time ! {codec}parse ! rtp{codec}pay name=pay0 pt=96 )")
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory: Any, media: Any) -> None:
        source = media.get_element().get_by_name_recurse_up("src")
        source.set_property("caps", self._caps)
        position = {"index": 0}  # per client: each media starts at the first frame

        def feed(appsrc: Any, _length: int) -> None:
            repetition, index = divmod(position["index"], len(self._units))
            unit = self._units[index]
            shift = repetition * self._period
            buffer = unit.buffer.copy()
            buffer.pts = unit.pts + shift
            buffer.dts = unit.dts + shift
            appsrc.emit("push-buffer", buffer)
            position["index"] += 1

        source.connect("need-data", feed)


def load_clock_source() -> ModuleType:
    """``clock_source.py`` beside this script (run with -I, the script's directory is not on sys.path)."""
    path = Path(__file__).with_name("clock_source.py")
    spec = importlib.util.spec_from_file_location("clock_source", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["clock_source"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def h264_live_encoder(gop: int) -> str:
    """A low-latency H.264 encoder element with a ``gop``-frame keyframe interval: x264 where installed
    (gstreamer1.0-plugins-ugly), else openh264 (plugins-bad; no B-frames or lookahead by design)."""
    if Gst.ElementFactory.find("x264enc") is not None:
        return f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 bitrate=2500"
    if Gst.ElementFactory.find("openh264enc") is not None:
        return (
            f"openh264enc gop-size={gop} rate-control=bitrate bitrate=2500000 complexity=low "
            "usage-type=camera scene-change-detection=false enable-frame-skip=false"
        )
    raise RuntimeError("no H.264 encoder: install gstreamer1.0-plugins-bad (openh264enc) or -ugly (x264enc)")


class ClockFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    """A live clock camera: each client's media renders frames at the frame rate with the wall clock burned in.

    Frames are paced in the appsrc's own thread (``need-data`` sleeps until the next frame is due, then renders
    it with the time of that moment), timestamped on arrival, so nothing queues: a frame's stamp is its age.
    A thread that falls more than 5 frames behind (a paused process) starts afresh instead of bursting."""

    def __init__(self, clock: ModuleType, encoder: str) -> None:
        super().__init__()
        self._clock = clock
        self._spec = clock.ClockSpec()
        self.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true min-latency=0 "
            f"! videoconvert ! video/x-raw,format=I420 ! {encoder} "
            "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory: Any, media: Any) -> None:
        spec = self._spec
        source = media.get_element().get_by_name_recurse_up("src")
        source.set_property(
            "caps",
            Gst.Caps.from_string(
                f"video/x-raw,format=GRAY8,width={spec.width},height={spec.height},framerate={spec.fps}/1"
            ),
        )
        renderer = self._clock.ClockRenderer(spec)
        period_s = 1.0 / spec.fps
        state = {"due": 0.0, "index": 0}  # per client

        def feed(appsrc: Any, _length: int) -> None:
            now = time.monotonic()
            if state["index"] == 0 or now - state["due"] > 5 * period_s:
                state["due"] = now
            elif state["due"] > now:
                time.sleep(state["due"] - now)
            buffer = Gst.Buffer.new_wrapped(renderer.render(self._clock.now_ms(), int(state["index"])))
            buffer.duration = Gst.SECOND // spec.fps
            appsrc.emit("push-buffer", buffer)
            state["index"] += 1
            state["due"] += period_s

        source.connect("need-data", feed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="*", type=parse_source, metavar="[NAME=]FILE")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="where to write the bound port once listening")
    parser.add_argument("--loop", action="store_true", help="repeat each file forever")
    parser.add_argument(
        "--clock", action="append", default=[], type=parse_clock, metavar="NAME", help="a live clock camera"
    )
    args = parser.parse_args(argv)
    names = [name for name, _ in args.sources] + list(args.clock)
    if not names:
        parser.error("give at least one video file or --clock NAME")
    if len(set(names)) != len(names):
        parser.error(f"stream names must be unique: {names}")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for name, path in args.sources:
        codec = probe_codec(path)
        if args.loop:
            units, caps = read_access_units(path, codec)
            factory = LoopingFactory(units, caps, codec)
        else:
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch(launch_string_once(path, codec))
        factory.set_shared(False)
        mounts.add_factory(f"/{name}", factory)
    if args.clock:
        clock = load_clock_source()
        encoder = h264_live_encoder(gop=clock.ClockSpec().fps)
        print(f"clock encoder: {encoder.split()[0]}", flush=True)
        for name in args.clock:
            clock_factory = ClockFactory(clock, encoder)
            clock_factory.set_shared(False)
            mounts.add_factory(f"/{name}", clock_factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 2
    port = server.get_bound_port()
    if args.port_file is not None:
        partial = args.port_file.with_suffix(".tmp")
        partial.write_text(str(port))
        partial.replace(args.port_file)  # atomic: a reader never sees a half-written port
    print(f"READY {port}", flush=True)

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
