"""Clip sampling as pure functions (``pipeline.clips``): anchors, windows, random starts, spread frames."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.clips import clip_windows, parse_anchor_policy, random_starts, span, spread_frames, window
from pipeline.errors import UserError

POLICIES = ["center", "uniform:1", "uniform:3", "uniform:8", "stride:1", "stride:5"]


def test_anchor_policies() -> None:
    assert parse_anchor_policy("center") == ("center", 1)
    assert parse_anchor_policy("uniform:8") == ("uniform", 8)
    assert parse_anchor_policy("stride:3") == ("stride", 3)
    for bad in ("middle", "uniform", "uniform:0", "stride:x", "center:2", "stride:-1"):
        with pytest.raises(UserError, match="anchor policy"):
            parse_anchor_policy(bad)
    assert [c.anchor for c in clip_windows(100, "center", 16)] == [50]
    assert [c.anchor for c in clip_windows(60, "center", 16)] == [30]
    assert [c.anchor for c in clip_windows(30, "center", 16)] == [14]  # shifted back to fit
    assert [c.anchor for c in clip_windows(40, "stride:8", 16)] == [0, 8, 16, 24]
    assert [c.anchor for c in clip_windows(100, "uniform:4", 16, 2)] == [8, 26, 43, 61]
    assert clip_windows(100, "center", 4, 3)[0].frames == (50, 53, 56, 59)


def test_horizon_moves_the_window_not_past_the_end() -> None:
    # 40 frames, clip 16, horizon 8: valid anchors 0..16; the centre (20) shifts back to 16.
    (clip,) = clip_windows(40, "center", 16, horizon=8)
    assert clip.anchor == 16 and clip.frames == tuple(range(24, 40))
    assert [c.anchor for c in clip_windows(40, "stride:8", 16, horizon=8)] == [0, 8, 16]
    with pytest.raises(ValueError, match="horizon"):
        clip_windows(40, "center", 16, horizon=-1)


def test_short_video_repeats_last_frame() -> None:
    (clip,) = clip_windows(10, "uniform:4", 16)
    assert clip.anchor == 0
    assert clip.frames == tuple(range(10)) + (9,) * 6
    # shorter than the horizon plus one window: one anchor at 0, its window clamped to the end
    (clip,) = clip_windows(20, "uniform:4", 16, horizon=8)
    assert clip.anchor == 0 and clip.frames == tuple(range(8, 20)) + (19,) * 4


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_frames"):
        clip_windows(0, "center", 16)
    with pytest.raises(ValueError, match="positive"):
        span(0, 1)
    for frames, k in ((0, 3), (5, 0)):
        with pytest.raises(UserError, match="at least one frame"):
            spread_frames(frames, k)


@given(
    num_frames=st.integers(1, 400),
    clip_len=st.integers(1, 32),
    frame_step=st.integers(1, 4),
    horizon=st.integers(0, 40),
    policy=st.sampled_from(POLICIES),
)
def test_windows_properties(num_frames: int, clip_len: int, frame_step: int, horizon: int, policy: str) -> None:
    clips = clip_windows(num_frames, policy, clip_len, frame_step, horizon)
    s = (clip_len - 1) * frame_step + 1
    last = max(num_frames - horizon - s, 0)  # the last anchor whose window fits
    fits = num_frames >= horizon + s
    anchors = [c.anchor for c in clips]
    assert anchors == sorted(set(anchors)), "anchors sorted and unique"
    for clip in clips:
        assert 0 <= clip.anchor <= last
        assert len(clip.frames) == clip_len
        assert all(0 <= f < num_frames for f in clip.frames), "every window frame exists"
        assert clip.frames[0] == min(clip.anchor + horizon, num_frames - 1)
        if fits:  # the window fits: exact steps from anchor + horizon, no repeats, within the true end
            assert clip.frames == tuple(clip.anchor + horizon + i * frame_step for i in range(clip_len))
    if not fits:
        assert anchors == [0]
    kind, value = parse_anchor_policy(policy)
    if kind == "center":
        assert anchors == [min(num_frames // 2, last)]
    elif kind == "uniform":
        assert len(anchors) == min(value, last + 1)
    else:
        assert anchors == list(range(0, last + 1, value))


@given(
    num_frames=st.integers(1, 200),
    clip_len=st.integers(1, 32),
    frame_step=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_starts_fit(num_frames: int, clip_len: int, frame_step: int, seed: int) -> None:
    starts = random_starts(num_frames, clip_len, frame_step, 20, np.random.default_rng(seed))
    s = span(clip_len, frame_step)
    assert len(starts) == 20
    assert ((starts >= 0) & (starts <= max(num_frames - s, 0))).all()
    for start in starts:
        frames = window(int(start), num_frames, clip_len, frame_step)
        assert all(0 <= f < num_frames for f in frames)
        if num_frames >= s:
            assert frames == tuple(int(start) + i * frame_step for i in range(clip_len))


def test_random_starts_reach_every_start() -> None:
    # 20 frames, clip 16: the starts 0..4 all fit, and only those
    starts = random_starts(20, 16, 1, 500, np.random.default_rng(0))
    assert set(starts.tolist()) == {0, 1, 2, 3, 4}
    assert set(random_starts(10, 16, 1, 50, np.random.default_rng(0)).tolist()) == {0}


@given(num_frames=st.integers(1, 500), k=st.integers(1, 40))
def test_spread_frames_properties(num_frames: int, k: int) -> None:
    frames = spread_frames(num_frames, k)
    assert frames == sorted(set(frames))
    assert all(0 <= f < num_frames for f in frames)
    assert len(frames) == min(k, num_frames)


def test_spread_frames_by_hand() -> None:
    assert spread_frames(30, 3) == [5, 15, 25]
    assert spread_frames(2, 5) == [0, 1]
    assert spread_frames(100, 1) == [50]
