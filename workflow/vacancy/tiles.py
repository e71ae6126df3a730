"""Stage ``tiles``: paint the grid of images into a z/x/y pyramid of 256-px JPEG tiles.

Leaflet loads only the tiles in view, so the map can hold 125,000 images while the browser
downloads a few hundred kilobytes at a time. The highest zoom shows every image as one
``cell_px`` square; each lower zoom halves the one above it, down to zoom 0 = one tile.

Memory stays bounded: the max-zoom mosaic is produced one row of tiles (a *strip*) at a time,
and each zoom level keeps at most one pending strip until its partner arrives, so the whole
pyramid needs O(max_zoom x map width) pixels, never the full mosaic (22,656 px square at
125,000 images). Originals are decoded once; lower zooms are made from the strips above.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import shutil
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .common import Progress, write_json

log = logging.getLogger("vacancy.tiles")

#: Pillow plugins allowed to open listing photos. Restricting formats keeps a hostile file from
#: reaching exotic decoders (e.g. EPS, which would start Ghostscript).
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

#: Fill of a cell whose image could not be decoded: mid grey, distinct from the background, so a
#: viewer sees that an image belongs there but failed.
PLACEHOLDER_RGB = (96, 96, 96)

#: EXIF orientation -> transpose that shows the photo upright (same table as ImageOps).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# --------------------------------------------------------------------------- small helpers


def hex_colour(rgb) -> str:
    """``(24, 24, 24)`` -> ``"#181818"``, the form CSS and meta.json use."""
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def max_zoom_for(cols: int, rows: int, cell_px: int, tile_px: int) -> int:
    """Smallest z with ``tile_px * 2**z >= max(cols, rows) * cell_px`` (the whole map fits)."""
    side = max(cols, rows, 1) * cell_px
    z = 0
    while tile_px * 2**z < side:
        z += 1
    return z


def tile_counts(width_px: int, height_px: int, tile_px: int, max_zoom: int, z: int) -> tuple[int, int]:
    """Tiles across and down at zoom ``z`` that intersect the map area (an empty map has none)."""
    if width_px <= 0 or height_px <= 0:
        return 0, 0
    scale = 2 ** (max_zoom - z)
    return math.ceil(width_px / (tile_px * scale)), math.ceil(height_px / (tile_px * scale))


def layout_meta(cols: int, rows: int, cell_px: int = 64, tile_px: int = 256,
                background=(24, 24, 24)) -> dict:
    """The pyramid's geometry, known from the grid alone: what the viewer needs before any tile.

    The viewer rule runs before the tile rule (so the target ``tiles`` makes both), and both
    use this one definition, so the page and the tiles always agree.
    """
    return {
        "tile_size": tile_px, "cell_px": cell_px, "cols": cols, "rows": rows,
        "min_zoom": 0, "max_zoom": max_zoom_for(cols, rows, cell_px, tile_px),
        "width_px": cols * cell_px, "height_px": rows * cell_px,
        "background": hex_colour(background), "format": "jpg",
    }


def read_grid_shape(grid_csv) -> tuple[int, int]:
    """``(cols, rows)`` from the grid's provenance sidecar, for callers such as the Snakefile."""
    meta = json.loads(Path(str(grid_csv) + ".meta.json").read_text())
    return int(meta["cols"]), int(meta["rows"])


@contextlib.contextmanager
def atomic_dir(path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success replace ``path`` with it in one rename.

    Snakemake's ``directory()`` outputs are trusted if they exist, so a half-built tree must never
    sit under the final name. A stale previous tree is moved aside and removed only after the new
    one is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the site is served to others
    try:
        yield tmp
        old = None
        if path.is_dir() and not path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "tree")
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- inputs


def read_cells(grid_csv, cols: int, rows: int) -> dict[int, list[tuple[int, str]]]:
    """Grid rows grouped by ``row`` as ``[(col, id), ...]``; bad or duplicate cells are logged."""
    by_row: dict[int, list[tuple[int, str]]] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    with open(grid_csv, newline="", encoding="utf-8") as handle:
        for line, rec in enumerate(csv.DictReader(handle), start=2):
            try:
                col, row = int(rec["col"]), int(rec["row"])
            except (TypeError, ValueError):
                log.warning("%s line %d: bad cell %r,%r for %r; skipped",
                            grid_csv, line, rec.get("col"), rec.get("row"), rec.get("id"))
                continue
            if not (0 <= col < cols and 0 <= row < rows):
                log.warning("%s line %d: cell (%d, %d) of %r is outside the %dx%d grid; skipped",
                            grid_csv, line, col, row, rec["id"], cols, rows)
                continue
            if (col, row) in seen:
                log.warning("%s line %d: cell (%d, %d) already taken; %r skipped",
                            grid_csv, line, col, row, rec["id"])
                continue
            seen.add((col, row))
            by_row[row].append((col, rec["id"]))
    return by_row


def read_paths(selected_csv) -> dict[str, str]:
    """``id -> path`` from selected.csv, streamed so the other 14 columns are not kept."""
    with open(selected_csv, newline="", encoding="utf-8") as handle:
        return {rec["id"]: rec.get("path") or "" for rec in csv.DictReader(handle)}


# --------------------------------------------------------------------------- thumbnails


def _flatten(img: Image.Image, background) -> Image.Image:
    """Any mode -> RGB; transparent parts show the map background rather than black."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, tuple(background))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def make_thumb(path, cell_px: int, background=(24, 24, 24)) -> np.ndarray:
    """Decode one image into a centre-cropped ``cell_px`` square (uint8 HxWx3), upright.

    JPEG draft mode lets libjpeg decode at 1/2..1/8 scale, which is most of the speed. The crop
    is done by ``resize(box=...)`` in the same pass; EXIF orientation is applied to the tiny
    result, since a centred square crop commutes with rotations and flips. Raises on bad input.
    """
    with Image.open(path, formats=ALLOWED_FORMATS) as img:
        img.draft("RGB", (cell_px, cell_px))
        orientation = img.getexif().get(0x0112)
        rgb = _flatten(img, background)
        w, h = rgb.size
        side = min(w, h)
        if side < 1:
            raise ValueError(f"empty image {w}x{h}")
        left, top = (w - side) / 2, (h - side) / 2
        thumb = rgb.resize((cell_px, cell_px), Image.Resampling.LANCZOS,
                           box=(left, top, left + side, top + side), reducing_gap=2.0)
    if orientation in _ORIENTATION:
        thumb = thumb.transpose(_ORIENTATION[orientation])
    return np.asarray(thumb, dtype=np.uint8)


def _safe_thumb(job) -> tuple[np.ndarray, bool]:
    """:func:`make_thumb` that never raises: a failure becomes a placeholder and a warning."""
    image_id, path, cell_px, background = job
    if not path:
        log.warning("tiles: %r is in the grid but has no path in selected.csv; placeholder used",
                    image_id)
    else:
        try:
            return make_thumb(path, cell_px, background), True
        except Exception as exc:  # noqa: BLE001 - any decoder error must not stop the run
            log.warning("tiles: cannot decode %r at %r (%s: %s); placeholder used",
                        image_id, path, type(exc).__name__, exc)
    return np.full((cell_px, cell_px, 3), PLACEHOLDER_RGB, np.uint8), False


# --------------------------------------------------------------------------- pyramid


class _Pyramid:
    """Writes strips of tiles and folds each pair of strips into the zoom level below.

    A strip is one row of tiles (``tile_px`` high, a whole number of tiles wide). Level ``z``
    holds at most one strip waiting for its lower partner, so memory is bounded by the levels.
    """

    def __init__(self, root: Path, max_zoom: int, tile_px: int, quality: int, background):
        self.root, self.max_zoom, self.tile_px = root, max_zoom, tile_px
        self.quality, self.background = quality, tuple(background)
        self.pending: dict[int, np.ndarray] = {}
        self.next_y: dict[int, int] = defaultdict(int)
        self.written: dict[int, int] = defaultdict(int)

    def push(self, z: int, strip: np.ndarray) -> None:
        """Write ``strip`` as the next tile row of zoom ``z`` and feed the level below."""
        self._save(z, strip)
        if z == 0:
            return
        if z in self.pending:
            self.push(z - 1, self._halve(self.pending.pop(z), strip))
        else:
            self.pending[z] = strip

    def finish(self) -> None:
        """Flush strips left without a partner (odd tile counts), top level first."""
        for z in range(self.max_zoom, 0, -1):
            if z in self.pending:
                self.push(z - 1, self._halve(self.pending.pop(z), None))

    def _halve(self, top: np.ndarray, bottom: np.ndarray | None) -> np.ndarray:
        """Stack two strips, pad to an even tile count, and 2x2 box-average them."""
        t = self.tile_px
        if bottom is None:
            bottom = np.empty_like(top)
            bottom[:] = self.background
        block = np.concatenate([top, bottom], axis=0)
        if (block.shape[1] // t) % 2:
            pad = np.empty((block.shape[0], t, 3), np.uint8)
            pad[:] = self.background
            block = np.concatenate([block, pad], axis=1)
        return np.asarray(Image.fromarray(block).reduce(2))

    def _save(self, z: int, strip: np.ndarray) -> None:
        t, y = self.tile_px, self.next_y[z]
        self.next_y[z] += 1
        for x in range(strip.shape[1] // t):
            folder = self.root / str(z) / str(x)
            folder.mkdir(parents=True, exist_ok=True)
            tile = Image.fromarray(np.ascontiguousarray(strip[:, x * t:(x + 1) * t]))
            tile.save(folder / f"{y}.jpg", "JPEG", quality=self.quality)
            self.written[z] += 1


def _decoded_thumbs(paths, cell_px, background, pool):
    """A thumbnail source that decodes the originals (used when no thumbnail store is given)."""
    def fetch(ids):
        return pool.map(_safe_thumb, [(i, paths.get(i, ""), cell_px, background) for i in ids])
    return fetch


def _stored_thumbs(store, cell_px):
    """A thumbnail source reading the ``thumbs`` rule's files: no original is decoded again."""
    placeholder = np.full((cell_px, cell_px, 3), PLACEHOLDER_RGB, np.uint8)

    def fetch(ids):
        return [(placeholder, False) if t is None else (t, True) for t in store.get(ids, cell_px)]
    return fetch


def _cell_rows(by_row, fetch, rows, cell_px, strip_w, background, progress, failed):
    """Yield each grid row as a ``cell_px`` x ``strip_w`` pixel band with its thumbnails.

    ``fetch(ids)`` gives ``(thumb, ok)`` per id; ``failed`` collects the ids that got a
    placeholder, for meta.json.
    """
    for row in range(rows):
        band = np.empty((cell_px, strip_w, 3), np.uint8)
        band[:] = background
        cells = by_row.get(row, [])
        for (col, image_id_), (thumb, ok) in zip(cells, fetch([i for _, i in cells])):
            band[:, col * cell_px:(col + 1) * cell_px] = thumb
            if not ok:
                failed.append(image_id_)
        progress.update(len(cells))
        yield band


def _strips(bands, tile_px: int, strip_w: int, background) -> Iterator[np.ndarray]:
    """Re-cut ``cell_px``-high bands into ``tile_px``-high strips (cells may straddle tiles)."""
    pending = np.empty((0, strip_w, 3), np.uint8)
    for band in bands:
        pending = np.concatenate([pending, band], axis=0)
        while pending.shape[0] >= tile_px:
            yield pending[:tile_px]
            pending = pending[tile_px:]
    if pending.shape[0]:
        pad = np.empty((tile_px - pending.shape[0], strip_w, 3), np.uint8)
        pad[:] = background
        yield np.concatenate([pending, pad], axis=0)


# --------------------------------------------------------------------------- entry point


def render_tiles(grid_csv, selected_csv, out_dir, cols: int, rows: int, cell_px: int = 64,
                 tile_px: int = 256, quality: int = 85, background=(24, 24, 24),
                 threads: int = 1, thumb_files=None) -> dict:
    """Render the tile pyramid ``out_dir/{z}/{x}/{y}.jpg`` plus ``meta.json``; return the meta.

    With ``thumb_files`` (the ``thumbs`` rule's per-location HDF5 files) the cells are copied
    from the stored thumbnails and no original is decoded; without, originals are decoded.

    ``threads`` decodes that many images at once (Pillow releases the GIL while decoding), for a
    Snakemake rule that was given more than one core. The tree is built beside ``out_dir`` and
    renamed into place only when complete.
    """
    if cell_px < 1 or tile_px < 1 or cols < 0 or rows < 0:
        raise ValueError(f"bad tile geometry: cols={cols} rows={rows} cell_px={cell_px} "
                         f"tile_px={tile_px}")
    background = tuple(int(v) for v in background)
    by_row = read_cells(grid_csv, cols, rows)
    paths = read_paths(selected_csv)
    count = sum(len(v) for v in by_row.values())
    width_px, height_px = cols * cell_px, rows * cell_px
    zmax = max_zoom_for(cols, rows, cell_px, tile_px)
    strip_w = tile_counts(width_px, height_px, tile_px, zmax, zmax)[0] * tile_px
    band_rows = rows if strip_w else 0  # an empty grid gets no tiles; the viewer shows background
    log.info("tiles: %d images on a %dx%d grid, %dx%d px, zoom 0..%d",
             count, cols, rows, width_px, height_px, zmax)

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_dir(out_dir))
        if thumb_files is not None:
            from .thumbs import ThumbStore  # thumbs imports this module

            store = ThumbStore(thumb_files)
            stack.callback(store.close)
            fetch = _stored_thumbs(store, cell_px)
        else:
            pool = stack.enter_context(ThreadPoolExecutor(max(1, int(threads))))
            fetch = _decoded_thumbs(paths, cell_px, background, pool)
        pyramid = _Pyramid(tmp, zmax, tile_px, quality, background)
        progress = Progress("tiles", count, logger=log)
        failed: list[str] = []
        bands = _cell_rows(by_row, fetch, band_rows, cell_px, strip_w, background, progress,
                           failed)
        for strip in _strips(bands, tile_px, strip_w, background):
            pyramid.push(zmax, strip)
        pyramid.finish()
        progress.finish()
        meta = {
            **layout_meta(cols, rows, cell_px, tile_px, background),
            "count": count, "placeholders": len(failed),
            "tiles_written": {str(z): pyramid.written[z] for z in range(zmax + 1)},
        }
        write_json(tmp / "meta.json", meta)
    log.info("tiles: wrote %s tiles to %s", meta["tiles_written"], out_dir)
    return meta
