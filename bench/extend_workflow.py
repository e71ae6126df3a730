"""A living map end to end: real Snakemake runs of a fresh layout, save_layout, then a later
scrape of M more images added with ``layout.mode: extend`` (issue 14).

    .venv/bin/python bench/extend_workflow.py --images 20000 --add 2000 [--cores 2]

The corpus is bench/scale.py's (bench/cache/corpus-N-seed1/, generated once, reused if there:
``--images 125000`` reads the existing 125,000-image corpus). The run happens in
bench/cache/extend-workflow-N-M/, from scratch each time: its ``photos/`` folder holds hard
links (copies where links are impossible) to every corpus file except M held back (spread
evenly over the sorted files of all locations), read as ``source: folder``. So the fresh layout
is of N - M images. After ``tiles`` and ``save_layout``, the M files are linked into their own
location folders, as a real later scrape adds them, and ``tiles`` runs again with
``layout.mode: extend``: Snakemake alone decides what is stale (the folders changed, so every
inventory and prepare job reruns; prepare reuses its previous rows).

Printed, as Markdown: per rule, jobs, wall s summed over jobs and peak RSS, for the fresh run and
the extend (Snakemake's benchmark files); the wall clock of each whole run and their ratio; how
many images prepare reused and measured; tiles rebuilt of all; and the saved layout's images
that moved or left the map (both must be 0).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402  (bench/scale.py: corpus, working dir, snakemake, benchmark files)
from scale import REPO, RULE_ORDER  # noqa: E402

from vacancy.common import IMAGE_SUFFIXES, link_or_copy  # noqa: E402


def save_layout(workdir: Path, cores: int) -> float:
    """Run the save_layout target (scale.snakemake runs ``tiles`` only); the wall time in s."""
    cmd = [str(Path(sys.executable).with_name("snakemake")), "save_layout", "--snakefile",
           str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(workdir / "config.yaml"), "--cores", str(cores), "--quiet", "progress"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=workdir)
    return time.perf_counter() - start


def corpus_files(raw: Path) -> list[Path]:
    """Every image file of the corpus, sorted by location and name."""
    return sorted(p for location in sorted(raw.iterdir()) if location.is_dir()
                  for p in location.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def held_back(files: list[Path], add: int) -> set[Path]:
    """``add`` files spread evenly over the sorted list: the later scrape."""
    if not 0 < add < len(files):
        raise SystemExit(f"--add must be between 1 and {len(files) - 1}, not {add}")
    return {files[int(i)] for i in np.linspace(0, len(files) - 1, add)}


def link_files(files, raw: Path, photos: Path) -> None:
    """Hard-link ``files`` into ``photos`` under their location folder (a scrape's arrival)."""
    for path in files:
        link_or_copy(path, photos / path.relative_to(raw))


def grid_cells(grid_csv: Path) -> dict[str, tuple[str, str]]:
    with open(grid_csv, newline="") as handle:
        return {r["id"]: (r["col"], r["row"]) for r in csv.DictReader(handle)}


def prepare_reuse(results: Path) -> tuple[int, int]:
    """(reused, total) summed over the prepare logs of the last run."""
    reused = total = 0
    for log in (results / "logs" / "prepare").glob("*.log"):
        found = re.search(r"reused (\d+) of (\d+) images", log.read_text())
        if found:
            reused, total = reused + int(found[1]), total + int(found[2])
    return reused, total


def reuse_cost(workdir: Path, sample: int) -> tuple[float, float, int]:
    """ms per image of prepare_location on the first ``sample`` images of the largest location,
    measured from scratch and then with every row reused from its cache (same process, one
    after the other: a ratio under the same load). Returns (measured ms, reused ms, images)."""
    from vacancy.common import iter_csv, write_csv
    from vacancy.images.prepare import prepare_location
    from vacancy.sources.inventory import INVENTORY_COLUMNS

    results = workdir / "results"
    location = max((results / "inventory").glob("*.csv"), key=lambda p: p.stat().st_size).stem
    rows = [r for _, r in zip(range(sample), iter_csv(results / "inventory" / f"{location}.csv"))]
    scratch = workdir / "reuse-cost"
    inventory = scratch / "inventory.csv"
    write_csv(inventory, rows, INVENTORY_COLUMNS)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    settings = dict(graphic_below=config["triage"]["graphic_below"],
                    photo_above=config["triage"]["photo_above"], method=config["triage"]["method"],
                    score_graphic_below=config["triage"]["score_graphic_below"],
                    score_photo_above=config["triage"]["score_photo_above"],
                    hash_size=config["dedup"]["hash_size"], color=config["features"]["color"],
                    batch_size=config["features"]["batch_size"], cell_px=config["tiles"]["cell_px"],
                    background=config["tiles"]["background"], draft=config["prepare"]["draft"],
                    draft_side=config["prepare"]["draft_side"], max_pixels=config["max_pixels"])
    outputs = [scratch / n for n in ("t.csv", "h.csv", "f.h5", "th.h5", "r.csv")]
    times = []
    for reuse in (None, results / "cache" / "prepare" / location):
        start = time.perf_counter()
        prepare_location(inventory, *outputs, **settings, reuse_dir=reuse)
        times.append(1000 * (time.perf_counter() - start) / len(rows))
    shutil.rmtree(scratch)
    return times[0], times[1], len(rows)


def rule_rows(fresh: dict, extend: dict) -> None:
    """Per rule: jobs, wall s summed over jobs, peak RSS, fresh beside extend."""
    print("| rule | fresh: jobs | wall s | peak RSS MB | extend: jobs | wall s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    known = [*RULE_ORDER[:7], "regions", *RULE_ORDER[7:]]  # scale.py's order, and regions
    for rule in dict.fromkeys(known + sorted(set(fresh) | set(extend))):
        if rule not in fresh and rule not in extend:
            continue
        cells = []
        for runs in (fresh, extend):
            r = runs.get(rule)
            cells += [str(r["jobs"]), f"{r['s']:.1f}", f"{r['rss']:.0f}"] if r else ["0", "-", "-"]
        print(f"| {rule} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20000, help="corpus size (N)")
    parser.add_argument("--add", type=int, default=2000, help="images of the later scrape (M)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse-sample", type=int, default=2000,
                        help="images of one location timed measured and reused, in this process")
    args = parser.parse_args()

    corpus = scale.make_corpus(args.images, args.seed)
    raw = corpus / "raw"
    workdir = scale.prepare(REPO / "bench" / "cache" / f"extend-workflow-{args.images}-{args.add}",
                            corpus, args.cores)
    files = corpus_files(raw)
    later = held_back(files, args.add)
    photos = workdir / "photos"
    link_files([p for p in files if p not in later], raw, photos)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["folder"] = {"path": str(photos)}
    config["tiles"] = {**config["tiles"], "jobs": args.cores}
    config["layout"] = {"mode": "fresh", "dir": "layout"}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    results = workdir / "results"

    mark = time.time()
    fresh_wall = scale.snakemake(workdir, args.cores)
    fresh = scale.read_benchmarks(results, mark)
    fresh_n = sum(1 for _ in open(results / "selected.csv")) - 1
    save_wall = save_layout(workdir, args.cores)
    saved = grid_cells(workdir / "layout" / "grid.csv")

    link_files(sorted(later), raw, photos)  # the later scrape arrives
    config["layout"]["mode"] = "extend"
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    time.sleep(1.1)  # benchmark files are told apart by mtime: the extend's are newer
    mark = time.time()
    extend_wall = scale.snakemake(workdir, args.cores)
    extend = scale.read_benchmarks(results, mark)

    now = grid_cells(results / "grid.csv")
    moved = sum(1 for i, cell in saved.items() if i in now and now[i] != cell)
    left = sum(1 for i in saved if i not in now)
    reused, total = prepare_reuse(results)
    tiles_log = (results / "logs" / "tiles.log").read_text()
    rebuilt = re.search(r"rebuilt (\d+) of (\d+) tiles", tiles_log)
    dedup_meta = json.loads((results / "duplicates.csv.meta.json").read_text())

    print(f"\n## A living map: {args.images - args.add} images laid out fresh, {args.add} added "
          f"(demo corpus of {args.images}, source: folder), --cores {args.cores}, load average "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    rule_rows(fresh, extend)
    print("\n| figure | value |\n|---|---:|")
    print(f"| fresh run (`tiles`), wall clock s | {fresh_wall:.1f} |")
    print(f"| save_layout, wall clock s | {save_wall:.1f} |")
    print(f"| extend run (`tiles`, layout.mode: extend), wall clock s | {extend_wall:.1f} |")
    print(f"| extend / fresh wall clock | **{extend_wall / fresh_wall:.2f}** |")
    print(f"| images on the map: fresh / after the extend | {fresh_n} / {len(now)} |")
    print(f"| images placed by the extend | {len(now) - (len(saved) - left)} |")
    print(f"| prepare: images reused / measured, of all | {reused} / {total - reused}, of {total} |")
    print(f"| dedup: copies removed after the extend | {dedup_meta.get('n_rows', '?')} |")
    print(f"| tiles rebuilt, of all | "
          f"{f'{rebuilt[1]} of {rebuilt[2]}' if rebuilt else '? (no count in tiles.log)'} |")
    print(f"| saved images moved (must be 0) | {moved} |")
    print(f"| saved images gone from the map (must be 0) | {left} |")
    measured_ms, reused_ms, sample = reuse_cost(workdir, args.reuse_sample)
    print(f"| prepare, per image, {sample} images of one location: measured / reused ms (ratio) "
          f"| {measured_ms:.2f} / {reused_ms:.2f} ({reused_ms / measured_ms:.2f}) |")
    if moved or left:
        sys.exit("a saved image moved or left the map")


if __name__ == "__main__":
    main()
