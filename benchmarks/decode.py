"""Raw decode speed of one process, one thread (``pipeline.video.decode`` on a 320x240 mpeg4 clip).

- ``decode_frames_per_s``: every frame decoded and converted to RGB, front to back.
- ``decode_center_clips_per_s``: one 16-frame centre window (seek to the keyframe before it,
  decode to its end, convert only its frames), as ``--anchors center`` costs without ``to_end``.
- ``center_clip_vs_whole_video``: time of the whole video over time of the centre clip (how much
  seeking saves on a video of ``--frames`` frames).

The extraction's own decode figures (its decoder processes, all cores) are in
:mod:`benchmarks.extract`.

Run: ``python -m benchmarks.decode [--frames 150]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.common import best_of, make_clip
from pipeline.clips import clip_windows
from pipeline.video import decode, probe


def measure(num_frames: int = 150, repeats: int = 3) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = make_clip(Path(tmp) / "clip.avi", num_frames)
        info = probe(path)
        full = best_of(lambda: decode(path, threads=1), repeats)
        window = clip_windows(info.num_frames, "center", 16)[0].frames
        one_clip = best_of(lambda: decode(path, window, threads=1), repeats)
    return {
        "decode_frames_per_s": info.num_frames / full,
        "decode_center_clips_per_s": 1 / one_clip,
        "center_clip_vs_whole_video": full / one_clip,
        "frames": info.num_frames,
        "width": info.width,
        "height": info.height,
    }


def rows(d: dict) -> list[tuple[str, str, str]]:
    """Table rows ``(figure, ratio, its two numbers)`` for :func:`benchmarks.suite.table`."""
    return [
        (
            "centre clip vs whole-video decode",
            f"{d['center_clip_vs_whole_video']:.1f}x",
            f"{d['decode_center_clips_per_s']:.1f} centre clips/s vs {d['decode_frames_per_s']:.0f} frames/s "
            f"({d['frames']} frames of {d['width']}x{d['height']}, 1 process, 1 thread)",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = measure(args.frames, args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
