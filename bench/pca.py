"""Benchmark the PCA fit: a sample of rows (``pca.fit_rows``) against IncrementalPCA over every row.

    .venv/bin/python bench/pca.py --run bench/cache/run-20000 --fit-rows all,5000,20000

Reads the features and ``selected.csv`` of a finished benchmark run (``bench/scale.py --images
N`` leaves one in bench/cache/run-N/, and its corpus's truth in bench/cache/corpus-N-seed1/). For
each ``fit_rows`` the PCA rule's own function runs in a child process (time, peak RSS), then the
t-SNE and grid of the workflow's default settings run on its output, and we print:

* fit time and peak memory of the PCA, and its ratio to ``all`` (today's IncrementalPCA);
* the share of the variance of ALL selected rows that its components capture (not the share of
  the fitted rows, which a sample overstates), against ``all``;
* DPQ16 of the final grid, measured in the PCA space of ``all`` for every variant (one common
  yardstick; 1,000 query images, ``vacancy.map.quality``), and the neighbour family share of the grid
  against the demo's truth (``vacancy.evaluate``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.common import config_defaults, iter_csv, read_csv  # noqa: E402

DEFAULTS = config_defaults()

CHILD = """
import json, sys, time
sys.path.insert(0, {workflow!r})
from vacancy.map.pca import run_pca
start = time.perf_counter()
result = run_pca({features!r}, {out!r}, n_components={k}, batch_size={batch},
                 fit_rows={fit_rows!r}, selected_csv={selected!r})
result["seconds"] = time.perf_counter() - start
# VmHWM starts afresh at exec; ru_maxrss would carry over the forking parent's memory
result["max_rss_mb"] = max(int(l.split()[1]) for l in open("/proc/self/status")
                           if l.startswith("VmHWM:")) / 1024
print(json.dumps(result))
"""


def run_variant(results: Path, fit_rows, out: Path) -> dict:
    """The PCA rule's function in a fresh process, so that its peak RSS is its own."""
    features = sorted(str(p) for p in (results / "features").glob("*.h5"))
    code = CHILD.format(workflow=str(REPO / "workflow"), features=features, out=str(out),
                        k=DEFAULTS["pca"]["n_components"], batch=DEFAULTS["pca"]["batch_size"],
                        fit_rows=fit_rows, selected=str(results / "selected.csv"))
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def total_variance(results: Path) -> float:
    """Sum over features of the variance of all selected rows (float64, streamed)."""
    from vacancy.map.pca import FeatureShards, batch_bounds

    keep = {row["id"] for row in iter_csv(results / "selected.csv")}
    shards = FeatureShards(sorted((results / "features").glob("*.h5")), keep)
    total = np.zeros(shards.n_features)
    squares = np.zeros(shards.n_features)
    for a, b in batch_bounds(len(shards), 2000, 1):
        rows = shards.rows(a, b).astype(np.float64)
        total += rows.sum(0)
        squares += (rows ** 2).sum(0)
    n = len(shards)
    return float(((squares - total ** 2 / n) / (n - 1)).sum())


def map_of(pca_h5: Path, scratch: Path) -> tuple[Path, float, float]:
    """t-SNE and grid of the workflow's default settings on one PCA output; their times."""
    from vacancy.map.grid import run_grid
    from vacancy.map.tsne import run_tsne
    from vacancy.map.tsne_settings import resolve_settings

    start = time.perf_counter()
    run_tsne(pca_h5, scratch / "tsne.csv", resolve_settings(**DEFAULTS["tsne"]), n_jobs=2)
    tsne_s = time.perf_counter() - start
    start = time.perf_counter()
    run_grid(scratch / "tsne.csv", scratch / "grid.csv", pca_h5=pca_h5, **DEFAULTS["grid"])
    return scratch / "grid.csv", tsne_s, time.perf_counter() - start


def grid_scores(grid_csv: Path, ref_ids: list[str], ref: np.ndarray, truth: list[dict]) -> dict:
    """DPQ16 of the grid in the reference PCA space, and its neighbour family share."""
    from vacancy.evaluate import map_quality
    from vacancy.map.grid import grid_shape
    from vacancy.map.quality import dpq

    rows = read_csv(grid_csv)
    cols, _ = grid_shape(len(rows))
    cell = {r["id"]: int(r["row"]) * cols + int(r["col"]) for r in rows}
    index = np.array([cell[i] for i in ref_ids])
    return {"dpq16": float(dpq(ref, index, cols)),
            "family": map_quality(truth, rows)["neighbour_family_share"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a bench/scale.py run directory")
    parser.add_argument("--truth", type=Path, help="the corpus's truth.csv (default: guessed)")
    parser.add_argument("--fit-rows", default="all,5000,20000")
    parser.add_argument("--no-map", dest="map", action="store_false",
                        help="PCA only: no t-SNE, grid, DPQ16 or family share")
    args = parser.parse_args()
    from vacancy.map.pca import read_pca

    results = args.run / "results"
    n_images = int(args.run.name.split("-")[-1])
    truth = read_csv(args.truth or REPO / "bench" / "cache" / f"corpus-{n_images}-seed1" / "truth.csv")
    variants = [v if v == "all" else int(v) for v in args.fit_rows.split(",")]
    total = total_variance(results)
    rows, ref = [], None
    with tempfile.TemporaryDirectory(dir=REPO / "bench" / "cache") as tmp:
        for fit_rows in variants:
            scratch = Path(tmp) / str(fit_rows)
            scratch.mkdir()
            pca = run_variant(results, fit_rows, scratch / "pca.h5")
            ids, coords = read_pca(scratch / "pca.h5")
            if ref is None:
                ref = (ids, coords)
            pca["captured"] = float(coords.astype(np.float64).var(0, ddof=1).sum() / total)
            pca.update(tsne_s=float("nan"), grid_s=float("nan"), dpq16=float("nan"),
                       family=float("nan"))
            if args.map:
                grid_csv, pca["tsne_s"], pca["grid_s"] = map_of(scratch / "pca.h5", scratch)
                pca.update(grid_scores(grid_csv, ref[0], ref[1], truth))
            rows.append((fit_rows, pca))
            print(f"done fit_rows={fit_rows}: {pca}", flush=True)
    base = rows[0][1]
    print(f"\nPCA fit at {base['n_images']:,} selected images, {base['n_components']} components "
          f"(reference: fit_rows={rows[0][0]}; DPQ16 in its PCA space)\n")
    print("| fit_rows | rows fitted | PCA time (s) | ratio | peak RSS (MB) | variance of all rows "
          "captured | DPQ16 of the final grid | neighbour family share | t-SNE (s) | grid (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for fit_rows, r in rows:
        print(f"| {fit_rows} | {r['rows_fitted']:,} | {r['seconds']:.1f} | "
              f"{r['seconds'] / base['seconds']:.2f} | {r['max_rss_mb']:.0f} | "
              f"{100 * r['captured']:.2f}% | {r['dpq16']:.3f} | {r['family']:.3f} | "
              f"{r['tsne_s']:.0f} | {r['grid_s']:.0f} |")


if __name__ == "__main__":
    main()
