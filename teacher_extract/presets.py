"""Teacher preprocessing presets, kept next to the models they belong to.

A preset gives exactly the numbers torchvision's ``weights.transforms()``
(``torchvision.transforms._presets.VideoClassification``) gives, but split in two so that
extraction can do the per-frame work once per decoded video instead of once per clip:

* :meth:`VideoPreset.frames`: resize, centre crop, scale to [0, 1], normalise, frame by frame,
  itself two steps: :meth:`VideoPreset.geometry` (the values torchvision's uint8 resize gives)
  and :meth:`VideoPreset.normalize`. On a GPU extraction runs both on the device, in batches,
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
        """Resize and centre crop: ``(T, C, H, W)`` uint8 -> ``(T, C, h, w)`` float32 of whole numbers in [0, 255].

        Exactly torchvision's uint8 resize (bilinear, rounded back to whole values), without its
        round trip through uint8: the values are the same, and the float tensor goes straight on
        to :meth:`normalize`. ``antialias=False`` on purpose: it is what torchvision's video
        presets (and so the pretrained weights) use, see https://github.com/pytorch/vision/pull/7160.
        A ``(T, H, W, C)`` tensor permuted to ``(T, C, H, W)`` (channels-last strides, as decoded
        frames are) interpolates about 1.7x faster on a CPU than a contiguous one.
        """
        x = video.float() if video.dtype == torch.uint8 else video
        x = F.resize(x, list(self.resize_size), interpolation=F.InterpolationMode.BILINEAR, antialias=False)
        return F.center_crop(x.round_(), list(self.crop_size))

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """``(..., C, h, w)`` pixel values in [0, 255] (uint8 or float) -> float32 in the model's normalised range.

        The same operations as torchvision's preset (``/ 255``, then ``normalize``), so the same
        numbers; in place on the one new tensor.
        """
        x = frames.float() / 255
        return F.normalize(x, mean=list(self.mean), std=list(self.std), inplace=True)

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


def from_torchvision(weights) -> VideoPreset:
    """Read the preset of a torchvision video weights enum member from its own ``transforms()``."""
    t = weights.transforms()
    return VideoPreset(
        crop_size=tuple(t.crop_size),
        resize_size=tuple(t.resize_size),
        mean=tuple(t.mean),
        std=tuple(t.std),
    )
