"""Benchmark the grid assignment: time, memory and quality at several sizes, against FLAS.

    .venv/bin/python bench/grid.py --n 2000,10000            # a few minutes
    .venv/bin/python bench/grid.py --n 125000 --no-flas      # long: run it in the background

Synthetic data, made once per n: 50-D features from a Gaussian mixture (30 clusters of uneven
size and spread) embedded in 2-D by openTSNE with the workflow's own settings, up to
``--tsne-max`` images; above that (t-SNE alone would take minutes) the features are 2-D points
from a Gaussian mixture and the "embedding" is the features themselves.

Columns: method (dense up to 4,000, blocks above, as ``run_grid`` chooses), assignment time,
peak memory of the assignment (tracemalloc: numpy and Python allocations, not the solver's
internal C++ buffers; the process's max RSS is printed too), mean and 95th percentile
displacement in cell units, their ratio to the exact optimum (scipy's linear_sum_assignment on
the dense cost, the same optimum as lapjv, while n <= ``--dense-max``), DPQ16 in the feature space
(exact up to 1,000 images, else from 1,000 sampled query images) -- all of the assignment alone,
whose ratio of means is the block method's target (<= 1.05 at 10,000); then the refinement the
pipeline applies (``--refine``, default auto: FLAS above 4,000 images, ``vacancy.map.refine``) with
its time, the final grid's mean displacement and DPQ16; and FLAS (PyPI ``vc_flas``) sorting the
same features onto the same grid from scratch, with its time and DPQ16.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.common import config_defaults  # noqa: E402
from vacancy.map.grid import (assign, cell_centres, choose_method,  # noqa: E402
                              choose_repair_passes, displacement, grid_shape, to_grid_units)
from vacancy.map.quality import displacement_stats, dpq  # noqa: E402
from vacancy.map.refine import choose_refine, refine  # noqa: E402

#: The workflow's grid settings (the schema's defaults); the options below start from them.
GRID = config_defaults()["grid"]

CACHE = REPO / "bench" / "cache" / "grid"


def synthetic(n: int, tsne_max: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features, 2-D points) for n images, cached under bench/cache/grid."""
    path = CACHE / f"synthetic-{n}-{'tsne' if n <= tsne_max else '2d'}-{seed}.npz"
    if path.exists():
        data = np.load(path)
        return data["features"], data["points"]
    rng = np.random.default_rng(seed)
    k, d = 30, 50 if n <= tsne_max else 2
    centres = rng.normal(size=(k, d)) * (3 if d > 2 else 4)
    label = rng.choice(k, n, p=rng.dirichlet(np.ones(k) * 2))
    spread = rng.uniform(0.5, 1.5, size=k)
    features = (centres[label] + rng.normal(size=(n, d)) * spread[label, None]).astype(np.float32)
    if d > 2:
        from vacancy.map.tsne import embed

        points = embed(features, n_jobs=2)
    else:
        points = features.astype(np.float64)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=features, points=points)
    return features, points


def optimum(points: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Exact minimum-cost assignment on the dense cost matrix (the reference for the ratio)."""
    scaled = to_grid_units(points, cols, rows)
    diff = scaled[:, None, :] - cell_centres(cols, rows)[None]
    _, cells = linear_sum_assignment(np.einsum("ijk,ijk->ij", diff, diff))
    return cells


def flas_cells(features: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """FLAS's cell (row-major) for each feature row, on the same cols x rows grid."""
    import vc_flas

    grid = vc_flas.Grid.from_features(np.ascontiguousarray(features, np.float32), size=(rows, cols))
    sorting = vc_flas.flas(grid, wrap=False, seed=1).sorting.ravel()
    cells = np.empty(len(features), dtype=np.int64)
    filled = sorting >= 0
    cells[sorting[filled]] = np.flatnonzero(filled)
    return cells


def bench_one(n: int, args) -> list[str]:
    """Table rows for one n."""
    features, points = synthetic(n, args.tsne_max)
    cols, rows = grid_shape(n)
    method = choose_method(n, args.method, GRID["dense_max"])
    refine_used = choose_refine(n, args.refine, GRID["dense_max"])
    passes = choose_repair_passes(GRID["repair_passes"], refine_used)
    tracemalloc.start()
    start = time.perf_counter()
    cells, method = assign(points, cols, rows, method, args.block, GRID["dense_max"],
                           GRID["holes"], passes)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert len(np.unique(cells)) == n
    dense_moved = None
    if n <= args.dense_max:
        dense_moved = displacement(points, optimum(points, cols, rows), cols, rows)
    stats = displacement_stats(displacement(points, cells, cols, rows), dense_moved)
    queries = args.queries
    ours = dpq(features, cells, cols, n_queries=queries)
    line = (f"{n:>7} {method:>6} {seconds:8.1f} {peak:8.0f} {stats['displacement_mean']:7.2f} "
            f"{stats['displacement_p95']:7.2f} "
            f"{stats.get('ratio_mean', float('nan')):6.3f} {stats.get('ratio_p95', float('nan')):6.3f} "
            f"{ours:6.3f}")
    if refine_used == "none":
        line += f" {'none':>6} {'-':>7} {'-':>7} {'-':>6}"
    else:
        start = time.perf_counter()
        refined = refine(refine_used, features, cells, cols, rows, args.radius_decay,
                         GRID["refine_dims"])
        rseconds = time.perf_counter() - start
        assert len(np.unique(refined)) == n
        rmoved = displacement(points, refined, cols, rows).mean()
        line += (f" {refine_used:>6} {rseconds:7.1f} {rmoved:7.2f} "
                 f"{dpq(features, refined, cols, n_queries=queries):6.3f}")
    if args.flas and n <= args.flas_max:
        start = time.perf_counter()
        fcells = flas_cells(features, cols, rows)
        fseconds = time.perf_counter() - start
        line += f" {fseconds:7.1f} {dpq(features, fcells, cols, n_queries=queries):6.3f}"
    return [line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="2000,10000", help="comma-separated sizes")
    parser.add_argument("--method", default="auto", choices=["auto", "dense", "blocks"])
    parser.add_argument("--block", type=int, default=GRID["block"])
    parser.add_argument("--dense-max", type=int, default=10000, help="largest n given a ratio")
    parser.add_argument("--tsne-max", type=int, default=20000, help="largest n embedded by t-SNE")
    parser.add_argument("--queries", type=int, default=1000, help="DPQ query sample at large n")
    parser.add_argument("--refine", default="auto", choices=["auto", "none", "flas"])
    parser.add_argument("--radius-decay", type=float, default=GRID["radius_decay"])
    parser.add_argument("--no-flas", dest="flas", action="store_false")
    parser.add_argument("--flas-max", type=int, default=10000, help="largest n sorted by FLAS")
    args = parser.parse_args()
    print(f"{'n':>7} {'method':>6} {'time_s':>8} {'peak_MB':>8} {'disp':>7} {'p95':>7} "
          f"{'r_mean':>6} {'r_p95':>6} {'DPQ16':>6} {'refine':>6} {'ref_s':>7} {'R_disp':>7} "
          f"{'R_DPQ':>6} {'flas_s':>7} {'F_DPQ':>6}", flush=True)
    for n in (int(x) for x in args.n.split(",")):
        for line in bench_one(n, args):
            print(line, flush=True)
    print(f"max RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
