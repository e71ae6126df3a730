"""Stage ``viewer``: the static Leaflet site that shows the tile pyramid and the listings.

The site is plain files (no server code): the page templates from ``workflow/viewer/``, a copy
of Leaflet and of the pmtiles reader so it works offline, ``map.json`` (tile geometry, URL
templates, the legend of locations), and everything per image split into small files fetched on
demand, so the first load stays well under 1 MB at 125,000 images:

- ``cells/{bx}-{by}.json``: the listing records of one block of cells (what a click shows);
- ``index/loc/{i}.json``: the cells of location number ``i`` (flat ``[col, row, col, row, ...]``),
  fetched when a search or the legend highlights that location;
- ``index/ids/{k}.json``: ``{"id": {id: [col, row]}, "listing": {listing_id: [col, row]}}`` for
  the ids whose FNV-1a hash falls in bucket ``k`` (the page computes the same hash), so a jump
  to an image or listing id fetches one small file.
- ``fields/{name}.bin``: one compact little-endian typed array per listing field (price, posted
  date, location, state, triage class, and the region of the regions rule), one value per *cell* in reading order
  (``row * cols + col``), empty cells holding the field's ``missing`` value. The filter, the
  selection statistics and "select matching" run on these; they are fetched only when one of
  those is first used, so the first load carries no per-image data. ``map.json`` lists them
  under ``fields`` (dtype, missing value, category names, value range); a field no record has
  is left out, and the page then shows no control for it.

``results/`` is the web root: the page at ``/site/`` finds the tiles at
``../tiles/{z}/{x}/{y}.jpg`` (or one PMTiles archive, see :mod:`vacancy.map.publish`) and the
originals at ``../raw/<location>/<filename>``, shown when zooming past the pyramid's top.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import shutil
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ..common import atomic_dir
from .grid_csv import read_added, read_cells

log = logging.getLogger("vacancy.map.viewer")

#: Where the page templates live (workflow/viewer/ beside the package).
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "viewer"
TEMPLATES = ("index.html", "app.js", "style.css")
#: What of Leaflet's dist/ the page needs.
LEAFLET_FILES = ("leaflet.js", "leaflet.css")
#: The pmtiles reader's browser build (a global ``pmtiles``), from node_modules.
PMTILES_JS = Path(__file__).resolve().parents[3] / "node_modules" / "pmtiles" / "dist" / "pmtiles.js"
#: Fields of selected.csv shown when a cell is clicked (the shard record).
RECORD_FIELDS = ("id", "location", "state", "title", "price", "posted", "listing_url",
                 "listing_id", "class")
SHARDS_URL = "cells/{bx}-{by}.json"
LOCATION_URL = "index/loc/{i}.json"
IDS_URL = "index/ids/{k}.json"
FIELD_URL = "fields/{name}.bin"
#: The filterable fields: (name, kind, dtype, missing value). Numbers are whole dollars and days
#: since 1970-01-01 (uint16 lasts until 2149); categories are indexes into the field's ``names``.
FIELD_SPECS = (("price", "number", "int32", -1), ("posted", "date", "uint16", 0),
               ("location", "category", "uint16", 0xFFFF), ("state", "category", "uint8", 0xFF),
               ("class", "category", "uint8", 0xFF), ("region", "category", "uint8", 0xFF),
               ("added", "category", "uint8", 0xFF))
#: Values of the ``added`` field (an extended grid only): placed by the last update, or before.
ADDED_NAMES = {True: "new", False: "earlier"}
#: Ids per hash bucket aimed at (each id file then stays around 20-40 kB).
IDS_PER_BUCKET = 500
#: Zoom levels past the pyramid's top are capped: 2**8 x a 64-px cell is 16,384 px.
MAX_EXTRA_ZOOM = 8

_HTTP = re.compile(r"^https?://", re.IGNORECASE)


def safe_listing_url(url: str) -> str:
    """Keep only absolute http(s) URLs; the page also checks, this keeps the data honest too."""
    url = (url or "").strip()
    return url if _HTTP.match(url) and urlsplit(url).netloc else ""


def fnv1a(text: str) -> int:
    """32-bit FNV-1a of the UTF-8 bytes: tiny, and the page computes the same in a few lines."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def _int(value) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def read_records(selected_csv, wanted: set[str]) -> tuple[dict[str, dict], int]:
    """``id -> record`` for the ids on the grid, and the largest image side among them.

    Streamed so unused columns are not kept. The largest side sets how far past the pyramid's
    top the page may zoom (to show the biggest photo at its downloaded resolution).
    """
    records, largest = {}, 0
    with open(selected_csv, newline="", encoding="utf-8") as handle:
        for rec in csv.DictReader(handle):
            if rec.get("id") in wanted:
                record = {field: rec.get(field) or "" for field in RECORD_FIELDS}
                record["listing_url"] = safe_listing_url(record["listing_url"])
                records[rec["id"]] = record
                largest = max(largest, _int(rec.get("width")), _int(rec.get("height")))
    return records, largest


def extra_zoom_for(largest_side: int, cell_px: int) -> int:
    """Zoom levels past the top so a cell is at least as big as the largest photo (>= 1)."""
    if largest_side <= cell_px:
        return 1
    return min(MAX_EXTRA_ZOOM, max(1, math.ceil(math.log2(largest_side / cell_px))))


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


def build_indexes(cells_by_row, records) -> tuple[list[dict], dict[str, list[int]], dict]:
    """The legend and the search indexes (see the module docstring for the file layouts).

    Returns ``(locations, cells_by_location, id_buckets)``: ``locations`` is
    ``[{"name", "count"}]`` sorted by name (its order numbers the ``index/loc`` files);
    ``id_buckets`` is ``{k: {"id": {...}, "listing": {...}}}``. A listing id points to its first
    image in reading order (row, then column).
    """
    by_location: dict[str, list[int]] = defaultdict(list)
    entries = []
    for row in sorted(cells_by_row):
        for col, image_id in sorted(cells_by_row[row]):
            record = records.get(image_id) or {}
            location = record.get("location") or image_id.partition("/")[0]
            by_location[location] += [col, row]
            entries.append((image_id, (record.get("listing_id") or "").strip(), col, row))
    n_buckets = 1 << max(0, math.ceil(math.log2(max(1, len(entries) / IDS_PER_BUCKET))))
    buckets: dict[int, dict] = defaultdict(lambda: {"id": {}, "listing": {}})
    for image_id, listing_id, col, row in entries:
        buckets[fnv1a(image_id) % n_buckets]["id"][image_id] = [col, row]
        if listing_id:
            bucket = buckets[fnv1a(listing_id) % n_buckets]["listing"]
            bucket.setdefault(listing_id, [col, row])
    locations = [{"name": name, "count": len(by_location[name]) // 2}
                 for name in sorted(by_location)]
    cells = {str(i): by_location[loc["name"]] for i, loc in enumerate(locations)}
    return locations, cells, {"n": n_buckets, "buckets": dict(buckets)}


def parse_price(text: str) -> int | None:
    """Whole dollars from a listing's price text ("$1,150", "1150", "$1,150/mo"), else None
    (also for a number too large for the int32 array: no real rent is)."""
    match = re.search(r"\d[\d,]*(?:\.\d+)?", text or "")
    if not match:
        return None
    dollars = int(float(match.group(0).replace(",", "")))
    return dollars if dollars < 2**31 else None


def parse_posted(text: str) -> int | None:
    """Days since 1970-01-01 of an ISO date or date-time ("2024-05-01T09:30:00"), else None."""
    try:
        days = (date.fromisoformat((text or "").strip()[:10]) - date(1970, 1, 1)).days
    except ValueError:
        return None
    return days if 0 < days < 0xFFFF else None


def _field_value(name: str, record: dict):
    """One record's value of a filterable field (None when it has none)."""
    if name == "price":
        return parse_price(record.get("price", ""))
    if name == "posted":
        return parse_posted(record.get("posted", ""))
    return (record.get(name) or "").strip() or None


def _natural(value: str):
    """Sort key putting "2" before "10" (region numbers) and text after numbers."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def build_fields(cells_by_row, records, cols: int, rows: int,
                 regions: dict | None = None, added: set | None = None) -> tuple[list[dict], dict]:
    """The per-cell field arrays and their descriptions for map.json (``fields``).

    Returns ``(descriptions, {name: numpy array})``; see the module docstring for the layout.
    Category names are sorted (names of digits only by value, so region "2" comes before "10").
    ``regions`` (id -> region row of regions.csv) adds the ``region`` field; ``added`` (the ids
    an extend placed, :func:`vacancy.map.grid_csv.read_added`) the ``added`` field.
    """
    regions = regions or {}
    values: dict[str, dict[int, object]] = {name: {} for name, *_ in FIELD_SPECS}
    for row, cells in cells_by_row.items():
        for col, image_id in cells:
            record = records.get(image_id) or {"location": image_id.partition("/")[0]}
            if image_id in regions:
                record = {**record, "region": regions[image_id]["region"]}
            if added is not None:
                record = {**record, "added": ADDED_NAMES[image_id in added]}
            for name, *_ in FIELD_SPECS:
                value = _field_value(name, record)
                if value is not None:
                    values[name][row * cols + col] = value
    descriptions, arrays = [], {}
    for name, kind, dtype, missing in FIELD_SPECS:
        found = values[name]
        if not found:
            log.info("viewer: no record has a %s; the page shows no %s filter", name, name)
            continue
        array = np.full(cols * rows, missing, dtype=np.dtype(dtype).newbyteorder("<"))
        desc = {"name": name, "kind": kind, "dtype": dtype, "missing": missing,
                "url": FIELD_URL.format(name=name)}
        if kind == "category":
            counts = Counter(found.values())
            names = sorted(counts, key=_natural)
            if len(names) >= missing:
                log.warning("viewer: %d distinct %s values, more than a %s holds; no %s filter",
                            len(names), name, dtype, name)
                continue
            code = {n: i for i, n in enumerate(names)}
            desc.update(names=names, counts=[counts[n] for n in names])
            found = {k: code[v] for k, v in found.items()}
        else:
            desc.update(min=min(found.values()), max=max(found.values()))
        array[np.fromiter(found, dtype=np.int64)] = np.fromiter(found.values(), dtype=np.int64)
        descriptions.append(desc)
        arrays[name] = array
    return descriptions, arrays


def read_regions(regions_csv) -> dict[str, dict]:
    """``id -> {"region", "representative", "anchor"}`` from the regions rule's CSV."""
    with open(regions_csv, newline="", encoding="utf-8") as handle:
        return {r["id"]: r for r in csv.DictReader(handle)}


def _top(counter: Counter) -> list | None:
    """``[most common value, its share]`` of a counter, or None when it is empty."""
    if not counter:
        return None
    value, n = counter.most_common(1)[0]
    return [value, round(n / sum(counter.values()), 3)]


def build_regions(cells_by_row, records, regions: dict) -> list[dict]:
    """What the page labels each region with: ``[{"region", "count", "col", "row" (anchor),
    "bbox" [col0, row0, col1, row1] (5th-95th percentiles of its cells), "location", "state"
    ([most common, share]), "median_price", "image" (representative id)}]``."""
    members: dict[str, list] = defaultdict(list)
    for row, cells in cells_by_row.items():
        for col, image_id in cells:
            if image_id in regions:
                members[regions[image_id]["region"]].append((col, row, image_id))
    out = []
    for name in sorted(members, key=_natural):
        cells = members[name]
        pos = np.array([(c, r) for c, r, _ in cells])
        lo, hi = np.percentile(pos, 5, axis=0), np.percentile(pos, 95, axis=0)
        anchor = next(((c, r) for c, r, i in cells if regions[i]["anchor"] == "1"), tuple(pos[0]))
        recs = [records.get(i) or {} for _, _, i in cells]
        prices = [p for p in (parse_price(r.get("price", "")) for r in recs) if p is not None]
        out.append({
            "region": name, "count": len(cells), "col": int(anchor[0]), "row": int(anchor[1]),
            "bbox": [int(lo[0]), int(lo[1]), int(np.ceil(hi[0])), int(np.ceil(hi[1]))],
            "location": _top(Counter(r.get("location") for r in recs if r.get("location"))),
            "state": _top(Counter(r.get("state") for r in recs if r.get("state"))),
            "median_price": float(np.median(prices)) if prices else None,
            "image": next((i for _, _, i in cells if regions[i]["representative"] == "1"), None),
        })
    return out


def _dump(path: Path, data) -> None:
    """Compact JSON with "<" escaped, so a data file can never be mistaken for markup."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    path.write_text(text.replace("<", "\\u003c") + "\n", encoding="utf-8")


def copy_leaflet(leaflet_dist, dest: Path) -> None:
    """Vendor Leaflet (js, css, marker/layer images) so the site needs no CDN."""
    leaflet_dist = Path(leaflet_dist)
    dest.mkdir(parents=True, exist_ok=True)
    for name in LEAFLET_FILES:
        shutil.copy2(leaflet_dist / name, dest / name)
    shutil.copytree(leaflet_dist / "images", dest / "images")


def _origin(url: str | None) -> str | None:
    parts = urlsplit(url or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def copy_templates(dest: Path, urls) -> None:
    """Copy the page templates; allow absolute tile/archive/original hosts in the page's CSP."""
    for name in TEMPLATES:
        shutil.copy2(TEMPLATE_DIR / name, dest / name)
    origins = sorted({o for o in map(_origin, urls) if o})
    if origins:
        index = dest / "index.html"
        extra = " ".join(origins)
        index.write_text(index.read_text()
                         .replace("img-src 'self'", f"img-src 'self' {extra}")
                         .replace("connect-src 'self'", f"connect-src 'self' {extra}"))


def link_originals(dest: Path, originals_dir) -> None:
    """``site/originals`` -> the photo folder, for a folder source outside the web root.

    The link is relative (``dest`` is a sibling of the final site folder, so it holds for both),
    so the site keeps its photos when the working directory is moved or copied with them."""
    target = Path(originals_dir).resolve()
    if not target.is_dir():
        raise FileNotFoundError(f"originals folder does not exist: {target}")
    os.symlink(os.path.relpath(target, Path(dest).resolve()), dest / "originals",
               target_is_directory=True)


def _write_data(site: Path, shards: dict, loc_cells: dict, id_buckets: dict,
                arrays: dict) -> None:
    """The site's lazily loaded data: cell shards, per-location cells, id search buckets and the
    filter's per-cell field arrays (raw bytes, read as typed arrays)."""
    (site / "cells").mkdir()
    for name, shard in shards.items():
        _dump(site / "cells" / f"{name}.json", shard)
    for i, cells in loc_cells.items():
        _dump(site / LOCATION_URL.format(i=i), cells)
    for k, bucket in id_buckets.items():
        _dump(site / IDS_URL.format(k=k), bucket)
    (site / "fields").mkdir()
    for name, array in arrays.items():
        (site / FIELD_URL.format(name=name)).write_bytes(array.tobytes())


def build_site(layout: dict, grid_csv, selected_csv, out_dir, leaflet_dist,
               tiles_url: str = "../tiles", shard_cells: int = 32,
               pmtiles_url: str | None = None, originals_url: str = "../raw",
               originals_dir=None, pmtiles_js=PMTILES_JS, regions_csv=None) -> dict:
    """Write the static viewer site into ``out_dir`` (atomically); return its map.json.

    ``layout`` is the pyramid's geometry and format (:meth:`vacancy.map.tiles.TileSpec.meta`),
    known from the grid before any tile is drawn, so the site can be built before (or beside) the tiles.
    ``pmtiles_url`` (relative to the page, e.g. ``"../tiles.pmtiles"``) makes the page read
    tiles from that one archive instead of the folder. Originals are fetched from
    ``originals_url/<location>/<filename>``; with ``originals_dir`` (a folder source outside
    the web root) the site gets an ``originals`` symlink to it and uses that instead.
    ``regions_csv`` (the regions rule's output) adds the region labels and the region field.
    """
    if shard_cells < 1:
        raise ValueError(f"shard_cells must be >= 1, got {shard_cells}")
    meta = dict(layout)
    cells_by_row = read_cells(grid_csv, meta["cols"], meta["rows"])
    wanted = {image_id for cells in cells_by_row.values() for _, image_id in cells}
    records, largest = read_records(selected_csv, wanted)
    shards = build_shards(cells_by_row, records, shard_cells)
    locations, loc_cells, ids = build_indexes(cells_by_row, records)
    regions = read_regions(regions_csv) if regions_csv else {}
    fields, arrays = build_fields(cells_by_row, records, meta["cols"], meta["rows"], regions,
                                  read_added(grid_csv))
    tiles_url = tiles_url.rstrip("/")
    if originals_dir is not None:
        originals_url = "originals"
    site_meta = {
        **meta,
        "count": sum(len(c) for c in cells_by_row.values()),
        "extra_zoom": extra_zoom_for(largest, meta["cell_px"]),
        "tiles_url": tiles_url,
        "tile_url": tiles_url + "/{z}/{x}/{y}." + meta["format"],
        "pmtiles_url": pmtiles_url,
        "originals_url": originals_url.rstrip("/"),
        "shard_cells": shard_cells,
        "shards_url": SHARDS_URL,
        "shards": sorted(shards),
        "locations": locations,
        "location_url": LOCATION_URL,
        "ids_url": IDS_URL,
        "id_buckets": ids["n"],
        "fields": fields,
        "regions": build_regions(cells_by_row, records, regions),
    }
    with atomic_dir(out_dir) as tmp:
        copy_templates(tmp, [tiles_url, pmtiles_url, originals_url])
        copy_leaflet(leaflet_dist, tmp / "vendor" / "leaflet")
        (tmp / "vendor" / "pmtiles").mkdir(parents=True)
        shutil.copy2(pmtiles_js, tmp / "vendor" / "pmtiles" / "pmtiles.js")
        if originals_dir is not None:
            link_originals(tmp, originals_dir)
        _write_data(tmp, shards, loc_cells, ids["buckets"], arrays)
        _dump(tmp / "map.json", site_meta)   # compact: it is part of every first load
    log.info("viewer: site with %d cells in %d shards, %d locations, %d id buckets written to %s",
             site_meta["count"], len(shards), len(locations), ids["n"], out_dir)
    return site_meta
