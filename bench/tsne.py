"""Benchmark a t-SNE perplexity rerun: neighbours found in the tsne job (old) against neighbours
found once by the ``neighbours`` rule (new), and fewer iterations, with the final grid's quality.

    nice .venv/bin/python bench/tsne.py --results bench/cache/run-125000/results \\
        --truth bench/cache/corpus-125000-seed1/truth.csv --perplexity 40 --n-iter 750,500
    nice .venv/bin/python bench/tsne.py --results bench/cache/run-125000/results \\
        --truth bench/cache/corpus-125000-seed1/truth.csv --perplexity 30 --n-iter 500,350 \\
        --seeds 42,1,2 --no-old     # iterations against t-SNE's own spread over seeds

Reads a finished run's pca.h5 (read only) and writes under bench/cache/tsne-<n>/. Each variant
runs in a process of its own, so its peak RSS is its own. Columns: neighbours s (the kNN search
the job pays: old finds 3 x perplexity neighbours every time; new reads the neighbours rule's
file, whose one-off cost is the first row), affinities s, optimisation s, total s of the tsne
job, peak RSS, then the final grid's quality (the workflow's grid settings: blocks + FLAS):
DPQ16 (vacancy.map.quality, 1,000 sampled query images) and the share of the 8 grid neighbours
from the same family (vacancy.evaluate, against the corpus truth). With ``--seeds``, each
iteration count runs with each t-SNE seed, and a last row per count gives the mean and range,
so a difference between counts can be held against the spread that the seed alone makes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.common import config_defaults, read_csv, write_csv  # noqa: E402
from vacancy.map.tsne import PhaseClock as Clock  # noqa: E402

TSNE = config_defaults()["tsne"]
GRID = config_defaults()["grid"]


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def find(args) -> dict:
    """The neighbours rule alone: k neighbours of every PCA point, saved."""
    from vacancy.map.tsne import run_neighbours

    clock = Clock()
    run_neighbours(args.results / "pca.h5", args.out / f"neighbours-{args.k}.npz", args.k,
                   TSNE["seed"], n_jobs=args.threads)
    clock.lap("neighbours")
    return {**clock.times, "rss_mb": peak_rss_mb()}


def embed_and_grid(args) -> dict:
    """One tsne job (old: its own neighbours; new: the saved ones) and the grid on top."""
    from vacancy.evaluate import map_quality
    from vacancy.map.grid import grid_shape, run_grid
    from vacancy.map.pca import read_pca
    from vacancy.map.quality import grid_quality
    from vacancy.map.tsne import (effective_perplexity, find_neighbours, perplexity_affinities,
                                  read_neighbours, embed)

    ids, points = read_pca(args.results / "pca.h5")
    points = np.ascontiguousarray(points, dtype=np.float32)
    perplexity = effective_perplexity(args.perplexity, len(ids))
    clock = Clock()
    if args.variant == "old":
        neighbours = find_neighbours(points, int(3 * perplexity), args.threads, TSNE["seed"])
    else:
        neighbours = read_neighbours(args.out / f"neighbours-{args.k}.npz", ids,
                                     columns=min(len(ids) - 1, int(3 * perplexity)))
    clock.lap("neighbours")
    perplexity_affinities(points, perplexity, args.threads, TSNE["seed"], neighbours)
    clock.lap("affinities")  # timed alone; embed computes them again, then optimises
    coords = embed(points, perplexity, TSNE["learning_rate"], args.iterations, args.seed,
                   n_jobs=args.threads, neighbours=neighbours)
    clock.lap("embed")
    rss = peak_rss_mb()
    tag = f"{args.variant}-p{args.perplexity:g}-i{args.iterations}-s{args.seed}"
    tsne_csv, grid_csv = args.out / f"tsne-{tag}.csv", args.out / f"grid-{tag}.csv"
    write_csv(tsne_csv, ({"id": i, "x": f"{x:.6f}", "y": f"{y:.6f}"}
                         for i, (x, y) in zip(ids, coords)), ["id", "x", "y"])
    run_grid(tsne_csv, grid_csv, GRID["method"], GRID["block"], GRID["dense_max"], GRID["holes"],
             GRID["repair_passes"], GRID["refine"], GRID["radius_decay"], GRID["refine_dims"],
             pca_h5=args.results / "pca.h5")
    grid_rows = read_csv(grid_csv)
    cols, rows = grid_shape(len(ids))
    cell = {r["id"]: int(r["row"]) * cols + int(r["col"]) for r in grid_rows}
    q = grid_quality(points, coords, np.array([cell[i] for i in ids]), cols, rows)
    family = map_quality(read_csv(args.truth), grid_rows)["neighbour_family_share"]
    t = clock.times
    phases = {name: t[name] for name in ("neighbours", "affinities")}
    phases["optimisation"] = tuple(e - a for e, a in zip(t["embed"], t["affinities"]))
    phases["total"] = tuple(n + e for n, e in zip(t["neighbours"], t["embed"]))
    return {**phases, "rss_mb": rss, "dpq16": q["dpq16"], "family": family}


def cell(times) -> str:
    """``wall / CPU`` seconds."""
    return f"{times[0]:.1f} / {times[1]:.1f}"


def child(args, *extra: str) -> dict:
    """Run one step in a fresh process (its own peak RSS) and return its JSON line."""
    cmd = [sys.executable, __file__, "--results", str(args.results), "--truth", str(args.truth),
           "--perplexity", str(args.perplexity), "--k", str(args.k), "--threads",
           str(args.threads), "--out", str(args.out), *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="a finished run's results")
    parser.add_argument("--truth", type=Path, required=True, help="the corpus's truth.csv")
    parser.add_argument("--perplexity", type=float, default=40.0, help="the rerun's perplexity")
    parser.add_argument("--k", type=int, default=TSNE["neighbours"], help="neighbours found once")
    parser.add_argument("--n-iter", default=str(TSNE["n_iter"]), help="comma-separated")
    parser.add_argument("--seeds", default=str(TSNE["seed"]), help="t-SNE seeds, comma-separated")
    parser.add_argument("--no-old", action="store_true",
                        help="skip neighbours found in the job (only iteration counts, seeds)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--step", choices=["find", "embed"], help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=["old", "new"], help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=TSNE["seed"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(find(args) if args.step == "find" else embed_and_grid(args)))
        return
    n = sum(1 for _ in read_csv(args.results / "selected.csv"))
    args.out = args.out or REPO / "bench" / "cache" / f"tsne-{n}"
    args.out.mkdir(parents=True, exist_ok=True)
    iterations = [int(i) for i in args.n_iter.split(",")]
    print(f"## t-SNE perplexity rerun to {args.perplexity:g}, {n} images, {args.threads} threads\n")
    print("Seconds as wall / CPU (all threads).\n")
    print("| variant | neighbours s | affinities s | optimisation s | tsne job total s | "
          "peak RSS MB | DPQ16 | family share |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    found = child(args, "--step", "find")
    print(f"| neighbours rule, once ({args.k} neighbours) | {cell(found['neighbours'])} | - | - "
          f"| {cell(found['neighbours'])} | {found['rss_mb']:.0f} | - | - |", flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    for variant in ("new",) if args.no_old else ("old", "new"):
        for it in iterations if variant == "new" else iterations[:1]:
            label = (f"old: {int(3 * args.perplexity)} neighbours in the job" if variant == "old"
                     else f"new: first {int(3 * args.perplexity)} of the saved {args.k}")
            quality = []
            for seed in seeds:
                r = child(args, "--step", "embed", "--variant", variant, "--iterations", str(it),
                          "--seed", str(seed))
                quality.append((r["dpq16"], r["family"]))
                print(f"| {label}, {it} iterations, seed {seed} | {cell(r['neighbours'])} "
                      f"| {cell(r['affinities'])} | {cell(r['optimisation'])} "
                      f"| {cell(r['total'])} | {r['rss_mb']:.0f} | {r['dpq16']:.4f} "
                      f"| {r['family']:.4f} |", flush=True)
            if len(seeds) > 1:
                print(f"| {it} iterations, {len(seeds)} seeds: mean (range) | | | | | "
                      f"| {spread([q[0] for q in quality])} | {spread([q[1] for q in quality])} |",
                      flush=True)


def spread(values: list[float]) -> str:
    """``mean (min-max)`` to 4 places."""
    return f"{np.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})"


if __name__ == "__main__":
    main()
