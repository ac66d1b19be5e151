"""Videos stored as folders of frame images, read like video files.

Many datasets ship (or are usually prepared) as one folder of images per video, e.g. MTL-AQA
(``<event>_<clip>/00001.jpg``...) and YUP++ (``jpegs_256/<video>/frame000001.jpg``). A folder is a
*frame folder* when it directly holds at least one file ending in ``.jpg``, ``.jpeg`` or ``.png``
(any case; hidden files such as macOS ``._*`` are ignored, so are other files).

Expected naming: every frame file name carries an integer, and the **last** integer in the name
(before the suffix) is the frame's number: ``img_00012.jpg``, ``frame12.png``, ``00012.jpg``,
``clip3_f0012.jpg`` (number 12) all work. Frames are ordered by that number, numerically (2 before
10, so zero padding is optional). Frame index ``i`` is the ``i``-th file in that order, whatever
the first number is (0 or 1) and even if numbers skip (a gap is not filled). A file without a
number, or two files with the same number (``1.jpg`` and ``001.png``), is an error rather than a
guess, because either would silently reorder time.

Everything here mirrors :func:`pipeline.video.decode`: the same ``(N, H, W, 3)`` uint8 RGB
output, an index past the end gets the last frame, and failures raise
:class:`~pipeline.video.VideoError` (the one exception callers catch per video).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.video import VideoError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")

_INTEGER = re.compile(r"\d+")


def _is_frame_file(path: Path) -> bool:
    return path.suffix.lower() in FRAME_SUFFIXES and not path.name.startswith(".") and path.is_file()


def is_frame_folder(path: Path) -> bool:
    """Whether ``path`` is a directory directly holding at least one frame image (see module doc)."""
    path = Path(path)
    return path.is_dir() and any(_is_frame_file(p) for p in path.iterdir())


def frame_files(path: Path) -> list[Path]:
    """The frame images of a frame folder, in frame order (the last integer of each name, numerically).

    Raises:
        VideoError: ``path`` is not a folder or holds no frame image; a frame name has no number;
            two frames share a number.
    """
    path = Path(path)
    if not path.is_dir():
        raise VideoError(path, "no such frame folder")
    numbered: dict[int, Path] = {}
    for file in path.iterdir():
        if not _is_frame_file(file):
            continue
        numbers = _INTEGER.findall(file.stem)
        if not numbers:
            raise VideoError(
                path, f"frame file {file.name!r} has no number in its name (expected e.g. img_00012.jpg or 00012.jpg)"
            )
        number = int(numbers[-1])
        if number in numbered:
            first, second = sorted((numbered[number].name, file.name))
            raise VideoError(path, f"frame files {first!r} and {second!r} both have frame number {number}")
        numbered[number] = file
    if not numbered:
        raise VideoError(path, f"no frame images ({', '.join(FRAME_SUFFIXES)}) in this folder")
    return [numbered[n] for n in sorted(numbered)]


def frame_folder_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable frame folder (no such folder, no frames, bad names); ``None`` if it is.

    Cheap (lists the folder, decodes nothing): adapters use it to tell a broken frame folder,
    which they keep so extraction records it as failed with this reason, from a missing one.
    """
    try:
        frame_files(path)
    except VideoError as err:
        return err.reason
    return None


def frame_count(path: Path) -> int:
    """Number of frames of a frame folder (no image is decoded)."""
    return len(frame_files(path))


def _read_image(file: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of one image file; grey, palette and alpha images are converted."""
    try:
        with Image.open(file) as image:
            rgb = image.convert("RGB")  # forces the full decode: a truncated file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise VideoError(file, f"cannot read frame image: {err}") from err
    return np.asarray(rgb, dtype=np.uint8)


def read_frames(path: Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Decode the frames ``indices`` of a frame folder, and only those.

    Args:
        path: the frame folder.
        indices: frame indices in any order, repeats allowed (each file is decoded once); ``None``
            means every frame. An index past the end gets the last frame, like
            :func:`pipeline.video.decode` (clip windows near the end of a video ask for them).

    Returns:
        ``(len(indices), H, W, 3)`` uint8 RGB; row ``i`` is frame ``indices[i]``.

    Raises:
        ValueError: ``indices`` is empty or has a negative index (a caller bug, as in ``decode``).
        VideoError: the folder is not a valid frame folder (see :func:`frame_files`), a wanted
            image cannot be decoded (the error names that file), or the wanted frames differ in size.
    """
    files = frame_files(path)
    if indices is None:
        order = list(range(len(files)))
    else:
        order = [int(i) for i in indices]
        if not order or min(order) < 0:
            raise ValueError(f"frame indices must be non-negative and not empty, got {indices}")
        order = [min(i, len(files) - 1) for i in order]
    decoded = {i: _read_image(files[i]) for i in sorted(set(order))}
    shapes = {image.shape for image in decoded.values()}
    if len(shapes) > 1:
        sizes = sorted(f"{files[i].name}: {image.shape[1]}x{image.shape[0]}" for i, image in decoded.items())
        raise VideoError(path, f"frames differ in size ({', '.join(sizes[:4])})")
    return np.stack([decoded[i] for i in order])


def folder_fingerprint(path: Path) -> str:
    """Content hash of a frame folder: ``blake2b:<hex>`` (16-byte digest) over its frames in order.

    Each frame contributes its file name and its bytes (length-prefixed, so no two different
    folders hash the same stream), so changing, adding, removing or renumbering a frame changes
    the hash, while copies, clones and ``dvc checkout`` (new mtimes) do not.
    """
    h = hashlib.blake2b(digest_size=16)
    for file in frame_files(path):
        name = file.name.encode()
        h.update(len(name).to_bytes(8, "little") + name)
        h.update(file.stat().st_size.to_bytes(8, "little"))
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return f"blake2b:{h.hexdigest()}"
