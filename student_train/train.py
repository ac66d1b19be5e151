"""``train-student``: fit a HalluciNet student from the feature cache alone.

Per step: a batch of stored anchor frames (augmented), the cached teacher features of the
clips that start at them, and the labels/scores; ``loss = task + lambda * hallucination``.
Adam with a per-step cosine schedule. Every epoch ends with an evaluation on the evaluation
split, a row in ``log.csv`` and a full checkpoint; the run ends with ``metrics.json`` and plots.

Outputs in ``--out``: ``checkpoint.pt`` (model, optimizer, scheduler, RNG, epoch/step, config,
cache provenance: enough to ``--resume`` bit-for-bit on CPU), ``log.csv``, ``metrics.json`` (flat),
``per_class.json`` (empty without classes), ``plots/curves.png``, ``plots/confusion.png`` (classification),
and ``dvclive/`` (:mod:`pipeline.live`: the per-epoch figures as DVC plots, the headline figures
as DVC metrics).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.cache import CacheError, FeatureCache
from pipeline.checkpoint import load_safely, save_atomic
from pipeline.config import check_choice, config_dict, option, save_config
from pipeline.device import PRECISIONS, autocast, check_device, resolve_device, resolve_precision
from pipeline.distributed import World, all_reduce_sum, barrier, device_for, process_group, world_from_env
from pipeline.errors import UserError
from pipeline.live import pick, write_live
from pipeline.metric_schema import EPOCH_COLUMNS, EXPERIMENT
from pipeline.outputs import OutputLock, check_output_dir
from pipeline.profile import measure_cost
from pipeline.progress import progress
from student_train.data import DevicePrefetcher, make_loader, steps_per_epoch
from student_train.evaluate import compute_metrics, run_model, summary_line, write_outputs
from student_train.losses import LOSSES, TASKS, HalluciNetLoss
from student_train.models import build_student, check_input_size, check_student, load_init
from student_train.spec import StudentSpec

logger = logging.getLogger(__name__)

#: Settings that may change when resuming; any other difference is refused.
RESUMABLE_CHANGES = frozenset({"epochs", "workers", "device", "in_memory", "out", "cache"})


@dataclass(frozen=True)
class TrainConfig:
    """``train-student`` settings; params.yaml section ``train_student``.

    The defaults are the paper's recipe (Parmar & Morris: a ResNet-50 student, lambda 50 on an
    MSE between sigmoids, Adam at lr 1e-4); ``params.yaml`` holds the embedded benchmark's own.
    ``lambda_weight`` is also ``--lambda`` (``lambda`` is a Python keyword). ``head_relu``
    ``None`` follows the loss (a ReLU for losses on the teacher's post-ReLU features, none for
    standardised targets). ``eval_every`` only thins the log's curves: the final metrics are
    always computed.
    """

    cache: str = option("data/features.h5", "Feature cache written by extract-teacher.", path="file")
    out: str = option(
        "models/student",
        "Run folder: checkpoint.pt, config.yaml, log.csv, metrics.json, per_class.json, plots/, dvclive/.",
        path="dir",
    )
    student: str = option(
        "resnet50",
        "Student by name: small or tiny (ours), or any torchvision image classifier (resnet18, resnet50, vgg11_bn, "
        "mobilenet_v3_small, efficientnet_b0, regnet_x_400mf...); an unknown name lists the valid ones. The paper's "
        "tables use resnet50.",
    )
    student_weights: str | None = option(
        None,
        "Backbone init: a torchvision weights name (DEFAULT, IMAGENET1K_V1; needs a network once) or a checkpoint "
        "path; none: random init. The paper starts from ImageNet (DEFAULT).",
    )
    task: str = option(
        "auto",
        "auto (the cache's), classification, regression, or none (hallucination only: pre-training).",
        choices=lambda: ("auto", *TASKS.names()),
    )
    loss: str = option("mse_sigmoid", "Hallucination loss (the paper's: mse_sigmoid).", choices=LOSSES.names)
    head_relu: bool | None = option(
        None, "End the hallucination head with a ReLU; unset: as the loss needs (mse_sigmoid, cosine: yes; mse: no)."
    )
    lambda_weight: float = option(
        50.0, "Weight of the hallucination loss; 0 trains the single-frame baseline.", aliases=("--lambda",)
    )
    epochs: int = option(10, "Training epochs (a larger value extends a run with --resume).")
    batch_size: int = option(32, "Frames per batch.")
    lr: float = option(1e-4, "Adam learning rate (cosine decay to 0 over the run).")
    weight_decay: float = option(0.0, "Adam weight decay.")
    crop_size: int = option(0, "Random-crop size for training, centre crop for evaluation; 0: 7/8 of the frame.")
    eval_split: str = option("test", "Split evaluated after each epoch and at the end.", choices=("test", "val"))
    eval_every: int = option(1, "Evaluate every N epochs for the training curves (and after the last).")
    workers: int = option(0, "DataLoader worker processes (0: load in the main process).")
    in_memory: str = option(
        "auto",
        "Load the cache's arrays into memory: auto (when under --memory-limit-gb), yes, no.",
        choices=("auto", "yes", "no"),
    )
    memory_limit_gb: float = option(8.0, "Largest cache --in-memory auto loads.")
    device: str = option("auto", "auto (CUDA if available), cpu, cuda or cuda:N.")
    precision: str = option(
        "auto",
        "auto (bf16 on CUDA where supported; fp32 on CPU, which keeps runs bit-reproducible), fp32 or bf16.",
        choices=PRECISIONS,
    )
    channels_last: bool = option(True, "channels_last memory format.")
    seed: int = option(0, "Seed of model init, batch order and augmentation.")
    init: str | None = option(
        None, "Start from a train-student checkpoint (backbone + hallucination head), e.g. a --task none run."
    )

    def validate(self) -> None:
        check_student(self.student)
        check_choice("task", self.task, ("auto", *TASKS.names()))
        check_choice("loss", self.loss, tuple(LOSSES.names()))
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.lambda_weight < 0 or self.crop_size < 0 or self.workers < 0:
            raise UserError("lr must be > 0; lambda, crop_size and workers must be >= 0")
        check_choice("in_memory", self.in_memory, ("auto", "yes", "no"))
        check_device(self.device)
        check_choice("precision", self.precision, PRECISIONS)


def apply_arm(section: dict[str, Any], arm: str | None) -> dict[str, Any]:
    """The ``train_student`` params with arm ``arm``'s overrides applied (``arms`` removed).

    An arm is a named variant of the recipe, listed under ``arms`` in the section, e.g. the
    single-frame baseline ``baseline: {lambda_weight: 0.0}`` beside ``hallucinet: {lambda_weight: 50.0}``:
    one recipe, several comparable runs, and DVC reruns only the arm whose overrides changed.
    """
    values = dict(section)
    arms = values.pop("arms", None) or {}
    if arm is None:
        return values
    if arm not in arms:
        raise UserError(f"unknown arm {arm!r}; the params section lists: {', '.join(sorted(arms)) or 'none'}")
    if not isinstance(arms[arm], dict):
        raise UserError(f"arm {arm!r} must be a mapping of train_student keys, got {arms[arm]!r}")
    return {**values, **arms[arm]}


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM during training: a checkpoint was written, ``--resume`` continues from it.

    ``exit_code``: what the command exits with, 130 after Ctrl-C, 143 after SIGTERM (128 + signal).
    """

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised between two steps, so that it is handled as Ctrl-C is."""


class TrainingDiverged(UserError):
    """The loss stopped being a finite number: the run stops, the last good checkpoint stays."""


@contextlib.contextmanager
def on_sigterm(event: threading.Event):
    """Within the block, SIGTERM (a cluster preempting the job, ``kill``) sets ``event``.

    The trainer looks at it between steps and stops there as after Ctrl-C, checkpoint saved:
    raising from the handler itself could land in the middle of writing one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: event.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_finite_targets(cache: FeatureCache, rows: np.ndarray, chunk: int = 16384) -> None:
    """Refuse a cache whose training targets are not all finite numbers.

    One NaN target turns every weight into NaN within a step (the hallucination loss is computed,
    and multiplied by lambda, even at lambda 0), and the run would end "successfully".
    """
    bad, first = 0, None
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        views = [None, np.ones(len(part), bool)] if cache.has_mirror else [None]
        for mirrored in views:
            ok = np.isfinite(cache.features(part, mirrored)).all(axis=1)
            if not ok.all():
                bad += int((~ok).sum())
                first = part[~ok][0] if first is None else first
    if bad:
        video = cache.videos.path[cache.clip_video[first]]
        raise CacheError(
            f"{cache.path}: {bad} training targets are not finite numbers (the first: clip {first}, of {video}); "
            "re-extract those videos"
        )


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
        raise UserError(f"crop_size {crop} is larger than the cache's {image_size}px frames")
    score_mean, score_std = 0.0, 1.0
    if task == "regression":
        videos = np.unique(cache.clip_video[train_rows])
        scores = cache.videos.score[videos].astype(np.float64)
        if np.isnan(scores).any():
            raise CacheError(f"{cache.path}: some train videos have no score; regression needs one for each")
        score_mean, score_std = float(scores.mean()), float(scores.std() or 1.0)
    if task == "classification" and (cache.clip_label[train_rows] < 0).any():
        raise CacheError(f"{cache.path}: some train clips have no label; classification needs one for each")
    return StudentSpec(
        student=cfg.student,
        task=task,
        loss=cfg.loss,
        num_outputs=TASKS.get(task)(cache.num_classes).num_outputs,
        teacher_dim=cache.info.feature_dim,
        relu=LOSSES.get(cfg.loss)().nonnegative if cfg.head_relu is None else cfg.head_relu,
        classes=tuple(cache.info.classes) if task == "classification" else (),
        image_size=image_size,
        crop_size=crop,
        score_mean=score_mean,
        score_std=score_std,
        feature_mean=tuple(float(x) for x in cache.feature_mean),
        feature_std=tuple(float(x) for x in cache.feature_std),
    )


def fit_batch_size(train_clips: int, batch_size: int, world_size: int, cache: str) -> int:
    """The batch size training can use: ``batch_size``, or smaller when a process has fewer train clips.

    Training drops the last partial batch (BatchNorm needs at least two samples per batch), so a
    process with fewer clips than one batch would train nothing: the batch shrinks to what the
    data allows, down to 2. Fewer than 2 clips per process cannot train at all.
    """
    share = train_clips // world_size
    if share >= batch_size:
        return batch_size
    if share < 2:
        raise UserError(
            f"{cache} has {train_clips} train clips: at least 2 per process are needed to train "
            f"({world_size} process(es)); extract more anchors (--anchors uniform:K) or more videos"
        )
    logger.warning(
        "%s has %d train clips per process, fewer than --batch-size %d: training with batches of %d",
        cache,
        share,
        batch_size,
        share,
    )
    return share


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
        check_finite_targets(self.cache, self.train_rows)
        self.preset = self.spec.preset()
        self.device = resolve_device(device_for(world, cfg.device))
        self.precision = resolve_precision(cfg.precision, self.device)
        # Mirroring a frame needs the teacher's features of the mirrored clip: without them a
        # run that learns from the targets does not mirror (a mirrored frame with the plain
        # clip's target teaches motion that is not what the frame shows).
        self.mirror = self.cache.has_mirror or cfg.lambda_weight == 0
        if not self.mirror and world.main:
            logger.warning(
                "%s has no mirrored teacher targets (extract-teacher --mirror): training without mirroring",
                cfg.cache,
            )
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

        torch.manual_seed(cfg.seed)  # the one seeding point: model init, then dropout's stream
        self.model = build_student(
            cfg.student,
            num_outputs=self.spec.num_outputs,
            teacher_dim=self.spec.teacher_dim,
            weights=cfg.student_weights,
            relu=self.spec.relu,
        )
        check_input_size(self.model, self.spec.crop_size, cfg.student)
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
        self.batch_size = fit_batch_size(len(self.train_rows), cfg.batch_size, world.size, cfg.cache)
        self.steps = steps_per_epoch(len(self.train_rows) // world.size, self.batch_size)
        # The fused kernel updates every tensor in one call: the default Adam's per-parameter loop
        # took 1.6 of the small student's 11.6 ms CPU step, the fused one 0.5 (benchmarks/step.py).
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs * self.steps)
        self.epoch, self.step = 0, 0
        # running sums of total / task / hallucination loss and of correct top-1 answers in this epoch
        self.sums = self._zero_sums()
        self.history: list[dict[str, Any]] = []
        # Set by SIGTERM (see on_sigterm): stop at the next step, as after Ctrl-C.
        self.terminate = threading.Event()

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

    def _zero_sums(self) -> torch.Tensor:
        return torch.zeros(4, dtype=torch.float64, device=self.device)

    def resumed(self, resume: bool) -> Trainer:
        """This trainer, restored from its checkpoint when ``resume`` (for chaining)."""
        if resume:
            self.resume()
        return self

    def resume(self) -> bool:
        """Restore the run in ``out`` if it has a checkpoint; refuse one made with another recipe."""
        if not self.checkpoint_path.is_file():
            logger.info("no checkpoint in %s: starting from scratch", self.out)
            return False
        ckpt = load_safely(self.checkpoint_path)
        old, new = ckpt["config"], config_dict(self.cfg)
        changed = sorted(k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k])
        if changed:
            raise UserError(
                f"cannot resume {self.checkpoint_path}: it was trained with other settings "
                f"({', '.join(f'{k}={old.get(k)!r}' for k in changed)}); use another --out"
            )
        if ckpt["cache"]["config_key"] != self.cache.info.config_key or ckpt["cache"]["num_clips"] != len(self.cache):
            raise UserError(f"cannot resume {self.checkpoint_path}: the cache has changed since it was written")
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scheduler.T_max = self.cfg.epochs * self.steps  # --epochs may extend a finished run
        torch.set_rng_state(ckpt["rng"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        self.sums = torch.tensor(ckpt["sums"], dtype=torch.float64, device=self.device)
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

    def train_step(self, batch) -> torch.Tensor:
        """One optimisation step; returns ``(4,)`` float64 (total, task, hallucination) losses and the
        count of correct top-1 answers (classification; 0 otherwise), on the device.

        Nothing here waits for the device: the losses stay there, so the host can queue the next
        step while this one runs (a ``.item()`` per step would synchronise every step).
        """
        images = self.preset.apply(batch.images.to(self.device, non_blocking=True), batch.views)
        images = images.contiguous(memory_format=self.memory_format)
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
        correct = torch.zeros((), device=self.device)
        if self.task == "classification":
            correct = (outputs.detach().argmax(1) == batch.labels.to(self.device)).sum()
        return (
            torch.stack([parts.total, parts.task, parts.hallucination, correct.to(parts.total.dtype)]).detach().double()
        )

    def train_epoch(self) -> None:
        self.model.train()
        cfg = self.cfg
        loader = make_loader(
            self.cache,
            self.train_rows,
            self.preset,
            batch_size=self.batch_size,
            train=True,
            seed=cfg.seed,
            mirror=self.mirror,
            epoch=self.epoch,
            start_step=self.step,
            workers=cfg.workers,
            pin_memory=self.device.type == "cuda",
            rank=self.world.rank,
            world_size=self.world.size,
        )
        bar = progress(
            total=self.steps,
            initial=self.step,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            unit="batch",
            logger=logger,
            disable=not self.world.main,
        )
        try:
            for batch in DevicePrefetcher(loader, self.device):
                losses = self.train_step(batch)
                self.sums += losses
                self.step += 1
                bar.update(1)
                if self.terminate.is_set():
                    raise Terminated
                if self.step % 10 == 0 or self.step == self.steps:  # reading the losses waits for the device
                    total, task, halluc, _ = losses.tolist()
                    bar.set_postfix(loss=f"{total:.4f}", task=f"{task:.4f}", halluc=f"{halluc:.4f}")
                    if not self.world.distributed:  # under DDP every rank checks the reduced sums instead
                        self.check_finite(total)
            bar.close()
        except KeyboardInterrupt as err:
            bar.close()
            self.save()
            raise TrainingInterrupted(
                f"{'terminated' if isinstance(err, Terminated) else 'interrupted'} at epoch {self.epoch + 1}, "
                f"step {self.step}; checkpoint saved to {self.checkpoint_path} (rerun with --resume to continue)",
                exit_code=143 if isinstance(err, Terminated) else 130,
            ) from None

    def check_finite(self, loss: float) -> None:
        """Stop before a non-finite loss reaches a checkpoint: the one of the last finished epoch stays."""
        if not math.isfinite(loss):
            kept = f"{self.checkpoint_path} (after epoch {self.epoch}) is kept" if self.epoch else "no checkpoint kept"
            raise TrainingDiverged(
                f"the training loss became {loss} in epoch {self.epoch + 1} (lr {self.cfg.lr:g}, "
                f"lambda {self.cfg.lambda_weight:g}); {kept}: lower --lr or --lambda"
            )

    def evaluate(self, rows: np.ndarray) -> dict[str, Any]:
        outputs, hallucinated = run_model(
            self.model,
            self.cache,
            rows,
            self.preset,
            batch_size=self.batch_size,
            device=self.device,
            precision=self.precision,
        )
        return compute_metrics(self.cache, rows, outputs, hallucinated, self.spec)

    def end_epoch(self, seconds: float) -> None:
        # Loss parts averaged over every rank's steps.
        means = all_reduce_sum(self.sums.cpu()).numpy() / (self.steps * self.world.size)
        self.check_finite(float(means[0]))  # the same reduced sums on every rank: all stop together
        if not self.world.main:
            self.epoch, self.step, self.sums = self.epoch + 1, 0, self._zero_sums()
            barrier()  # rank 0 evaluates and saves meanwhile
            return
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "loss": float(means[0]),
            "task_loss": float(means[1]) if self.task != "none" else None,
            "hallucination_loss": float(means[2]),
            # top-1 on the training batches as they were trained (augmented, weights still moving)
            "train_top1": float(means[3] / self.batch_size) if self.task == "classification" else None,
            "lr": float(self.scheduler.get_last_lr()[0]),
            "seconds": round(seconds, 2),
        }
        last = self.epoch + 1 == self.cfg.epochs
        if len(self.eval_rows) and ((self.epoch + 1) % self.cfg.eval_every == 0 or last):
            m = self.evaluate(self.eval_rows)
            row.update({column: m.get(name) for column, name in EPOCH_COLUMNS.items()})
        self.history.append(row)
        logger.info(
            "epoch %d: %s", self.epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float))
        )
        self.epoch, self.step, self.sums = self.epoch + 1, 0, self._zero_sums()
        self.save()
        self.write_log()
        write_live(self.live_dir, self.history)
        barrier()

    @property
    def live_dir(self) -> Path:
        return self.out / "dvclive"

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
            if self.terminate.is_set():  # SIGTERM while the epoch ended: its checkpoint is written
                raise TrainingInterrupted(
                    f"terminated after epoch {self.epoch}; checkpoint saved to {self.checkpoint_path} "
                    "(rerun with --resume to continue)",
                    exit_code=143,
                )
        return self.finish()

    def finish(self) -> dict[str, Any]:
        if not self.world.main:
            return {}
        metrics: dict[str, Any] = {
            "split": self.cfg.eval_split,
            "lambda": self.cfg.lambda_weight,
            "cache_key": self.cache.info.config_key,
        }
        if len(self.eval_rows):
            metrics.update(self.evaluate(self.eval_rows))
            logger.info("%s split: %s", self.cfg.eval_split, summary_line(metrics))
        else:
            logger.warning("the cache has no %r clips: no evaluation", self.cfg.eval_split)
        # Which splits' frames this run looked at (training and evaluation): compare-students
        # refuses a run that saw the split it reports on.
        metrics["splits_read"] = ",".join(sorted(self.cache.splits_read))
        crop = self.spec.crop_size
        cost = measure_cost(self.model, torch.rand(1, 3, crop, crop, device=self.device))
        metrics.update(cost_gflops=cost["gflops"], cost_latency_ms=cost["latency_ms"])
        write_outputs(metrics, self.spec, self.out, history=self.history)
        write_live(self.live_dir, self.history, pick(metrics, EXPERIMENT))
        return metrics


def train_student(cfg: TrainConfig, *, resume: bool = False) -> dict[str, Any]:
    """Build a :class:`Trainer`, resume it if asked, train, and return the final metrics.

    Under ``torchrun`` every rank runs this: DistributedDataParallel over a process group
    (gloo on CPUs, NCCL on GPUs); rank 0 alone evaluates, logs and writes checkpoints, and
    returns the metrics (the other ranks return ``{}``).
    """
    world = world_from_env()
    out = Path(cfg.out)
    if world.main:
        check_output_dir(
            out, kind="train-student run", marker_files=("checkpoint.pt", "metrics.json", "log.csv", "config.yaml")
        )
    with process_group(world, resolve_device(device_for(world, cfg.device))):
        if not world.main:
            trainer = Trainer(cfg, world).resumed(resume)
            with on_sigterm(trainer.terminate):
                return trainer.fit()
        with OutputLock(out, "train-student"):
            trainer = Trainer(cfg, world).resumed(resume)
            save_config(cfg, out / "config.yaml")  # the run as resolved (and checked), beside what it makes
            with on_sigterm(trainer.terminate):
                return trainer.fit()
