"""Publish the tile pyramid as one PMTiles archive: the exhibition as one file plus a page.

A ``z/x/y`` folder of 125,000 images is ~10,000 small files, slow to upload and to copy. A
PMTiles archive holds them all in one file with a directory that a browser reads by HTTP range
requests, so any static host that honours ``Range`` (most do) serves the map. The ``pmtiles``
package (PyPI) writes it; the viewer reads it with the ``pmtiles`` npm package.

Identical tiles (the background beyond the grid) are stored once, by the writer's own dedup.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from ..common import atomic_path

log = logging.getLogger("vacancy.map.publish")

#: PMTiles' tile type of each tile format the pyramid may record in its meta.json
#: (``vacancy.map.tiles.TILE_FORMATS``).
TILE_TYPES = {"jpg": TileType.JPEG}


def list_tiles(tiles_dir, fmt: str) -> list[tuple[int, int, int, Path]]:
    """Every ``z/x/y.<fmt>`` under ``tiles_dir`` as ``(z, x, y, path)``, in PMTiles tile-id order.

    Writing in tile-id order makes a *clustered* archive, which readers fetch most efficiently.
    Anything else in the folder (meta.json, stray files) is ignored.
    """
    tiles_dir = Path(tiles_dir)
    pattern = re.compile(r"^(\d+)/(\d+)/(\d+)\." + re.escape(fmt) + "$")
    found = []
    for path in tiles_dir.rglob(f"*.{fmt}"):
        match = pattern.match(path.relative_to(tiles_dir).as_posix())
        if match:
            z, x, y = (int(v) for v in match.groups())
            if x < 2**z and y < 2**z:
                found.append((z, x, y, path))
            else:
                log.warning("publish: %s is outside zoom %d's tile range; skipped", path, z)
    found.sort(key=lambda t: zxy_to_tileid(t[0], t[1], t[2]))
    return found


def write_pmtiles(tiles_dir, out_path) -> dict:
    """Write every tile of ``tiles_dir`` (and its meta.json as metadata) into ``out_path``.

    The tiles' format is the one their meta.json records (the tiles stage writes it).

    Returns ``{"tiles", "bytes", "folder_bytes", "folder_files"}`` so a caller (the benchmark,
    a log line) can compare the archive with the folder. The archive is written to a temporary
    file and renamed, so a reader never sees half an archive.
    """
    tiles_dir = Path(tiles_dir)
    meta_path = tiles_dir / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} is missing: the tiles stage writes it, with the "
                                f"tiles' format")
    tile_meta = json.loads(meta_path.read_text())
    fmt = tile_meta["format"]
    if fmt not in TILE_TYPES:
        raise ValueError(f"{meta_path}: tile format {fmt!r} has no PMTiles tile type")
    tiles = list_tiles(tiles_dir, fmt)
    if not tiles:
        raise ValueError(f"no z/x/y.{fmt} tiles under {tiles_dir}")
    metadata = {"name": "vacancy", "format": fmt, "vacancy": tile_meta}
    folder_bytes = sum(p.stat().st_size for p in tiles_dir.rglob("*") if p.is_file())
    folder_files = sum(1 for p in tiles_dir.rglob("*") if p.is_file())
    with atomic_path(out_path, suffix=".pmtiles.part") as tmp:
        with open(tmp, "wb") as handle:
            writer = Writer(handle)
            for z, x, y, path in tiles:
                writer.write_tile(zxy_to_tileid(z, x, y), path.read_bytes())
            zooms = [t[0] for t in tiles]
            writer.finalize(
                {
                    "tile_type": TILE_TYPES[fmt],
                    "tile_compression": Compression.NONE,
                    "min_zoom": min(zooms), "max_zoom": max(zooms),
                    # not a geographic map: the bounds are the whole (notional) world
                    "min_lon_e7": -1800000000, "min_lat_e7": -850000000,
                    "max_lon_e7": 1800000000, "max_lat_e7": 850000000,
                    "center_zoom": 0, "center_lon_e7": 0, "center_lat_e7": 0,
                },
                metadata,
            )
    size = Path(out_path).stat().st_size
    log.info("publish: %d tiles (%d files, %d bytes) -> %s (%d bytes)",
             len(tiles), folder_files, folder_bytes, out_path, size)
    return {"tiles": len(tiles), "bytes": size, "folder_bytes": folder_bytes,
            "folder_files": folder_files}
