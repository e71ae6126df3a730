"""Re-render only the tiles an extend changed: the rest are hard links to the saved layout's.

A tile's *key* says what it shows: at the top zoom, a hash of the (pixel offset, id) of every
cell it overlaps; below, a hash of its four children's keys (a child outside the map counts as
empty, which draws the same background). Two tiles with the same key, tile geometry and quality
have the same picture, so :func:`update_tiles` links every tile whose key the saved layout's
manifest already holds and renders the others: top-zoom tiles from the stored thumbnails, lower
ones by halving their four children (decoded from the just-written tiles, so a rebuilt low-zoom
tile may differ from a fresh run's by JPEG rounding; its content is the same). Tiles are keyed by
their depth below the top zoom, so a grid that grew past a power of two (one more zoom level)
still reuses every tile.

NumPy, Pillow and h5py only (the ``viewer`` env, like :mod:`vacancy.map.tiles`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from ..common import Progress, atomic_dir, link_or_copy, write_json
from ..images.thumbs import ThumbStore
from .grid_csv import read_cells
from .tiles import TileSpec, _stored_thumbs

log = logging.getLogger("vacancy.map.tiles")

EMPTY = hashlib.sha1(b"").hexdigest()[:16]


def _digest(parts) -> str:
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def _top_cells(cells_by_row: dict, spec: TileSpec) -> dict[tuple[int, int], list]:
    """Per top-zoom tile ``(x, y)``: ``(px, py, id)`` of each cell it overlaps, offsets in the
    tile's pixels (a cell may straddle tiles when tile_px is not a multiple of cell_px).
    ``cells_by_row``: the grid as :func:`read_cells` gives it."""
    c, t = spec.cell_px, spec.tile_px
    tiles: dict[tuple[int, int], list] = {}
    for row, cells in cells_by_row.items():
        for col, image_id in cells:
            x0, y0 = col * c, row * c
            for x in range(x0 // t, (x0 + c - 1) // t + 1):
                for y in range(y0 // t, (y0 + c - 1) // t + 1):
                    tiles.setdefault((x, y), []).append((x0 - x * t, y0 - y * t, image_id))
    return tiles


def tile_manifest(grid_csv, spec: TileSpec, top: dict | None = None) -> dict[str, str]:
    """``"depth/x/y" -> key`` for every tile of the pyramid (depth 0 = the top zoom); ``top``:
    :func:`_top_cells` of the grid, if the caller has it (else the grid is read)."""
    if top is None:
        top = _top_cells(read_cells(grid_csv, spec.cols, spec.rows), spec)
    zmax = spec.max_zoom
    nx, ny = spec.counts(zmax)
    level = {(x, y): _digest(f"{px},{py},{i}" for px, py, i in sorted(top.get((x, y), [])))
             for x in range(nx) for y in range(ny)}
    manifest = {f"0/{x}/{y}": k for (x, y), k in level.items()}
    for depth in range(1, zmax + 1):
        nx, ny = spec.counts(zmax - depth)
        level = {(x, y): _digest(level.get((2 * x + dx, 2 * y + dy), EMPTY)
                                 for dy in (0, 1) for dx in (0, 1))
                 for x in range(nx) for y in range(ny)}
        manifest.update({f"{depth}/{x}/{y}": k for (x, y), k in level.items()})
    return manifest


def _pixels_key(spec: TileSpec) -> dict:
    """What else decides a tile's pixels: a change of any of these invalidates every tile."""
    return {"cell_px": spec.cell_px, "tile_px": spec.tile_px, "quality": spec.quality,
            "background": list(spec.background), "format": spec.format}


def write_manifest(path, manifest: dict, spec: TileSpec) -> None:
    write_json(path, {"spec": _pixels_key(spec), "max_zoom": spec.max_zoom, "tiles": manifest})


def _render_top(spec: TileSpec, cells, fetch) -> Image.Image:
    """One top-zoom tile drawn from the stored thumbnails of its cells."""
    c, t = spec.cell_px, spec.tile_px
    canvas = np.empty((t, t, 3), np.uint8)
    canvas[:] = spec.background
    for (px, py, _), (thumb, _) in zip(cells, fetch([i for _, _, i in cells])):
        xs, ys = slice(max(px, 0), min(px + c, t)), slice(max(py, 0), min(py + c, t))
        canvas[ys, xs] = thumb[ys.start - py:ys.stop - py, xs.start - px:xs.stop - px]
    return Image.fromarray(canvas)


def _render_lower(spec: TileSpec, out: Path, z: int, x: int, y: int) -> Image.Image:
    """A lower tile as the 2x2 box average of its four children (background where none)."""
    t = spec.tile_px
    block = np.empty((2 * t, 2 * t, 3), np.uint8)
    block[:] = spec.background
    for dy in (0, 1):
        for dx in (0, 1):
            child = out / str(z + 1) / str(2 * x + dx) / spec.tile_name(2 * y + dy)
            if child.exists():
                with Image.open(child) as im:
                    block[dy * t:(dy + 1) * t, dx * t:(dx + 1) * t] = np.asarray(im.convert("RGB"))
    return Image.fromarray(block).reduce(2)


def _saved(layout_tiles: Path, spec: TileSpec) -> tuple[dict, int]:
    """The saved manifest's tiles and top zoom, or nothing when its pixels would differ."""
    path = layout_tiles / "manifest.json"
    if not path.exists():
        log.warning("tiles: %s missing: every tile is rendered", path)
        return {}, 0
    saved = json.loads(path.read_text())
    if saved["spec"] != _pixels_key(spec):
        log.warning("tiles: the saved tiles were made with %s, this run asks %s: every tile is "
                    "rendered", saved["spec"], _pixels_key(spec))
        return {}, 0
    return saved["tiles"], int(saved["max_zoom"])


def update_tiles(grid_csv, layout_tiles, thumb_files, out_dir, spec: TileSpec) -> dict:
    """The pyramid of ``grid_csv`` in ``out_dir``: tiles whose key the saved layout holds are
    linked from ``layout_tiles``, the others rendered, top zoom first; logs how many."""
    layout_tiles = Path(layout_tiles)
    saved, saved_zmax = _saved(layout_tiles, spec)
    cells_by_row = read_cells(grid_csv, spec.cols, spec.rows)  # read once, used three times
    top = _top_cells(cells_by_row, spec)
    manifest = tile_manifest(grid_csv, spec, top)
    zmax = spec.max_zoom
    rebuilt: dict[int, int] = {}
    store = ThumbStore(thumb_files)
    fetch = _stored_thumbs(store, spec.cell_px)
    progress = Progress("tiles update", len(manifest), logger=log)
    try:
        with atomic_dir(out_dir) as tmp:
            for depth in range(zmax + 1):
                z = zmax - depth
                nx, ny = spec.counts(z)
                rebuilt[z] = 0
                for x in range(nx):
                    for y in range(ny):
                        key = f"{depth}/{x}/{y}"
                        dest = tmp / str(z) / str(x) / spec.tile_name(y)
                        old = layout_tiles / str(saved_zmax - depth) / str(x) / spec.tile_name(y)
                        if saved.get(key) == manifest[key] and old.exists():
                            link_or_copy(old, dest)
                        else:
                            dest.parent.mkdir(parents=True, exist_ok=True)
                            tile = (_render_top(spec, sorted(top.get((x, y), [])), fetch)
                                    if depth == 0 else _render_lower(spec, tmp, z, x, y))
                            spec.save(tile, dest)
                            rebuilt[z] += 1
                    progress.update(ny)
            n_rebuilt = sum(rebuilt.values())
            meta = {**spec.meta(), "count": sum(len(v) for v in cells_by_row.values()),
                    "tiles_written": {str(z): n for z, n in sorted(rebuilt.items())},
                    "tiles_total": len(manifest), "tiles_rebuilt": n_rebuilt,
                    "tiles_linked": len(manifest) - n_rebuilt, "mode": "extend"}
            write_json(tmp / "meta.json", meta)
            write_manifest(tmp / "manifest.json", manifest, spec)
    finally:
        store.close()
    progress.finish()
    log.info("tiles: rebuilt %d of %d tiles (%d linked from %s); per zoom %s", n_rebuilt,
             len(manifest), len(manifest) - n_rebuilt, layout_tiles, meta["tiles_written"])
    return meta
