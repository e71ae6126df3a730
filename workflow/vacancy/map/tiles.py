"""Stage ``tiles``: paint the grid of images into a z/x/y pyramid of 256-px JPEG tiles.

Leaflet loads only the tiles in view, so the map can hold 125,000 images while the browser
downloads a few hundred kilobytes at a time. The highest zoom shows every image as one
``cell_px`` square; each lower zoom halves the one above it, down to zoom 0 = one tile.

Memory stays bounded: the max-zoom mosaic is produced one row of tiles (a *strip*) at a time,
and each zoom level keeps at most one pending strip until its partner arrives, so the whole
pyramid needs O(max_zoom x map width) pixels, never the full mosaic (22,656 px square at
125,000 images). No original is decoded here: every cell is copied from the thumbnail the
``prepare`` stage stored; lower zooms are made from the strips above.

The workflow builds the pyramid in parallel (``render_band`` per ``tile_band`` job, then
``assemble_tiles`` in the ``tiles`` job); the tests hold it to the bytes of a one-process
rendering of the same pyramid (``tests/reference.py``).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
from PIL import Image

from ..common import Progress, atomic_dir, link_tree, write_json
from ..images.thumbs import ThumbStore
from .grid_csv import read_cells, read_grid_shape

log = logging.getLogger("vacancy.map.tiles")


#: Fill of a cell whose image has no stored thumbnail: mid grey, distinct from the background, so
#: a viewer sees that an image belongs there but failed.
PLACEHOLDER_RGB = (96, 96, 96)



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


#: Tile formats the pyramid can be written in: the file suffix (also the value of meta.json's
#: ``format``, which every reader of the tiles takes) -> Pillow's writer and the MIME type.
TILE_FORMATS = {"jpg": {"pillow": "JPEG", "mime": "image/jpeg"}}
#: The format of every pyramid; meta.json records it for the readers (viewer, publish, report).
TILE_FORMAT = "jpg"


@dataclass(frozen=True)
class TileSpec:
    """The pyramid's geometry and format: the one owner of these facts for every writer and reader.

    Built once per job from ``config["tiles"]`` (the rule's params) and the grid's shape
    (:meth:`for_grid`); the tile bands, the join, the viewer's site and meta.json all take it,
    so the page, the tiles and the archive cannot disagree about a size, a zoom or a suffix.
    """

    cols: int
    rows: int
    cell_px: int
    tile_px: int
    background: tuple[int, int, int]
    quality: int | None = None  # only writers of tiles need it; the viewer has none
    format: str = TILE_FORMAT
    min_zoom: int = 0

    def __post_init__(self):
        if self.cell_px < 1 or self.tile_px < 1 or self.cols < 0 or self.rows < 0:
            raise ValueError(f"bad tile geometry: cols={self.cols} rows={self.rows} "
                             f"cell_px={self.cell_px} tile_px={self.tile_px}")
        if self.format not in TILE_FORMATS:
            raise ValueError(f"tile format {self.format!r} is not one of {sorted(TILE_FORMATS)}")
        object.__setattr__(self, "background", tuple(int(v) for v in self.background))

    @classmethod
    def from_config(cls, tiles: Mapping, cols: int, rows: int) -> "TileSpec":
        """From ``config["tiles"]`` (or a rule's params of the same names) and the grid shape."""
        get = tiles.get if isinstance(tiles, Mapping) else (lambda k, d=None: getattr(tiles, k, d))
        return cls(cols, rows, int(get("cell_px")), int(get("tile_px")),
                   tuple(get("background")), quality=get("quality"))

    @classmethod
    def for_grid(cls, grid_csv, tiles: Mapping) -> "TileSpec":
        """:meth:`from_config` with the shape of the grid the ``grid`` rule wrote."""
        return cls.from_config(tiles, *read_grid_shape(grid_csv))

    @property
    def max_zoom(self) -> int:
        return max_zoom_for(self.cols, self.rows, self.cell_px, self.tile_px)

    @property
    def width_px(self) -> int:
        return self.cols * self.cell_px

    @property
    def height_px(self) -> int:
        return self.rows * self.cell_px

    def counts(self, z: int) -> tuple[int, int]:
        """Tiles across and down at zoom ``z``."""
        return tile_counts(self.width_px, self.height_px, self.tile_px, self.max_zoom, z)

    def plan(self, jobs: int) -> dict:
        """How ``jobs`` band jobs split this pyramid (:func:`band_plan`)."""
        return band_plan(self.cols, self.rows, self.cell_px, self.tile_px, jobs)

    def tile_name(self, y: int) -> str:
        """File name of tile row ``y`` in its ``z/x`` folder."""
        return f"{y}.{self.format}"

    def save(self, tile: Image.Image, path: Path) -> None:
        """Write one tile in this format."""
        if self.quality is None:
            raise ValueError("this TileSpec has no quality: it cannot write tiles")
        tile.save(path, TILE_FORMATS[self.format]["pillow"], quality=self.quality)

    def meta(self) -> dict:
        """The pyramid's geometry, known from the grid alone: what the viewer needs before any
        tile, and the head of the tiles' meta.json (so the page and the tiles always agree)."""
        return {
            "tile_size": self.tile_px, "cell_px": self.cell_px, "cols": self.cols,
            "rows": self.rows, "min_zoom": self.min_zoom, "max_zoom": self.max_zoom,
            "width_px": self.width_px, "height_px": self.height_px,
            "background": hex_colour(self.background), "format": self.format,
        }


# --------------------------------------------------------------------------- inputs


class _Pyramid:
    """Writes strips of tiles and folds each pair of strips into the zoom level below.

    A strip is one row of tiles (``tile_px`` high, a whole number of tiles wide). Level ``z``
    holds at most one strip waiting for its lower partner, so memory is bounded by the levels.

    A band job builds only zooms ``top`` .. ``bottom`` of the tile rows from ``first_row`` (at
    ``top``) on, and passes each strip of zoom ``bottom`` to ``handover`` instead of merging it:
    the final job merges those into the zooms below, where strips of different bands pair up.
    """

    def __init__(self, root: Path, top: int, spec: TileSpec, bottom: int = 0,
                 first_row: int = 0, handover=None):
        self.root, self.top, self.bottom, self.spec = root, top, bottom, spec
        self.tile_px, self.background = spec.tile_px, spec.background
        self.first_row, self.handover = first_row, handover
        self.pending: dict[int, np.ndarray] = {}
        self.next_y: dict[int, int] = defaultdict(int)
        self.written: dict[int, int] = defaultdict(int)

    def push(self, z: int, strip: np.ndarray, save: bool = True) -> None:
        """Write ``strip`` as the next tile row of zoom ``z`` (unless a band job already did)
        and feed the level below."""
        if save:
            self._save(z, strip)
        if z == self.bottom:
            if self.handover is not None:
                self.handover(strip)
            return
        if z in self.pending:
            self.push(z - 1, self._halve(self.pending.pop(z), strip))
        else:
            self.pending[z] = strip

    def finish(self) -> None:
        """Flush strips left without a partner (odd tile counts), top level first."""
        for z in range(self.top, self.bottom, -1):
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
        t = self.tile_px
        y = (self.first_row >> (self.top - z)) + self.next_y[z]
        self.next_y[z] += 1
        for x in range(strip.shape[1] // t):
            folder = self.root / str(z) / str(x)
            folder.mkdir(parents=True, exist_ok=True)
            tile = Image.fromarray(np.ascontiguousarray(strip[:, x * t:(x + 1) * t]))
            self.spec.save(tile, folder / self.spec.tile_name(y))
            self.written[z] += 1


def _stored_thumbs(store, cell_px):
    """Thumbnails read from the ``prepare`` rule's files: no original is decoded again. An id
    without one (not in the files) gets the placeholder and a warning."""
    placeholder = np.full((cell_px, cell_px, 3), PLACEHOLDER_RGB, np.uint8)

    def fetch(ids):
        thumbs = store.get(ids, cell_px)
        for image_id, thumb in zip(ids, thumbs):
            if thumb is None:
                log.warning("tiles: %r is on the grid but has no stored thumbnail; placeholder "
                            "used", image_id)
        return [(placeholder, False) if t is None else (t, True) for t in thumbs]
    return fetch


def _cell_rows(by_row, fetch, rows, cell_px, strip_w, background, progress, failed,
               owned_from: int = 0):
    """Yield each grid row of ``rows`` as a ``cell_px`` x ``strip_w`` pixel band of thumbnails.

    ``fetch(ids)`` gives ``(thumb, ok)`` per id; ``failed`` collects the ids that got a
    placeholder, for meta.json. A row above ``owned_from`` is drawn (its lower part reaches into
    this band) but counted by the band above, so that every image is counted once.
    """
    for row in rows:
        band = np.empty((cell_px, strip_w, 3), np.uint8)
        band[:] = background
        cells = by_row.get(row, [])
        for (col, image_id_), (thumb, ok) in zip(cells, fetch([i for _, i in cells])):
            band[:, col * cell_px:(col + 1) * cell_px] = thumb
            if not ok and row >= owned_from:
                failed.append(image_id_)
        if row >= owned_from:
            progress.update(len(cells))
        yield band


def _strips(bands, tile_px: int, strip_w: int, background, skip: int = 0,
            limit: int | None = None) -> Iterator[np.ndarray]:
    """Re-cut ``cell_px``-high bands into ``tile_px``-high strips (cells may straddle tiles).

    The first ``skip`` pixel rows are dropped and at most ``limit`` strips made: a band job's
    first grid row may start above its first tile row, its last may end below its last.
    """
    pending = np.empty((0, strip_w, 3), np.uint8)
    made = 0
    for band in bands:
        pending = np.concatenate([pending, band], axis=0)
        if skip:
            cut = min(skip, pending.shape[0])
            pending, skip = pending[cut:], skip - cut
        while pending.shape[0] >= tile_px and made != limit:
            yield pending[:tile_px]
            pending = pending[tile_px:]
            made += 1
        if made == limit:
            return
    if pending.shape[0]:
        pad = np.empty((tile_px - pending.shape[0], strip_w, 3), np.uint8)
        pad[:] = background
        yield np.concatenate([pending, pad], axis=0)


# --------------------------------------------------------------------------- entry point


# --------------------------------------------------------------------------- parallel bands
#
# The pyramid is built by ``jobs`` band jobs plus one final job, with output identical to a
# one-process rendering (tests/reference.py): band b renders its horizontal band of max-zoom tile rows from the stored
# thumbnails and merges it down while 2x2 merges stay inside the band; the final job links the
# bands' tiles into one tree and merges the bands' lowest zoom down to zoom 0.


def band_plan(cols: int, rows: int, cell_px: int, tile_px: int, jobs: int) -> dict:
    """How ``jobs`` band jobs split the pyramid; the same for every job, from the grid alone.

    Band ``b`` holds max-zoom tile rows ``[b * band_rows, (b + 1) * band_rows)`` and makes zooms
    ``max_zoom`` down to ``low_zoom``. ``band_rows`` is a multiple of ``2**depth`` (depth =
    ``max_zoom - low_zoom``), so no merge at those zooms takes rows from two bands. A deeper band
    leaves less to the final (serial) job but may round ``band_rows`` up and unbalance the bands;
    the depth taken minimises the largest band (in tile rows) plus the final job's share, which is
    about a quarter per level of depth (estimated as half the tile rows over ``4**depth``).
    """
    zmax = max_zoom_for(cols, rows, cell_px, tile_px)
    n = tile_counts(cols * cell_px, rows * cell_px, tile_px, zmax, zmax)[1]
    jobs = max(1, int(jobs))
    best = None
    for depth in range(zmax + 1):
        step = 2**depth
        band_rows = step * max(1, math.ceil(n / (jobs * step)))
        cost = min(band_rows, n) + n / (2 * 4**depth)
        if best is None or cost < best[0]:
            best = (cost, depth, band_rows)
    _, depth, band_rows = best
    return {"jobs": jobs, "max_zoom": zmax, "low_zoom": zmax - depth, "band_rows": band_rows,
            "tile_rows": n}


def _band_span(plan: dict, band: int) -> tuple[int, int]:
    """Max-zoom tile rows ``[first, end)`` of ``band`` (empty past the map's last tile row)."""
    first = min(band * plan["band_rows"], plan["tile_rows"])
    return first, min(first + plan["band_rows"], plan["tile_rows"])


class _Handover:
    """``low.npy`` in a band's folder: the raw pixels of its lowest zoom, for the final job.

    Raw, not the JPEG tiles, so the final job merges the very pixels a one-process rendering would; it is a
    memory-mapped file filled strip by strip, so neither job holds it in memory.
    """

    def __init__(self, path: Path, strips: int, tile_px: int, width: int):
        self.array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                               shape=(strips, tile_px, width, 3))
        self.filled = 0

    def __call__(self, strip: np.ndarray) -> None:
        self.array[self.filled] = strip  # an IndexError here would mean a wrong plan
        self.filled += 1

    def close(self) -> None:
        if self.filled != len(self.array):
            raise RuntimeError(f"band made {self.filled} of {len(self.array)} low-zoom strips")
        self.array.flush()
        del self.array


def _band_rows(plan: dict, band: int, rows: int, cell_px: int, tile_px: int):
    """The grid rows band ``band`` draws, the pixel rows to drop above its first tile row, and the
    first row it counts (a cell cut by the band's top edge is counted by the band above)."""
    first, end = _band_span(plan, band)
    if end == first:
        return range(0), 0, 0
    top_px = first * tile_px
    drawn = range(top_px // cell_px, min(rows, -(-end * tile_px // cell_px)))
    return drawn, top_px - drawn.start * cell_px, -(-top_px // cell_px)


def render_band(grid_csv, out_dir, spec: TileSpec, band: int, jobs: int, thumb_files) -> dict:
    """Render band ``band`` of ``jobs`` into ``out_dir``: its tiles, ``low.npy``, ``band.json``.

    Only the stored thumbnails of the band's grid rows are read (never an original), one grid
    row at a time, so memory is a few strips whatever the size of the map.
    """
    cols, rows, cell_px, tile_px = spec.cols, spec.rows, spec.cell_px, spec.tile_px
    background = spec.background
    plan = spec.plan(jobs)
    if not 0 <= band < plan["jobs"]:
        raise ValueError(f"band {band} is not one of {plan['jobs']}")
    first, end = _band_span(plan, band)
    drawn, skip, owned_from = _band_rows(plan, band, rows, cell_px, tile_px)
    by_row = {r: cells for r, cells in read_cells(grid_csv, cols, rows).items() if r in drawn}
    log.info("tile band %d/%d: max-zoom tile rows %d..%d, grid rows %d..%d, zooms %d..%d",
             band, plan["jobs"], first, end, drawn.start, drawn.stop, plan["max_zoom"],
             plan["low_zoom"])
    strip_w = spec.counts(plan["max_zoom"])[0] * tile_px
    low_w = spec.counts(plan["low_zoom"])[0] * tile_px
    owned = sum(len(c) for r, c in by_row.items() if r >= owned_from)
    progress = Progress(f"tile band {band}", owned, logger=log)
    failed: list[str] = []
    with atomic_dir(out_dir) as tmp:
        depth = plan["max_zoom"] - plan["low_zoom"]
        handover = _Handover(tmp / "low.npy", -(-(end - first) // 2**depth), tile_px, low_w)
        pyramid = _Pyramid(tmp, plan["max_zoom"], spec, bottom=plan["low_zoom"],
                           first_row=first, handover=handover)
        if end > first:
            cells = functools.partial(_cell_rows, by_row, rows=drawn, cell_px=cell_px,
                                      strip_w=strip_w, background=background,
                                      progress=progress, failed=failed, owned_from=owned_from)
            _draw_band(cells, thumb_files, cell_px, strip_w, pyramid, skip, end - first)
        handover.close()
        progress.finish()
        meta = {"band": band, "plan": plan, "tile_rows": [first, end], "count": owned,
                "placeholders": len(failed),
                "tiles_written": {str(z): pyramid.written[z]
                                  for z in range(plan["low_zoom"], plan["max_zoom"] + 1)}}
        write_json(tmp / "band.json", meta)
    log.info("tile band %d: %d images, wrote %s tiles", band, owned, meta["tiles_written"])
    return meta


def _draw_band(cells, thumb_files, cell_px: int, strip_w: int, pyramid: _Pyramid, skip: int,
               strips: int) -> None:
    """Push the band's ``strips`` max-zoom strips into ``pyramid`` and flush it.

    ``cells(fetch=...)`` yields the band's grid rows drawn with the thumbnails ``fetch`` gives.
    """
    store = ThumbStore(thumb_files)
    try:
        bands = cells(fetch=_stored_thumbs(store, cell_px))
        for strip in _strips(bands, pyramid.tile_px, strip_w, pyramid.background, skip=skip,
                             limit=strips):
            pyramid.push(pyramid.top, strip)
        pyramid.finish()
    finally:
        store.close()


def _read_band(band_dir: Path, band: int, plan: dict) -> dict:
    """A band's ``band.json``, checked to be band ``band`` of this very plan."""
    meta = json.loads((band_dir / "band.json").read_text())
    if meta["band"] != band or meta["plan"] != plan:
        raise ValueError(f"{band_dir} is band {meta['band']} of {meta['plan']}, "
                         f"not band {band} of {plan}")
    return meta


def assemble_tiles(band_dirs, out_dir, spec: TileSpec) -> dict:
    """Join the band folders (in band order) into ``out_dir``: the pyramid and ``meta.json``.

    The bands' tiles are linked in; the zooms below the bands' lowest are merged from their
    ``low.npy`` strips, read one at a time. Built beside ``out_dir`` and renamed into place.
    """
    band_dirs = [Path(d) for d in band_dirs]
    plan = spec.plan(len(band_dirs))
    bands = [_read_band(d, b, plan) for b, d in enumerate(band_dirs)]
    written = defaultdict(int)
    with atomic_dir(out_dir) as tmp:
        pyramid = _Pyramid(tmp, plan["low_zoom"], spec)
        for band_dir, meta in zip(band_dirs, bands):
            # the band's z/x/y tiles; bands are replaced by a rename, so the links stay valid
            link_tree(band_dir, tmp, f"*/*/{spec.tile_name('*')}")
            for z, n in meta["tiles_written"].items():
                written[int(z)] += n
            for strip in np.load(band_dir / "low.npy", mmap_mode="r"):
                pyramid.push(plan["low_zoom"], np.array(strip), save=False)
        pyramid.finish()
        for z, n in pyramid.written.items():
            written[z] += n
        meta = {
            **spec.meta(),
            "count": sum(b["count"] for b in bands),
            "placeholders": sum(b["placeholders"] for b in bands),
            "tiles_written": {str(z): written[z] for z in range(plan["max_zoom"] + 1)},
        }
        write_json(tmp / "meta.json", meta)
    log.info("tiles: joined %d bands, wrote %s tiles to %s", len(bands), meta["tiles_written"],
             out_dir)
    return meta
