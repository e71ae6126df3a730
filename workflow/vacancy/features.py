"""Features: a small, blurred thumbnail of each image, the vector that PCA and t-SNE then place.

Why this recipe: it is the original project's, and it decides which rooms end up side by side.
Each image is squashed to 64 x 64 (aspect ratio ignored, so every image gives the same number of
values), and two blurred copies (sigma 3 and 8) are added so that layout and large light/dark
areas count more than fine texture. ImageMagick does every pixel operation, with the original
command's semantics:

    convert img -resize 64x64! -colorspace RGB -colorspace gray \\
        ( -clone 0 -blur 0x3 ) ( -clone 0 -blur 0x8 ) -append

Vector layout, float32 in 0..1 (Q16 value / 65535), row-major:

* ``color="gray"``: 12,288 values = the 64 x 192 stack (rows 0-63 the image, 64-127 blur 3,
  128-191 blur 8), index ``row * 64 + col``.
* ``color="rgb"``: 36,864 values, *planar*: the same 64 x 192 stack for R, then G, then B
  (index ``channel * 12288 + row * 64 + col``), without the ``-colorspace gray`` step. In
  ImageMagick >= 6.7.7 ``-colorspace RGB`` means *linear* RGB, so the blurs are done in linear
  light; the values are then encoded back to sRGB, which is what the original command's output
  (``... -append rgb:-`` or any image file) contains. The gray variant instead goes back to
  sRGB *before* blurring (``-colorspace gray`` of a linear image does that), so its first 64
  rows equal the Rec. 709 luma of the rgb ones exactly and its blurred rows only approximately.

EXIF orientation is not applied (the original did not either). ``draft=True`` asks the JPEG
decoder for a reduced-scale decode (``jpeg:size``), which is faster and changes values slightly;
off by default.

Output: one HDF5 file per location (see :func:`features_for_location`), written in batches so
memory stays flat however many images there are.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
from wand.image import Image

from .common import Progress, atomic_path, provenance, write_csv
from .imaging import DEFAULT_MAX_PIXELS, Rejected, decode, export_pixels, read_blob

log = logging.getLogger("vacancy.features")

SIZE = 64
SIGMAS = (3.0, 8.0)
N_GRAY = SIZE * SIZE * (1 + len(SIGMAS))  # 12,288
N_FEATURES = {"gray": N_GRAY, "rgb": 3 * N_GRAY}  # rgb: 36,864
#: JPEG size hint for draft decoding: libjpeg picks the smallest 1/8-step scale at least this big.
DRAFT_SIZE = "128x128"
#: Rows per HDF5 chunk: a chunk of 64 gray vectors is 3 MB raw, a good unit for PCA batches.
CHUNK_ROWS = 64
#: lzf with the byte-shuffle filter. Measured on 640 rows of 600x450 JPEG features (31.5 MB raw):
#: lzf alone 30.6 MB (floats barely compress), lzf+shuffle 23.3 MB read at ~310 MB/s,
#: gzip-1+shuffle 19.9 MB but read at ~215 MB/s and written 3x slower. PCA reads these files
#: at least twice, so read speed wins.
COMPRESSION = "lzf"
SHUFFLE = True
RECIPE = (
    "ImageMagick: -resize 64x64! -colorspace RGB [-colorspace gray] "
    "( -clone 0 -blur 0x3 ) ( -clone 0 -blur 0x8 ) -append; float32 = Q16/65535; "
    "gray: 64x192 row-major (image, blur 3, blur 8); rgb: planar R, G, B stacks of 64x192, "
    "blurred in linear RGB, stored sRGB-encoded (as the command's rgb:- output)"
)
REJECT_COLUMNS = ("id", "stage", "reason")


def _check_color(color: str) -> None:
    """Refuse an unknown colour mode early, before hours of work write the wrong width."""
    if color not in N_FEATURES:
        raise ValueError(f"color must be one of {sorted(N_FEATURES)}, not {color!r}")


def wand_features(img: Image, color: str = "gray") -> np.ndarray:
    """The feature vector of a decoded Wand image (the image is modified: resized, recoloured)."""
    _check_color(color)
    img.resize(SIZE, SIZE)  # Wand's resize ignores the aspect ratio, like "64x64!"
    img.transform_colorspace("rgb")  # linear RGB, as "-colorspace RGB" in ImageMagick 6.9
    if color == "gray":
        img.transform_colorspace("gray")
    copies = [img]
    try:
        for sigma in SIGMAS:
            blurred = img.clone()
            copies.append(blurred)
            blurred.blur(radius=0, sigma=sigma)
        planes = [_export_stack_part(copy, color) for copy in copies]
    finally:
        for copy in copies[1:]:
            copy.destroy()
    stack = np.concatenate(planes, axis=0)  # (192, 64, channels): the "-append"
    return np.ascontiguousarray(stack.transpose(2, 0, 1)).reshape(-1)


def _export_stack_part(img: Image, color: str) -> np.ndarray:
    """One 64 x 64 part of the stack as floats; rgb is encoded to sRGB as any IM writer does."""
    if color == "gray":
        return export_pixels(img, "R", "float")
    img.transform_colorspace("srgb")
    return export_pixels(img, "RGB", "float")


def image_features(blob: bytes, color: str = "gray", max_pixels: int = DEFAULT_MAX_PIXELS,
                   draft: bool = False) -> np.ndarray:
    """Feature vector (float32: 12,288 gray, 36,864 rgb) of an encoded image; may raise Rejected."""
    _check_color(color)
    options = {"jpeg:size": DRAFT_SIZE} if draft else None
    with decode(bytes(blob), max_pixels, options) as img:
        return wand_features(img, color)


def _location_rows(selected_csv, location: str) -> Iterator[dict[str, str]]:
    """The rows of one location, in file order, read lazily."""
    with open(selected_csv, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["location"] == location:
                yield row


class _H5Writer:
    """Appends (id, vector) rows to resizable datasets in batches, so memory does not grow."""

    def __init__(self, h5: h5py.File, n_features: int, batch_size: int):
        self.ids = h5.create_dataset(
            "ids", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype("utf-8"),
            chunks=(1024,),
        )
        self.features = h5.create_dataset(
            "features", shape=(0, n_features), maxshape=(None, n_features), dtype="float32",
            chunks=(CHUNK_ROWS, n_features), compression=COMPRESSION, shuffle=SHUFFLE,
        )
        self.buffer = np.empty((max(1, batch_size), n_features), dtype=np.float32)
        self.buffer_ids: list[str] = []
        self.written = 0

    def add(self, id_: str, vector: np.ndarray) -> None:
        self.buffer[len(self.buffer_ids)] = vector
        self.buffer_ids.append(id_)
        if len(self.buffer_ids) == len(self.buffer):
            self.flush()

    def flush(self) -> None:
        n = len(self.buffer_ids)
        if n == 0:
            return
        end = self.written + n
        self.ids.resize((end,))
        self.features.resize(end, axis=0)
        self.ids[self.written:end] = self.buffer_ids
        self.features[self.written:end] = self.buffer[:n]
        self.written = end
        self.buffer_ids.clear()


def features_for_location(selected_csv, location: str, out_h5, color: str = "gray",
                          batch_size: int = 256, max_pixels: int = DEFAULT_MAX_PIXELS,
                          draft: bool = False) -> dict:
    """Compute features of one location's selected images into ``out_h5``; return counts.

    HDF5 layout: ``ids`` (n,) UTF-8 strings in the order of ``selected_csv``; ``features``
    (n, d) float32, chunks of 64 rows, lzf + shuffle; attributes ``provenance`` (JSON), ``recipe``,
    ``color``, ``n_features``. Images that fail are skipped and listed in
    ``<out_h5>.rejects.csv`` (id, stage ``features``, reason). Both files are written atomically.
    """
    _check_color(color)
    n_features = N_FEATURES[color]
    total = sum(1 for _ in _location_rows(selected_csv, location))
    params = {"location": location, "color": color, "batch_size": batch_size,
              "max_pixels": max_pixels, "draft": draft}
    prov = provenance("features", params, input=os.fspath(selected_csv))
    rejects: list[dict] = []
    progress = Progress(f"features {location}", total, logger=log)
    out_h5 = Path(out_h5)
    with atomic_path(out_h5, suffix=".h5.part") as tmp:
        with h5py.File(tmp, "w") as h5:
            writer = _H5Writer(h5, n_features, batch_size)
            for row in _location_rows(selected_csv, location):
                try:
                    vector = image_features(read_blob(row["path"]), color, max_pixels, draft)
                except Rejected as exc:
                    log.warning("features reject %s (%s): %s", row["id"], row["path"], exc)
                    rejects.append({"id": row["id"], "stage": "features", "reason": str(exc)})
                else:
                    writer.add(row["id"], vector)
                progress.update()
            writer.flush()
            h5.attrs["provenance"] = json.dumps({**prov, "n_rows": writer.written})
            h5.attrs["recipe"] = RECIPE
            h5.attrs["color"] = color
            h5.attrs["n_features"] = n_features
        # Rejects first, so a finished .h5 always has its rejects list beside it.
        write_csv(rejects_path(out_h5), rejects, REJECT_COLUMNS, prov=prov)
    progress.finish()
    counts = {"images": total, "written": writer.written, "rejected": len(rejects)}
    log.info("features %s: %s", location, counts)
    return counts


def rejects_path(out_h5) -> Path:
    """Where the images that failed feature extraction are listed: ``<out_h5>.rejects.csv``."""
    out_h5 = Path(out_h5)
    return out_h5.with_name(out_h5.name + ".rejects.csv")
