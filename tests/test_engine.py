"""The extraction loop's batch builder: the teacher's input, bit for bit, whatever the clips' rows and layout."""

import pytest
import torch

from teacher_extract.engine import _ClipQueue
from teacher_extract.presets import VideoPreset

PRESET = VideoPreset(crop_size=(12, 12), resize_size=(14, 18))


def _frames(u: int, seed: int) -> torch.Tensor:
    """``(U, 3, h, w)`` uint8 laid out as the decoder's geometry leaves them (a crop of channels-last frames)."""
    raw = torch.randint(0, 256, (u, 20, 26, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return PRESET.geometry(raw.permute(0, 3, 1, 2))


def _by_hand(frames: torch.Tensor, gather: torch.Tensor) -> torch.Tensor:
    """What the preset makes of each clip: normalise the frames, gather the clip, time after channels."""
    return PRESET.normalize(frames)[gather].permute(0, 2, 1, 3, 4)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_batches_equal_the_preset_clip_by_clip(memory_format):
    # Consecutive rows (a view), a stride-2 window and a short video's repeated last frame (gathered
    # copies), three videos split across batches of 3, the last batch padded.
    videos = [
        (_frames(8, 0), torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])),
        (_frames(7, 1), torch.tensor([[0, 2, 4, 6]])),
        (_frames(3, 2), torch.tensor([[0, 1, 2, 2], [1, 2, 2, 2]])),
    ]
    queue = _ClipQueue()
    for i, (frames, gather) in enumerate(videos):
        queue.add(frames, gather, owner=i, mirrored=False)
    expected = torch.cat([_by_hand(f, g) for f, g in videos])
    batches, owners = [], []
    while queue.size:
        n = min(3, queue.size)
        batch, who = queue.take(n, 3, PRESET, memory_format)
        assert batch.shape == (3, 3, 4, 12, 12) and batch.is_contiguous(memory_format=memory_format)
        assert torch.count_nonzero(batch[n:]) == 0  # padding stays zero clips
        batches.append(batch[:n])
        owners += who
    assert torch.equal(torch.cat(batches), expected)
    assert owners == [(0, 0, False), (0, 1, False), (1, 0, False), (2, 0, False), (2, 1, False)]
