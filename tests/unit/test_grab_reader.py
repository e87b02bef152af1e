"""GrabReader on real H.264 files through an injected opener and a virtual clock: schedule, keyframe, states.

The reader is a live-source reader (``sampling: grab`` needs rtsp://...), so the opener ignores the URL and
opens a local file; waits advance a virtual clock instead of sleeping. The real RTSP server is in
``tests/integration/test_grab_reader_rtsp.py``.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from pathlib import Path
from typing import Any

import av
import av.container
import av.error
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from devstack.video_files import write_video
from edge_agent.config import CameraConfig
from edge_agent.sources.config import ReaderConfig
from edge_agent.sources.grab_reader import GrabReader, Opener
from edge_agent.sources.open_source import open_reader
from edge_agent.sources.pyav_reader import PyAVReader, SourceGaveUpError
from edge_agent.sources.sampler import GrabSchedule
from ioc_common.backoff import BackoffConfig

START = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)
URL = "rtsp://camera.invalid/stream"
GOP = 10


def counting_clip(path: Path, frames: int = 30) -> Path:
    """Frame i is a flat grey of brightness 8*i (a keyframe every GOP frames), so a test sees which it got."""
    images = (np.full((48, 64, 3), 8 * index, np.uint8) for index in range(frames))
    return write_video(path, images, fps=10, options={"g": str(GOP), "bf": "0"})


def joined_mid_gop(path: Path, source: Path, drop: int = 3) -> Path:
    """``source`` without its first ``drop`` packets: a reader joins mid-GOP, as on a live camera."""
    with av.open(str(source)) as original, av.open(str(path), "w") as output:
        video = original.streams.video[0]
        stream = output.add_stream_from_template(video)
        for index, packet in enumerate(p for p in original.demux(video) if p.size):
            if index >= drop:
                packet.stream = stream
                output.mux(packet)
    return path


def index_of(image: np.ndarray[Any, Any]) -> int:
    return round(float(image.mean()) / 8)


class VirtualClock:
    """Monotonic seconds that move only when the reader waits (or by ``tick`` per look, to make time pass)."""

    def __init__(self, tick: float = 0.0) -> None:
        self.now = 1000.0
        self.tick = tick
        self.waits: list[float] = []

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now

    def wall(self) -> dt.datetime:
        return START + dt.timedelta(seconds=self.now - 1000.0)

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class FileOpener:
    """Opens ``video`` whatever the URL; fails the attempts listed in ``failing`` (1-based) first."""

    def __init__(self, video: Path, failing: set[int] | None = None, error: Exception | None = None) -> None:
        self.video = video
        self.failing = failing or set()
        self.error = error or av.error.ConnectionRefusedError(111, "Connection refused")
        self.calls: list[tuple[str, dict[str, str], tuple[float, float]]] = []
        self.at: list[float] = []
        self.clock: VirtualClock | None = None

    def __call__(self, url: str, options: dict[str, str], timeouts: tuple[float, float]) -> av.container.InputContainer:
        self.calls.append((url, options, timeouts))
        if self.clock is not None:
            self.at.append(self.clock.now)
        if len(self.calls) in self.failing:
            raise self.error
        return av.open(str(self.video))


def grab_config(**overrides: object) -> ReaderConfig:
    settings: dict[str, object] = {
        "url": URL,
        "sampling": "grab",
        "grab_every_s": 60.0,
        "reconnect": BackoffConfig(base_s=1.0, ceiling_s=30.0),
        "timestamps": "arrival",
    }
    settings.update(overrides)
    return ReaderConfig.model_validate(settings)


def reader_for(opener: Opener, clock: VirtualClock, **overrides: object) -> GrabReader:
    if isinstance(opener, FileOpener):
        opener.clock = clock
    return GrabReader(
        "cam-site",
        grab_config(**overrides),
        wall_clock=clock.wall,
        monotonic=clock.monotonic,
        rng=random.Random(7),
        opener=opener,
        wait=clock.wait,
    )


def take(reader: GrabReader, count: int) -> list[Any]:
    frames = reader.frames()
    taken = [next(frames) for _ in range(count)]
    frames.close()
    return taken


# -- configuration ---------------------------------------------------------------------------------------


def test_sampling_defaults_to_a_persistent_stream_with_grabs_a_minute_apart_when_asked() -> None:
    config = ReaderConfig(url=URL)
    assert (config.sampling, config.grab_every_s) == ("stream", 60.0)
    assert ReaderConfig(url=URL, sampling="grab").sampling == "grab"


def test_grab_sampling_of_a_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="sampling: grab needs a live source"):
        ReaderConfig(url=str(tmp_path / "site.mp4"), sampling="grab")
    with pytest.raises(ValidationError, match="sampling: grab needs a live source"):
        CameraConfig.model_validate({"id": "cam-1", "url": "file:///site.mp4", "sampling": "grab"})


@pytest.mark.parametrize("every", [0.0, 0.5, 86_401.0])
def test_a_grab_interval_out_of_range_is_refused(every: float) -> None:
    with pytest.raises(ValidationError, match="grab_every_s"):
        ReaderConfig(url=URL, sampling="grab", grab_every_s=every)


def test_the_factory_gives_a_grab_reader_only_for_grab_sampling() -> None:
    assert isinstance(open_reader("cam-1", ReaderConfig(url=URL, sampling="grab")), GrabReader)
    assert isinstance(open_reader("cam-1", ReaderConfig(url=URL)), PyAVReader)


# -- the schedule ----------------------------------------------------------------------------------------


def test_the_schedule_keeps_its_grid_and_skips_slots_instead_of_bunching() -> None:
    schedule = GrabSchedule(60.0)
    assert schedule.start(100.0) == 100.0
    assert schedule.next(100.4) == 160.0  # a quick grab: the next slot
    assert schedule.next(230.0) == 280.0  # a grab or consumer that overran a slot: the one after, not at once
    assert schedule.missed == 1
    assert schedule.next(280.0) == 340.0  # exactly on a slot: never the same slot twice
    assert schedule.next(345.0 + 100.0) == 460.0  # after a backoff: the first slot at or after it
    assert schedule.missed == 2


@given(
    every=st.floats(min_value=1.0, max_value=600.0),
    steps=st.lists(st.floats(min_value=0.0, max_value=2000.0), min_size=1, max_size=40),
)
def test_grabs_stay_on_the_grid_one_per_slot_never_before_they_may(every: float, steps: list[float]) -> None:
    schedule = GrabSchedule(every)
    anchor = schedule.start(0.0)
    now, slots = anchor, [anchor]
    for step in steps:
        not_before = now + step
        slot = schedule.next(not_before)
        assert slot >= not_before - 1e-6 * every
        assert slot < not_before + every + 1e-6 * every  # the first slot at or after: no needless wait
        assert slot > slots[-1]
        assert abs((slot - anchor) / every - round((slot - anchor) / every)) < 1e-6
        slots.append(slot)
        now = slot
    grid = [round((slot - anchor) / every) for slot in slots]
    assert schedule.missed == grid[-1] - (len(grid) - 1)


# -- grabbing --------------------------------------------------------------------------------------------


def test_each_grab_opens_decodes_the_first_keyframe_and_closes_on_the_grid(tmp_path: Path) -> None:
    video = joined_mid_gop(tmp_path / "mid_gop.mp4", counting_clip(tmp_path / "clip.mp4"))
    clock = VirtualClock()
    opener = FileOpener(video)
    reader = reader_for(opener, clock)
    frames = take(reader, 3)

    assert [index_of(frame.image) for frame in frames] == [GOP] * 3  # the first keyframe, not the P-frames before
    assert [frame.sequence for frame in frames] == [0, 1, 2]
    assert opener.at == pytest.approx([1000.0, 1060.0, 1120.0])
    assert [frame.timestamp for frame in frames] == [START + dt.timedelta(seconds=s) for s in (0, 60, 120)]
    url, options, timeouts = opener.calls[0]
    assert url == URL
    assert options == {"rtsp_transport": "tcp", "allowed_media_types": "video", "fpsprobesize": "0"}
    assert timeouts == (10.0, 2.5)  # the persistent reader's: half the read timeout for RTSP
    stats = reader.stats()
    assert (stats.state, stats.frames_decoded, stats.frames_delivered, stats.decoder) == ("stopped", 3, 3, "cpu")
    assert stats.timestamp_source == "arrival"
    counts = reader.grab_counts()
    assert (counts.attempts, counts.succeeded, counts.failed, counts.slots_missed) == (3, 3, 0, 0)
    assert counts.packets_not_decoded == 3 * (GOP - 3)
    assert [change.state for change in reader.state_changes()] == ["connecting", "live", "stopped"]


def test_a_camera_whose_grabs_succeed_stays_live_between_and_during_grabs(tmp_path: Path) -> None:
    clock = VirtualClock()
    reader = reader_for(FileOpener(counting_clip(tmp_path / "clip.mp4")), clock)
    frames = reader.frames()
    next(frames)
    assert reader.stats().state == "live"
    next(frames)
    next(frames)
    assert reader.stats().state == "live"
    assert reader.stats().state_changes == 2  # connecting, live: no flicker per grab
    frames.close()


def test_failed_grabs_are_retried_on_later_slots_after_the_backoff_and_recover(tmp_path: Path) -> None:
    clock = VirtualClock()
    opener = FileOpener(counting_clip(tmp_path / "clip.mp4"), failing={2, 3})
    reader = reader_for(opener, clock, reconnect=BackoffConfig(base_s=50.0, ceiling_s=200.0))
    frames = take(reader, 2)

    assert len(frames) == 2
    offsets = [at - 1000.0 for at in opener.at]
    assert offsets[:2] == pytest.approx([0.0, 60.0])
    assert all(abs(offset / 60.0 - round(offset / 60.0)) < 1e-9 for offset in offsets)  # only on slots
    assert offsets[1] < offsets[2] < offsets[3]
    stats = reader.stats()
    assert stats.reconnects == 2
    assert "Connection refused" in stats.last_error
    states = [change.state for change in reader.state_changes()]
    assert states == ["connecting", "live", "down", "connecting", "down", "connecting", "live", "stopped"]
    assert reader.grab_counts().failed == 2


def test_a_camera_that_sends_no_keyframe_is_reported_stalled(tmp_path: Path) -> None:
    clip = counting_clip(tmp_path / "clip.mp4", frames=GOP)
    no_keyframe = joined_mid_gop(tmp_path / "no_key.mp4", clip, drop=1)
    clock = VirtualClock(tick=1.0)  # every look at the clock costs a second: the wait outlives stall_timeout_s
    reader = reader_for(FileOpener(no_keyframe), clock, stall_timeout_s=3.0, max_reconnects=1)
    with pytest.raises(SourceGaveUpError, match="gave up after 1 reconnects: no clean keyframe"):
        take(reader, 1)
    stats = reader.stats()
    assert (stats.stalls, stats.frames_delivered, stats.state) == (2, 0, "stopped")
    assert [c.state for c in reader.state_changes()] == ["connecting", "stalled", "connecting", "stalled", "stopped"]


def test_a_stream_that_ends_before_a_keyframe_is_down(tmp_path: Path) -> None:
    clip = counting_clip(tmp_path / "clip.mp4", frames=GOP)
    no_keyframe = joined_mid_gop(tmp_path / "no_key.mp4", clip, drop=1)
    reader = reader_for(FileOpener(no_keyframe), VirtualClock(), max_reconnects=0)
    with pytest.raises(SourceGaveUpError):
        take(reader, 1)
    assert "ended before a keyframe" in reader.stats().last_error
    assert "down" in [change.state for change in reader.state_changes()]


def test_timestamps_never_go_back_when_our_clock_does(tmp_path: Path) -> None:
    clock = VirtualClock()
    shift = [dt.timedelta(0)]
    files = FileOpener(counting_clip(tmp_path / "clip.mp4"))

    def opener(url: str, options: dict[str, str], timeouts: tuple[float, float]) -> av.container.InputContainer:
        if len(files.calls) == 2:
            shift[0] = dt.timedelta(seconds=-120)  # our clock is set back two minutes before the third grab
        return files(url, options, timeouts)

    reader = GrabReader(
        "cam-site",
        grab_config(),
        wall_clock=lambda: clock.wall() + shift[0],
        monotonic=clock.monotonic,
        opener=opener,
        wait=clock.wait,
    )
    stamps = [frame.timestamp for frame in take(reader, 3)]
    assert stamps[:2] == [START, START + dt.timedelta(seconds=60)]
    assert stamps[2] == stamps[1] + dt.timedelta(microseconds=1)


def test_stop_ends_the_wait_between_grabs_at_once(tmp_path: Path) -> None:
    reader = GrabReader(
        "cam-site", grab_config(grab_every_s=3600.0), opener=FileOpener(counting_clip(tmp_path / "clip.mp4"))
    )
    frames = reader.frames()
    next(frames)
    finished = threading.Event()

    def rest() -> None:
        for _ in frames:
            pass
        finished.set()

    worker = threading.Thread(target=rest, daemon=True)
    worker.start()
    reader.stop()
    worker.join(30)  # an hour's wait otherwise
    assert finished.is_set()
    assert reader.stats().state == "stopped"
    assert reader.stats().reason == "stop requested"


def test_a_grab_reader_refuses_a_file_source(tmp_path: Path) -> None:
    config = ReaderConfig.model_construct(**{**ReaderConfig(url=URL).model_dump(), "url": str(tmp_path / "a.mp4")})
    with pytest.raises(ValueError, match="grabs need a live source"):
        GrabReader("cam-site", config)
