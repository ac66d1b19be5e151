"""The benchmark suite (``make bench``): every speed figure of the project, measured in one run.

Each row is a ratio of two figures measured side by side in this run, on this machine, printed
with both; figures from different machines compare by their ratios. A speed ratio's denominator
is the best this machine can do (the teacher's fastest configuration, decoding on every core),
never the configuration the code happened to pick. Where a CUDA device exists the suite runs
there and says so. The parts, in the order they run (the most telling first, so that a run cut
short still has them; ``results.json`` is rewritten after each part):

- ``extract`` (:mod:`benchmarks.extract`): extraction vs its limit, vs the teacher's best
  forward pass; pipeline-only (null teacher) vs decode-only; auto's choice vs the best; the
  16-worker decode rate scaled from one worker (an estimate, labelled as such).
- ``train`` (:mod:`benchmarks.train`): cached vs online-teacher training; prefetched vs
  resident-batch step and the time a step waits for data; loader (HDF5, memory) vs step;
  device crop/mirror vs step; teacher vs student latency and GFLOPs.
- ``step`` (:mod:`benchmarks.step`): the default benchmark's CPU training step vs its compute
  floor, where its time goes, and one-thread runs side by side vs one run.
- ``decode`` (:mod:`benchmarks.decode`): one process decoding a centre clip vs the whole video.
- ``incremental`` (:mod:`benchmarks.incremental`): full vs incremental re-extraction.

Writes ``benchmarks/results.json`` (or ``--out``) and prints the table.

Run: ``python -m benchmarks.suite [--quick] [--workers N] [--parts extract,train] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from benchmarks import decode, extract, incremental, step, train
from benchmarks.common import cpu_count, describe_device, fresh_run_config
from pipeline.device import resolve_device

RESULTS = Path(__file__).with_name("results.json")
PARTS = ("extract", "train", "step", "decode", "incremental")
ROWS = {
    "extract": extract.rows,
    "train": train.rows,
    "step": step.rows,
    "decode": decode.rows,
    "incremental": incremental.rows,
}


def run_part(name: str, results: dict, args: argparse.Namespace) -> dict:
    quick = args.quick
    if name == "extract":
        return extract.measure(args.teacher, workers=args.workers, device=args.device, quick=quick, fresh=False)
    if name == "train":
        best = results.get("extract", {}).get("forward_best", "auto")
        return train.measure(args.student, args.teacher, teacher_run=best, device=args.device, quick=quick)
    if name == "step":
        return step.measure(steps=60 if quick else 200, compile_step=not quick)
    if name == "decode":
        return decode.measure(num_frames=150, repeats=2 if quick else 3)
    batch = results.get("extract", {}).get("batch_size", 8)
    return incremental.measure(
        8 if quick else 24, args.teacher, args.device, workers=args.workers, batch_size=batch, fresh=False
    )


def run(args: argparse.Namespace, out: Path) -> dict:
    """Run the chosen parts in order, rewriting ``out`` after each; returns the results."""
    device = resolve_device(args.device)
    results: dict = {
        "machine": describe_device(device),
        "teacher": args.teacher,
        "student": args.student,
        "workers": args.workers if args.workers is not None else cpu_count(),
        "quick": args.quick,
        "seconds": {},
    }
    with fresh_run_config():  # auto measures once in this run; later parts reuse its choice
        for name in args.parts:
            t0 = time.perf_counter()
            results[name] = run_part(name, results, args)
            results["seconds"][name] = round(time.perf_counter() - t0, 1)
            out.write_text(json.dumps(results, indent=2) + "\n")
            print(f"[{name}: {results['seconds'][name]} s]\n{part_table(name, results[name])}", flush=True)
    return results


def part_table(name: str, r: dict) -> str:
    lines = [f"{a:<44} {b:>7}  {c}" for a, b, c in ROWS[name](r)]
    if name == "extract":
        lines.append(extract.forward_table(r))
    return "\n".join(lines)


def header(r: dict) -> str:
    m = r["machine"]
    where = f"CUDA ({m['device']})" if m["device_type"] == "cuda" else "CPU only"
    return (
        f"device: {where}; CPU {m['cpu']}, {m['cpu_cores']} cores, {m['torch_threads']} torch threads; "
        f"torch {m['torch']}; teacher {r['teacher']}, student {r['student']}, {r['workers']} decoder processes"
        + ("; quick (noisier)" if r["quick"] else "")
    )


def table(r: dict) -> str:
    """Every measured part's rows under one header naming the device."""
    lines = [header(r)]
    for name in PARTS:
        if name in r:
            lines.append(part_table(name, r[name]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer videos, batches and steps (noisier).")
    parser.add_argument("--teacher", default="r3d_18")
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--workers", type=int, default=None, help="Decoder processes (default: every core).")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this process (default: torch's).")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"Comma-separated subset of {','.join(PARTS)}.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where to write the results (JSON).")
    args = parser.parse_args()
    asked = [p for p in args.parts.split(",") if p]
    if not asked or any(p not in PARTS for p in asked):
        parser.error(f"--parts {args.parts!r}: choose from {', '.join(PARTS)}")
    args.parts = [p for p in PARTS if p in asked]
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = args.workers if args.workers is not None else cpu_count()
    print(header({**vars(args), "machine": describe_device(resolve_device(args.device)), "workers": workers}))
    results = run(args, args.out)
    results["total_seconds"] = round(sum(results["seconds"].values()), 1)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{table(results)}")
    print(f"(written to {args.out}, {results['total_seconds']} s)")


if __name__ == "__main__":
    main()
