"""What worker processes in a location's prepare job save when locations differ in size.

    .venv/bin/python bench/prepare_workers.py [--images 8000] [--cores 2] [--passes 2]
                                              [--layouts one skewed even]

``prepare`` is one job per location. Before its threads were the location's share of the cores
(``vacancy.resources.prepare_threads``, worker processes in the job), every job had one process,
so the largest location set the stage's wall time while other cores sat idle. The demo's
locations are all of one size and hide this; real ones are not (a scrape's big cities against
its small towns, or a folder of photos never split). This bench lays the same demo images out
as locations of different sizes (hard links into bench/cache/prepare_workers/):

* ``one``: a single folder of every image;
* ``skewed``: 8 locations holding 50, 20, 10, 8, 5, 4, 2 and 1% of the images (one big city,
  then a tail, as a scrape of several sites gives);
* ``even``: 8 equal locations (the demo's layout): the threads must stay 1 and nothing change.

For each, the workflow runs ``inventory`` and ``prepare`` (``source: folder``, the schema's
defaults, a fresh working dir and no cache every time) with ``--cores``, once as before
(``--set-threads prepare=1``: one process a job) and once as now (the rule's threads),
alternating which goes first, ``--passes`` times. Printed: wall time of the Snakemake run
(means), the slowest prepare job, the sum of the prepare jobs' CPU time (Snakemake's benchmark
files, which undercount short jobs), the largest job's peak RSS (its workers included), the
threads each location got, and whether both wrote the same rows and values (every triage, hash
and reject row; every feature and thumbnail value).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (the features are bitshuffle + LZ4)
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from scale import make_corpus  # noqa: E402

CACHE = REPO / "bench" / "cache" / "prepare_workers"
#: Shares of the images per location, largest first.
LAYOUTS = {"one": [1.0], "skewed": [0.50, 0.20, 0.10, 0.08, 0.05, 0.04, 0.02, 0.01],
           "even": [1 / 8] * 8}
MODES = {"one process a job (before)": ["--set-threads", "prepare=1"], "workers (now)": []}
CSV_OUTPUTS = ("triage", "hashes")


def lay_out(corpus: Path, layout: str) -> tuple[Path, list[str]]:
    """The corpus's images as the layout's locations (hard links), made once; their names."""
    files = sorted((corpus / "raw").rglob("*.*"))
    root = CACHE / f"{corpus.name}-{layout}"
    names = [f"loc{i + 1}" for i in range(len(LAYOUTS[layout]))]
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        bounds = np.round(np.cumsum([0, *LAYOUTS[layout]]) * len(files)).astype(int)
        for name, start, end in zip(names, bounds[:-1], bounds[1:]):
            folder = root / "photos" / name
            folder.mkdir(parents=True)
            for path in files[start:end]:
                os.link(path, folder / f"{path.parent.name}-{path.name}")
        (root / "done").touch()
    return root / "photos", names


def run(photos: Path, names: list[str], cores: int, extra: list[str], workdir: Path) -> float:
    """inventory + prepare of every location in a fresh working dir; wall seconds."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(source="folder", folder={"path": str(photos)})
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    targets = [f"results/triage/{name}.csv" for name in names]
    cmd = [str(Path(sys.executable).with_name("snakemake")), *targets, "--snakefile",
           str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(workdir / "config.yaml"), "--cores", str(cores), *extra, "--quiet", "all"]
    start = time.perf_counter()
    with open(workdir / "snakemake.log", "w") as log:
        subprocess.run(cmd, check=True, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def job_figures(results: Path, names: list[str]) -> dict:
    """Slowest prepare job (s), summed CPU s, largest peak RSS (MB), threads per location."""
    figures = {"slowest": 0.0, "cpu": 0.0, "rss": 0.0, "threads": []}
    for name in names:
        with open(results / "benchmarks" / "prepare" / f"{name}.tsv") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        figures["slowest"] = max(figures["slowest"], float(row["s"]))
        figures["cpu"] += float(row.get("cpu_time") or 0)
        figures["rss"] = max(figures["rss"], float(row["max_rss"]))
        log = (results / "logs" / "prepare" / f"{name}.log").read_text()
        figures["threads"].append(int(re.findall(r"(\d+) workers?\)", log)[-1]))
    return figures


def outputs(results: Path, names: list[str]) -> dict:
    """Every row and value prepare wrote (provenance comments left out: they hold times)."""
    found = {}
    for name in names:
        for kind in CSV_OUTPUTS:
            found[kind, name] = _rows(results / kind / f"{name}.csv")
        found["rejects", name] = _rows(results / "prepare" / f"{name}.rejects.csv")
        for kind in ("features", "thumbs"):
            with h5py.File(results / kind / f"{name}.h5") as h5:
                found[kind, name] = (h5["ids"][:].tolist(), h5[kind][:])
    return found


def _rows(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def same(a: dict, b: dict) -> bool:
    for key, value in a.items():
        if isinstance(value, tuple):
            if value[0] != b[key][0] or not np.array_equal(value[1], b[key][1]):
                return False
        elif value != b[key]:
            return False
    return a.keys() == b.keys()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    args = parser.parse_args()
    corpus = make_corpus(args.images, args.seed)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; {platform.machine()}, "
          f"--cores {args.cores}, {args.images} demo images, {args.passes} passes\n")
    print("| layout | prepare run as | wall s (mean) | slowest prepare job s | prepare CPU s "
          "| largest peak RSS MB | threads per location | same rows and values |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for layout in args.layouts:
        photos, names = lay_out(corpus, layout)
        walls = {mode: [] for mode in MODES}
        last = {}
        for n in range(args.passes):
            order = list(MODES) if n % 2 == 0 else list(reversed(MODES))
            for mode in order:
                workdir = CACHE / "run" / ("before" if MODES[mode] else "now")
                walls[mode].append(run(photos, names, args.cores, MODES[mode], workdir))
                results = workdir / "results"
                last[mode] = (job_figures(results, names), outputs(results, names))
        before, now = (last[mode][1] for mode in MODES)
        equal = "yes" if same(before, now) else "**no**"
        for mode in MODES:
            fig = last[mode][0]
            print(f"| {layout} ({len(names)}) | {mode} | {np.mean(walls[mode]):.1f} "
                  f"| {fig['slowest']:.1f} | {fig['cpu']:.1f} | {fig['rss']:.0f} "
                  f"| {' '.join(map(str, fig['threads']))} | {equal} |")
        ratio = np.mean(walls[list(MODES)[0]]) / np.mean(walls[list(MODES)[1]])
        print(f"| {layout} | before / now | {ratio:.2f}x | | | | | |")


if __name__ == "__main__":
    main()
