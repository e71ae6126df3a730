"""Reference implementations the tests hold the live code to; nothing in the workflow calls them.

Each is the plain, full-decode or one-process form of a stage that the workflow runs in a faster
or parallel form: editing the live code is the only way to change what the workflow produces, and
these say what it must still equal.
"""
from __future__ import annotations

import contextlib
import logging

import numpy as np
from wand.image import Image

from vacancy.common import Progress, atomic_dir, write_json
from vacancy.images.features import SIZE, check_color, features_of_small, wand_features
from vacancy.imaging import DEFAULT_MAX_PIXELS, decode
from vacancy.images.resample import resize_gray
from vacancy.images.thumbs import ThumbStore
from vacancy.map.grid_csv import read_cells
from vacancy.map.tiles import TileSpec, _cell_rows, _Pyramid, _stored_thumbs, _strips
from vacancy.images.triage import entropy_nats, gray_q16, histogram_of_q16

log = logging.getLogger("vacancy.map.tiles")


def gray_histogram(img: Image) -> np.ndarray:
    """256 counts of the image's grey levels after ``-colorspace gray -depth 8`` (Q16)."""
    return histogram_of_q16(gray_q16(img))


def gray_entropy(blob_or_wand_image: bytes | Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> float:
    """Triage's entropy on a full decode: in nats of the 8-bit grey histogram of an encoded image (bytes) or Wand image.

    Bytes go through the safe decoder (:mod:`vacancy.imaging`) and may raise Rejected;
    a Wand image is left unchanged.
    """
    if isinstance(blob_or_wand_image, Image):
        return entropy_nats(gray_histogram(blob_or_wand_image))
    with decode(bytes(blob_or_wand_image), max_pixels) as img:
        return entropy_nats(gray_histogram(img))


def image_features(blob: bytes, color: str = "gray",
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Feature vector (float32: 12,288 gray, 36,864 rgb) of an encoded image, fully decoded: the
    reference recipe the tests hold the prepare stage to; may raise Rejected."""
    check_color(color)
    with decode(bytes(blob), max_pixels) as img:
        return wand_features(img, color)


def gray_features(gray: np.ndarray) -> np.ndarray:
    """The 12,288-value gray vector of an (h, w) grey image with values in 0..1.

    Same layout and recipe as :func:`wand_features` (``-resize 64x64!`` Lanczos, blur 3, blur 8);
    grey before resizing equals ImageMagick's order because both steps are linear. Measured
    against :func:`wand_features` on the same decoded demo images: mean |difference| 0.0002.
    """
    return features_of_small(resize_gray(gray, SIZE))


def render_tiles(grid_csv, thumb_files, out_dir, cols: int, rows: int, cell_px: int = 64,
                 tile_px: int = 256, quality: int = 85, background=(24, 24, 24)) -> dict:
    """Render the tile pyramid ``out_dir/{z}/{x}/{y}.jpg`` plus ``meta.json`` in one process;
    return the meta. The cells are copied from the stored thumbnails (``thumb_files``, the
    ``prepare`` rule's per-location files): no original is decoded. The tree is built beside
    ``out_dir`` and renamed into place only when complete.
    """
    spec = TileSpec(cols, rows, cell_px, tile_px, background, quality=quality)
    background = spec.background
    by_row = read_cells(grid_csv, cols, rows)
    count = sum(len(v) for v in by_row.values())
    width_px, height_px = spec.width_px, spec.height_px
    zmax = spec.max_zoom
    strip_w = spec.counts(zmax)[0] * tile_px
    band_rows = rows if strip_w else 0  # an empty grid gets no tiles; the viewer shows background
    log.info("tiles: %d images on a %dx%d grid, %dx%d px, zoom 0..%d",
             count, cols, rows, width_px, height_px, zmax)

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_dir(out_dir))
        store = ThumbStore(thumb_files)
        stack.callback(store.close)
        fetch = _stored_thumbs(store, cell_px)
        pyramid = _Pyramid(tmp, zmax, spec)
        progress = Progress("tiles", count, logger=log)
        failed: list[str] = []
        bands = _cell_rows(by_row, fetch, range(band_rows), cell_px, strip_w, background,
                           progress, failed)
        for strip in _strips(bands, tile_px, strip_w, background):
            pyramid.push(zmax, strip)
        pyramid.finish()
        progress.finish()
        meta = {
            **spec.meta(),
            "count": count, "placeholders": len(failed),
            "tiles_written": {str(z): pyramid.written[z] for z in range(zmax + 1)},
        }
        write_json(tmp / "meta.json", meta)
    log.info("tiles: wrote %s tiles to %s", meta["tiles_written"], out_dir)
    return meta
