"""Run the whole workflow on N demo images and print per-rule time and peak memory.

    .venv/bin/python bench/run.py --images 2000 [--cores 2] [--repeats 1]

The run happens in bench/cache/demo-N/ (outside results/, git-ignored), so the corpus is made
once and reused. Each repeat deletes everything after the corpus and reruns triage to viewer.
Figures come from Snakemake's own benchmark files (wall time, CPU time, max RSS per job); the
quality lines compare triage, dedup and the map with the demo's ground truth.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.evaluate import evaluate_run  # noqa: E402

RULE_ORDER = ["demo", "inventory", "triage", "hashes", "dedup", "select", "features", "pca",
              "tsne", "grid", "viewer", "tiles"]


def prepare(workdir: Path, images: int, cores: int) -> None:
    """Write the run's config: the repository's, with the demo size set."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["demo"]["n_images"] = images
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(workdir: Path, cores: int, *extra: str) -> float:
    """Run the workflow; return its wall time in seconds."""
    cmd = [str(Path(sys.executable).with_name("snakemake")), "tiles", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--cores", str(cores), *extra, "--quiet", "progress"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=workdir)
    return time.perf_counter() - start


def read_benchmarks(results: Path) -> dict[str, dict]:
    """Per rule: jobs, summed wall and CPU seconds, largest max RSS (MB)."""
    per_rule: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "s": 0.0, "cpu": 0.0, "rss": 0.0})
    for path in (results / "benchmarks").rglob("*.tsv"):
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


def clear_after_corpus(results: Path) -> None:
    """Delete every output but the demo corpus, so the next run redoes triage to viewer."""
    for child in results.iterdir():
        if child.name not in ("raw", "demo"):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    (results / "benchmarks").mkdir(exist_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or REPO / "bench" / "cache" / f"demo-{args.images}"
    results = workdir / "results"
    prepare(workdir, args.images, args.cores)
    runs, totals = [], []
    for repeat in range(args.repeats):
        if results.exists() and (results / "demo" / "truth.csv").exists():
            clear_after_corpus(results)
        totals.append(snakemake(workdir, args.cores))
        runs.append(read_benchmarks(results))
    print(f"\n## {args.images} demo images, --cores {args.cores}, median of {args.repeats} run(s)\n")
    print("| rule | jobs | wall s | CPU s | peak RSS MB | images/s |")
    print("|---|---:|---:|---:|---:|---:|")
    n = args.images
    for rule in RULE_ORDER:
        if rule not in runs[-1]:
            continue
        wall = statistics.median(r[rule]["s"] for r in runs if rule in r)
        cpu = statistics.median(r[rule]["cpu"] for r in runs if rule in r)
        rss = max(r[rule]["rss"] for r in runs if rule in r)
        rate = f"{n / wall:.0f}" if wall > 0 else "-"
        print(f"| {rule} | {runs[-1][rule]['jobs']} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {rate} |")
    print(f"| **whole run (wall clock)** | | {statistics.median(totals):.1f} | | | "
          f"{n / statistics.median(totals):.0f} |")
    quality = evaluate_run(results)
    t, d, m = quality["triage"], quality["dedup"], quality["map"]
    print("\n| quality (against the demo's ground truth) | value |")
    print("|---|---:|")
    print(f"| triage: precision / recall of graphics kept off the map | {t['precision']:.3f} / {t['recall']:.3f} |")
    print(f"| dedup: precision / recall of surplus copies removed | {d['precision']:.3f} / {d['recall']:.3f} |")
    print(f"| map: share of 8 grid neighbours from the same family | {m['neighbour_family_share']:.3f} |")
    print(f"| same, random layout of the same cells | {m['random_layout_share']:.3f} |")


if __name__ == "__main__":
    main()
