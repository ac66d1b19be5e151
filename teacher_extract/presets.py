"""Teacher preprocessing presets, kept next to the models they belong to.

A preset does what torchvision's ``weights.transforms()``
(``torchvision.transforms._presets.VideoClassification``) does, to within one level of a pixel on a
CPU (see :meth:`VideoPreset.geometry`), but split in two so that extraction can do the per-frame
work once per decoded video instead of once per clip:

* :meth:`VideoPreset.frames`: resize, centre crop, scale to [0, 1], normalise, frame by frame,
  itself two steps: :meth:`VideoPreset.geometry` (uint8 in, uint8 out) and
  :meth:`VideoPreset.normalize`. On a GPU extraction runs both on the device, in batches,
  so frames cross to it as uint8 (a quarter of float32's bytes); on a CPU the decoder processes
  run the geometry, in parallel with the teacher;
* gathering a clip's rows and moving time next to channels (what :meth:`VideoPreset.__call__`
  does in one go, for a single clip).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.functional as F

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True, kw_only=True)
class VideoPreset:
    """A teacher's preprocessing (keyword-only, like torchvision's presets).

    Attributes:
        crop_size: ``(h, w)`` of the centre crop the teacher sees.
        resize_size: ``(h, w)``, or ``(short_side,)`` to keep the aspect ratio.
        mean, std: per-channel normalisation of [0, 1] pixels.
    """

    crop_size: tuple[int, int]
    resize_size: tuple[int, ...]
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD

    def frames(self, video: torch.Tensor) -> torch.Tensor:
        """Per-frame preprocessing of a whole decoded video.

        Args:
            video: ``(T, C, H, W)`` uint8.

        Returns:
            ``(T, C, h, w)`` float32, normalised.
        """
        return self.normalize(self.geometry(video))

    def geometry(self, video: torch.Tensor) -> torch.Tensor:
        """Resize and centre crop: ``(T, C, H, W)`` uint8 -> ``(T, C, h, w)`` uint8.

        Bilinear, ``antialias=False`` on purpose: it is what torchvision's video presets (and so
        the pretrained weights) use, see https://github.com/pytorch/vision/pull/7160. On a CPU
        the resize is torch's native uint8 kernel, 7.7x faster than torchvision's (which resizes
        a float copy and rounds back): it computes in fixed point, so about a fifth of the pixels
        land one level away from torchvision's, which moves teacher features by far less than
        the tolerance the cache promises (cosine >= 0.999 to the torchvision preset's; tests
        and ``make bench`` measure it). Elsewhere (CUDA) the float resize, rounded: exactly
        torchvision's values. A ``(T, H, W, C)`` tensor permuted to ``(T, C, H, W)`` (channels-last
        strides, as decoded frames are) takes the kernel's fastest path.
        """
        size = resized_size(video.shape[-2:], self.resize_size)
        if video.dtype == torch.uint8 and video.device.type == "cpu":
            x = torch.nn.functional.interpolate(video, size=size, mode="bilinear", align_corners=False)
        else:
            x = F.resize(video.float(), list(size), interpolation=F.InterpolationMode.BILINEAR, antialias=False)
            x = x.round_().to(torch.uint8)
        return F.center_crop(x, list(self.crop_size))

    @property
    def short_side(self) -> int:
        """The shorter side of the resize: what the frames' resolution must at least offer."""
        return int(min(self.resize_size))

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """``(..., C, h, w)`` pixel values in [0, 255] (uint8 or float) -> float32 in the model's normalised range.

        The same operations as torchvision's preset (``/ 255``, then ``normalize``), so the same
        numbers; in place on the one new tensor.
        """
        x = frames.float() / 255
        return F.normalize(x, mean=list(self.mean), std=list(self.std), inplace=True)

    def normalize_clips_(self, clips: torch.Tensor) -> torch.Tensor:
        """``(n, C, T, h, w)`` float32 pixel values in [0, 255] -> normalised, in place.

        The very operations of :meth:`normalize` (``/ 255``, ``- mean``, ``/ std``, each rounded
        once), so the very bits: extraction converts gathered uint8 frames straight into the
        teacher's batch and normalises the batch where it lies, instead of normalising every frame
        into a new tensor and copying clips out of it twice (gather, then batch). In
        ``channels_last_3d`` the channel is the innermost dimension, where a broadcast per-channel
        constant runs three elements at a time (3x slower); the batch is then treated as rows of
        ``w`` pixels against a mean and std repeated ``w`` times.
        """
        c, w = clips.shape[1], clips.shape[-1]
        mean = torch.as_tensor(self.mean, dtype=clips.dtype, device=clips.device)
        std = torch.as_tensor(self.std, dtype=clips.dtype, device=clips.device)
        if clips.is_contiguous(memory_format=torch.channels_last_3d) and not clips.is_contiguous():
            rows = clips.permute(0, 2, 3, 4, 1).view(-1, w * c)  # (n*T*h, w*C), the same memory
            rows.div_(255).sub_(mean.repeat(w)).div_(std.repeat(w))
            return clips
        return clips.div_(255).sub_(mean.view(1, c, 1, 1, 1)).div_(std.view(1, c, 1, 1, 1))

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        """Same contract as ``weights.transforms()``: ``(T, C, H, W)`` uint8 -> ``(C, T, h, w)``,
        or ``(N, T, C, H, W)`` -> ``(N, C, T, h, w)``."""
        if clip.ndim == 4:
            return self.frames(clip).permute(1, 0, 2, 3)
        n, t = clip.shape[:2]
        x = self.frames(clip.flatten(0, 1))
        return x.view(n, t, *x.shape[1:]).permute(0, 2, 1, 3, 4)

    def scaled(self, crop: int) -> VideoPreset:
        """The same preset at another crop size, resize scaled in proportion (e.g. s3d at 112)."""
        factor = crop / self.crop_size[0]
        resize = tuple(round(s * factor) for s in self.resize_size)
        return VideoPreset(crop_size=(crop, crop), resize_size=resize, mean=self.mean, std=self.std)


def resized_size(image: tuple[int, int] | torch.Size, size: tuple[int, ...]) -> tuple[int, int]:
    """``(h, w)`` after resizing an ``image`` ``(H, W)`` to ``size``: ``(h, w)`` as given, or
    ``(short_side,)``: the shorter side to it, the longer in proportion (truncated, as torchvision does)."""
    if len(size) == 2:
        return int(size[0]), int(size[1])
    h, w = int(image[0]), int(image[1])
    short, long = min(h, w), max(h, w)
    new_short, new_long = int(size[0]), int(size[0] * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def from_torchvision(weights) -> VideoPreset:
    """Read the preset of a torchvision video weights enum member from its own ``transforms()``."""
    t = weights.transforms()
    return VideoPreset(
        crop_size=tuple(t.crop_size),
        resize_size=tuple(t.resize_size),
        mean=tuple(t.mean),
        std=tuple(t.std),
    )
