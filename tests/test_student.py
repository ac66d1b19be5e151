"""Stage two on tiny hand-made caches: losses, metrics, training, resume, refusals, predict, export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import moving_square

from pipeline.cache import CacheError, CacheInfo, FeatureCache, VideoEntry, write_cache
from pipeline.frames import student_images
from pipeline.video import decode, write_video
from student_train import metrics as M
from student_train.cli import evaluate_student, export_student, predict, train_student
from student_train.data import crop_flip, make_loader, to_tensor
from student_train.evaluate import StudentSpec, compute_metrics, load_student
from student_train.export import export_onnx, onnx_available
from student_train.losses import HalluciNetLoss, hallucination_loss
from student_train.models import build_student, student_names
from student_train.predict import frame_picks
from student_train.train import TrainConfig, Trainer, TrainingInterrupted
from student_train.train import train_student as run_training

CLASSES = ("Red", "Green", "Blue")


def make_cache(
    path: Path,
    *,
    task: str = "classification",
    videos_per_class: int = 6,
    clips: int = 4,
    size: int = 16,
    dim: int = 8,
    teacher_logits: bool = True,
    seed: int = 0,
) -> Path:
    """A cache whose frames are tinted by class and whose features depend on class and clip.

    Two thirds of each class's videos are train, the rest test; a regression cache scores
    each video by its class plus noise.
    """
    rng = np.random.default_rng(seed)
    classes = CLASSES if task == "classification" else ()
    entries = []
    for c in range(len(CLASSES)):
        for i in range(videos_per_class):
            images = rng.integers(0, 80, size=(clips, size, size, 3), dtype=np.uint8)
            images[..., c] += 120
            features = np.abs(rng.normal(size=(clips, dim))).astype(np.float32)
            features[:, c] += 2.0
            logits = np.zeros((clips, len(CLASSES)), np.float32)
            logits[:, c] = 1.0
            entries.append(
                VideoEntry(
                    path=f"{CLASSES[c]}/v{i}.avi",
                    label=c if task == "classification" else -1,
                    score=float("nan") if task == "classification" else float(c + rng.normal(0, 0.1)),
                    split="train" if i < videos_per_class * 2 // 3 else "test",
                    num_frames=40,
                    fps=25.0,
                    fingerprint=f"fp{c}{i}",
                    status="ok",
                    frames=np.arange(clips, dtype=np.int64) * 8,
                    features=features,
                    images=images,
                    logits=logits if teacher_logits else None,
                )
            )
    info = CacheInfo(
        dataset="ucf101" if task == "classification" else "manifest",
        dataset_root="data",
        split="1",
        task=task,
        classes=classes,
        teacher="tiny3d",
        teacher_weights="random:0",
        feature_dim=dim,
        clip_len=16,
        frame_step=1,
        anchors=f"uniform:{clips}",
        image_size=size,
        config={},
        code_version="test",
        config_key="k",
        teacher_classes=CLASSES if teacher_logits else (),
    )
    n = sum(len(e.frames) for e in entries)
    return write_cache(
        path, info, entries, num_clips=n, image_shape=(size, size, 3), num_logits=3 if teacher_logits else 0
    )


def tiny_config(cache: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(
        cache=str(cache), out=str(out), student="tiny", epochs=2, batch_size=8, lr=3e-3, crop_size=14, device="cpu"
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory) -> Path:
    return make_cache(tmp_path_factory.mktemp("cache") / "features.h5")


# --- losses ---------------------------------------------------------------------------------


def test_lambda_zero_is_exactly_the_task_loss() -> None:
    g = torch.Generator().manual_seed(0)
    outputs, h, t = torch.randn(5, 3, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 1, 0])
    parts = HalluciNetLoss("classification", "mse_sigmoid", 0.0)(outputs, h, labels, t)
    assert torch.equal(parts.total, torch.nn.functional.cross_entropy(outputs, labels))
    assert parts.hallucination > 0  # still reported


def test_mse_sigmoid_matches_hand_computation() -> None:
    h = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    t = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    hand = ((s(0) - s(0)) ** 2 + (s(1) - s(0)) ** 2 + (s(2) - s(1)) ** 2 + (s(-1) - s(3)) ** 2) / 4
    assert hallucination_loss(h, t, "mse_sigmoid").item() == pytest.approx(hand, rel=1e-6)
    outputs, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    parts = HalluciNetLoss("classification", "mse_sigmoid", 50.0)(outputs, h, labels, t)
    ce = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert parts.total.item() == pytest.approx(ce + 50 * hand, rel=1e-6)


def test_mse_standardises_and_cosine_ignores_scale() -> None:
    t = torch.tensor([[3.0, 10.0]])
    mean, std = torch.tensor([1.0, 10.0]), torch.tensor([2.0, 5.0])
    assert hallucination_loss(torch.tensor([[1.0, 0.0]]), t, "mse", mean, std).item() == pytest.approx(0.0)
    assert hallucination_loss(5 * t, t, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="valid names"):
        hallucination_loss(t, t, "l1")


def test_task_none_needs_lambda() -> None:
    with pytest.raises(ValueError, match="nothing to learn"):
        HalluciNetLoss("none", "mse_sigmoid", 0.0)


# --- metrics --------------------------------------------------------------------------------


def test_rank_metrics_by_hand() -> None:
    assert M.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    # ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]; against [4, 3, 2, 1]
    x, y = np.array([1.0, 2.5, 2.5, 4.0]), np.array([4.0, 3.0, 2.0, 1.0])
    hand = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(
        ((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum()
    )
    assert M.spearman([1, 2, 2, 3], [4, 3, 2, 1]) == pytest.approx(hand)
    assert M.mean_absolute_error(np.array([1.0, 3.0]), np.array([2.0, 1.0])) == pytest.approx(1.5)
    assert M.topk_accuracy(np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]]), np.array([2, 2]), 2) == pytest.approx(0.5)


def test_metrics_on_hand_made_cache(tmp_path: Path) -> None:
    """Three test videos of two clips each; outputs chosen so every figure is countable by hand."""
    cache = FeatureCache(make_cache(tmp_path / "c.h5", videos_per_class=3, clips=2))
    rows = cache.clip_indices("test")  # one test video per class, 2 clips each: labels 0,0,1,1,2,2
    assert list(cache.clip_label[rows]) == [0, 0, 1, 1, 2, 2]
    outputs = np.array(
        [
            [5.0, 0.0, 0.0],  # video 0 (Red): right
            [0.0, 1.0, 0.0],  # wrong; mean softmax of video 0 is still Red
            [0.0, 0.0, 3.0],  # video 1 (Green): wrong
            [0.0, 0.5, 0.0],  # right; mean softmax of video 1 is Blue: wrong
            [0.0, 0.0, 1.0],  # video 2 (Blue): right
            [0.0, 0.0, 1.0],  # right
        ]
    )
    teacher = cache.features(rows)
    spec = StudentSpec(
        student="tiny",
        task="classification",
        loss="mse_sigmoid",
        num_outputs=3,
        teacher_dim=8,
        relu=True,
        classes=CLASSES,
        image_size=16,
        crop_size=14,
    )
    m = compute_metrics(cache, rows, outputs, teacher.copy(), spec)
    assert m["clip_top1"] == pytest.approx(4 / 6)
    assert m["video_top1"] == pytest.approx(2 / 3)
    assert m["per_class"] == {"Red": 1.0, "Green": 0.0, "Blue": 1.0}
    assert m["confusion"] == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert m["fidelity_cosine"] == pytest.approx(1.0) and m["fidelity_r2"] == pytest.approx(1.0)
    assert m["teacher_clip_top1"] == 1.0 and m["teacher_video_top1"] == 1.0
    m = compute_metrics(cache, rows, outputs, np.zeros_like(teacher) + teacher.mean(0), spec)
    assert m["fidelity_r2"] == pytest.approx(0.0, abs=1e-9)


# --- data -----------------------------------------------------------------------------------


def test_augmentation_is_seeded_and_centre_crop_is_exact() -> None:
    images = np.arange(2 * 6 * 6 * 3, dtype=np.uint8).reshape(2, 6, 6, 3)
    np.testing.assert_array_equal(crop_flip(images, 4, None), images[:, 1:5, 1:5])
    a = crop_flip(images, 4, np.random.default_rng(3))
    b = crop_flip(images, 4, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="larger than the cached frames"):
        crop_flip(images, 7, None)


def test_loader_batches_do_not_depend_on_workers(cache_file: Path) -> None:
    cache = FeatureCache(cache_file)
    rows = cache.clip_indices("train")
    kwargs = dict(batch_size=8, crop=12, train=True, seed=1, epoch=2)
    a = list(make_loader(cache, rows, workers=0, **kwargs))
    b = list(make_loader(cache, rows, workers=2, **kwargs))
    assert len(a) == len(rows) // 8
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.images, y.images) and torch.equal(x.rows, y.rows)
        np.testing.assert_array_equal(x.features.numpy(), cache.features(x.rows.numpy()))
    resumed = list(make_loader(cache, rows, workers=0, start_step=2, **kwargs))
    assert all(torch.equal(x.images, y.images) for x, y in zip(a[2:], resumed, strict=True))


# --- models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in student_names() if n not in ("resnet50", "vgg11_bn")])
def test_students_build_and_run(name: str) -> None:
    model = build_student(name, num_outputs=3, teacher_dim=5).eval()
    out, h = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 3) and h.shape == (2, 5) and (h >= 0).all()


def test_unknown_student_and_weights_are_clear() -> None:
    with pytest.raises(ValueError, match="valid names: .*resnet18"):
        build_student("resnet19", num_outputs=2, teacher_dim=4)
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        build_student("resnet18", num_outputs=2, teacher_dim=4, weights="IMAGENET_BEST")


def test_student_weights_from_a_torchvision_checkpoint(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(1)
    classifier = torchvision.models.resnet18(num_classes=10)
    torch.save({"state_dict": {f"module.{k}": v for k, v in classifier.state_dict().items()}}, tmp_path / "r18.pth")
    model = build_student("resnet18", num_outputs=3, teacher_dim=4, weights=str(tmp_path / "r18.pth"))
    assert torch.equal(model.backbone.conv1.weight, classifier.conv1.weight)


# --- training -------------------------------------------------------------------------------


def train_loss(trainer: Trainer) -> float:
    """Mean loss over the train clips without augmentation, in eval mode."""
    trainer.model.eval()
    loader = make_loader(trainer.cache, trainer.train_rows, batch_size=8, crop=14, train=False, seed=0)
    total = 0.0
    with torch.no_grad():
        for batch in loader:
            out, h = trainer.model(batch.images)
            total += trainer.loss(out, h, batch.labels, batch.features).total.item() * len(batch.rows)
    return total / len(trainer.train_rows)


def test_one_epoch_lowers_the_training_loss(cache_file: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(cache_file, tmp_path / "run", epochs=1))
    before = train_loss(trainer)
    trainer.fit()
    assert train_loss(trainer) < 0.9 * before


def test_training_writes_its_outputs(cache_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    metrics = run_training(tiny_config(cache_file, out, epochs=3))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["video_top1"] == pytest.approx(metrics["video_top1"])
    assert saved["num_videos"] == 6 and saved["num_clips"] == 24
    assert 0 <= saved["video_top1"] <= 1 and set(saved["per_class"]) == set(CLASSES)
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,loss,task_loss,hallucination_loss") and len(log) == 4
    for png in ("curves.png", "confusion.png"):
        assert (out / "plots" / png).read_bytes()[:4] == b"\x89PNG"
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 3 and ckpt["cache"]["config_key"] == "k" and tuple(ckpt["spec"]["classes"]) == CLASSES


class InterruptedTrainer(Trainer):
    """Raises KeyboardInterrupt (as Ctrl-C would) before a given global step."""

    def __init__(self, cfg: TrainConfig, stop_at: int):
        super().__init__(cfg)
        self.stop_at, self.done = stop_at, 0

    def train_step(self, batch):
        if self.done == self.stop_at:
            raise KeyboardInterrupt
        self.done += 1
        return super().train_step(batch)


@pytest.mark.parametrize("stop_at", [3, 6])  # mid-epoch, and exactly at an epoch boundary (6 steps/epoch)
def test_resume_is_bit_exact(cache_file: Path, tmp_path: Path, stop_at: int) -> None:
    def cfg(out: str) -> TrainConfig:
        return tiny_config(cache_file, tmp_path / out, epochs=3, student="mobilenet_v3_small", crop_size=16)

    full = Trainer(cfg("full"))
    full.fit()
    with pytest.raises(TrainingInterrupted, match="--resume"):
        InterruptedTrainer(cfg("cut"), stop_at).fit()
    resumed = Trainer(cfg("cut"))
    assert resumed.resume()
    resumed.fit()
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in full.history]
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_resume_refuses_another_recipe(cache_file: Path, tmp_path: Path) -> None:
    Trainer(tiny_config(cache_file, tmp_path / "run", epochs=1)).fit()
    with pytest.raises(ValueError, match="lr=0.003"):
        Trainer(tiny_config(cache_file, tmp_path / "run", lr=1e-3)).resume()


def test_pretraining_then_init(cache_file: Path, tmp_path: Path) -> None:
    pre = run_training(tiny_config(cache_file, tmp_path / "pre", task="none", epochs=1))
    assert "video_top1" not in pre and pre["fidelity_cosine"] > 0
    trainer = Trainer(tiny_config(cache_file, tmp_path / "ft", init=str(tmp_path / "pre" / "checkpoint.pt")))
    pre_model, _, _ = load_student(tmp_path / "pre" / "checkpoint.pt")
    assert torch.equal(trainer.model.hallucination_head[0].weight, pre_model.hallucination_head[0].weight)


def test_regression_cache(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "scores.h5", task="regression", teacher_logits=False)
    metrics = run_training(tiny_config(cache, tmp_path / "run", epochs=2, loss="mse", lambda_weight=1.0))
    assert {"spearman", "pearson", "mae"} <= set(metrics) and "video_top1" not in metrics
    with pytest.raises(CacheError, match="regression dataset .* cannot train task 'classification'"):
        Trainer(tiny_config(cache, tmp_path / "x", task="classification"))


# --- command line ---------------------------------------------------------------------------


def test_cli_refuses_bad_caches_in_one_line(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    runner = CliRunner()
    result = runner.invoke(train_student, ["--cache", str(tmp_path / "other.h5"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "is not a HalluciNet feature cache" in result.output and "Traceback" not in result.output
    regression = make_cache(tmp_path / "scores.h5", task="regression", teacher_logits=False)
    result = runner.invoke(train_student, ["--cache", str(regression), "--task", "classification"])
    assert result.exit_code == 2 and "cannot train task 'classification'" in result.output
    result = runner.invoke(train_student, ["--cache", str(tmp_path / "missing.h5")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_cli_train_evaluate_predict_export(cache_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["--cache", str(cache_file), "--out", str(out), "--student", "tiny", "--epochs", "1", "--batch-size", "8"]
    result = runner.invoke(train_student, [*args, "--lambda", "0", "--crop-size", "14", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    checkpoint = out / "checkpoint.pt"
    assert json.loads((out / "metrics.json").read_text())["lambda"] == 0.0

    result = runner.invoke(
        evaluate_student, [str(checkpoint), "--cache", str(cache_file), "--out", str(tmp_path / "e")]
    )
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("video_top1", "clip_top1", "clip_top5", "fidelity_cosine", "fidelity_r2"):
        assert evaluated[key] == pytest.approx(saved[key], rel=1e-6), key

    # predict on a real video: frames prepared like extraction, so equal to running the model by hand
    video = write_video(tmp_path / "v.avi", moving_square(30, 48, 64), fps=25)
    result = runner.invoke(predict, [str(video), "--checkpoint", str(checkpoint), "--frames", "3", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["frames"] == frame_picks(30, 3) == [5, 15, 25]
    model, _, _ = load_student(checkpoint)
    frames = decode(video, got["frames"]).frames
    with torch.no_grad():
        out_by_hand, _ = model(to_tensor(crop_flip(student_images(frames, 16), 14, None)))
    probs = torch.softmax(out_by_hand.double(), 1).mean(0)
    assert got["top"][0]["class"] == CLASSES[int(probs.argmax())]
    assert got["top"][0]["probability"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert sum(p["probability"] for p in got["top"]) == pytest.approx(1.0, abs=1e-4)

    result = runner.invoke(
        export_student, [str(checkpoint), "--out", str(tmp_path / "export"), "--format", "torchscript"]
    )
    assert result.exit_code == 0, result.output
    scripted = torch.jit.load(str(tmp_path / "export" / "student.torchscript.pt"))
    x = torch.rand(5, 3, 14, 14)
    with torch.no_grad():
        for a, b in zip(scripted(x), model(x), strict=True):
            torch.testing.assert_close(a, b)
    assert json.loads((tmp_path / "export" / "student.json").read_text())["classes"] == list(CLASSES)


@pytest.mark.skipif(not onnx_available(), reason="the onnx extra is not installed")
def test_onnx_export_matches_the_model(tmp_path: Path) -> None:
    model = build_student("tiny", num_outputs=3, teacher_dim=4).eval()
    worst = export_onnx(model, torch.rand(2, 3, 16, 16), tmp_path / "s.onnx")
    assert worst < 1e-4 and (tmp_path / "s.onnx").stat().st_size > 1000
