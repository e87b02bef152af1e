"""Serves H.264 and H.265 .mp4 files over RTSP with GStreamer's RTSP server, each at rtsp://HOST:PORT/<name>.

The codec of each file is read from its first video sample (qtdemux caps), and the matching
parser and RTP payloader (rtph264pay / rtph265pay) serve it.

Runs under Debian's /usr/bin/python3, where the `gi` bindings live: it uses the standard library and
`gi` only, and imports nothing from the project. Every client gets its own media, so each one starts
at the first frame. Without --loop a client sees the file once, then end of stream (tests); with
--loop the file repeats forever with timestamps that keep increasing (the demo).

    /usr/bin/python3 rtsp_server.py --port 0 --port-file PORTFILE [--loop] [NAME=]FILE.mp4 ...

Prints "READY <port>" and writes the bound port to --port-file once it listens.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=parse_source, metavar="[NAME=]FILE")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="where to write the bound port once listening")
    parser.add_argument("--loop", action="store_true", help="repeat each file forever")
    args = parser.parse_args(argv)
    names = [name for name, _ in args.sources]
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
