"""Benchmark the viewer of a finished run: first load, first tile paint, PMTiles against folder.

    .venv/bin/python bench/viewer.py --results bench/cache/run-20000/results

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

from vacancy.publish import write_pmtiles  # noqa: E402
from vacancy.serve import serve_in_thread  # noqa: E402
from vacancy.viewer import build_site  # noqa: E402

DRIVER = REPO / "tests" / "browser" / "first_load.cjs"


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
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--rebuild-pmtiles", action="store_true")
    args = parser.parse_args()
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
