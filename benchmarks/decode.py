"""Decode throughput of pipeline.video on a 320x240 clip (frames/s), all frames vs one 16-frame window.

Run: ``python -m benchmarks.decode``
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.common import best_of, make_clip
from pipeline.video import clip_windows, decode, probe


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
        "frames": info.num_frames,
        "width": info.width,
        "height": info.height,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = measure(args.frames, args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
