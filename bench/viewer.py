"""Benchmark the viewer of a finished run: first load, first tile paint, PMTiles against folder;
and the research tools (filter, select matching) on a map of any size.

    .venv/bin/python bench/viewer.py --results bench/cache/run-20000/results
    .venv/bin/python bench/viewer.py --synthetic 125000

``--synthetic N`` builds a site of N listings without running the pipeline (grid, selected.csv
with prices, posting dates, 60 locations in 30 states; plain tiles for the zooms the first view
shows) in bench/cache/viewer-N/, then measures its first load and the filter in headless
Chromium (tests/browser/filter_bench.cjs): the field arrays' bytes and the time from a filter
change to the next painted frame, against fetching and parsing every shard (filtering on data
loaded per block instead).

Needs a run's ``site/`` and ``tiles/`` (e.g. ``bench/scale.py --images 20000``). Writes
``tiles.pmtiles`` beside them if missing and a ``site-pm/`` reading it (both under the results
folder, which is git-ignored), serves the folder from 127.0.0.1 with range support, and loads
each variant in headless Chromium (tests/browser/first_load.cjs) with an empty cache.

Prints, per variant: bytes transferred before the first tile request (HTML, JS, CSS, map.json),
time from navigation start to the first tile painted, bytes for the whole first view; then the
archive's size against the tile folder's total size and file count.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.map.publish import write_pmtiles  # noqa: E402
from vacancy.serve import serve_in_thread  # noqa: E402
from vacancy.map.viewer import build_site  # noqa: E402

DRIVER = REPO / "tests" / "browser" / "first_load.cjs"
FILTER_DRIVER = REPO / "tests" / "browser" / "filter_bench.cjs"
LEAFLET = REPO / "node_modules" / "leaflet" / "dist"


def synthetic_results(n: int, seed: int = 0) -> Path:
    """A results folder with a site of ``n`` listings (inputs and tiles made once and kept in
    bench/cache; the site is rebuilt every time, so it has the current page)."""
    import datetime
    import math

    import numpy as np
    from PIL import Image

    from vacancy.common import write_csv
    from vacancy.map.regions import REGION_COLUMNS, assign_regions
    from vacancy.images.select import SELECTED_COLUMNS
    from vacancy.common import config_defaults
    from vacancy.map.tiles import TileSpec

    results = REPO / "bench" / "cache" / f"viewer-{n}"
    if (results / "tiles" / "meta.json").is_file():
        layout = json.loads((results / "tiles" / "meta.json").read_text())
        build_site(layout, results / "grid.csv", results / "selected.csv", results / "site", LEAFLET,
                   regions_csv=results / "regions.csv")
        return results
    rng = np.random.default_rng(seed)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    locations = [f"loc{i:02d}" for i in range(60)]
    loc = rng.integers(0, len(locations), n)
    price = np.round(np.exp(rng.normal(7.2, 0.4, n)) / 25) * 25
    start = datetime.date(2025, 11, 1)
    day = rng.integers(0, 120, n)
    results.mkdir(parents=True, exist_ok=True)
    selected = ({"id": f"{locations[loc[k]]}/{k:06d}.jpg", "location": locations[loc[k]],
                 "filename": f"{k:06d}.jpg", "class": "photo" if k % 20 else "maybe",
                 "width": 800, "height": 600, "title": f"Room {k}",
                 "price": "" if k % 50 == 0 else f"${int(price[k]):,}",
                 "posted": (start + datetime.timedelta(days=int(day[k]))).isoformat(),
                 "state": f"S{loc[k] // 2:02d}", "listing_id": str(k // 3),
                 "listing_url": f"https://example.org/{k}.html"} for k in range(n))
    write_csv(results / "selected.csv", selected, SELECTED_COLUMNS)
    write_csv(results / "grid.csv", ({"id": f"{locations[loc[k]]}/{k:06d}.jpg", "col": k % cols,
                                      "row": k // cols} for k in range(n)), ["id", "col", "row"])
    # 24 regions as patches of the grid (k-means on the cell positions stands in for PCA)
    cells = np.array([(k % cols, k // cols) for k in range(n)])
    region, reps, anchors = assign_regions(cells.astype(float), cells, 24, 2, seed)
    write_csv(results / "regions.csv", ({"id": f"{locations[loc[k]]}/{k:06d}.jpg",
                                         "region": int(region[k]), "representative": int(reps[k]),
                                         "anchor": int(anchors[k])} for k in range(n)),
              REGION_COLUMNS)
    layout = TileSpec.from_config(config_defaults()["tiles"], cols, rows).meta()
    tiles = results / "tiles"
    for z in range(min(4, layout["max_zoom"] + 1)):   # what the fitted first view shows
        span = layout["tile_size"] * 2 ** (layout["max_zoom"] - z)
        for x in range(math.ceil(layout["width_px"] / span)):
            for y in range(math.ceil(layout["height_px"] / span)):
                path = tiles / str(z) / str(x) / f"{y}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (256, 256), (40 + 20 * z, 90, 40 * x % 256)).save(path, quality=85)
    build_site(layout, results / "grid.csv", results / "selected.csv", results / "site", LEAFLET,
               regions_csv=results / "regions.csv")
    (tiles / "meta.json").write_text(json.dumps({**layout, "count": n}))
    return results


def measure_filter(results: Path, repeats: int = 10) -> dict:
    """First load and the filter's timings on ``results/site`` (one Chromium page each)."""
    server, base = serve_in_thread(results)
    try:
        first = subprocess.run(["node", str(DRIVER), f"{base}/site/"], cwd=REPO, check=True,
                               capture_output=True, text=True, timeout=300)
        done = subprocess.run(["node", str(FILTER_DRIVER), f"{base}/site/", str(repeats)],
                              cwd=REPO, check=True, capture_output=True, text=True, timeout=600)
    finally:
        server.shutdown()
        server.server_close()
    return {"first": json.loads(first.stdout.splitlines()[0]),
            "filter": json.loads(done.stdout.splitlines()[-1])}


def print_filter(n: int, r: dict) -> None:
    first, f = r["first"], r["filter"]
    print(f"viewer of {n} images: research tools in headless Chromium (1280x800, fitted view)")
    print(f"  first load      {first['bytes_before_tiles'] / 1024:8.1f} kB in "
          f"{first['requests_before_tiles']} requests ({', '.join(first['files_before_tiles'])})")
    print("| data the filter runs on | bytes | load ms | filter ms (arrays: mask + repaint) |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| per-cell field arrays (fields/*.bin) | {f['fields_bytes'] / 1024:,.0f} kB | "
          f"{f['first_ms']:.0f} (incl. first filter) | {f['mask_median_ms']:.1f} |")
    print(f"| every shard (cells/*.json, {f['shards']} files) | "
          f"{f['shards_bytes'] / 1024:,.0f} kB | {f['shards_fetch_ms']:.0f} | "
          f"{f['shards_mask_ms']:.1f} |")
    print(f"  ratio: shards / field arrays = {f['shards_bytes'] / max(1, f['fields_bytes']):.1f}x "
          f"bytes, {f['shards_fetch_ms'] / max(1e-3, f['first_ms']):.1f}x first-filter time")
    print(f"  filter change -> painted frame: median {f['change_median_ms']:.1f} ms, "
          f"max {f['change_max_ms']:.1f} ms over {f['changes']} changes (last lit: {f['lit']})")
    print(f"  select matching (+ statistics): {f['select_matching_ms']:.0f} ms for "
          f"{f['selection']} cells")


def folder_stats(tiles: Path) -> tuple[int, int]:
    files = [p for p in tiles.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def measure(results: Path, rebuild_pmtiles: bool = False) -> dict:
    """Everything the benchmark reports, as a dict (also printed by main)."""
    tiles, site = results / "tiles", results / "site"
    archive = results / "tiles.pmtiles"
    if rebuild_pmtiles or not archive.is_file():
        write_pmtiles(tiles, archive)
    layout = json.loads((tiles / "meta.json").read_text())
    build_site(layout, results / "grid.csv", results / "selected.csv", results / "site-pm",
               REPO / "node_modules" / "leaflet" / "dist", pmtiles_url="../tiles.pmtiles")
    n_files, n_bytes = folder_stats(tiles)
    server, base = serve_in_thread(results)
    try:
        done = subprocess.run(["node", str(DRIVER), f"{base}/site/", f"{base}/site-pm/"],
                              cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
        server.server_close()
    loads = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {"count": layout.get("count"), "folder": loads[0], "pmtiles": loads[1],
            "tile_files": n_files, "tile_bytes": n_bytes, "pmtiles_bytes": archive.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path)
    parser.add_argument("--rebuild-pmtiles", action="store_true")
    parser.add_argument("--synthetic", type=int, metavar="N",
                        help="measure the research tools on a synthetic site of N listings")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if args.synthetic:
        print_filter(args.synthetic, measure_filter(synthetic_results(args.synthetic), args.repeats))
        return
    if not args.results:
        parser.error("give --results or --synthetic")
    r = measure(args.results, args.rebuild_pmtiles)
    print(f"viewer of {r['count']} images")
    for name in ("folder", "pmtiles"):
        load = r[name]
        print(f"  {name:8s} first load {load['bytes_before_tiles'] / 1024:7.1f} kB in "
              f"{load['requests_before_tiles']} requests; first tile painted at "
              f"{load['first_tile_ms']} ms; first view {load['bytes_first_view'] / 1024:.1f} kB")
    print(f"  tiles: {r['tile_files']} files, {r['tile_bytes'] / 1e6:.1f} MB; "
          f"PMTiles archive {r['pmtiles_bytes'] / 1e6:.1f} MB "
          f"({r['pmtiles_bytes'] / max(1, r['tile_bytes']):.2f}x)")


if __name__ == "__main__":
    main()
