"""What extending a saved layout costs and gives, against a fresh layout of the same images.

    .venv/bin/python bench/extend.py --images 4000 [--fractions 0.1,0.5,1.0] [--cores 2]
    .venv/bin/python bench/extend.py --core 125000:10000 [--cores 2]

    .venv/bin/python bench/extend.py --images 4000 --reserves 0,0.1

Uses bench/scale.py's corpus (bench/cache/corpus-N-seed1/, ``source: folder``) in
bench/cache/extend-N/. First a fresh layout of every selected image (the reference), once per
``layout.reserve`` of ``--reserves``. Then, per fraction f and reserve, a base of about
|selected| / (1 + f) images is laid out fresh and saved (``save_layout``), and the held-back ones
are added with ``layout.mode: extend``. Held back means *not in the folder*, as before a later
scrape: the run reads a folder of hard links to the corpus files (bench/cache/extend-N/source/,
each location's manifest.csv rewritten to list only the linked files), and the held-back files
are linked into the same location folders for the extend. Images are held back with their
copies (the demo's truth.csv ``duplicate_of``, whole groups), so ``dedup`` finds the same
keepers in the base and the extend and no saved image is dropped when its copy returns.
Per fraction, in the same run: the map stages' time (pca, tsne, grid, regions, viewer,
tile_band, tiles: Snakemake's benchmark files, jobs summed) and peak memory of the extend against
the fresh reference; the grid's DPQ16 (PCA space, 1,000 queries) and, for the added images, the
share of their occupied grid neighbours (8 around) of their own demo family (truth.csv), each
against the fresh reserve-0 layout's figure for the same images; saved images lost, grid growth,
and how many tiles the extend rebuilt. Then the reserve's own cost: DPQ16 and family share (of
all images) of each fresh reference against reserve 0. Printed as Markdown.

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
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402  (bench/scale.py: corpus, working dir, benchmark files)
from scale import REPO  # noqa: E402

from vacancy.common import link_or_copy  # noqa: E402
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


def quality(results: Path, family: dict[str, str], added) -> dict:
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


def link_source(corpus_raw: Path, dest: Path, ids) -> None:
    """Make ``dest`` a folder source holding exactly ``ids`` (``location/filename``): hard links
    to the corpus files, and each location's manifest.csv cut to the files present (a listed file
    that is missing would be a reject, not a later arrival). Links already there stay; on a
    filesystem without hard links the files are copied (:func:`vacancy.common.link_or_copy`)."""
    by_loc = defaultdict(set)
    for image_id in ids:
        loc, name = image_id.split("/", 1)
        by_loc[loc].add(name)
    for loc_dir in sorted(p for p in corpus_raw.iterdir() if p.is_dir()):
        out = dest / loc_dir.name
        out.mkdir(parents=True, exist_ok=True)
        for name in by_loc[loc_dir.name]:
            if not (out / name).exists():
                link_or_copy(loc_dir / name, out / name)
        present = {p.name for p in out.iterdir()}
        with open(loc_dir / "manifest.csv", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [r for r in reader if r["filename"] in present]
            fields = reader.fieldnames
        with open(out / "manifest.csv.part", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fields)
            writer.writeheader()
            writer.writerows(rows)
        (out / "manifest.csv.part").rename(out / "manifest.csv")


def hold_back(selected: list[str], truth: list[dict], fraction: float) -> set[str]:
    """Ids to keep out of the base: about ``fraction / (1 + fraction)`` of the selection, spread
    evenly over it, each with its whole duplicate group (original and copies, by truth.csv)."""
    root = {r["id"]: r["duplicate_of"] or r["id"] for r in truth}
    group = defaultdict(set)
    for image_id, r in root.items():
        group[r].add(image_id)
    n_held = round(len(selected) * fraction / (1 + fraction))
    held = set()
    for i in np.linspace(0, len(selected) - 1, n_held):
        held |= group[root[selected[int(i)]]]
    return held


def fresh_reference(workdir: Path, base: dict, cores: int, reserve: float) -> tuple:
    """A fresh layout of the whole corpus with ``reserve``: its map stages' s and peak MB, and a
    copy of its grid and PCA vectors for the comparisons."""
    results = workdir / "results"
    set_config(workdir, base, layout={"mode": "fresh", "dir": "layout", "reserve": reserve})
    mark = time.time()
    wall = run(workdir, cores)
    seconds, rss = map_cost(results, mark)
    keep = results / f"fresh-grid-{reserve}"
    keep.mkdir(exist_ok=True)
    for name in ("grid.csv", "grid.csv.meta.json", "pca.h5"):
        shutil.copyfile(results / name, keep / name)
    return keep, seconds, rss, wall


def extend_case(workdir: Path, base: dict, cores: int, corpus: Path, everything: set[str],
                held: set[str], f: float, reserve: float) -> dict:
    """Lay out the base (``everything`` but ``held``) fresh with ``reserve`` and save it, link the
    held-back files into the same location folders and extend; the extend's figures."""
    results = workdir / "results"
    source = workdir / "source"
    if source.exists():
        shutil.rmtree(source)
    link_source(corpus / "raw", source, everything - held)
    folder = {"path": str(source)}
    layout = {"mode": "fresh", "dir": f"layout-{f}-{reserve}", "reserve": reserve}
    set_config(workdir, base, folder=folder, layout=layout)
    run(workdir, cores)
    save_s = run(workdir, cores, "save_layout")
    saved, _ = read_grid(results)
    link_source(corpus / "raw", source, everything)  # the later scrape arrives
    set_config(workdir, base, folder=folder, layout={**layout, "mode": "extend"})
    mark = time.time()
    run(workdir, cores)
    ext_s, ext_rss = map_cost(results, mark)
    rebuilt = re.search(r"rebuilt (\d+) of (\d+) tiles",
                        (results / "logs" / "tiles.log").read_text())
    with open(results / "grid.csv", newline="") as handle:
        added = {r["id"] for r in csv.DictReader(handle) if r.get("added") == "1"}
    meta = json.loads((results / "grid.csv.meta.json").read_text())
    return {"base": len(saved), "added": added, "lost": meta["n_removed"], "save_s": save_s,
            "s": ext_s, "rss": ext_rss, "results": results,
            "grew": f"{meta['saved_cols']}x{meta['saved_rows']} -> {meta['cols']}x{meta['rows']}",
            "rebuilt": rebuilt.group(1, 2) if rebuilt else ("?", "?")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--fractions", default="0.1,0.5,1.0")
    parser.add_argument("--reserves", default="0", help="layout.reserve values, e.g. 0,0.1")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--core", help="N:M, synthetic: M new points into a saved map of N")
    args = parser.parse_args()
    if args.core:
        n_ref, n_new = (int(x) for x in args.core.split(":"))
        return core(n_ref, n_new, args.cores)

    corpus = scale.make_corpus(args.images, 1)
    workdir = REPO / "bench" / "cache" / f"extend-{args.images}"
    # always a new working dir from the repository's config.yaml: one left by an earlier run
    # would keep that run's settings (defaults since changed, a hold-back, extend mode)
    scale.prepare(workdir, corpus, args.cores)
    base = yaml.safe_load((workdir / "config.yaml").read_text())
    base["tiles"] = {**base["tiles"], "jobs": args.cores}
    results = workdir / "results"
    with open(corpus / "truth.csv", newline="") as handle:
        truth = list(csv.DictReader(handle))
    family = {r["id"]: r["family"] for r in truth}
    reserves = [float(x) for x in args.reserves.split(",")]
    if 0.0 not in reserves:
        reserves.insert(0, 0.0)  # the fresh reference every case is compared with

    set_config(workdir, base)
    run(workdir, args.cores, "select")
    with open(results / "selected.csv", newline="") as handle:
        selected = [r["id"] for r in csv.DictReader(handle)]
    fresh = {r: fresh_reference(workdir, base, args.cores, r) for r in reserves}
    fresh_grid, fresh_s, fresh_rss, fresh_wall = fresh[0.0]
    everything = set(family)

    rows = []
    for f in (float(x) for x in args.fractions.split(",")):
        held = hold_back(selected, truth, f)
        for reserve in reserves:
            case = extend_case(workdir, base, args.cores, corpus, everything, held, f, reserve)
            q_ext = quality(case["results"], family, case["added"])
            q_fresh = quality(fresh_grid, family, case["added"])
            rows.append((f, reserve, case, q_fresh, q_ext))
            print(f"done: added {f:.0%}, reserve {reserve}: {q_fresh} / {q_ext}", flush=True)

    print(f"\n{len(selected)} selected images of {args.images} (demo corpus, source: folder), "
          f"{args.cores} cores, load average {os.getloadavg()[0]:.1f}; fresh run of all "
          f"{fresh_wall:.0f} s wall\n")
    print("| added | reserve | base | new | saved lost | grid | map stages s: fresh / extend / "
          "ratio | peak MB: fresh / extend / ratio | DPQ16: fresh / extend / ratio | new images' "
          "family share: fresh / extend / ratio | tiles rebuilt | save_layout s |")
    print("|---:|---:|---:|---:|---:|---|---|---|---|---|---:|---:|")
    for f, reserve, c, qf, qe in rows:
        nr, nt = c["rebuilt"]
        print(f"| {f:.0%} | {reserve:.0%} | {c['base']} | {len(c['added'])} | {c['lost']} | "
              f"{c['grew']} | {fresh_s:.1f} / {c['s']:.1f} / {c['s'] / fresh_s:.2f} | "
              f"{fresh_rss:.0f} / {c['rss']:.0f} / {c['rss'] / fresh_rss:.2f} | "
              f"{qf['dpq16']:.4f} / {qe['dpq16']:.4f} / {qe['dpq16'] / qf['dpq16']:.3f} | "
              f"{qf['family']:.3f} / {qe['family']:.3f} / {qe['family'] / qf['family']:.3f} | "
              f"{nr} of {nt} | {c['save_s']:.1f} |")

    print("\nThe reserve's cost to a fresh layout of all images (family share of every image):\n")
    print("| reserve | grid | spare cells | DPQ16 / ratio to reserve 0 | family share / ratio |")
    print("|---:|---|---:|---|---|")
    q0 = quality(fresh_grid, family, selected)
    for r, (grid_dir, *_rest) in fresh.items():
        meta = json.loads((grid_dir / "grid.csv.meta.json").read_text())
        q = quality(grid_dir, family, selected)
        spare = meta["cols"] * meta["rows"] - meta["n_images"]
        print(f"| {r:.0%} | {meta['cols']}x{meta['rows']} | {spare} "
              f"({spare / (meta['cols'] * meta['rows']):.1%}) | {q['dpq16']:.4f} / "
              f"{q['dpq16'] / q0['dpq16']:.3f} | {q['family']:.3f} / "
              f"{q['family'] / q0['family']:.3f} |")


if __name__ == "__main__":
    main()
