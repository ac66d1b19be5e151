import hashlib
from pathlib import Path

import pytest
import torch
import torchvision
from helpers import textured_video
from torch import nn
from torchvision.transforms._presets import VideoClassification

from pipeline.video import decode, write_video
from teacher_extract.models import build_teacher, teacher_names

# (name, input shape (N, C, T, H, W)): small where the architecture allows it.
SHAPES = {
    "tiny3d": (2, 3, 16, 56, 56),
    "r3d_18": (1, 3, 8, 32, 32),
    "mc3_18": (1, 3, 8, 32, 32),
    "r2plus1d_18": (1, 3, 8, 32, 32),
    "s3d": (1, 3, 16, 112, 112),  # at 112, which its fixed pooling could not do
    "swin3d_t": (1, 3, 8, 64, 64),
    "resnext3d_101": (1, 3, 8, 32, 32),
    "c3d": (1, 3, 16, 112, 112),  # fc6 fixes the input at 16x112x112
    "mvit_v2_s": (1, 3, 16, 224, 224),  # positional embeddings fix the input at 16x224x224
}
DIMS = {
    "tiny3d": 128,
    "r3d_18": 512,
    "mc3_18": 512,
    "r2plus1d_18": 512,
    "s3d": 1024,
    "swin3d_t": 768,
    "resnext3d_101": 2048,
    "c3d": 4096,
    "mvit_v2_s": 768,
}


def test_registry_is_complete() -> None:
    assert set(teacher_names()) == set(SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_teacher_maps_clips_to_features(name: str) -> None:
    teacher = build_teacher(name, None, num_classes=5, seed=0, crop_size=112 if name == "s3d" else None)
    assert teacher.feature_dim == DIMS[name]
    with torch.inference_mode():
        features, logits = teacher(torch.randn(SHAPES[name]))
    assert features.shape == (SHAPES[name][0], DIMS[name])
    assert logits.shape == (SHAPES[name][0], 5)
    assert teacher.weights_id == "random:0"


def test_random_head_gives_no_logits() -> None:
    teacher = build_teacher("tiny3d", None)
    assert teacher.num_classes == 0
    _, logits = teacher(torch.randn(1, 3, 16, 56, 56))
    assert logits is None


def test_r3d_preset_is_the_weights_own_transforms_to_within_one_level() -> None:
    """The CPU's uint8 resize lands within one pixel level of torchvision's float one."""
    weights = torchvision.models.video.R3D_18_Weights.KINETICS400_V1
    teacher = build_teacher("r3d_18", None)
    clip = torch.randint(0, 256, (16, 120, 160, 3), dtype=torch.uint8).permute(0, 3, 1, 2)  # as decoded
    expected = weights.transforms()(clip)
    one_level = 1 / 255 / min(weights.transforms().std) + 1e-6
    got = teacher.preset(clip)
    assert got.shape == expected.shape and 0 < (got - expected).abs().max() <= one_level
    # per-frame work done once per video, then rows gathered into a clip: the same numbers
    assert torch.equal(teacher.preset.frames(clip).permute(1, 0, 2, 3), got)
    batch = torch.stack([clip, clip.flip(0)])
    assert (teacher.preset(batch) - weights.transforms()(batch)).abs().max() <= one_level


@pytest.mark.parametrize("shape", [(2, 3, 90, 200), (2, 3, 200, 90), (2, 3, 128, 171)])
def test_geometry_sizes_follow_torchvision(shape: tuple[int, ...]) -> None:
    """Short-side resizes keep the aspect ratio as torchvision does (the long side truncated)."""
    for name in ("r3d_18", "s3d"):
        preset = build_teacher(name, None).preset
        clip = torch.randint(0, 256, shape, dtype=torch.uint8)
        reference = VideoClassification(
            crop_size=preset.crop_size, resize_size=preset.resize_size, mean=preset.mean, std=preset.std
        )
        assert preset(clip).shape == reference(clip).shape
        assert preset.geometry(clip).dtype == torch.uint8


def test_features_are_the_pooled_penultimate_layer() -> None:
    teacher = build_teacher("r3d_18", None, seed=3)
    reference = torchvision.models.video.r3d_18()
    reference.load_state_dict(teacher.model.state_dict())
    reference.fc = nn.Identity()
    reference.eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.inference_mode():
        features, _ = teacher(x)
        assert torch.allclose(features, reference(x), atol=1e-6)


def test_seeds() -> None:
    a, b, c = (build_teacher("tiny3d", None, seed=s).model.state_dict() for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_forms(tmp_path: Path) -> None:
    source = build_teacher("tiny3d", None, num_classes=7, seed=5)
    state = source.model.state_dict()
    x = torch.randn(2, 3, 16, 56, 56)
    expected_features, expected_logits = source(x)

    plain = tmp_path / "plain.pt"
    torch.save(state, plain)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "classes": list("abcdefg")}, wrapped)
    for path in (plain, wrapped):
        teacher = build_teacher("tiny3d", str(path))
        features, logits = teacher(x)
        assert torch.allclose(features, expected_features) and torch.allclose(logits, expected_logits)
        assert logits.shape == (2, 7) and teacher.num_classes == 7
        assert teacher.weights_id == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert build_teacher("tiny3d", str(wrapped)).classes == tuple("abcdefg")
    assert build_teacher("tiny3d", str(plain)).classes == ()

    headless = tmp_path / "headless.pt"
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, headless)
    teacher = build_teacher("tiny3d", str(headless))
    assert teacher.num_classes == 0 and torch.allclose(teacher(x)[0], expected_features)


def test_published_checkpoint_key_names() -> None:
    c3d = build_teacher("c3d", None).model.state_dict()
    for key in ("conv1.weight", "conv3a.weight", "conv5b.bias", "fc6.weight", "fc8.weight"):
        assert key in c3d
    assert c3d["fc6.weight"].shape == (4096, 8192) and c3d["fc8.weight"].shape == (487, 4096)
    resnext = build_teacher("resnext3d_101", None).model.state_dict()
    for key in (
        "conv1.weight",
        "layer1.0.conv1.weight",
        "layer1.0.downsample.0.weight",
        "layer3.22.bn3.weight",
        "fc.weight",
    ):
        assert key in resnext
    assert resnext["layer1.0.conv2.weight"].shape == (128, 4, 3, 3, 3)  # 32 groups


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown teacher 'i3d'; valid names: c3d, "):
        build_teacher("i3d")
    with pytest.raises(ValueError, match="R3D_18_Weights.KINETICS400_V1"):
        build_teacher("r3d_18", "IMAGENET1K_V1")
    with pytest.raises(ValueError, match="tiny3d has no torchvision weights"):
        build_teacher("tiny3d", "DEFAULT")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        build_teacher("tiny3d", str(junk))
    other = tmp_path / "other.pt"
    torch.save(build_teacher("r3d_18", None).model.state_dict(), other)
    with pytest.raises(ValueError, match="does not fit teacher 'tiny3d'"):
        build_teacher("tiny3d", str(other))


def test_weights_names_resolve_without_downloading() -> None:
    from pipeline.weights import weights_member

    enum = torchvision.models.video.R3D_18_Weights
    assert weights_member("teacher", "r3d_18", "DEFAULT", enum) is enum.DEFAULT
    assert weights_member("teacher", "r3d_18", "KINETICS400_V1", enum) is enum.KINETICS400_V1
    assert weights_member("teacher", "r3d_18", "R3D_18_Weights.KINETICS400_V1", enum) is enum.KINETICS400_V1


@pytest.mark.slow
@pytest.mark.parametrize("name", teacher_names())
def test_features_on_our_preset_match_the_torchvision_preset(name: str, tmp_path: Path) -> None:
    """The cache's contract: features within tolerance of the teacher on its own preset.

    A 240x320 mpeg4 video of moving texture (every pixel an edge, the hardest case for rounding),
    decoded with PyAV; the same frames through our preset and through torchvision's
    ``VideoClassification`` with the preset's sizes (what ``weights.transforms()`` returns);
    the random-init teacher's features of both: cosine >= 0.999, relative L2 error printed.
    """
    path = write_video(tmp_path / "v.mp4", textured_video(16, 240, 320), fps=25)
    clip = torch.from_numpy(decode(path, list(range(16))).frames).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
    teacher = build_teacher(name, None, seed=0).eval()
    p = teacher.preset
    reference = VideoClassification(crop_size=p.crop_size, resize_size=p.resize_size, mean=p.mean, std=p.std)
    with torch.inference_mode():
        ours, _ = teacher(p(clip)[None])
        theirs, _ = teacher(reference(clip)[None])
    cosine = torch.nn.functional.cosine_similarity(ours, theirs).item()
    rel_l2 = ((ours - theirs).norm() / theirs.norm()).item()
    print(f"{name}: cosine {cosine:.6f}, relative L2 {rel_l2:.2e}")
    assert cosine >= 0.999, (name, cosine, rel_l2)
