"""The benchmark suite (``make bench``): every speed figure of the project in one run.

Each figure is a ratio of two throughputs (or costs) measured side by side in this run, on
this machine, so figures from different machines compare by their ratios. Where a CUDA device
exists, the suite runs there (bf16 autocast, channels_last) and says so. Writes
``benchmarks/results.json`` and prints a table.

Run: ``python -m benchmarks.suite [--quick]``
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import torch

from benchmarks import decode, extract, incremental, train
from pipeline.device import resolve_device, resolve_precision

RESULTS = Path(__file__).with_name("results.json")


def run(quick: bool) -> dict:
    device = resolve_device("auto")
    results: dict = {
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "device_type": device.type,
            "teacher_precision": resolve_precision("auto", device),
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        }
    }
    t0 = time.perf_counter()
    results["decode"] = decode.measure(num_frames=150, repeats=2 if quick else 3)
    results["extract"] = extract.measure(videos=8 if quick else 24)
    results["train"] = train.measure(steps=2 if quick else 3)
    results["incremental"] = incremental.measure(videos=8 if quick else 24)
    clip_len = 16
    results["decode"]["vs_teacher_frames"] = results["decode"]["decode_frames_per_s"] / (
        results["extract"]["forward_only_clips_per_s"] * clip_len
    )
    results["seconds"] = round(time.perf_counter() - t0, 1)
    return results


def table(r: dict) -> str:
    e, t, d, i = r["extract"], r["train"], r["decode"], r["incremental"]
    teacher_frames = e["forward_only_clips_per_s"] * 16
    cached, online = t["cached_step_samples_per_s"], t["online_step_samples_per_s"]
    rows = [
        (
            "extraction vs teacher forward-only",
            f"{e['ratio']:.3f}",
            f"{e['extract_clips_per_s']:.2f} vs {e['forward_only_clips_per_s']:.2f} clips/s "
            f"({e['teacher']}, {e['precision']})",
        ),
        (
            "decode vs teacher's frame intake",
            f"{d['vs_teacher_frames']:.1f}x",
            f"{d['decode_frames_per_s']:.0f} frames/s (320x240, 1 thread) vs {teacher_frames:.0f} frames/s",
        ),
        (
            "cached vs online-teacher training",
            f"{t['cached_vs_online']:.1f}x",
            f"{cached:.1f} vs {online:.2f} samples/s ({t['student']} + {t['teacher']})",
        ),
        (
            "loader (HDF5) vs training step",
            f"{t['loader_hdf5_vs_step']:.1f}x",
            f"{t['loader_hdf5_samples_per_s']:.0f} vs {cached:.1f} samples/s",
        ),
        (
            "loader (in memory) vs training step",
            f"{t['loader_memory_vs_step']:.0f}x",
            f"{t['loader_memory_samples_per_s']:.0f} vs {cached:.1f} samples/s",
        ),
        (
            "teacher vs student latency",
            f"{t['teacher_vs_student_latency']:.1f}x",
            f"{t['teacher_latency_ms']:.1f} ms per clip vs {t['student_latency_ms']:.1f} ms per frame",
        ),
        (
            "teacher vs student GFLOPs",
            f"{t['teacher_vs_student_gflops']:.1f}x",
            f"{t['teacher_gflops']:.2f} vs {t['student_gflops']:.2f} GFLOPs",
        ),
        (
            "full vs incremental re-extraction",
            f"{i['full_vs_incremental']:.1f}x",
            f"{i['full_s']:.1f} s for {i['full_extracted']} videos vs {i['incremental_s']:.1f} s for "
            f"{i['incremental_extracted']} new (+{i['incremental_skipped']} skipped)",
        ),
    ]
    width = max(len(a) for a, _, _ in rows)
    m = r["machine"]
    lines = [
        f"device: {m['device_type']} ({m['device']}), teacher precision {m['teacher_precision']}, "
        f"{m['cpu_threads']} CPU threads"
    ]
    lines += [f"{a:<{width}}  {b:>7}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer videos and steps (noisier).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = run(args.quick)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"(written to {RESULTS}, {results['seconds']} s)")


if __name__ == "__main__":
    main()
