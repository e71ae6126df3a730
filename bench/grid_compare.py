"""DPQ16 of several runs' grids, each measured in each run's PCA space, on their common images.

    .venv/bin/python bench/grid_compare.py RESULTS_A RESULTS_B [...] [--seeds 0,1,2]

Why: DPQ16 is measured in the PCA space of the run that made the grid. When a change alters the
features themselves (e.g. ``prepare.draft_side``), two runs' DPQ16 figures come from two spaces
and one t-SNE each, so they do not compare. This reads each run's ``pca.h5`` and ``grid.csv``
(for example ``bench/cache/run-125000/results`` and
``bench/cache/run-125000-prepare.draft_side-96/results`` from ``bench/scale.py --set``), keeps the
images every run placed, and prints a table: rows are grids, columns PCA spaces, each value the
mean DPQ16 over ``--seeds`` query samples (1,000 queries each, as bench/scale.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.common import read_csv  # noqa: E402
from vacancy.map.pca import read_pca  # noqa: E402
from vacancy.map.quality import DPQ_P, DPQ_QUERIES, dpq  # noqa: E402


def cells(results: Path) -> tuple[dict[str, int], int]:
    """Each image's cell index (row * cols + col) in a run's grid, and the grid's columns."""
    grid = {r["id"]: (int(r["col"]), int(r["row"])) for r in read_csv(results / "grid.csv")}
    cols = max(col for col, _ in grid.values()) + 1
    return {image: row * cols + col for image, (col, row) in grid.items()}, cols


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="+", help="a finished run's results folder")
    parser.add_argument("--seeds", default="0,1,2", help="query samples, comma-separated")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    spaces = {str(r): read_pca(r / "pca.h5") for r in args.results}
    grids = {str(r): cells(r) for r in args.results}
    common = sorted(set.intersection(*(set(ids) for ids, _ in spaces.values()))
                    & set.intersection(*(set(c) for c, _ in grids.values())))
    print(f"{len(common)} images placed by every run; DPQ{DPQ_P:g}, mean of {len(seeds)} samples "
          f"of {DPQ_QUERIES} queries\n")
    names = list(spaces)
    print("| grid of \\ in the PCA space of | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for grid_name, (cell_of, cols) in grids.items():
        index = np.array([cell_of[i] for i in common])
        values = []
        for ids, features in spaces.values():
            row_of = {image: k for k, image in enumerate(ids)}
            subset = features[[row_of[i] for i in common]]
            values.append(np.mean([dpq(subset, index, cols, p=DPQ_P, n_queries=DPQ_QUERIES,
                                       seed=s) for s in seeds]))
        print(f"| {grid_name} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
