"""Run the whole workflow on N demo images and print what each stage costs and how good the map is.

    .venv/bin/python bench/scale.py --images 2000 [--cores 2] [--original 200] [--flas]
                                    [--set prepare.draft_side=96 ...]

The corpus is generated once into bench/cache/corpus-N/ (outside results/, git-ignored) and
read through ``source: folder``; the run happens in bench/cache/run-N/, from triage to viewer,
from scratch each time. Printed, as Markdown tables:

* per rule: jobs, wall time summed over its jobs, CPU time, peak memory (max RSS of its largest
  job), images per second; the whole run's wall clock (from Snakemake's benchmark files);
* quality against the corpus's ground truth (triage, dedup, neighbours' families) and of the
  grid (displacement from the t-SNE map, its ratio to the dense optimum where that fits, and
  DPQ16 in the PCA space) as the pipeline wrote it (refined by FLAS above dense_max images) and
  as its assignment alone was, beside FLAS's on the same features with --flas;
* the rerun after a change of ``tsne.perplexity`` (what ran, how long);
* with --original K: the original 2017 approach to preparation (an ImageMagick process per
  image and pass) timed on K images, as a ratio to ours.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.common import read_csv  # noqa: E402
from vacancy.evaluate import evaluate_run  # noqa: E402

RULE_ORDER = ["inventory", "prepare", "dedup", "select", "pca",
              "tsne", "grid", "viewer", "tile_band", "tiles"]
LOCATIONS = ["sfbay", "newyork", "chicago", "seattle", "austin", "boston", "denver", "miami"]
CONVERT = "/usr/bin/convert-im6.q16"
MOGRIFY = "/usr/bin/mogrify-im6.q16"


def make_corpus(images: int, seed: int) -> Path:
    """The demo corpus of ``images`` files, generated once and kept in bench/cache."""
    from vacancy.sources.demo import generate_corpus

    corpus = REPO / "bench" / "cache" / f"corpus-{images}-seed{seed}"
    if not (corpus / "truth.csv").exists():
        print(f"generating {images} demo images into {corpus} ...", flush=True)
        start = time.perf_counter()
        generate_corpus(corpus / "raw", corpus / "truth.csv.part", LOCATIONS, images, seed)
        (corpus / "truth.csv.part").rename(corpus / "truth.csv")
        print(f"generated in {time.perf_counter() - start:.0f} s", flush=True)
    return corpus


def prepare(workdir: Path, corpus: Path, cores: int, settings: dict | None = None) -> Path:
    """A fresh working dir whose config reads the corpus as ``source: folder``, with
    ``settings`` ({"prepare.draft_side": 96, ...}) changed from config.yaml."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["source"] = "folder"
    config["folder"] = {"path": str(corpus / "raw")}
    for dotted, value in (settings or {}).items():
        *parents, key = dotted.split(".")
        node = config
        for name in parents:
            node = node.setdefault(name, {})
        node[key] = value
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def snakemake(workdir: Path, cores: int, *extra: str) -> float:
    """Run the workflow to its target; return the wall time in seconds."""
    cmd = [str(Path(sys.executable).with_name("snakemake")), "tiles", "--snakefile",
           str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(workdir / "config.yaml"), "--cores", str(cores), *extra, "--quiet", "progress"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=workdir)
    return time.perf_counter() - start


def read_benchmarks(results: Path, since: float = 0.0) -> dict[str, dict]:
    """Per rule (from benchmark files written after ``since``): jobs, summed wall and CPU s,
    largest max RSS in MB."""
    per_rule: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "s": 0.0, "cpu": 0.0, "rss": 0.0})
    for path in (results / "benchmarks").rglob("*.tsv"):
        if path.stat().st_mtime < since:
            continue
        rule = path.parent.name if path.parent.name != "benchmarks" else path.stem
        with open(path) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        entry = per_rule[rule]
        entry["jobs"] += 1
        entry["s"] += float(row["s"])
        entry["cpu"] += float(row.get("cpu_time") or 0)
        rss = row.get("max_rss", "NA")
        entry["rss"] = max(entry["rss"], float(rss) if rss not in ("NA", "") else 0.0)
    return per_rule


def rule_table(per_rule: dict, n: int, total: float, title: str) -> None:
    print(f"\n{title}\n")
    print("| rule | jobs | wall s (sum of jobs) | CPU s | peak RSS MB | images/s |")
    print("|---|---:|---:|---:|---:|---:|")
    # a rule this list does not know yet is still shown, after the known ones
    for rule in RULE_ORDER + sorted(set(per_rule) - set(RULE_ORDER)):
        if rule in per_rule:
            r = per_rule[rule]
            rate = f"{n / r['s']:.0f}" if r["s"] > 0 else "-"
            print(f"| {rule} | {r['jobs']} | {r['s']:.1f} | {r['cpu']:.1f} | {r['rss']:.0f} | {rate} |")
    print(f"| **whole run, wall clock** | | **{total:.1f}** | | | **{n / total:.0f}** |")


def grid_report(results: Path, flas: bool) -> None:
    """Displacement and DPQ16 of the pipeline's grid, of its assignment before refinement, and
    of dense lapjv / FLAS where they fit.

    The assignment alone is recomputed with the grid rule's recorded parameters; its ratio of
    mean displacement to the dense optimum is the block method's target (<= 1.05 at 10,000).
    The refined grid moves images further on purpose, so its ratio is not held to that target.
    """
    import json

    from vacancy.common import sidecar_path
    from vacancy.map.grid import assign, assign_dense, grid_shape
    from vacancy.map.pca import read_pca
    from vacancy.map.quality import grid_quality

    ids, features = read_pca(results / "pca.h5")
    tsne = {r["id"]: (float(r["x"]), float(r["y"])) for r in read_csv(results / "tsne.csv")}
    grid = {r["id"]: (int(r["col"]), int(r["row"])) for r in read_csv(results / "grid.csv")}
    meta = json.loads(sidecar_path(results / "grid.csv").read_text())
    params = meta["params"]
    cols, rows = grid_shape(len(ids))
    points = np.array([tsne[i] for i in ids])
    cell_index = np.array([grid[i][1] * cols + grid[i][0] for i in ids])
    dense = None
    if len(ids) <= 10_000:
        start = time.perf_counter()
        dense = assign_dense(points, cols, rows)
        dense_s = time.perf_counter() - start
    refined = params.get("refine", "none") != "none"
    print("\n| grid quality | mean displacement (cells) | p95 | ratio of means to dense | DPQ16 |")
    print("|---|---:|---:|---:|---:|")

    def row(label: str, index: np.ndarray) -> dict:
        q = grid_quality(features, points, index, cols, rows, dense_index=dense)
        ratio = f"{q['ratio_mean']:.3f}" if "ratio_mean" in q else "n/a (dense does not fit)"
        print(f"| {label} | {q['displacement_mean']:.3f} | {q['displacement_p95']:.3f} | {ratio} "
              f"| {q['dpq16']:.3f} |")
        return q

    how = (f"{params['method']}, refined by {params['refine']} in {meta.get('refine_seconds', 0):.1f} s"
           if refined else f"{params['method']}, not refined")
    ours = row(f"this pipeline's grid ({how})", cell_index)
    if refined:
        assigned, used = assign(points, cols, rows, meta["method"], params.get("block", 16),
                                params["dense_max"], params.get("holes", "free"),
                                params.get("repair_passes", 16))
        row(f"its assignment before refinement ({used})", assigned)
    if dense is not None:
        d = grid_quality(features, points, dense, cols, rows)
        print(f"| dense lapjv optimum ({dense_s:.1f} s) | {d['displacement_mean']:.3f} | "
              f"{d['displacement_p95']:.3f} | 1.000 | {d['dpq16']:.3f} |")
    if flas:
        flas_index, flas_s = run_flas(features, cols, rows)
        f = grid_quality(features, points, flas_index, cols, rows)
        print(f"| FLAS on the PCA features ({flas_s:.1f} s) | {f['displacement_mean']:.3f} | "
              f"{f['displacement_p95']:.3f} | - | {f['dpq16']:.3f} |")
    print(f"\n(DPQ16 from {ours['dpq_queries']} query images against all {len(ids)})")


def run_flas(features: np.ndarray, cols: int, rows: int) -> tuple[np.ndarray, float]:
    """FLAS (PyPI vc_flas) sorting the PCA features directly onto the same grid."""
    from grid import flas_cells  # bench/grid.py, beside this script

    start = time.perf_counter()
    index = flas_cells(features, cols, rows)
    return index, time.perf_counter() - start


def original_preparation(corpus: Path, sample: int, scratch: Path) -> float:
    """ms per image of the 2017 approach: a new ImageMagick process per image and per pass
    (entropy, 64x64 gray, blur 3, blur 8), each on a copy of the file."""
    files = sorted(p for p in (corpus / "raw").rglob("*.jpg") if p.stat().st_size > 1000)[:sample]
    scratch.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for k, path in enumerate(files):
        small = scratch / f"{k}.png"
        subprocess.run([CONVERT, str(path), "-colorspace", "gray", "-format", "%[entropy]", "info:"],
                       check=True, capture_output=True)
        shutil.copyfile(path, scratch / f"{k}.jpg")
        subprocess.run([MOGRIFY, "-format", "png", "-resize", "64x64!", "-colorspace", "RGB",
                        "-colorspace", "gray", str(scratch / f"{k}.jpg")], check=True)
        for sigma in ("3", "8"):
            blurred = scratch / f"{k}-{sigma}.png"
            shutil.copyfile(small, blurred)
            subprocess.run([MOGRIFY, "-blur", f"0x{sigma}", str(blurred)], check=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(scratch)
    return 1000 * elapsed / len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--original", type=int, default=0, metavar="K",
                        help="time the original per-process approach on K images")
    parser.add_argument("--flas", action="store_true", help="compare with FLAS (vc_flas)")
    parser.add_argument("--no-rerun", action="store_true", help="skip the perplexity rerun")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config setting other than config.yaml's, e.g. "
                             "prepare.draft_side=96 (YAML value; repeatable); the run then "
                             "goes to bench/cache/run-N-KEY-VALUE")
    args = parser.parse_args()

    settings = {}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = yaml.safe_load(value)
    name = "-".join([f"run-{args.images}", *(f"{k}-{v}" for k, v in settings.items())])
    corpus = make_corpus(args.images, args.seed)
    workdir = prepare(REPO / "bench" / "cache" / name, corpus, args.cores, settings)
    if settings:
        print(f"settings other than config.yaml: {settings}")
    results = workdir / "results"
    total = snakemake(workdir, args.cores)
    n = sum(1 for _ in read_csv(results / "selected.csv"))
    first = read_benchmarks(results)
    rule_table(first, args.images, total,
               f"## {args.images} demo images ({n} on the map), --cores {args.cores}")

    quality = evaluate_run(results, truth_csv=corpus / "truth.csv")
    t, d, m = quality["triage"], quality["dedup"], quality["map"]
    print("\n| quality against the ground truth | value |")
    print("|---|---:|")
    print(f"| triage: precision / recall of graphics kept off the map | {t['precision']:.3f} / {t['recall']:.3f} |")
    print(f"| dedup: precision / recall of surplus copies removed | {d['precision']:.3f} / {d['recall']:.3f} |")
    print(f"| share of 8 grid neighbours from the same family | {m['neighbour_family_share']:.3f} |")
    print(f"| same, random layout of the same cells | {m['random_layout_share']:.3f} |")
    grid_report(results, args.flas)

    if not args.no_rerun:
        config = yaml.safe_load((workdir / "config.yaml").read_text())
        config["tsne"]["perplexity"] = float(config["tsne"]["perplexity"]) + 10
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        mark = time.time()
        rerun = snakemake(workdir, args.cores)
        rule_table(read_benchmarks(results, since=mark), args.images, rerun,
                   f"### Rerun after tsne.perplexity {config['tsne']['perplexity'] - 10:g} -> "
                   f"{config['tsne']['perplexity']:g}")

    if args.original:
        jobs_ms = 1000 * first["prepare"]["s"] / args.images
        work_ms = 1000 * prepare_seconds(results) / args.images
        theirs_ms = original_preparation(corpus, args.original, workdir / "original")
        print("\n| preparation (entropy + 64x64 gray + blur 3 + blur 8) | ms per image | ratio |")
        print("|---|---:|---:|")
        print(f"| original: an ImageMagick process per image and pass ({args.original} images) "
              f"| {theirs_ms:.1f} | 1x |")
        print(f"| ours: prepare jobs, wall summed over jobs (with each job's start-up) "
              f"| {jobs_ms:.2f} | **{theirs_ms / jobs_ms:.0f}x** |")
        print(f"| ours: the per-image loop inside the jobs (entropy, hash, features, thumbnail) "
              f"| {work_ms:.2f} | **{theirs_ms / work_ms:.0f}x** |")


def prepare_seconds(results: Path) -> float:
    """Seconds the prepare jobs spent in their per-image loop (recorded in each triage CSV's
    provenance), i.e. without Python start-up and imports."""
    return sum(json.loads(path.read_text())["seconds"]
               for path in (results / "triage").glob("*.csv.meta.json"))

if __name__ == "__main__":
    main()
