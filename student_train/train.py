"""``train-student``: fit a HalluciNet student from the feature cache alone.

Per step: a batch of stored anchor frames (augmented), the cached teacher features of the
clips that start at them, and the labels/scores; ``loss = task + lambda * hallucination``.
Adam with a per-step cosine schedule. Every epoch ends with an evaluation on the evaluation
split, a row in ``log.csv`` and a full checkpoint; the run ends with ``metrics.json`` and plots.

Outputs in ``--out``: ``checkpoint.pt`` (model, optimizer, scheduler, RNG, epoch/step, config,
cache provenance: enough to ``--resume`` bit-for-bit on CPU), ``log.csv``, ``metrics.json``,
``plots/curves.png``, ``plots/confusion.png`` (classification).
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.cache import CacheError, FeatureCache
from pipeline.checkpoint import save_atomic
from pipeline.config import config_dict
from pipeline.device import DEVICES, PRECISIONS, autocast, resolve_device, resolve_precision
from pipeline.distributed import World, all_reduce_sum, barrier, device_for, process_group, world_from_env
from pipeline.profile import measure_cost
from student_train.data import make_loader, steps_per_epoch
from student_train.evaluate import StudentSpec, compute_metrics, run_model, summary_line, write_outputs
from student_train.losses import HALLUCINATION_LOSSES, TASKS, HalluciNetLoss
from student_train.models import build_student, load_init, student_names

logger = logging.getLogger(__name__)

#: Settings that may change when resuming; any other difference is refused.
RESUMABLE_CHANGES = frozenset({"epochs", "workers", "device", "in_memory", "out", "cache"})


@dataclass(frozen=True)
class TrainConfig:
    """``train-student`` settings; params.yaml section ``train_student``.

    ``lambda_weight`` is ``--lambda`` on the command line (``lambda`` is a Python keyword).
    ``crop_size`` 0 means 7/8 of the cached frame size. ``in_memory``: ``auto`` loads the
    cache's arrays into memory when they take less than ``memory_limit_gb``.
    """

    cache: str = "data/features.h5"
    out: str = "models/student"
    student: str = "resnet18"
    student_weights: str | None = None
    task: str = "auto"
    loss: str = "mse_sigmoid"
    lambda_weight: float = 50.0
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    crop_size: int = 0
    eval_split: str = "test"
    workers: int = 0
    in_memory: str = "auto"
    memory_limit_gb: float = 8.0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    seed: int = 0
    init: str | None = None

    def validate(self) -> None:
        if self.student not in student_names():
            raise ValueError(f"unknown student {self.student!r}; valid names: {', '.join(student_names())}")
        if self.task not in ("auto", *TASKS):
            raise ValueError(f"unknown task {self.task!r}; valid names: auto, {', '.join(TASKS)}")
        if self.loss not in HALLUCINATION_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid names: {', '.join(HALLUCINATION_LOSSES)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.lambda_weight < 0 or self.crop_size < 0 or self.workers < 0:
            raise ValueError("lr must be > 0; lambda, crop_size and workers must be >= 0")
        if self.in_memory not in ("auto", "yes", "no"):
            raise ValueError(f"in_memory must be auto, yes or no, got {self.in_memory!r}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"invalid device {self.device!r}; choose from {', '.join(DEVICES)} or cuda:N")
        if self.precision not in PRECISIONS:
            raise ValueError(f"invalid precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")


class TrainingInterrupted(Exception):
    """Ctrl-C during training: a checkpoint was written, ``--resume`` continues from it."""


def resolve_task(task: str, cache: FeatureCache) -> str:
    """``auto`` -> the cache's task; a classification task on a regression cache (or back) is refused."""
    if task == "auto":
        return cache.info.task
    if task not in ("none", cache.info.task):
        raise CacheError(
            f"{cache.path} holds a {cache.info.task} dataset ({cache.info.dataset}); it cannot train task {task!r}"
        )
    return task


def make_spec(cfg: TrainConfig, cache: FeatureCache, task: str, train_rows: np.ndarray) -> StudentSpec:
    image_size = cache.image_shape[0]
    crop = cfg.crop_size or max(1, round(image_size * 7 / 8))
    if crop > min(cache.image_shape[:2]):
        raise ValueError(f"crop_size {crop} is larger than the cache's {image_size}px frames")
    score_mean, score_std = 0.0, 1.0
    if task == "regression":
        videos = np.unique(cache.clip_video[train_rows])
        scores = cache.videos["score"][videos].astype(np.float64)
        if np.isnan(scores).any():
            raise CacheError(f"{cache.path}: some train videos have no score; regression needs one for each")
        score_mean, score_std = float(scores.mean()), float(scores.std() or 1.0)
    if task == "classification" and (cache.clip_label[train_rows] < 0).any():
        raise CacheError(f"{cache.path}: some train clips have no label; classification needs one for each")
    return StudentSpec(
        student=cfg.student,
        task=task,
        loss=cfg.loss,
        num_outputs={"classification": cache.num_classes, "regression": 1, "none": 0}[task],
        teacher_dim=cache.info.feature_dim,
        relu=cfg.loss != "mse",  # standardised targets are negative half the time
        classes=tuple(cache.info.classes) if task == "classification" else (),
        image_size=image_size,
        crop_size=crop,
        score_mean=score_mean,
        score_std=score_std,
        feature_mean=tuple(float(x) for x in cache.feature_mean),
        feature_std=tuple(float(x) for x in cache.feature_std),
    )


def task_targets(batch, spec: StudentSpec) -> torch.Tensor:
    if spec.task == "regression":
        return (batch.scores - spec.score_mean) / spec.score_std
    return batch.labels


def open_cache(path: str | Path, in_memory: str, memory_limit_gb: float) -> FeatureCache:
    cache = FeatureCache(path)
    if in_memory == "yes" or (in_memory == "auto" and cache.nbytes() <= memory_limit_gb * 2**30):
        logger.info("loading %.1f MB of cached clips into memory", cache.nbytes() / 2**20)
        cache.load_into_memory()
    return cache


def provenance(cache: FeatureCache) -> dict[str, Any]:
    info = cache.info
    return {
        "path": str(cache.path),
        "dataset": info.dataset,
        "split": info.split,
        "teacher": info.teacher,
        "teacher_weights": info.teacher_weights,
        "config_key": info.config_key,
        "anchors": info.anchors,
        "num_clips": len(cache),
    }


class Trainer:
    """One training run: built from a config, optionally resumed, then :meth:`fit`."""

    def __init__(self, cfg: TrainConfig, world: World | None = None):
        cfg.validate()
        world = world or World()
        self.cfg, self.world = cfg, world
        self.out = Path(cfg.out)
        self.cache = open_cache(cfg.cache, cfg.in_memory, cfg.memory_limit_gb)
        self.task = resolve_task(cfg.task, self.cache)
        self.train_rows = self.cache.clip_indices("train")
        self.eval_rows = self.cache.clip_indices(cfg.eval_split)
        self.spec = make_spec(cfg, self.cache, self.task, self.train_rows)
        self.device = resolve_device(device_for(world, cfg.device))
        self.precision = resolve_precision(cfg.precision, self.device, cpu_bf16=False)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

        torch.manual_seed(cfg.seed)  # the one seeding point: model init, then dropout's stream
        self.model = build_student(
            cfg.student,
            num_outputs=self.spec.num_outputs,
            teacher_dim=self.spec.teacher_dim,
            weights=cfg.student_weights,
            relu=self.spec.relu,
        )
        if cfg.init:
            load_init(self.model, cfg.init)
        self.model.to(self.device, memory_format=self.memory_format)
        # Under torchrun the step runs through DDP (gradients averaged across ranks); saving and
        # evaluating use the plain model, so a checkpoint loads in a single process.
        self.net: torch.nn.Module = self.model
        if world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        mean, std = self.spec.stats()
        self.loss = HalluciNetLoss(self.task, cfg.loss, cfg.lambda_weight, mean, std).to(self.device)
        self.steps = steps_per_epoch(len(self.train_rows) // world.size, cfg.batch_size)
        if self.steps < 1:
            raise ValueError(
                f"{cfg.cache} has {len(self.train_rows)} train clips: not one batch of {cfg.batch_size} "
                f"for each of {world.size} process(es)"
            )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs * self.steps)
        self.epoch, self.step = 0, 0
        self.sums = np.zeros(3)  # running sums of total / task / hallucination loss in this epoch
        self.history: list[dict[str, Any]] = []

    # --- checkpoints ------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save(self) -> None:
        if not self.world.main:
            return
        save_atomic(
            {
                "state_dict": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "epoch": self.epoch,
                "step": self.step,
                "sums": self.sums.tolist(),
                "history": self.history,
                "config": config_dict(self.cfg),
                "spec": asdict(self.spec),
                "classes": list(self.spec.classes),
                "cache": provenance(self.cache),
                "world_size": self.world.size,
            },
            self.checkpoint_path,
        )

    def resume(self) -> bool:
        """Restore the run in ``out`` if it has a checkpoint; refuse one made with another recipe."""
        if not self.checkpoint_path.is_file():
            logger.info("no checkpoint in %s: starting from scratch", self.out)
            return False
        ckpt = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        old, new = ckpt["config"], config_dict(self.cfg)
        changed = sorted(k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k])
        if changed:
            raise ValueError(
                f"cannot resume {self.checkpoint_path}: it was trained with other settings "
                f"({', '.join(f'{k}={old.get(k)!r}' for k in changed)}); use another --out"
            )
        if ckpt["cache"]["config_key"] != self.cache.info.config_key or ckpt["cache"]["num_clips"] != len(self.cache):
            raise ValueError(f"cannot resume {self.checkpoint_path}: the cache has changed since it was written")
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scheduler.T_max = self.cfg.epochs * self.steps  # --epochs may extend a finished run
        torch.set_rng_state(ckpt["rng"])
        self.epoch, self.step, self.sums = ckpt["epoch"], ckpt["step"], np.array(ckpt["sums"])
        self.history = ckpt["history"]
        if ckpt.get("world_size", 1) != self.world.size:
            logger.warning(
                "resuming a %d-process run with %d processes: training continues, but not bit-for-bit",
                ckpt.get("world_size", 1),
                self.world.size,
            )
        logger.info("resuming %s at epoch %d, step %d", self.checkpoint_path, self.epoch + 1, self.step)
        return True

    # --- training ---------------------------------------------------------------------------

    def train_step(self, batch) -> np.ndarray:
        images = batch.images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with autocast(self.device, self.precision):
            outputs, hallucinated = self.net(images)
        parts = self.loss(
            outputs,
            hallucinated,
            task_targets(batch, self.spec).to(self.device),
            batch.features.to(self.device, non_blocking=True),
        )
        self.optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        self.optimizer.step()
        self.scheduler.step()
        return np.array([parts.total.item(), parts.task.item(), parts.hallucination.item()])

    def train_epoch(self) -> None:
        self.model.train()
        cfg = self.cfg
        loader = make_loader(
            self.cache,
            self.train_rows,
            batch_size=cfg.batch_size,
            crop=self.spec.crop_size,
            train=True,
            seed=cfg.seed,
            epoch=self.epoch,
            start_step=self.step,
            workers=cfg.workers,
            pin_memory=self.device.type == "cuda",
            rank=self.world.rank,
            world_size=self.world.size,
        )
        bar = tqdm(
            loader,
            total=self.steps,
            initial=self.step,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=None if self.world.main else True,
        )
        try:
            for batch in bar:
                losses = self.train_step(batch)
                self.sums += losses
                self.step += 1
                bar.set_postfix(loss=f"{losses[0]:.4f}", task=f"{losses[1]:.4f}", halluc=f"{losses[2]:.4f}")
        except KeyboardInterrupt:
            bar.close()
            self.save()
            raise TrainingInterrupted(
                f"interrupted at epoch {self.epoch + 1}, step {self.step}; checkpoint saved to "
                f"{self.checkpoint_path} (rerun with --resume to continue)"
            ) from None

    def evaluate(self, rows: np.ndarray) -> dict[str, Any]:
        outputs, hallucinated = run_model(
            self.model,
            self.cache,
            rows,
            crop=self.spec.crop_size,
            batch_size=self.cfg.batch_size,
            device=self.device,
            precision=self.precision,
        )
        return compute_metrics(self.cache, rows, outputs, hallucinated, self.spec)

    def end_epoch(self, seconds: float) -> None:
        # Loss parts averaged over every rank's steps.
        means = all_reduce_sum(torch.from_numpy(self.sums)).numpy() / (self.steps * self.world.size)
        if not self.world.main:
            self.epoch, self.step, self.sums = self.epoch + 1, 0, np.zeros(3)
            barrier()  # rank 0 evaluates and saves meanwhile
            return
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "loss": means[0],
            "task_loss": means[1] if self.task != "none" else None,
            "hallucination_loss": means[2],
            "lr": self.scheduler.get_last_lr()[0],
            "seconds": round(seconds, 2),
        }
        if len(self.eval_rows):
            m = self.evaluate(self.eval_rows)
            row["eval_top1"] = m.get("clip_top1")
            row["eval_spearman"] = m.get("clip_spearman")
            row["eval_fidelity_cosine"] = m["fidelity_cosine"]
        self.history.append(row)
        logger.info(
            "epoch %d: %s", self.epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float))
        )
        self.epoch, self.step, self.sums = self.epoch + 1, 0, np.zeros(3)
        self.save()
        self.write_log()
        barrier()

    def write_log(self) -> None:
        keys = list(dict.fromkeys(k for row in self.history for k in row))
        with open(self.out / "log.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)

    def fit(self) -> dict[str, Any]:
        """Train the remaining epochs, then evaluate and write metrics and plots. Returns the metrics."""
        self.out.mkdir(parents=True, exist_ok=True)
        logger.info(
            "training %s (%s, %s x %g) on %d train clips of %s, %d steps/epoch, %s %s",
            self.cfg.student,
            self.task,
            self.cfg.loss,
            self.cfg.lambda_weight,
            len(self.train_rows),
            self.cfg.cache,
            self.steps,
            self.device,
            self.precision,
        )
        while self.epoch < self.cfg.epochs:
            t0 = time.perf_counter()
            self.train_epoch()
            self.end_epoch(time.perf_counter() - t0)
        return self.finish()

    def finish(self) -> dict[str, Any]:
        if not self.world.main:
            return {}
        metrics: dict[str, Any] = {"split": self.cfg.eval_split, "lambda": self.cfg.lambda_weight}
        if len(self.eval_rows):
            metrics.update(self.evaluate(self.eval_rows))
            logger.info("%s split: %s", self.cfg.eval_split, summary_line(metrics))
        else:
            logger.warning("the cache has no %r clips: no evaluation", self.cfg.eval_split)
        crop = self.spec.crop_size
        cost = measure_cost(self.model, torch.rand(1, 3, crop, crop, device=self.device))
        metrics.update(cost_gflops=cost["gflops"], cost_latency_ms=cost["latency_ms"])
        write_outputs(metrics, self.spec, self.out, history=self.history)
        return metrics


def train_student(cfg: TrainConfig, *, resume: bool = False) -> dict[str, Any]:
    """Build a :class:`Trainer`, resume it if asked, train, and return the final metrics.

    Under ``torchrun`` every rank runs this: DistributedDataParallel over a process group
    (gloo on CPUs, NCCL on GPUs); rank 0 alone evaluates, logs and writes checkpoints, and
    returns the metrics (the other ranks return ``{}``).
    """
    world = world_from_env()
    with process_group(world, resolve_device(device_for(world, cfg.device))):
        trainer = Trainer(cfg, world)
        if resume:
            trainer.resume()
        return trainer.fit()
