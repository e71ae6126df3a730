"""What extending a saved layout costs and gives, against a fresh layout of the same images.

    .venv/bin/python bench/extend.py --images 4000 [--fractions 0.1,0.5,1.0] [--cores 2]
    .venv/bin/python bench/extend.py --core 125000:10000 [--cores 2]

Uses bench/scale.py's corpus (bench/cache/corpus-N-seed1/, ``source: folder``) in
bench/cache/extend-N/. First a fresh layout of every selected image (the reference). Then, per
fraction f, a base of |selected| / (1 + f) images (the others held back by an exclude file, spread
evenly over the selection) is laid out fresh and saved (``save_layout``), and the held-back ones
are added with ``layout.mode: extend``. Per fraction, in the same run: the map stages' time (pca,
tsne, grid, regions, viewer, tile_band, tiles: Snakemake's benchmark files, jobs summed) and peak
memory of the extend against the fresh reference; the grid's DPQ16 (PCA space, 1,000 queries) and,
for the added images, the share of their occupied grid neighbours (8 around) of their own demo
family (truth.csv), each against the fresh layout's figure for the same images; and how many
tiles the extend rebuilt. Printed as Markdown.

``--core N:M`` times, in this process and without images, the parts of an extend whose cost
grows with the saved map: embedding M new points into a saved map of N (150-D vectors in 40
clusters, a 2-D map of the same clusters), placing them on the grid, the drift figure and the
tile manifest. It is how the 125,000 + 10,000 case is measured without a 125,000-image run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402  (bench/scale.py: corpus, working dir, benchmark files)
from scale import REPO  # noqa: E402

from vacancy.map.grid import _pca_rows  # noqa: E402
from vacancy.map.quality import dpq  # noqa: E402

MAP_RULES = ("pca", "tsne", "grid", "regions", "viewer", "tile_band", "tiles")


def set_config(workdir: Path, base: dict, **changes) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump({**base, **changes}, sort_keys=False))


def run(workdir: Path, cores: int, target: str = "tiles") -> float:
    import subprocess

    cmd = [str(Path(sys.executable).with_name("snakemake")), target, "--snakefile",
           str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(workdir / "config.yaml"), "--cores", str(cores), "--quiet", "progress"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=workdir, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def map_cost(results: Path, since: float) -> tuple[float, float]:
    """Summed wall s and largest peak RSS (MB) of the map stages' jobs written after ``since``."""
    per_rule = scale.read_benchmarks(results, since)
    chosen = [v for k, v in per_rule.items() if k in MAP_RULES]
    return sum(v["s"] for v in chosen), max((v["rss"] for v in chosen), default=0.0)


def read_grid(results: Path) -> tuple[dict[str, int], int]:
    meta = json.loads((results / "grid.csv.meta.json").read_text())
    cols = int(meta["cols"])
    with open(results / "grid.csv", newline="") as handle:
        return {r["id"]: int(r["row"]) * cols + int(r["col"]) for r in csv.DictReader(handle)}, cols


def quality(results: Path, family: dict[str, str], added: set[str]) -> dict:
    """DPQ16 of the grid, and the family share of the ``added`` images' grid neighbours."""
    cells, cols = read_grid(results)
    ids = list(cells)
    score = dpq(_pca_rows(results / "pca.h5", ids), np.array([cells[i] for i in ids]), cols)
    owner = {c: i for i, c in cells.items()}
    shares = []
    for image_id in added:
        if image_id not in cells or not family.get(image_id):
            continue
        col, row = cells[image_id] % cols, cells[image_id] // cols
        around = [owner.get((row + dy) * cols + col + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                  if (dx or dy) and 0 <= col + dx < cols and row + dy >= 0]
        around = [a for a in around if a]
        if around:
            shares.append(np.mean([family.get(a) == family[image_id] for a in around]))
    return {"dpq16": score, "family": float(np.mean(shares)) if shares else float("nan")}


def core(n_ref: int, n_new: int, cores: int) -> None:
    """The size-dependent parts of an extend on synthetic data (see the module docstring)."""
    import resource
    import tempfile

    from vacancy.map.layout import _target_cells, drift, embed_new, grow, place_new
    from vacancy.map.tile_update import tile_manifest
    from vacancy.map.tiles import TileSpec

    import openTSNE  # noqa: F401  (imported before the clock starts: a rule pays it once anyway)

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3, size=(40, 150)).astype(np.float32)
    spots = rng.uniform(-60, 60, size=(40, 2))
    label = rng.integers(0, 40, n_ref + n_new)
    vectors = centres[label] + rng.normal(size=(n_ref + n_new, 150)).astype(np.float32)
    ref_xy = spots[label[:n_ref]] + rng.normal(scale=4, size=(n_ref, 2))
    cols = int(np.ceil(np.sqrt(n_ref)))
    order = np.argsort(ref_xy[:, 0], kind="stable")  # a valid grid of the map: columns by x,
    cells = np.empty(n_ref, dtype=np.int64)           # each column sorted by y
    rows = -(-n_ref // cols)
    for c in range(cols):
        members = order[c * rows:(c + 1) * rows]
        members = members[np.argsort(ref_xy[members, 1], kind="stable")]
        cells[members] = np.arange(len(members)) * cols + c
    timings = {}
    start = time.perf_counter()
    new_xy = embed_new(vectors[:n_ref], ref_xy, vectors[n_ref:], seed=42, n_jobs=cores)
    timings["t-SNE transform"] = time.perf_counter() - start
    start = time.perf_counter()
    new_cols, new_rows = grow(cols, rows, n_ref, n_new, 4)
    wide = (cells // cols) * new_cols + cells % cols
    taken = np.zeros(new_cols * new_rows, dtype=bool)
    taken[wide] = True
    placed = place_new(_target_cells(ref_xy, wide, new_xy, new_cols), np.flatnonzero(~taken),
                       new_cols)
    timings["grid placement"] = time.perf_counter() - start
    start = time.perf_counter()
    all_cells = np.concatenate([wide, placed])
    mask = np.r_[np.zeros(n_ref, bool), np.ones(n_new, bool)]
    figures = drift(vectors, all_cells, new_cols, mask)
    timings["drift (DPQ16 x2)"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "grid.csv"
        grid.write_text("id,col,row\n" + "".join(f"i{k},{c % new_cols},{c // new_cols}\n"
                                                  for k, c in enumerate(all_cells)))
        (Path(tmp) / "grid.csv.meta.json").write_text(json.dumps({"cols": new_cols,
                                                                  "rows": new_rows}))
        start = time.perf_counter()
        manifest = tile_manifest(grid, TileSpec(new_cols, new_rows, 64, 256, (24, 24, 24), 85))
        timings["tile manifest"] = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{n_new} new points into a saved map of {n_ref} ({cols}x{rows} -> "
          f"{new_cols}x{new_rows} cells, {len(manifest)} tiles), {cores} threads, load average "
          f"{os.getloadavg()[0]:.1f}; peak RSS {peak:.0f} MB; drift {figures}\n")
    print("| step | s |\n|---|---:|")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.1f} |")
    print(f"| total | {sum(timings.values()):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--fractions", default="0.1,0.5,1.0")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--core", help="N:M, synthetic: M new points into a saved map of N")
    args = parser.parse_args()
    if args.core:
        n_ref, n_new = (int(x) for x in args.core.split(":"))
        return core(n_ref, n_new, args.cores)

    corpus = scale.make_corpus(args.images, 1)
    workdir = REPO / "bench" / "cache" / f"extend-{args.images}"
    if not (workdir / "config.yaml").exists():
        scale.prepare(workdir, corpus, args.cores)
    base = yaml.safe_load((workdir / "config.yaml").read_text())
    base["tiles"] = {**base["tiles"], "jobs": args.cores}
    results = workdir / "results"
    with open(corpus / "truth.csv", newline="") as handle:
        family = {r["id"]: r["family"] for r in csv.DictReader(handle)}

    set_config(workdir, base)
    run(workdir, args.cores, "select")
    with open(results / "selected.csv", newline="") as handle:
        selected = [r["id"] for r in csv.DictReader(handle)]
    mark = time.time()
    fresh_wall = run(workdir, args.cores)
    fresh_s, fresh_rss = map_cost(results, mark)
    fresh_grid = results / "fresh-grid"
    fresh_grid.mkdir(exist_ok=True)
    for name in ("grid.csv", "grid.csv.meta.json", "pca.h5"):
        (fresh_grid / name).write_bytes((results / name).read_bytes())

    rows = []
    for f in (float(x) for x in args.fractions.split(",")):
        n_held = round(len(selected) * f / (1 + f))
        held = [selected[int(i)] for i in np.linspace(0, len(selected) - 1, n_held)]
        (workdir / "held.txt").write_text("\n".join(held) + "\n")
        layout = f"layout-{f}"
        set_config(workdir, base, exclude_file="held.txt", layout={"mode": "fresh", "dir": layout})
        run(workdir, args.cores)
        save_s = run(workdir, args.cores, "save_layout")
        set_config(workdir, base, layout={"mode": "extend", "dir": layout})
        mark = time.time()
        run(workdir, args.cores)
        ext_s, ext_rss = map_cost(results, mark)
        log = (results / "logs" / "tiles.log").read_text()
        rebuilt = re.search(r"rebuilt (\d+) of (\d+) tiles", log)
        with open(results / "grid.csv", newline="") as handle:
            added = {r["id"] for r in csv.DictReader(handle) if r.get("added") == "1"}
        q_ext = quality(results, family, added)
        q_fresh = quality(fresh_grid, family, added)
        rows.append((f, len(selected) - n_held, len(added), fresh_s, ext_s, fresh_rss, ext_rss,
                     q_fresh, q_ext, rebuilt.group(1, 2) if rebuilt else ("?", "?"), save_s))
        set_config(workdir, base)  # the next fraction's base run is fresh again

    print(f"\n{len(selected)} selected images of {args.images} (demo corpus, source: folder), "
          f"{args.cores} cores, load average {os.getloadavg()[0]:.1f}; fresh run of all "
          f"{fresh_wall:.0f} s wall\n")
    print("| added | base | new | map stages s: fresh / extend / ratio | peak MB: fresh / extend "
          "/ ratio | DPQ16: fresh / extend / ratio | new images' family share: fresh / extend "
          "/ ratio | tiles rebuilt | save_layout s |")
    print("|---:|---:|---:|---|---|---|---|---|---:|")
    for f, n_base, n_new, fs, es, fr, er, qf, qe, (nr, nt), ss in rows:
        print(f"| {f:.0%} | {n_base} | {n_new} | {fs:.1f} / {es:.1f} / {es / fs:.2f} | "
              f"{fr:.0f} / {er:.0f} / {er / fr:.2f} | {qf['dpq16']:.4f} / {qe['dpq16']:.4f} / "
              f"{qe['dpq16'] / qf['dpq16']:.3f} | {qf['family']:.3f} / {qe['family']:.3f} / "
              f"{qe['family'] / qf['family']:.3f} | {nr} of {nt} | {ss:.1f} |")


if __name__ == "__main__":
    main()
