"""Benchmark the PCA fit: a sample of rows (``pca.fit_rows``) against IncrementalPCA over every row.

    .venv/bin/python bench/pca.py --run bench/cache/run-20000 --fit-rows all,5000,20000
    .venv/bin/python bench/pca.py --run bench/cache/run-125000 --fit-rows 20000 --before e520b12

Reads the features and ``selected.csv`` of a finished benchmark run (``bench/scale.py --images
N`` leaves one in bench/cache/run-N/, and its corpus's truth in bench/cache/corpus-N-seed1/). For
each ``fit_rows`` the PCA rule's own function runs in a child process (time, peak RSS), then the
t-SNE and grid of the workflow's default settings run on its output, and we print:

* time and peak memory of the PCA (the sum of the RSS of its process and the processes it
  starts, as Snakemake's benchmark counts it), and its ratio to the first variant; the time of
  its phases from its log (reading the sample, the fit, the transform);
* with ``--before REV``: each ``fit_rows`` also with the code of git revision REV (run first, so
  it is the reference), to measure a change against what it replaces in one run;
* the share of the variance of ALL selected rows that its components capture (not the share of
  the fitted rows, which a sample overstates), against ``all``;
* DPQ16 of the final grid, measured in the PCA space of ``all`` for every variant (one common
  yardstick; 1,000 query images, ``vacancy.map.quality``), and the neighbour family share of the grid
  against the demo's truth (``vacancy.evaluate``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
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
import inspect, json, logging, sys, time
sys.path.insert(0, {workflow!r})
from vacancy.map.pca import run_pca
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
extra = {{"workers": 2}} if "workers" in inspect.signature(run_pca).parameters else {{}}
start = time.perf_counter()
result = run_pca({features!r}, {out!r}, n_components={k}, batch_size={batch},
                 fit_rows={fit_rows!r}, selected_csv={selected!r}, model_out={model!r},
                 **extra)
result["seconds"] = time.perf_counter() - start
result["workers"] = extra.get("workers", 1)
print(json.dumps(result))
"""

#: Phases timed from the PCA's log: its Progress "finished" lines and the fit's own line.
PHASES = {"read sample": r"pca read sample finished: .*, ([0-9.]+) s$",
          "fit": r"pca fit: .* in ([0-9.]+) s$",
          "transform": r"pca transform finished: .*, ([0-9.]+) s$"}


def tree_rss(proc) -> int:
    """RSS of a process and its children, summed (what Snakemake's benchmark reports)."""
    import psutil

    total = 0
    for p in [proc] + proc.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def before_tree(rev: str) -> tuple[str, Path]:
    """workflow/vacancy as it was at git revision ``rev``, unpacked under bench/cache."""
    name = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout.strip()
    root = REPO / "bench" / "cache" / "pca-before" / name
    if not (root / "workflow" / "vacancy").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", name, "workflow/vacancy"], cwd=REPO,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return name, root / "workflow"


def run_variant(results: Path, fit_rows, out: Path, workflow: Path = REPO / "workflow") -> dict:
    """The PCA rule's function in a fresh process; peak RSS of its process tree, sampled every
    20 ms; its CPU time (with its workers': steadier than the wall time on a shared machine);
    the time of its phases."""
    import psutil

    features = sorted(str(p) for p in (results / "features").glob("*.h5"))
    code = CHILD.format(workflow=str(workflow), features=features, out=str(out),
                        k=DEFAULTS["pca"]["n_components"], batch=DEFAULTS["pca"]["batch_size"],
                        fit_rows=fit_rows, selected=str(results / "selected.csv"),
                        model=str(out.with_name("pca_model.npz")))
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile("w+") as err, tempfile.TemporaryFile("w+") as outfile:
        child = subprocess.Popen([sys.executable, "-c", code], stdout=outfile, stderr=err, text=True)
        proc, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            peak = max(peak, tree_rss(proc))
            time.sleep(0.02)
        err.seek(0)
        log = err.read()
        if child.returncode:
            raise RuntimeError(f"PCA child failed:\n{log}")
        outfile.seek(0)
        result = json.loads(outfile.read().strip().splitlines()[-1])
    result["max_rss_mb"] = peak / 2 ** 20
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and the workers it reaped
    result["cpu_s"] = (cpu.ru_utime + cpu.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    for phase, pattern in PHASES.items():
        found = re.findall(pattern, log, flags=re.M)
        result[phase] = float(found[-1]) if found else float("nan")
    if np.isnan(result["fit"]):  # code without the fit's own log line: what is left (fit_rows
        # all streams its fit and reads no sample: all of its time but the transform)
        result["fit"] = (result["seconds"] - np.nan_to_num(result["read sample"])
                         - result["transform"])
    return result


def seconds(value: float) -> str:
    """A phase's seconds for the table; "-" for a phase the variant does not have."""
    return "-" if np.isnan(value) else f"{value:.1f}"


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


def last_bits(results: Path, before_dir: Path) -> str:
    """The reference (before) run's model applied by today's transform (2 worker processes, one
    BLAS thread each): how far today's numbers are from the reference's own transform."""
    from vacancy.map.pca import FeatureShards, load_pca_model, project_shards, read_pca

    keep = {row["id"] for row in iter_csv(results / "selected.csv")}
    shards = FeatureShards(sorted((results / "features").glob("*.h5")), keep)
    _, old = read_pca(before_dir / "pca.h5")
    model = load_pca_model(before_dir / "pca_model.npz")
    new = project_shards(shards, model, DEFAULTS["pca"]["batch_size"], workers=2)
    return (f"the reference's model, projected by today's transform: {np.mean(new == old):.1%} "
            f"of the values identical, largest difference {np.abs(new - old).max():.2g} "
            f"(values up to {np.abs(old).max():.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a bench/scale.py run directory")
    parser.add_argument("--truth", type=Path, help="the corpus's truth.csv (default: guessed)")
    parser.add_argument("--fit-rows", default="all,5000,20000")
    parser.add_argument("--before", metavar="REV",
                        help="also run each fit_rows with the PCA code of this git revision, first")
    parser.add_argument("--no-map", dest="map", action="store_false",
                        help="PCA only: no t-SNE, grid, DPQ16 or family share")
    args = parser.parse_args()
    from vacancy.map.pca import read_pca

    load = os.getloadavg()
    results = args.run / "results"
    n_images = int(args.run.name.split("-")[-1])
    truth = read_csv(args.truth or REPO / "bench" / "cache" / f"corpus-{n_images}-seed1" / "truth.csv")
    variants = []
    for v in args.fit_rows.split(","):
        fit_rows = v if v == "all" else int(v)
        if args.before:
            name, workflow = before_tree(args.before)
            variants.append((f"{fit_rows} at {name} (before)", fit_rows, workflow))
        variants.append((str(fit_rows), fit_rows, REPO / "workflow"))
    total = total_variance(results)
    rows, ref, bits = [], None, ""
    with tempfile.TemporaryDirectory(dir=REPO / "bench" / "cache") as tmp:
        for number, (label, fit_rows, workflow) in enumerate(variants):
            scratch = Path(tmp) / str(number)
            scratch.mkdir()
            pca = run_variant(results, fit_rows, scratch / "pca.h5", workflow)
            ids, coords = read_pca(scratch / "pca.h5")
            if ref is None:
                ref = (ids, coords)
                if args.before:
                    bits = last_bits(results, scratch)
            pca["captured"] = float(coords.astype(np.float64).var(0, ddof=1).sum() / total)
            pca.update(tsne_s=float("nan"), grid_s=float("nan"), dpq16=float("nan"),
                       family=float("nan"))
            if args.map:
                grid_csv, pca["tsne_s"], pca["grid_s"] = map_of(scratch / "pca.h5", scratch)
                pca.update(grid_scores(grid_csv, ref[0], ref[1], truth))
            rows.append((label, pca))
            print(f"done {label}: {pca}", flush=True)
    base = rows[0][1]
    load_after = os.getloadavg()
    print(f"\nPCA fit at {base['n_images']:,} selected images, {base['n_components']} components "
          f"(reference: fit_rows={rows[0][0]}; DPQ16 in its PCA space); load average "
          f"{load[0]:.2f} before, {load_after[0]:.2f} after\n")
    print("| fit_rows | rows fitted | workers | PCA time (s) | ratio | CPU time (s) | ratio | "
          "read sample (s) | fit (s) | transform (s) | peak RSS (MB) | variance of all rows captured | DPQ16 of the final grid "
          "| neighbour family share | t-SNE (s) | grid (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in rows:
        print(f"| {label} | {r['rows_fitted']:,} | {r['workers']} | {r['seconds']:.1f} | "
              f"{r['seconds'] / base['seconds']:.2f} | {r['cpu_s']:.1f} | "
              f"{r['cpu_s'] / base['cpu_s']:.2f} | {seconds(r['read sample'])} | {seconds(r['fit'])} | "
              f"{r['transform']:.1f} | {r['max_rss_mb']:.0f} | "
              f"{100 * r['captured']:.2f}% | {r['dpq16']:.3f} | {r['family']:.3f} | "
              f"{r['tsne_s']:.0f} | {r['grid_s']:.0f} |")
    if bits:
        print(f"\n{bits}")


if __name__ == "__main__":
    main()
