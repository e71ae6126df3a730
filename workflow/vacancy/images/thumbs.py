"""Thumbnails made once per image, independent of the layout, so tiles never decode originals.

A new t-SNE perplexity or grid method changes where each image goes, not what its cell looks
like: the ``prepare`` stage makes a centre-cropped ``cell_px`` square of every photo (and
"maybe") of a location from the decode it shares with triage, hashes and features, into one HDF5
file (``ids``, ``thumbs``), and the tile jobs only copy those pixels into place.
Thumbnails are made for every candidate, not only the selection, so a changed exclude file or
dedup setting does not remake them.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
from PIL import Image

from .resample import resize_square_rgb

#: EXIF orientation as Wand names it -> the transpose that shows the photo upright.
_UPRIGHT = {
    "top_right": Image.Transpose.FLIP_LEFT_RIGHT,
    "bottom_right": Image.Transpose.ROTATE_180,
    "bottom_left": Image.Transpose.FLIP_TOP_BOTTOM,
    "left_top": Image.Transpose.TRANSPOSE,
    "right_top": Image.Transpose.ROTATE_270,
    "right_bottom": Image.Transpose.TRANSVERSE,
    "left_bottom": Image.Transpose.ROTATE_90,
}


def thumb_from_rgb(rgb: np.ndarray, cell_px: int, orientation: str = "top_left") -> np.ndarray:
    """A centre-cropped ``cell_px`` square (uint8, upright) of an (h, w, 3) uint8 image, or of
    a Q16 uint16 one (scaled to 8 bits as ImageMagick does, only inside the crop).

    Lanczos with Pillow's weights, applied as matrix products (3x faster than Pillow's own RGB
    resize here); the EXIF orientation is applied to the tiny result, since a centred square
    crop commutes with rotations and flips.
    """
    height, width = rgb.shape[:2]
    side = min(width, height)
    if side < 1:
        raise ValueError(f"empty image {width}x{height}")
    top, left = (height - side) // 2, (width - side) // 2
    thumb = resize_square_rgb(rgb[top:top + side, left:left + side], cell_px)
    if orientation in _UPRIGHT:
        thumb = np.asarray(Image.fromarray(thumb, "RGB").transpose(_UPRIGHT[orientation]))
    return thumb


def _read_each(dataset, index: Sequence[int]) -> np.ndarray:
    """``dataset[index]`` read one thumbnail at a time, ~25 times faster than h5py's fancy indexing.

    h5py turns a list index into a union of hyperslabs that HDF5 resolves slowly (0.7 ms a
    thumbnail: 72 of the 83 s of the tiles stage at 93,500 images); one hyperslab per thumbnail
    through the low-level API costs ~30 us and still reads only the thumbnails asked for.
    """
    out = np.empty((len(index), *dataset.shape[1:]), dataset.dtype)
    file_space = dataset.id.get_space()
    one = h5py.h5s.create_simple((1, *dataset.shape[1:]))
    for k, i in enumerate(index):
        file_space.select_hyperslab((int(i),) + (0,) * (dataset.ndim - 1), (1, *dataset.shape[1:]))
        dataset.id.read(one, file_space, out[k:k + 1])
    return out


class ThumbStore:
    """Look up the stored thumbnails of many ids across the per-location files."""

    def __init__(self, paths: Sequence[str | Path]):
        self.files = [h5py.File(p, "r") for p in paths]
        self.where: dict[str, tuple[int, int]] = {}
        for f, h5 in enumerate(self.files):
            for i, raw in enumerate(h5["ids"][:]):
                key = raw.decode() if isinstance(raw, bytes) else str(raw)
                self.where[key] = (f, i)

    def get(self, ids: Sequence[str], cell_px: int) -> list[np.ndarray | None]:
        """Thumbnails for ``ids`` (None where an id has none)."""
        out: list[np.ndarray | None] = [None] * len(ids)
        wanted: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for k, image_id in enumerate(ids):
            if image_id in self.where:
                f, i = self.where[image_id]
                wanted[f].append((i, k))
        for f, pairs in wanted.items():
            pairs.sort()
            index = [i for i, _ in pairs]
            pixels = _read_each(self.files[f]["thumbs"], index)
            if pixels.shape[1] != cell_px:
                raise ValueError(f"thumbnails are {pixels.shape[1]} px, the tiles need {cell_px}")
            for (_, k), thumb in zip(pairs, pixels):
                out[k] = thumb
        return out

    def close(self) -> None:
        for h5 in self.files:
            h5.close()
