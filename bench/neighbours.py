"""Benchmark rule neighbours' search: where its time goes, the neighbours it finds against exact
ones, and (with --tsne) the map made from them; the search as it was against as it is now.

    nice .venv/bin/python bench/neighbours.py --results bench/cache/run-125000/results \\
        --truth bench/cache/corpus-125000-seed1/truth.csv --tsne before,now

Reads a finished run's pca.h5 (read only) and writes under bench/cache/neighbours-<n>/. Each
variant runs in a process of its own, so its peak RSS is its own:

- before: 50 trees, Annoy's default 50 x (k + 1) candidates, points in their own order;
- ordered: the same, points in :func:`vacancy.map.tsne.spatial_order`;
- now: vacancy.map.tsne's SEARCH_TREES and SEARCH_PER_NEIGHBOUR x (k + 1) candidates, in
  spatial order; and once more on one thread, whose neighbours must be identical ("same as
  now");
- fewer candidates: now with 33 x (k + 1) candidates (tried: faster, but recall fell on
  Gaussian clusters).

Seconds are wall / CPU (all threads): reading pca.h5, ordering the points, building the forest,
the queries, writing the npz. Recall@k: the share of the exact k nearest (brute force, float64)
found among the first k, over --sample query points. With --tsne the given variants' neighbours go
through bench/tsne.py's tsne job (config perplexity, config iterations) and the workflow's grid:
DPQ16 and the share of same-family grid neighbours (against the corpus truth).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.common import config_defaults  # noqa: E402
from vacancy.map.pca import read_pca  # noqa: E402
from vacancy.map.tsne import (SEARCH_PER_NEIGHBOUR, SEARCH_TREES, FixedTreesAnnoy,  # noqa: E402
                              PhaseClock, write_neighbours)

TSNE = config_defaults()["tsne"]
#: name: (trees, candidates per neighbour or None for Annoy's default, spatial order, threads
#: or None for --threads)
VARIANTS = {
    "before": (50, None, False, None),
    "ordered": (50, None, True, None),
    "now": (SEARCH_TREES, SEARCH_PER_NEIGHBOUR, True, None),
    "now-1-thread": (SEARCH_TREES, SEARCH_PER_NEIGHBOUR, True, 1),
    "fewer-candidates": (SEARCH_TREES, 33, True, None),
}
#: Query rows per block of the brute force (a block's distances are rows x n float64).
EXACT_BLOCK = 100


def exact_neighbours(points: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The k nearest points of each query point (itself excluded), by brute force in float64."""
    points = points.astype(np.float64)
    squares = (points ** 2).sum(1)
    found = []
    for start in range(0, len(queries), EXACT_BLOCK):
        rows = queries[start:start + EXACT_BLOCK]
        dist = squares[rows, None] + squares[None] - 2 * points[rows] @ points.T
        dist[np.arange(len(rows)), rows] = np.inf
        near = np.argpartition(dist, k, axis=1)[:, :k]
        found.append(np.take_along_axis(near, np.take_along_axis(dist, near, 1).argsort(1), 1))
    return np.concatenate(found)


def recall(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of the exact k nearest among the first k found."""
    return float(np.mean([len(set(f[:k]) & set(e[:k])) / k for f, e in zip(found, exact)]))


def search(args) -> dict:
    """One variant of the search, as rule neighbours runs it, with its recall."""
    trees, per_neighbour, ordered, threads = VARIANTS[args.variant]
    clock = PhaseClock()
    ids, points = read_pca(args.results / "pca.h5")
    points = np.ascontiguousarray(points, dtype=np.float32)
    clock.lap("read")
    read = clock.times["read"]
    index = FixedTreesAnnoy(points, args.k, metric="euclidean", n_jobs=threads or args.threads,
                            random_state=TSNE["seed"])
    index.search_trees, index.search_per_neighbour, index.ordered = trees, per_neighbour, ordered
    indices, distances = index.build()
    clock = PhaseClock()
    out = args.out / args.variant
    out.mkdir(exist_ok=True)
    write_neighbours(out / f"neighbours-{args.k}.npz", ids, indices.astype(np.int32), distances)
    clock.lap("write")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with np.load(args.out / "exact.npz") as exact:
        queries, truth = exact["queries"], exact["indices"]
    return {"seconds": {"read": read, **index.seconds, "write": clock.times["write"]},
            "rss_mb": rss, "recall": {k: recall(indices[queries], truth, k) for k in args.recall}}


def child(args, script: Path, *extra: str) -> dict:
    """Run one step in a fresh process (its own peak RSS) and return its JSON line."""
    out = subprocess.run([sys.executable, str(script), *extra], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def load() -> str:
    """The 1-, 5- and 15-minute load averages (the machine is shared)."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def pair(times) -> str:
    """``wall / CPU`` seconds."""
    return f"{times[0]:.1f} / {times[1]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="a finished run's results")
    parser.add_argument("--truth", type=Path, help="the corpus's truth.csv (for --tsne)")
    parser.add_argument("--k", type=int, default=TSNE["neighbours"], help="neighbours per image")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample", type=int, default=1000, help="query points for the recall")
    parser.add_argument("--tsne", default="", help="comma-separated variants to make maps of")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.recall = sorted({args.k, int(3 * TSNE["perplexity"])}, reverse=True)
    if args.variant:
        print(json.dumps(search(args)))
        return
    ids, points = read_pca(args.results / "pca.h5")
    args.out = args.out or REPO / "bench" / "cache" / f"neighbours-{len(ids)}"
    args.out.mkdir(parents=True, exist_ok=True)
    queries = np.sort(np.random.default_rng(0).choice(len(ids), args.sample, replace=False))
    np.savez(args.out / "exact.npz", queries=queries,
             indices=exact_neighbours(np.asarray(points), queries, args.k))
    del points
    print(f"## Rule neighbours: {len(ids)} images, {args.k} neighbours, {args.threads} threads\n")
    print(f"Seconds as wall / CPU (all threads). Load average at the start: {load()}.\n")
    recall_cols = " | ".join(f"recall@{k}" for k in args.recall)
    tsne_cols = " DPQ16 | family share |" if args.tsne else ""
    print(f"| variant | read | order | forest | queries | write | total | wall ratio | CPU ratio "
          f"| peak RSS MB | {recall_cols} | same as now |{tsne_cols}")
    print("|---|" + "---:|" * (10 + len(args.recall) + (2 if args.tsne else 0)))
    base = None
    for variant in args.variants.split(","):
        r = child(args, Path(__file__), "--results", str(args.results), "--k", str(args.k),
                  "--threads", str(args.threads), "--out", str(args.out), "--variant", variant,
                  *[f"--sample={args.sample}"])
        s = r["seconds"]
        total = tuple(sum(t[i] for t in s.values()) for i in (0, 1))
        base = base or total
        same = "-"
        if variant.startswith("now-"):
            with np.load(args.out / "now" / f"neighbours-{args.k}.npz") as a, \
                    np.load(args.out / variant / f"neighbours-{args.k}.npz") as b:
                same = "yes" if (np.array_equal(a["indices"], b["indices"])
                                 and np.array_equal(a["distances"], b["distances"])) else "NO"
        quality = " - | - |" if args.tsne else ""
        if variant in args.tsne.split(","):
            q = child(args, REPO / "bench" / "tsne.py", "--results", str(args.results),
                      "--truth", str(args.truth), "--perplexity", str(TSNE["perplexity"]),
                      "--k", str(args.k), "--threads", str(args.threads),
                      "--out", str(args.out / variant), "--step", "embed", "--variant", "new",
                      "--iterations", str(TSNE["n_iter"]))
            quality = f" {q['dpq16']:.3f} | {q['family']:.3f} |"
        recalls = " | ".join(f"{r['recall'][str(k)]:.4f}" for k in args.recall)
        print(f"| {variant} | " + " | ".join(pair(s[p]) for p in
                                            ("read", "order", "forest", "queries", "write"))
              + f" | {pair(total)} | {total[0] / base[0]:.2f}x | {total[1] / base[1]:.2f}x "
              f"| {r['rss_mb']:.0f} | {recalls} | {same} |{quality}", flush=True)
    print(f"\nLoad average at the end: {load()}.")


if __name__ == "__main__":
    main()
