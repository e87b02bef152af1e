"""The catch-up policy on its own: when to skip to keyframes, when to decode every frame again."""

from __future__ import annotations

import pytest

from edge_agent.sources.catch_up import CatchUp


def test_a_stream_within_its_lag_is_decoded_whole() -> None:
    policy = CatchUp(1.0)
    assert [policy.observe(lag, keyframe=False) for lag in (0.1, 0.5, 0.99, 1.0)] == [False] * 4
    assert policy.episodes == 0


def test_falling_behind_skips_until_a_keyframe_within_half_the_lag() -> None:
    policy = CatchUp(1.0)
    assert policy.observe(1.2, keyframe=False)
    assert policy.observe(0.3, keyframe=False), "only a keyframe may end the catch-up (P-frames need their refs)"
    assert policy.observe(0.8, keyframe=True), "a keyframe still more than half the lag behind: keep skipping"
    assert not policy.observe(0.4, keyframe=True)
    assert policy.observe(1.5, keyframe=False)
    assert policy.episodes == 2


def test_a_new_connection_starts_decoding_every_frame() -> None:
    policy = CatchUp(0.5)
    assert policy.observe(2.0, keyframe=False)
    policy.restart()
    assert not policy.skipping


def test_switched_off_it_never_skips() -> None:
    policy = CatchUp(None)
    assert not policy.observe(100.0, keyframe=False)
    with pytest.raises(ValueError, match="positive"):
        CatchUp(0)
