"""Which frames a model sees: every clip-sampling rule of the project, as pure functions.

Three consumers, one module, so the rules cannot drift apart:

* extraction places anchors by policy and gives each anchor its teacher window
  (:func:`clip_windows`);
* ``fit-teacher`` draws random training clips (:func:`random_starts` + :func:`window`);
* ``predict`` spreads a few frames evenly over a video (:func:`spread_frames`).

The teacher's window of anchor ``t`` with horizon ``K`` is ``t+K, t+K+s, ..., t+K+(clip_len-1)*s``:
the student sees frame ``t`` and learns the motion that follows (``K = 0``, the paper's choice,
starts the window at the frame itself). Nothing here touches a video, so every rule is tested
on numbers alone.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pipeline.errors import UserError

ANCHOR_POLICIES = ("center", "uniform:K", "stride:S")


class ClipInfo(NamedTuple):
    """One clip: the frame the student sees and the frames the teacher sees.

    ``frames[0] == anchor + horizon``: the teacher's clip starts at (or ``horizon`` frames
    after) the student's frame.
    """

    anchor: int
    frames: tuple[int, ...]


def parse_anchor_policy(policy: str) -> tuple[str, int]:
    """Split ``"center"``, ``"uniform:K"`` or ``"stride:S"`` into ``(kind, value)``.

    Raises:
        ValueError: naming the policy and the valid forms.
    """
    kind, _, value = policy.partition(":")
    if kind == "center" and not value:
        return kind, 1
    if kind in ("uniform", "stride") and value.isdigit() and int(value) > 0:
        return kind, int(value)
    raise UserError(f"invalid anchor policy {policy!r}: use 'center', 'uniform:K' or 'stride:S' (K, S >= 1)")


def span(clip_len: int, frame_step: int = 1) -> int:
    """Frames a window covers from its first to its last frame."""
    if clip_len <= 0 or frame_step <= 0:
        raise ValueError(f"clip_len and frame_step must be positive, got {clip_len} and {frame_step}")
    return (clip_len - 1) * frame_step + 1


def window(start: int, num_frames: int, clip_len: int, frame_step: int = 1) -> tuple[int, ...]:
    """Frame indices of the window starting at ``start``, clamped to the last frame.

    Clamping only bites in a video shorter than one window: its single window repeats the
    last frame (every other caller places windows so that they fit).
    """
    return tuple(min(start + i * frame_step, num_frames - 1) for i in range(clip_len))


def clip_windows(num_frames: int, policy: str, clip_len: int, frame_step: int = 1, horizon: int = 0) -> list[ClipInfo]:
    """Anchor frames of a video and each anchor's future window.

    Windows never run past the end: the rule for short videos is the reference code's, **shift
    the window back** (so the anchor moves earlier and still starts its window); a video shorter
    than ``horizon`` plus one whole window gets a single anchor at frame 0, and its window repeats
    the last frame.

    Policies (over the valid anchors ``0..last``, ``last = num_frames - horizon - span``):
        * ``center``: one anchor at the video's temporal centre (the paper's choice), shifted back.
        * ``uniform:K``: the centres of K equal segments of the valid anchors (fewer if the
          video is too short for K distinct anchors).
        * ``stride:S``: every S-th valid anchor from 0.

    Args:
        num_frames: frames that actually decode (not what a header claims).
        policy: see above.
        clip_len, frame_step: the teacher's window.
        horizon: frames between the anchor and the window's first frame (``--horizon``).

    Returns:
        Clips sorted by anchor, without repeats.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    kind, value = parse_anchor_policy(policy)
    last = max(num_frames - horizon - span(clip_len, frame_step), 0)
    if kind == "center":
        anchors = [min(num_frames // 2, last)]
    elif kind == "uniform":
        anchors = [((2 * i + 1) * (last + 1)) // (2 * value) for i in range(value)]
    else:
        anchors = list(range(0, last + 1, value))
    return [ClipInfo(t, window(t + horizon, num_frames, clip_len, frame_step)) for t in sorted(set(anchors))]


def random_starts(num_frames: int, clip_len: int, frame_step: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random window starts, uniform over the starts whose window fits (``fit-teacher``).

    A video shorter than one window has the single start 0 (its window repeats the last frame,
    the same rule as :func:`clip_windows`).
    """
    return rng.integers(0, max(num_frames - span(clip_len, frame_step), 0) + 1, size=count)


def spread_frames(num_frames: int, k: int) -> list[int]:
    """Centres of ``k`` equal segments of a video (fewer when it has fewer frames), sorted, unique (``predict``)."""
    if num_frames < 1 or k < 1:
        raise UserError(f"need at least one frame and k >= 1, got {num_frames} frames, k={k}")
    return sorted({int((i + 0.5) * num_frames / k) for i in range(k)})
