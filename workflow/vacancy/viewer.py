"""Stage ``viewer``: the static Leaflet site that shows the tile pyramid and the listings.

The site is plain files (no server code): the page templates from ``workflow/viewer/``, a copy
of Leaflet so it works offline, ``map.json`` (tile geometry and URL templates), and per-image
metadata split into one JSON shard per block of cells, so a click loads a few hundred records
rather than all 125,000. ``results/`` is the web root: the page at ``/site/`` finds the tiles at
``../tiles/{z}/{x}/{y}.jpg``.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

from .common import write_json
from .tiles import atomic_dir, read_cells

log = logging.getLogger("vacancy.viewer")

#: Where the page templates live (workflow/viewer/ beside the package).
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "viewer"
TEMPLATES = ("index.html", "app.js", "style.css")
#: What of Leaflet's dist/ the page needs.
LEAFLET_FILES = ("leaflet.js", "leaflet.css")
#: Fields of selected.csv shown when a cell is clicked (the shard record).
RECORD_FIELDS = ("id", "location", "title", "price", "posted", "listing_url", "class")
SHARDS_URL = "cells/{bx}-{by}.json"

_HTTP = re.compile(r"^https?://", re.IGNORECASE)


def safe_listing_url(url: str) -> str:
    """Keep only absolute http(s) URLs; the page also checks, this keeps the data honest too."""
    url = (url or "").strip()
    return url if _HTTP.match(url) and urlsplit(url).netloc else ""


def read_records(selected_csv, wanted: set[str]) -> dict[str, dict]:
    """``id -> record`` for the ids on the grid, streamed so unused columns are not kept."""
    records = {}
    with open(selected_csv, newline="", encoding="utf-8") as handle:
        for rec in csv.DictReader(handle):
            if rec.get("id") in wanted:
                record = {field: rec.get(field) or "" for field in RECORD_FIELDS}
                record["listing_url"] = safe_listing_url(record["listing_url"])
                records[rec["id"]] = record
    return records


def build_shards(cells_by_row, records, shard_cells: int) -> dict[str, dict]:
    """Group cells into ``{"bx-by": {"bx", "by", "cells": {"col,row": record}}}``.

    A cell whose id is missing from selected.csv still gets a record (its id, location from the
    id), so a click never shows an empty panel for a painted cell.
    """
    shards: dict[str, dict] = defaultdict(dict)
    for row, cells in cells_by_row.items():
        for col, image_id in cells:
            record = records.get(image_id)
            if record is None:
                log.warning("viewer: %r is on the grid but not in selected.csv", image_id)
                record = {field: "" for field in RECORD_FIELDS}
                record.update(id=image_id, location=image_id.partition("/")[0])
            shards[f"{col // shard_cells}-{row // shard_cells}"][f"{col},{row}"] = record
    return {
        name: {"bx": int(name.split("-")[0]), "by": int(name.split("-")[1]), "cells": cells}
        for name, cells in shards.items()
    }


def copy_leaflet(leaflet_dist, dest: Path) -> None:
    """Vendor Leaflet (js, css, marker/layer images) so the site needs no CDN."""
    leaflet_dist = Path(leaflet_dist)
    dest.mkdir(parents=True, exist_ok=True)
    for name in LEAFLET_FILES:
        shutil.copy2(leaflet_dist / name, dest / name)
    shutil.copytree(leaflet_dist / "images", dest / "images")


def copy_templates(dest: Path, tiles_url: str) -> None:
    """Copy the page templates; allow an absolute tiles host in the page's CSP if one is used."""
    for name in TEMPLATES:
        shutil.copy2(TEMPLATE_DIR / name, dest / name)
    parts = urlsplit(tiles_url)
    if parts.scheme in ("http", "https") and parts.netloc:
        index = dest / "index.html"
        origin = f"{parts.scheme}://{parts.netloc}"
        index.write_text(index.read_text().replace("img-src 'self'", f"img-src 'self' {origin}"))


def build_site(layout: dict, grid_csv, selected_csv, out_dir, leaflet_dist,
               tiles_url: str = "../tiles", shard_cells: int = 32) -> dict:
    """Write the static viewer site into ``out_dir`` (atomically); return its map.json.

    ``layout`` is the pyramid's geometry (:func:`vacancy.tiles.layout_meta`), known from the grid
    before any tile is drawn, so the site can be built before (or beside) the tiles.
    """
    if shard_cells < 1:
        raise ValueError(f"shard_cells must be >= 1, got {shard_cells}")
    meta = dict(layout)
    cells_by_row = read_cells(grid_csv, meta["cols"], meta["rows"])
    wanted = {image_id for cells in cells_by_row.values() for _, image_id in cells}
    shards = build_shards(cells_by_row, read_records(selected_csv, wanted), shard_cells)
    tiles_url = tiles_url.rstrip("/")
    site_meta = {
        **meta,
        "tiles_url": tiles_url,
        "tile_url": tiles_url + "/{z}/{x}/{y}.jpg",
        "shard_cells": shard_cells,
        "shards_url": SHARDS_URL,
        "shards": sorted(shards),
    }
    with atomic_dir(out_dir) as tmp:
        copy_templates(tmp, tiles_url)
        copy_leaflet(leaflet_dist, tmp / "vendor" / "leaflet")
        (tmp / "cells").mkdir()
        for name, shard in shards.items():
            # compact, and "<" escaped so a shard can never be mistaken for markup
            text = json.dumps(shard, separators=(",", ":"), sort_keys=True).replace("<", "\\u003c")
            (tmp / "cells" / f"{name}.json").write_text(text + "\n", encoding="utf-8")
        write_json(tmp / "map.json", site_meta)
    log.info("viewer: site with %d cells in %d shards written to %s",
             sum(len(s["cells"]) for s in shards.values()), len(shards), out_dir)
    return site_meta
