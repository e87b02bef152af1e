"""The site sampling benchmark, short: a real RTSP server, every client strategy, the JSON it writes.

No timing is asserted (the box is shared); the test checks that each strategy really produced 1080p
frames from the server and that the headline keys are the strategies' own figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.site_sampling import GRABS, HOUR_S, PERSISTENT, STRATEGIES, main

pytestmark = pytest.mark.integration


def test_quick_run_measures_both_strategies_on_frames_from_the_server(tmp_path: Path) -> None:
    assert main(["--quick", "--out", str(tmp_path / "results"), "--clips-dir", str(tmp_path / "clips")]) == 0
    document = json.loads((tmp_path / "results" / "site_sampling.json").read_text(encoding="utf-8"))

    strategies = document["strategies"]
    assert set(strategies) == {*PERSISTENT, *GRABS} == set(STRATEGIES)
    for name in ("persistent", "persistent_baseline"):
        assert strategies[name]["frames"] >= 1, name
        assert strategies[name]["frame_size"] == "1920x1080"
        assert strategies[name]["keyframes_decoded"] >= strategies[name]["frames"]
    # The agent's lean mode drops packets undecoded; the baseline hands every one to the decoder.
    assert strategies["persistent"]["lean"] is True
    assert strategies["persistent"]["packets_not_decoded"] > 0
    assert strategies["persistent_baseline"]["lean"] is False
    assert strategies["persistent_baseline"]["packets_not_decoded"] == 0
    assert strategies["demux_floor"]["frames"] == 0
    assert strategies["demux_floor"]["packets"] > 0
    for name in GRABS:
        assert strategies[name]["frames"] == strategies[name]["grabs"] == 1, name
        assert strategies[name]["frame_size"] == "1920x1080"
    assert strategies["grab_worst_case"]["keyframe_bytes_mean"] > 0
    assert strategies["grab"]["keyframes_decoded"] == strategies["grab"]["attempts"] == 2  # a warm-up, one timed
    assert strategies["grab"]["failed"] == 0

    for name in STRATEGIES:  # the headline keys are the strategies' own figures, under plain names
        cpu = document[f"cpu_s_per_camera_hour_{name}"]
        assert cpu == strategies[name]["cpu_s_per_camera_hour"]
        assert cpu > 0
        assert math.isclose(document[f"cameras_per_core_{name}"], HOUR_S / cpu, rel_tol=0.01, abs_tol=0.1)
    assert document["better_strategy"] in ("grab", "persistent")
    assert isinstance(document["target_met"], bool)
    assert isinstance(document["target_met_worst_case"], bool)
    assert document["target_cameras_per_core"] == 100.0

    clip = document["config"]["clip"]
    assert (clip["width"], clip["height"], clip["fps"]) == (1920, 1080, 25)
    assert clip["keyframe_interval_frames"] == [clip["gop_frames"]]
    assert document["config"]["quick"] is True
    assert {"cpu_model", "cpu_count", "packages"} <= set(document["machine"])
    assert {"av", "ffmpeg_libavcodec", "gstreamer"} <= set(document["versions"])
    load = document["load_average"]
    assert {"before_1_5_15", "after_1_5_15", "max_1min_during", "quiet"} <= set(load)
    highest = max(load["before_1_5_15"][0], load["after_1_5_15"][0], load["max_1min_during"])
    assert load["quiet"] == (highest < load["cpu_count"] / 2)
