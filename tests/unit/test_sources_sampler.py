"""KeyframeGate on plain packet sequences (one decoded keyframe per interval, cadence kept, restarts handled),
then inside PyAVReader on small H.264 files (lean keyframe sampling)."""

from __future__ import annotations

import datetime as dt
import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.video_files import write_video
from edge_agent.sources.config import ReaderConfig
from edge_agent.sources.pyav_reader import PyAVReader, SourceGaveUpError
from edge_agent.sources.sampler import KeyframeGate
from ioc_common.backoff import BackoffConfig

START = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)

FPS = 25


def packets(seconds: float, gop: int, fps: int = FPS, start: float = 0.0) -> list[tuple[float, bool]]:
    """(stream time, keyframe) of a constant-rate stream with a keyframe every ``gop`` frames."""
    return [(start + index / fps, index % gop == 0) for index in range(round(seconds * fps))]


def run(gate: KeyframeGate, stream: list[tuple[float, bool]]) -> list[float]:
    """Stream times of the samples taken (every wanted packet gives a picture, as an I-frame does)."""
    taken: list[float] = []
    for time_s, keyframe in stream:
        if gate.wants(time_s, keyframe):
            gate.taken(time_s)
            taken.append(time_s)
    return taken


def test_the_first_keyframe_is_sampled_then_one_per_interval_and_nothing_else_reaches_the_decoder() -> None:
    gate = KeyframeGate(60.0)
    taken = run(gate, packets(300.0, gop=50))
    assert taken == pytest.approx([0.0, 60.0, 120.0, 180.0, 240.0])
    counts = gate.counts()
    assert (counts.wanted, counts.samples, counts.restarts) == (5, 5, 0)
    assert counts.skipped == 300 * FPS - 5


def test_non_keyframes_are_never_wanted_even_when_a_sample_is_due() -> None:
    gate = KeyframeGate(10.0)
    assert [gate.wants(t, keyframe=False) for t in (0.0, 5.0, 50.0)] == [False, False, False]
    assert gate.wants(50.04, keyframe=True)


def test_the_cadence_is_kept_when_keyframes_come_late() -> None:
    # GOP of 1.76 s: keyframes rarely fall on the due time; samples still average one per interval.
    gate = KeyframeGate(60.0)
    taken = run(gate, packets(600.0, gop=44))
    assert len(taken) == 10
    assert all(due <= t < due + 1.76 for due, t in zip(range(0, 600, 60), taken, strict=True))


def test_a_gap_longer_than_an_interval_restarts_the_cadence_from_the_sample() -> None:
    gate = KeyframeGate(60.0)
    stream = packets(10.0, gop=50) + packets(10.0, gop=50, start=200.0) + packets(70.0, gop=50, start=250.0)
    assert run(gate, stream) == pytest.approx([0.0, 200.0, 260.0])


def test_a_picture_held_back_by_the_decoder_costs_one_more_keyframe_not_the_sample() -> None:
    gate = KeyframeGate(60.0)
    assert gate.wants(0.0, keyframe=True)  # decoded, no picture out yet: not taken
    assert not gate.wants(1.0, keyframe=False)
    assert gate.wants(2.0, keyframe=True)
    gate.taken(2.0)
    assert gate.due_s == pytest.approx(62.0)


def test_stream_time_going_back_samples_at_once_and_is_counted() -> None:
    gate = KeyframeGate(60.0)
    run(gate, packets(30.0, gop=50, start=1000.0))
    assert gate.wants(0.0, keyframe=True)
    assert gate.counts().restarts == 1


def test_reset_makes_the_next_keyframe_due() -> None:
    gate = KeyframeGate(60.0)
    run(gate, packets(5.0, gop=50))
    assert not gate.wants(6.0, keyframe=True)
    gate.reset()
    assert gate.wants(6.04, keyframe=True)


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan")])
def test_an_interval_that_is_not_positive_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        KeyframeGate(interval)


@given(
    interval=st.floats(min_value=1.0, max_value=120.0),
    gop=st.integers(min_value=1, max_value=100),
    seconds=st.floats(min_value=1.0, max_value=900.0),
)
def test_every_due_time_is_sampled_within_one_gop_and_never_more_often_than_due(
    interval: float, gop: int, seconds: float
) -> None:
    gate = KeyframeGate(interval)
    stream = packets(seconds, gop=gop)
    taken = run(gate, stream)
    keyframe_times = [t for t, key in stream if key]
    assert taken[0] == 0.0
    gop_s = gop / FPS
    due = 0.0
    for t in taken:
        assert due - 1e-9 <= t < due + gop_s + 1e-9
        due = due + interval if due + interval > t else t + interval
    # No due time with a keyframe after it was left without a sample.
    assert not any(t >= due for t in keyframe_times)


# -- the gate inside PyAVReader (decode: keyframes with max_fps) -----------------------------------------


def write_clip(path: Path, frames: int, gop: int, *, garbage: bool = False) -> Path:
    """A 10 fps H.264 file, a keyframe every ``gop`` frames, frame i of brightness 8*(i % 32) (or random bytes)."""
    images = (np.full((48, 64, 3), 8 * (index % 32), np.uint8) for index in range(frames))
    options = {"g": str(gop), "bf": "0", "x264-params": "scenecut=0"}  # keyframes exactly every gop frames
    clip = write_video(
        path, images, fps=10, options=options, pts=range(0, 100 * frames, 100), time_base=Fraction(1, 1000)
    )
    if not garbage:
        return clip
    damaged = path.with_name(f"garbage-{path.name}")
    rng = np.random.default_rng(1)
    with av.open(str(clip)) as original, av.open(str(damaged), "w") as output:
        stream = output.add_stream_from_template(original.streams.video[0])
        for packet in original.demux(original.streams.video[0]):
            if packet.size:
                junk = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                junk.pts, junk.dts, junk.time_base, junk.stream = packet.pts, packet.dts, packet.time_base, stream
                output.mux(junk)
    return damaged


def file_reader(video: Path, **overrides: object) -> PyAVReader:
    settings: dict[str, object] = {"url": str(video), "realtime": False, "on_end": "stop", "start_time": START}
    settings |= {"decode": "keyframes", "reconnect": BackoffConfig(base_s=0.01, ceiling_s=0.02), **overrides}
    return PyAVReader("cam-site", ReaderConfig.model_validate(settings))


def test_a_lean_reader_decodes_only_the_due_keyframes_and_counts_the_packets_it_drops(tmp_path: Path) -> None:
    video = write_clip(tmp_path / "site.mp4", frames=64, gop=10)  # a keyframe every second for 6.4 s
    reader = file_reader(video, max_fps=1 / 3)
    assert reader.lean
    frames = list(reader.frames())

    assert [round(float(f.image.mean()) / 8) for f in frames] == [index % 32 for index in (0, 30, 60)]
    assert [f.timestamp for f in frames] == [START + dt.timedelta(seconds=s) for s in (0, 3, 6)]
    stats = reader.stats()
    assert (stats.frames_decoded, stats.frames_delivered, stats.frames_rate_limited) == (3, 3, 0)
    # Only the due keyframes' packets reach the decoder: the other 61 packets are read and dropped.
    assert reader.packets_not_decoded == 61


def test_a_keyframe_exactly_on_its_due_time_is_taken_whatever_the_pts_rounding(tmp_path: Path) -> None:
    video = write_clip(tmp_path / "site.mp4", frames=60, gop=10)
    frames = list(file_reader(video, max_fps=1.0).frames())  # sampled as often as keyframes come
    assert len(frames) == 6


def test_without_max_fps_every_keyframe_is_decoded_as_before(tmp_path: Path) -> None:
    video = write_clip(tmp_path / "site.mp4", frames=40, gop=10)
    reader = file_reader(video)
    assert not reader.lean
    assert len(list(reader.frames())) == 4
    assert reader.packets_not_decoded == 0


def test_a_lean_reader_still_tears_down_a_stream_of_undecodable_packets(tmp_path: Path) -> None:
    video = write_clip(tmp_path / "site.mp4", frames=30, gop=10, garbage=True)
    ticks = itertools.count(step=1.0)  # every look at the clock costs a second: the stall comes after a few packets
    config = {"url": str(video), "realtime": False, "on_end": "stop", "decode": "keyframes", "max_fps": 1 / 60}
    config |= {"stall_timeout_s": 3.0, "max_reconnects": 1, "reconnect": BackoffConfig(base_s=0.01, ceiling_s=0.02)}
    reader = PyAVReader("cam-site", ReaderConfig.model_validate(config), monotonic=lambda: next(ticks))
    with pytest.raises(SourceGaveUpError, match="no frame for"):
        list(reader.frames())
    assert reader.stats().stalls == 2
