"""Triage on the real-image set through a real workflow run (``source: folder``, default config).

    .venv/bin/python bench/realset_triage.py [--set bench/cache/realset] [--method model|entropy]

Runs Snakemake to ``selected.csv`` (the images that go on the map) in bench/cache/realset-run-M/
and prints, per method, a table: distinct photos (originals and "moved" twins) that triage classes
photo, and that are on the map (it or one of its copies selected, since dedup may keep a copy:
this also counts what dedup loses), listing-like graphics classed photo and on the map, and the
classes by category. :func:`triage_figures` is also what
tests/test_realset.py asserts.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from realset import CACHE, build, read_labels  # noqa: E402


def run_workflow(corpus: Path, workdir: Path, overrides: dict | None = None,
                 cores: int = 2) -> Path:
    """A fresh run of the workflow to ``selected.csv`` on the corpus; returns its results folder."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["source"] = "folder"
    config["folder"] = {"path": str(corpus)}
    for key, value in (overrides or {}).items():
        config[key] = {**config.get(key, {}), **value}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [str(Path(sys.executable).with_name("snakemake")), "results/selected.csv",
           "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", str(cores),
           "--quiet", "progress"]
    subprocess.run(cmd, check=True, cwd=workdir)
    return workdir / "results"


def read_rows(path: Path) -> list[dict]:
    """Rows of a workflow CSV (its provenance comment lines skipped)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def triage_figures(corpus: Path, results: Path) -> dict:
    """Distinct photos and graphics on the map, and classes by category, from a finished run."""
    labels = read_labels(corpus / "labels.csv")
    selected = {row["id"] for row in read_rows(results / "selected.csv")}
    classes = {row["id"]: row["class"]
               for path in sorted((results / "triage").glob("*.csv")) for row in read_rows(path)}
    copies_of: dict[str, list[str]] = {}
    for row in read_rows(corpus / "copies.csv"):
        copies_of.setdefault(row["group"], []).append(row["id"])
    distinct = [r["id"] for r in labels if r["kind"] == "photo" and r["category"] != "copy"]
    photo_on = [any(i in selected for i in copies_of.get(image, [image])) for image in distinct]
    photo_kept = [classes.get(image) == "photo" for image in distinct]
    graphics = [r["id"] for r in labels if r["kind"] == "graphic"]
    by_category = Counter((r["category"], classes.get(r["id"], "rejected")) for r in labels)
    return {
        "distinct_photos": len(distinct),
        "photos_on_map": sum(photo_on) / max(1, len(distinct)),
        "photos_missing": [i for i, on in zip(distinct, photo_on) if not on],
        "photos_class_photo": sum(photo_kept) / max(1, len(distinct)),
        "photos_not_photo": {i: classes.get(i, "rejected")
                             for i, kept in zip(distinct, photo_kept) if not kept},
        "graphics": len(graphics),
        "graphics_on_map": sum(i in selected for i in graphics) / max(1, len(graphics)),
        "graphics_through": [i for i in graphics if i in selected],
        "graphics_class_photo": sum(classes.get(i) == "photo" for i in graphics)
                                / max(1, len(graphics)),
        "all_photos_class_photo": (sum(classes.get(r["id"]) == "photo" for r in labels
                                       if r["kind"] == "photo")
                                   / max(1, sum(r["kind"] == "photo" for r in labels))),
        "by_category": by_category,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=CACHE / "realset")
    parser.add_argument("--method", nargs="+", default=["model", "entropy"])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--reuse", action="store_true",
                        help="report on the runs already in bench/cache (no Snakemake)")
    args = parser.parse_args(argv)
    if not (args.set / "labels.csv").is_file():
        build(args.set)
    print("| method | distinct photos | classed photo | on the map (after dedup) "
          "| listing-like graphics | classed photo | on the map |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    details = []
    for method in args.method:
        results = CACHE / f"realset-run-{method}" / "results"
        if not args.reuse:
            results = run_workflow(args.set, CACHE / f"realset-run-{method}",
                                   {"triage": {"method": method}}, args.cores)
        fig = triage_figures(args.set, results)
        print(f"| {method} | {fig['distinct_photos']} | {fig['photos_class_photo']:.4f} | "
              f"{fig['photos_on_map']:.4f} | {fig['graphics']} | "
              f"{fig['graphics_class_photo']:.4f} | {fig['graphics_on_map']:.4f} |")
        details.append((method, fig))
    for method, fig in details:
        print(f"\n{method}: photos not classed photo: {fig['photos_not_photo']}")
        print(f"{method}: photos not on the map: {fig['photos_missing']}")
        print(f"{method}: graphics on the map: {fig['graphics_through']}")
        print(f"{method}: classes by category: "
              + ", ".join(f"{c}/{k} {n}" for (c, k), n in sorted(fig["by_category"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
