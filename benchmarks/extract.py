"""Stage one against its limit: extraction throughput next to what bounds it, all measured in one run.

On UCF101-sized videos (320x240 mpeg4 AVI, ``--frames`` frames each, ``--anchors`` clips per
video), for one teacher (random init) and one decoder worker count (default: every core):

- **forward-only**, ``forward[<precision>+<format>]``: clips/s of the teacher alone on a random
  batch of the extraction's shape, for each of fp32/bf16 x contiguous/channels_last
  (:func:`pipeline.autotune.time_forward`, median of at least ``--repeats`` batches after a warm-up). A bf16
  candidate whose outputs stray from fp32's by more than ``auto``'s tolerance is listed but not
  a candidate. ``forward_best`` is the fastest candidate: the teacher's limit on this machine.
- **auto**: the configuration ``extract-teacher`` picks by itself (``fastest_config``, measured
  afresh in a private ``HALLUCINET_CACHE_DIR``), with its forward-only rate from the line above.
- **decode-only**: the frames the extraction decodes (the same :class:`ClipDecoder` and worker
  processes, through ``decode_loader``), items discarded: videos/s and clips/s (clips = anchors).
  Also with 1 worker (``decode_per_worker``), and that rate times 16, *scaled, not measured*:
  what the 16 cores of a lent GPU machine would decode if decoding scales linearly.
- **resize share**: in one process on one thread, as a decoder worker: the share of its time spent
  on the teacher preset's geometry (resize, crop; the mirrored copy too with ``--mirror``) next to
  decoding, which a decoder does on top of decoding when the teacher runs on the CPU.
- **pipeline-only**: ``Extractor.run`` with a *null teacher* (same preset, returns zeros, no
  compute): decode + device preprocessing + batching + output copies + journal, no model.
- **parity**: the cache against the teacher on torchvision's own preset (:func:`parity`): the
  lowest cosine over the first videos' clips and the relative L2 error, cached features (as
  extracted, ``auto``'s precision) vs fp32 on ``VideoClassification`` of the same decoded frames.
- **extract**: the real ``run_extraction`` with precision and memory format ``auto``: clips per
  second of its extraction loop (``ExtractSummary.loop_seconds``: from starting the decoders to the
  last journal write); ``extract_end_to_end`` divides by the whole call instead (building the
  teacher, fingerprinting every file, assembling the HDF5 cache; not ``auto``'s one-time probe,
  which is remembered per machine).

Ratios (each printed with its two numbers):

- ``extract_vs_limit`` = extract / min(forward_best, decode-only): 1.0 means the extraction
  runs at the speed of its slowest unavoidable part; the figure that matters.
- ``extract_vs_forward_best`` = extract / forward_best: the share of the teacher's best speed
  the extraction reaches (below ``extract_vs_limit`` when decoding is the limit).
- ``extract_vs_shared_cores_limit`` (a CPU teacher only) = extract / (1 / (1/forward_best +
  1/decode-only)): when the teacher runs on the very cores the decoders use, each clip costs its
  forward time plus its decode time, both measured on all cores, so that harmonic sum is the best
  the machine can do if neither part gains from sharing; ``min(forward_best, decode-only)``
  holds only where they run on separate hardware (a GPU teacher). An estimate, not a strict
  bound: a part that scales worse than linearly over the cores leaves room that the other fills.
- ``pipeline_vs_decode`` = pipeline-only / decode-only: what preprocessing, batching and the
  journal cost on top of decoding (1.0: nothing).
- ``decode_vs_forward_best`` = decode-only / forward_best: above 1 the teacher is the limit,
  below 1 decoding is.
- ``auto_vs_best`` = forward rate of auto's choice / forward_best (1.0: auto chose the best).
- end-to-end vs loop = ``extract_end_to_end`` / extract: the share of a run's time spent in the
  extraction loop (the rest is fixed cost, smaller on a larger dataset).

Decode-only, pipeline-only and extract all start their worker processes inside the timed
region, as a real run does; enough videos amortise that (``--videos``).

Run: ``python -m benchmarks.extract [--teacher r3d_18] [--workers N] [--videos N] [--quick]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.common import GPU_MACHINE_CORES, cpu_count, describe_device, fresh_run_config, make_ucf101
from pipeline.autotune import RunConfig, bf16_is_native, fastest_config, screen, time_forward
from pipeline.datasets import load_dataset
from pipeline.device import resolve_device
from teacher_extract.decoding import ClipDecoder, decode_loader, decode_windows
from teacher_extract.engine import Extractor
from teacher_extract.extract import ExtractConfig, ExtractSummary, run_extraction
from teacher_extract.journal import Journal
from teacher_extract.models import build_teacher
from teacher_extract.plan import PlanItem

#: Largest ``max|out - out_fp32| / max|out_fp32|`` of a bf16 candidate (fastest_config's default).
TOLERANCE = 0.05


class NullTeacher(nn.Module):
    """Stands in for a :class:`teacher_extract.models.Teacher`: same preset and widths, zeros out, no compute."""

    def __init__(self, preset, feature_dim: int, num_classes: int):
        super().__init__()
        self.name, self.preset, self.feature_dim, self.num_classes = "null", preset, feature_dim, num_classes
        self.classes, self.weights_id = (), "null"

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = clips.shape[0]
        logits = clips.new_zeros(n, self.num_classes) if self.num_classes else None
        return clips.new_zeros(n, self.feature_dim), logits


def forward_configs(teacher: nn.Module, example: torch.Tensor, device: torch.device, repeats: int) -> dict:
    """``{"<precision>+<format>": {"clips_per_s", "error", "candidate"}}`` for every configuration.

    A configuration under half the fastest one's rate on a single clip (emulated bf16 on a CPU
    without native support runs r3d_18 at minutes per batch) is not timed on the full batch, as
    in ``fastest_config``: it is reported with its one-clip rate and ``"screened": True``; it
    cannot be the best.
    """
    precisions = ["fp32"]
    if bf16_is_native(device):  # emulated bf16 runs a 3D-CNN minutes per batch: it cannot be the limit
        precisions.append("bf16")
    configs = [(p, f) for p in precisions for f in ("contiguous", "channels_last")]
    one = {c: time_forward(teacher, example[:1], device, *c, min_runs=1, min_seconds=0.0)[0] for c in configs}
    kept = screen(teacher, example, device, configs, lambda *a: (one[(a[3], a[4])], None))
    out, reference = {}, None
    for precision, fmt in configs:
        if (precision, fmt) not in kept:
            out[f"{precision}+{fmt}"] = {"clips_per_s": one[(precision, fmt)], "screened": True, "candidate": False}
            continue
        rate, first = time_forward(teacher, example, device, precision, fmt, min_runs=repeats)
        if reference is None:
            reference = first
        error = float((first - reference).abs().max() / reference.abs().max().clamp_min(1e-12))
        out[f"{precision}+{fmt}"] = {
            "clips_per_s": rate,
            "error": error,
            "candidate": precision == "fp32" or error <= TOLERANCE,
        }
    return out


def decode_only(root: Path, paths: list[str], cfg: ExtractConfig, workers: int, pin_memory: bool) -> dict:
    """Iterate the extraction's decode loader over ``paths`` and discard the items."""
    dataset = ClipDecoder(
        root,
        paths,
        anchors=cfg.anchors,
        clip_len=cfg.clip_len,
        frame_step=cfg.frame_step,
        horizon=cfg.horizon,
        image_size=cfg.image_size,
    )
    videos = clips = frames = 0
    t0 = time.perf_counter()
    for item in decode_loader(dataset, workers=workers, pin_memory=pin_memory):
        if item.error is not None:
            raise RuntimeError(f"{paths[item.index]}: {item.error}")
        videos += 1
        clips += len(item.anchors)
        frames += item.num_decoded
    seconds = time.perf_counter() - t0
    return {
        "workers": workers,
        "videos": videos,
        "clips": clips,
        "seconds": seconds,
        "videos_per_s": videos / seconds,
        "clips_per_s": clips / seconds,
        "frames_per_s": frames / seconds,
    }


def resize_share(root: Path, paths: list[str], cfg: ExtractConfig, preset) -> dict:
    """In this process on one thread, as a decoder worker runs: seconds decoding vs running the preset's geometry.

    The geometry (resize and crop, and the mirrored copy with ``--mirror``) is what a decoder
    process does on top of decoding when the teacher runs on the CPU.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    decode_s = resize_s = 0.0
    try:
        for path in paths:
            t0 = time.perf_counter()
            video, _, _ = decode_windows(root / path, cfg.anchors, cfg.clip_len, cfg.frame_step, cfg.horizon)
            t1 = time.perf_counter()
            raw = torch.from_numpy(video.frames).permute(0, 3, 1, 2)
            preset.geometry(raw)
            if cfg.mirror:
                preset.geometry(raw.flip(-1))
            decode_s, resize_s = decode_s + t1 - t0, resize_s + time.perf_counter() - t1
    finally:
        torch.set_num_threads(threads)
    return {"videos": len(paths), "decode_s": decode_s, "resize_s": resize_s, "share": resize_s / (decode_s + resize_s)}


def pipeline_only(cfg: ExtractConfig, root: Path, records, teacher, device: torch.device, run: RunConfig) -> dict:
    """``Extractor.run`` over ``records`` with a :class:`NullTeacher` in ``teacher``'s place."""
    null = NullTeacher(teacher.preset, teacher.feature_dim, teacher.num_classes).to(device)
    journal = Journal(Path(cfg.out).with_name("null.h5"), "null-teacher")
    todo = [PlanItem(record, "bench") for record in records]
    summary = ExtractSummary(videos=len(todo))
    t0 = time.perf_counter()
    Extractor(cfg, null, device, run).run(root, todo, journal, summary)
    seconds = time.perf_counter() - t0
    journal.remove()
    if summary.failed:
        raise RuntimeError(f"{summary.failed} videos failed in the pipeline-only run: {summary.failures[:3]}")
    return {"clips": summary.clips_extracted, "seconds": seconds, "clips_per_s": summary.clips_extracted / seconds}


def parity(cache: Path, root: Path, cfg: ExtractConfig, teacher: str, device: torch.device, videos: int = 4) -> dict:
    """The cache's features against the teacher on torchvision's own preset of the same decoded frames.

    What the cache promises: for the first ``videos`` videos, each cached clip's features (the
    extraction as it ran: decoder-side uint8 resize, ``auto``'s precision) vs the same random-init
    teacher in fp32 on ``VideoClassification`` (what ``weights.transforms()`` returns) applied
    to the clip's frames as PyAV decodes them: the lowest cosine over clips and the relative
    L2 error over all of them. Each video is decoded once, with the extraction's own windowing
    (:func:`teacher_extract.decoding.decode_windows`).
    """
    from torchvision.transforms._presets import VideoClassification

    from pipeline.cache import FeatureCache

    model = build_teacher(teacher, None, seed=cfg.seed).eval().to(device)
    p = model.preset
    reference = VideoClassification(crop_size=p.crop_size, resize_size=p.resize_size, mean=p.mean, std=p.std)
    cached, theirs = [], []
    store = FeatureCache(cache)
    try:
        for v in range(min(videos, len(store.videos))):
            entry = store.entry(v)
            video, windows, _ = decode_windows(
                root / entry.path, cfg.anchors, cfg.clip_len, cfg.frame_step, cfg.horizon
            )
            if [w.anchor for w in windows] != entry.frames.tolist():
                raise RuntimeError(f"{entry.path}: the cache's anchors are not the windows decoded again")
            row = {frame: i for i, frame in enumerate(video.indices)}
            for window, features in zip(windows, entry.features, strict=True):
                frames = video.frames[[row[f] for f in window.frames]]  # (T, H, W, 3) uint8
                clip = torch.from_numpy(frames).permute(0, 3, 1, 2)
                with torch.inference_mode():
                    theirs.append(model(reference(clip)[None].to(device))[0][0].float().cpu())
                cached.append(torch.from_numpy(features))
    finally:
        store.close()
    ours, ref = torch.stack(cached), torch.stack(theirs)
    cosine = torch.nn.functional.cosine_similarity(ours, ref, dim=1)
    return {
        "clips": len(cached),
        "cosine_min": cosine.min().item(),
        "cosine_mean": cosine.mean().item(),
        "relative_l2": ((ours - ref).norm() / ref.norm()).item(),
    }


def defaults(device: torch.device, workers: int, quick: bool) -> dict:
    """Sizes that keep each timed pass a few seconds long: more videos where more workers decode."""
    per_worker = 8 if quick else 24
    return {
        "batch_size": 32 if device.type == "cuda" else 8,
        "videos": max(16, per_worker * workers),
        "solo_videos": 8 if quick else 24,
        # At least 12 on a CPU: a handful of timed batches swings by +-10% on a busy 2-core machine.
        "repeats": 50 if device.type == "cuda" else 12,
    }


def measure(
    teacher: str = "r3d_18",
    *,
    workers: int | None = None,
    videos: int | None = None,
    frames: int = 64,
    anchors: str = "uniform:2",
    batch_size: int | None = None,
    repeats: int | None = None,
    solo_videos: int | None = None,
    device: str = "auto",
    quick: bool = False,
    fresh: bool = True,
) -> dict:
    """Every figure of this module's docstring, measured in one run; ``None`` sizes take :func:`defaults`.

    ``fresh``: let ``auto`` measure in a private ``HALLUCINET_CACHE_DIR`` (off when the caller
    has set one up already, as the suite does).
    """
    dev = resolve_device(device)
    workers = cpu_count() if workers is None else workers
    sizes = defaults(dev, workers, quick)
    batch_size = batch_size or sizes["batch_size"]
    videos = videos or sizes["videos"]
    solo_videos = min(videos, solo_videos or sizes["solo_videos"])
    repeats = repeats or sizes["repeats"]
    pin = dev.type == "cuda"

    private = fresh_run_config() if fresh else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp, private:
        root = make_ucf101(Path(tmp) / "ucf101", videos, frames, workers=workers)
        cfg = ExtractConfig(
            dataset="ucf101",
            root=str(root),
            teacher=teacher,
            teacher_weights=None,
            anchors=anchors,
            batch_size=batch_size,
            device=str(dev),
            workers=workers,
            out=f"{tmp}/features.h5",
        )
        cfg.validate()
        index = load_dataset(cfg.dataset, cfg.root, cfg.split)
        paths = [r.path for r in index.videos]

        # The teacher and example exactly as extract-teacher builds them (same fastest_config key).
        model = build_teacher(teacher, None, seed=cfg.seed).eval().to(dev)
        h, w = model.preset.crop_size
        example = torch.randn(batch_size, 3, cfg.clip_len, h, w, generator=torch.Generator().manual_seed(0))
        forward = forward_configs(model, example, dev, repeats)
        best = max((k for k, v in forward.items() if v["candidate"]), key=lambda k: forward[k]["clips_per_s"])
        auto = fastest_config(f"teacher:{teacher}", model, example, dev)
        auto_name = f"{auto.precision}+{auto.memory_format}"

        decode = decode_only(root, paths, cfg, workers, pin)
        solo = decode_only(root, paths[:solo_videos], cfg, 1, pin)
        resize = resize_share(root, paths[:solo_videos], cfg, model.preset)
        pipeline = pipeline_only(cfg, root, index.videos, model, dev, auto)
        del model
        t0 = time.perf_counter()
        summary = run_extraction(cfg)
        wall = time.perf_counter() - t0
        cache_bytes = Path(cfg.out).stat().st_size
        features = parity(Path(cfg.out), root, cfg, teacher, dev)
    if summary.failed:
        raise RuntimeError(f"{summary.failed} videos failed in the extraction: {summary.failures[:3]}")

    forward_best = forward[best]["clips_per_s"]
    extract_rate = summary.clips_extracted / summary.loop_seconds
    limit = min(forward_best, decode["clips_per_s"])
    shared = 1 / (1 / forward_best + 1 / decode["clips_per_s"]) if dev.type == "cpu" else None
    return {
        "machine": describe_device(dev),
        "teacher": teacher,
        "workers": workers,
        "batch_size": batch_size,
        "videos": summary.videos,
        "frames_per_video": frames,
        "anchors": anchors,
        "clips": summary.clips_extracted,
        "forward_repeats": repeats,
        "forward": forward,
        "forward_best": best,
        "forward_best_clips_per_s": forward_best,
        "auto": auto_name,
        "auto_timings": dict(auto.timings),
        "auto_forward_clips_per_s": forward[auto_name]["clips_per_s"],
        "decode": decode,
        "decode_per_worker": solo,
        "decode_clips_per_s_16_workers_scaled": solo["clips_per_s"] * GPU_MACHINE_CORES,
        "pipeline_only": pipeline,
        "resize": resize,
        "extract_clips_per_s": extract_rate,
        "extract_loop_s": summary.loop_seconds,
        "extract_end_to_end_s": wall,
        "extract_end_to_end_clips_per_s": summary.clips_extracted / wall,
        "cache_bytes": cache_bytes,
        "parity": features,
        "limit": "teacher" if forward_best <= decode["clips_per_s"] else "decoding",
        "limit_clips_per_s": limit,
        "extract_vs_limit": extract_rate / limit,
        "extract_vs_forward_best": extract_rate / forward_best,
        "shared_cores_limit_clips_per_s": shared,
        "extract_vs_shared_cores_limit": extract_rate / shared if shared else None,
        "pipeline_vs_decode": pipeline["clips_per_s"] / decode["clips_per_s"],
        "decode_vs_forward_best": decode["clips_per_s"] / forward_best,
        "auto_vs_best": forward[auto_name]["clips_per_s"] / forward_best,
    }


def rows(r: dict) -> list[tuple[str, str, str]]:
    """Table rows ``(figure, ratio, its two numbers)`` for :func:`benchmarks.suite.table`."""
    d, p, solo = r["decode"], r["pipeline_only"], r["decode_per_worker"]
    teacher = f"{r['teacher']}, batch {r['batch_size']}"
    return [*_limit_rows(r, teacher), *_other_rows(r, d, p, solo)]


def _limit_rows(r: dict, teacher: str) -> list[tuple[str, str, str]]:
    """The extraction against each of its limits (the shared-cores one only for a CPU teacher)."""
    shared = []
    if r.get("extract_vs_shared_cores_limit") is not None:
        shared = [
            (
                "extraction vs teacher + decoding, shared cores",
                f"{r['extract_vs_shared_cores_limit']:.3f}",
                f"{r['extract_clips_per_s']:.1f} vs {r['shared_cores_limit_clips_per_s']:.1f} clips/s "
                f"(1 / (1/{r['forward_best_clips_per_s']:.1f} + 1/{r['decode']['clips_per_s']:.1f}): "
                "the teacher on the decoders' cores)",
            )
        ]
    return [
        (
            "extraction vs its limit",
            f"{r['extract_vs_limit']:.3f}",
            f"{r['extract_clips_per_s']:.1f} vs {r['limit_clips_per_s']:.1f} clips/s "
            f"(limit: {r['limit']}; auto chose {r['auto']})",
        ),
        (
            "extraction vs teacher's best forward",
            f"{r['extract_vs_forward_best']:.3f}",
            f"{r['extract_clips_per_s']:.1f} vs {r['forward_best_clips_per_s']:.1f} clips/s "
            f"({teacher}, {r['forward_best']})",
        ),
        *shared,
    ]


def _other_rows(r: dict, d: dict, p: dict, solo: dict) -> list[tuple[str, str, str]]:
    return [
        (
            "pipeline-only (null teacher) vs decode-only",
            f"{r['pipeline_vs_decode']:.3f}",
            f"{p['clips_per_s']:.1f} vs {d['clips_per_s']:.1f} clips/s ({r['workers']} decoder processes)",
        ),
        (
            "preset geometry's share of a decoder process",
            f"{r['resize']['share']:.3f}",
            f"{r['resize']['resize_s']:.2f} s resizing vs {r['resize']['decode_s']:.2f} s decoding "
            f"({r['resize']['videos']} videos, one thread)",
        ),
        (
            "cache features vs torchvision's preset (cos)",
            f"{r['parity']['cosine_min']:.6f}",
            f"lowest cosine of {r['parity']['clips']} clips (mean {r['parity']['cosine_mean']:.6f}), "
            f"relative L2 {r['parity']['relative_l2']:.2e}; cached ({r['auto']}) vs fp32 on VideoClassification",
        ),
        (
            "decode-only vs teacher's best forward",
            f"{r['decode_vs_forward_best']:.2f}x",
            f"{d['clips_per_s']:.1f} vs {r['forward_best_clips_per_s']:.1f} clips/s "
            f"({d['videos_per_s']:.1f} videos/s, {d['frames_per_s']:.0f} frames/s)",
        ),
        (
            "auto's choice vs the best configuration",
            f"{r['auto_vs_best']:.3f}",
            f"{r['auto_forward_clips_per_s']:.1f} ({r['auto']}) vs {r['forward_best_clips_per_s']:.1f} clips/s "
            f"({r['forward_best']})",
        ),
        (
            "extraction end-to-end vs its loop",
            f"{r['extract_end_to_end_clips_per_s'] / r['extract_clips_per_s']:.3f}",
            f"{r['extract_end_to_end_clips_per_s']:.1f} vs {r['extract_clips_per_s']:.1f} clips/s "
            f"({r['extract_end_to_end_s']:.1f} s vs {r['extract_loop_s']:.1f} s, {r['videos']} videos)",
        ),
        (
            f"decode, {GPU_MACHINE_CORES} workers (SCALED, not measured)",
            f"{GPU_MACHINE_CORES}x",
            f"{r['decode_clips_per_s_16_workers_scaled']:.0f} clips/s = {GPU_MACHINE_CORES} x "
            f"{solo['clips_per_s']:.1f} clips/s of 1 worker ({solo['frames_per_s']:.0f} frames/s)",
        ),
    ]


def forward_table(r: dict) -> str:
    """One line per forward-only configuration."""
    lines = []
    for name, v in r["forward"].items():
        marks = [m for m, on in (("best", name == r["forward_best"]), ("auto", name == r["auto"])) if on]
        if v.get("screened"):
            marks.append("on one clip only: under half the best there, not timed on the batch")
        elif not v["candidate"]:
            marks.append(f"not a candidate: error {v['error']:.3g} > {TOLERANCE}")
        note = f"  ({', '.join(marks)})" if marks else ""
        lines.append(f"  forward {name:<20} {v['clips_per_s']:9.2f} clips/s{note}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="r3d_18")
    parser.add_argument("--workers", type=int, default=None, help="Decoder processes (default: every core).")
    parser.add_argument("--videos", type=int, default=None, help="Videos (default: 24 per worker, at least 16).")
    parser.add_argument("--frames", type=int, default=64, help="Frames per video.")
    parser.add_argument("--anchors", default="uniform:2")
    parser.add_argument("--batch-size", type=int, default=None, help="Default: 32 on CUDA, 8 on a CPU.")
    parser.add_argument("--repeats", type=int, default=None, help="Timed forward batches per configuration.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this process.")
    parser.add_argument("--quick", action="store_true", help="Fewer videos and batches (noisier).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(
        args.teacher,
        workers=args.workers,
        videos=args.videos,
        frames=args.frames,
        anchors=args.anchors,
        batch_size=args.batch_size,
        repeats=args.repeats,
        device=args.device,
        quick=args.quick,
    )
    print(json.dumps(result, indent=2))
    print(forward_table(result))
    for name, ratio, numbers in rows(result):
        print(f"{name:<44} {ratio:>7}  {numbers}")


if __name__ == "__main__":
    main()
