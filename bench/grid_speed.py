"""The grid's two costs, before and now, on the t-SNE map and PCA vectors of a finished run.

    .venv/bin/python bench/grid_speed.py --run bench/cache/run-20000
    .venv/bin/python bench/grid_speed.py --run bench/cache/run-125000 --variants 16:150,4:150,4:64
    nice .venv/bin/python bench/grid_speed.py --run RUN --variants 16:150,4:64 --seeds 1,2,3

For each variant ``passes:dims`` (or ``passes:dims:decay``) the block assignment runs with that
many seam-repair passes (``grid.repair_passes``) and FLAS refines it on the first ``dims`` PCA
components (``grid.refine_dims``, radius decay ``grid.radius_decay`` unless given), as the grid
rule does. The first variant is the reference of the ratios: ``16:150`` is the grid rule as it
was at issue 15's commit (80472cd: 16 passes, FLAS on all 150 components, decay 0.95; the
assignment and refinement code is otherwise the same, only their settings became config).
Printed per variant: CPU seconds of the assignment and of the refinement (process time, so
other jobs on a shared machine inflate them less than wall time) with their ratio to the first
variant, the refinement's wall seconds, the final grid's DPQ16 on all 150 components from three
samples of 1,000 query images, and the mean displacement from the t-SNE position in cells.

FLAS draws random swap candidates, so one seed's layout differs from another's by about as
much as the variants do; ``--seeds`` refines with each FLAS seed in turn and prints one row per
seed and the mean of every seed's three samples (the grid rule uses seed 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.common import config_defaults, read_csv  # noqa: E402
from vacancy.map.grid import assign_blocks, displacement, grid_shape  # noqa: E402
from vacancy.map.pca import read_pca  # noqa: E402
from vacancy.map.quality import dpq  # noqa: E402
from vacancy.map.refine import SEED, refine_flas  # noqa: E402

GRID = config_defaults()["grid"]


def load(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """The t-SNE points and, in the same order, the PCA vectors of a run's results."""
    results = run / "results" if (run / "results").is_dir() else run
    rows = read_csv(results / "tsne.csv")
    ids = [r["id"] for r in rows]
    points = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    pca_ids, vectors = read_pca(results / "pca.h5")
    where = {image: k for k, image in enumerate(pca_ids)}
    return points, vectors[[where[i] for i in ids]].astype(np.float32)


def cpu_seconds(call):
    """(result, process CPU seconds) of ``call()``."""
    start = time.process_time()
    result = call()
    return result, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a bench/scale.py run folder")
    parser.add_argument("--variants", default="16:150,4:150,16:64,4:64,0:64",
                        help="passes:dims[:decay]; the first is the reference of the ratios")
    parser.add_argument("--seeds", default=str(SEED), help="FLAS seeds, comma-separated")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    points, features = load(args.run)
    n = len(points)
    cols, rows = grid_shape(n)
    print(f"{n} images on {cols} x {rows} cells, block {GRID['block']}, radius decay "
          f"{GRID['radius_decay']}; load average {os.getloadavg()[0]:.1f}\n")
    print("| repair passes | FLAS dims | decay | FLAS seed | assignment CPU s | ratio "
          "| refinement CPU s | ratio | refinement wall s | DPQ16 (3 samples) | mean "
          "| displacement (cells) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    reference = None
    assigned: dict[int, tuple[np.ndarray, float]] = {}
    means = []
    for variant in args.variants.split(","):
        passes, dims, *rest = variant.split(":")
        passes, dims = int(passes), int(dims)
        decay = float(rest[0]) if rest else GRID["radius_decay"]
        with threadpool_limits(1):
            if passes not in assigned:
                assigned[passes] = cpu_seconds(lambda: assign_blocks(
                    points, cols, rows, GRID["block"], GRID["holes"], max_passes=passes))
        cells, assign_s = assigned[passes]
        scores = []
        for seed in seeds:
            with threadpool_limits(1):
                wall = time.perf_counter()
                final, refine_s = cpu_seconds(lambda: refine_flas(
                    features[:, :dims], cells, cols, rows, decay, seed=seed))
                wall = time.perf_counter() - wall
            sample = [dpq(features, final, cols, seed=s) for s in (0, 1, 2)]
            scores += sample
            reference = reference or (assign_s, refine_s)
            moved = displacement(points, final, cols, rows).mean()
            print(f"| {passes} | {dims} | {decay} | {seed} | {assign_s:.1f} "
                  f"| {reference[0] / assign_s:.1f}x | {refine_s:.2f} "
                  f"| {reference[1] / refine_s:.1f}x | {wall:.2f} "
                  f"| {' / '.join(f'{s:.4f}' for s in sample)} | {np.mean(sample):.4f} "
                  f"| {moved:.1f} |", flush=True)
        means.append(f"{variant}: {np.mean(scores):.4f}")
    if len(seeds) > 1:
        print(f"\nmean DPQ16 over FLAS seeds {args.seeds} x 3 query samples: {'; '.join(means)}")
    print(f"load average {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
