"""The map stages at a million images: neighbours, t-SNE, grid, viewer and tiles on synthetic data.

    nice .venv/bin/python bench/million.py --n 250000          # then --n 1000000 (about an hour)
    nice .venv/bin/python bench/million.py --n 1000000 --out /tmp/m --stages neighbours,tsne,grid

No images are needed: the input is what ``pca`` would write, ``--n`` synthetic 150-D vectors
with cluster structure (``--clusters`` Gaussian clusters of uneven size and spread, in 8
locations), a ``selected.csv`` and one thumbnail file per location (64 x 64 RGB, the colour of the
image's cluster plus noise, so the tiles compress as real ones roughly would). The inputs go to
bench/cache/million-N/ and are made once; the stages' outputs go there too, or to ``--out`` (then
the inputs are only read, so a shared cache stays as it is).

Each stage then runs the workflow's own function with the schema's default settings in a child
process of its own (so that its peak RSS is its own), as its rule calls it on this 2-core machine
(a rule's threads are capped by the cores), in order: ``neighbours`` (``tsne.neighbours`` per
point, 2 threads), ``tsne`` (from the saved neighbours, 2 threads), ``grid`` (blocks on the
rule's 2 threads + FLAS refinement), ``regions``, ``viewer`` (with the regions, as the rule),
the ``tile_band`` jobs one after the other, ``tiles``. Printed: time and peak RSS per stage,
whether it fits in 8 GB, and the load average. The CPU seconds (all of a stage's threads) say
more than the wall time when other work shares the 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.common import config_defaults  # noqa: E402

DEFAULTS = config_defaults()
STAGES = ["neighbours", "tsne", "grid", "regions", "viewer", "tile_band", "tiles"]
LOCATIONS = ["sfbay", "newyork", "chicago", "seattle", "austin", "boston", "denver", "miami"]
DIMS = 150
#: the threads each rule gets here: neighbours and tsne ask for 8, grid for 2, and a run on this
#: 2-core machine (``--cores 2``) caps them all at 2
THREADS = 2


def make_inputs(out: Path, n: int, clusters: int, seed: int = 0) -> None:
    """pca.h5, selected.csv and thumbs/<location>.h5 for n synthetic images, made once."""
    import h5py

    if (out / "done").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    label = np.sort(rng.choice(clusters, n, p=rng.dirichlet(np.ones(clusters) * 2)))
    label = label[rng.permutation(n)]
    centres = rng.normal(size=(clusters, DIMS)).astype(np.float32) * 3
    spread = rng.uniform(0.5, 1.5, clusters).astype(np.float32)
    colours = rng.integers(30, 225, size=(clusters, 3))
    location = np.minimum((np.arange(n) * len(LOCATIONS)) // n, len(LOCATIONS) - 1)
    ids = [f"{LOCATIONS[loc]}/{i:07d}.jpg" for i, loc in enumerate(location)]
    with h5py.File(out / "pca.h5", "w") as h5:
        h5.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        pca = h5.create_dataset("pca", shape=(n, DIMS), dtype="float32")
        for a in range(0, n, 100_000):
            b = min(a + 100_000, n)
            pca[a:b] = centres[label[a:b]] + rng.normal(size=(b - a, DIMS)).astype(np.float32) \
                * spread[label[a:b], None]
    with open(out / "selected.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "location", "filename", "class", "title", "price", "width",
                         "height"])
        for i, id_ in enumerate(ids):
            loc, name = id_.split("/")
            writer.writerow([id_, loc, name, "photo", f"listing {i}", f"${1000 + i % 3000}", 600,
                             450])
    (out / "thumbs").mkdir(exist_ok=True)
    for k, loc in enumerate(LOCATIONS):
        rows = np.flatnonzero(location == k)
        with h5py.File(out / "thumbs" / f"{loc}.h5", "w") as h5:
            h5.create_dataset("ids", data=np.array([ids[i] for i in rows], dtype=object),
                              dtype=h5py.string_dtype())
            thumbs = h5.create_dataset("thumbs", shape=(len(rows), 64, 64, 3), dtype="uint8",
                                       chunks=(64, 64, 64, 3), compression="lzf")
            for a in range(0, len(rows), 4096):
                part = rows[a:a + 4096]
                noise = rng.integers(-20, 21, size=(len(part), 64, 64, 3))
                thumbs[a:a + len(part)] = np.clip(colours[label[part], None, None, :] + noise,
                                                  0, 255).astype(np.uint8)
    (out / "done").write_text("ok")


def stage(name: str, inputs: Path, out: Path, band: int = 0) -> None:
    """Run one stage in this (child) process, as its rule's script would: the generated inputs
    (``pca.h5``, ``selected.csv``, ``thumbs/``) are read from ``inputs``, the rest from ``out``."""
    from vacancy.common import setup_logging

    setup_logging(str(out / "logs" / f"{name}{band if name == 'tile_band' else ''}.log"))
    tiles = DEFAULTS["tiles"]
    if name == "neighbours":
        from vacancy.map.tsne import run_neighbours

        run_neighbours(inputs / "pca.h5", out / "neighbours.npz", DEFAULTS["tsne"]["neighbours"],
                       DEFAULTS["tsne"]["seed"], n_jobs=THREADS)
    elif name == "tsne":
        from vacancy.map.tsne import run_tsne
        from vacancy.map.tsne_settings import resolve_settings

        run_tsne(inputs / "pca.h5", out / "tsne.csv", resolve_settings(**DEFAULTS["tsne"]),
                 n_jobs=THREADS, neighbours_npz=out / "neighbours.npz")
    elif name == "grid":
        from vacancy.map.grid import run_grid

        run_grid(out / "tsne.csv", out / "grid.csv", pca_h5=inputs / "pca.h5",
                 reserve=DEFAULTS["layout"]["reserve"], workers=THREADS, **DEFAULTS["grid"])
    elif name == "regions":
        from vacancy.map.regions import run_regions

        run_regions(inputs / "pca.h5", out / "grid.csv", out / "regions.csv",
                    **DEFAULTS["regions"])
    elif name == "viewer":
        from vacancy.map.tiles import TileSpec
        from vacancy.map.viewer import build_site

        layout = TileSpec.for_grid(out / "grid.csv", tiles).meta()
        build_site(layout, out / "grid.csv", inputs / "selected.csv", out / "site",
                   REPO / "node_modules/leaflet/dist",
                   pmtiles_js=REPO / "node_modules/pmtiles/dist/pmtiles.js",
                   regions_csv=out / "regions.csv")
    elif name == "tile_band":
        from vacancy.map.tiles import TileSpec, render_band

        render_band(out / "grid.csv", out / "tile-bands" / str(band),
                    TileSpec.for_grid(out / "grid.csv", tiles), band, tiles["jobs"],
                    sorted((inputs / "thumbs").glob("*.h5")))
    elif name == "tiles":
        from vacancy.map.tiles import TileSpec, assemble_tiles

        bands = [out / "tile-bands" / str(b) for b in range(tiles["jobs"])]
        assemble_tiles(bands, out / "tiles", TileSpec.for_grid(out / "grid.csv", tiles))
    else:
        raise SystemExit(f"unknown stage {name!r}: one of {', '.join(STAGES)}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"max_rss_mb": peak_rss_mb(), "cpu_s": usage.ru_utime + usage.ru_stime}))


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM, which starts afresh at exec (``ru_maxrss`` does not:
    Linux carries it over from the forking parent, whose memory would be counted)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stage(name: str, inputs: Path, out: Path, band: int = 0) -> dict:
    """One stage in a child process: its wall time and peak RSS."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--stage", name, "--band", str(band),
                           "--inputs", str(inputs), "--dir", str(out)], check=True,
                          capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - start
    return result


def load() -> str:
    """The 1, 5 and 15 minute load averages: other work shares this machine's 2 cores."""
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=250_000)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--out", type=Path,
                        help="where the stages write (default: beside the inputs, "
                             "bench/cache/million-N)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--band", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        return stage(args.stage, args.inputs, args.dir, args.band)
    names = args.stages.split(",")
    unknown = sorted(set(names) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {', '.join(unknown)}: choose from {', '.join(STAGES)}")
    inputs = REPO / "bench" / "cache" / f"million-{args.n}"
    out = (args.out or inputs).resolve()
    start = time.perf_counter()
    make_inputs(inputs, args.n, args.clusters)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    print(f"inputs for {args.n:,} images ready in {time.perf_counter() - start:.0f} s "
          f"({inputs}); outputs to {out}; load {load()}", flush=True)
    table = []
    for name in names:
        if name == "tile_band":
            parts = [run_stage(name, inputs, out, b) for b in range(DEFAULTS["tiles"]["jobs"])]
            result = {"seconds": sum(p["seconds"] for p in parts),
                      "cpu_s": sum(p["cpu_s"] for p in parts),
                      "max_rss_mb": max(p["max_rss_mb"] for p in parts)}
            name = f"tile_band x {len(parts)} (sum)"
        else:
            result = run_stage(name, inputs, out)
        table.append((name, result))
        print(f"done {name}: {result}; load {load()}", flush=True)
    print(f"\nMap stages at {args.n:,} synthetic images (150-D, {args.clusters} clusters), one "
          f"after another on this machine ({THREADS} threads for neighbours, tsne and grid)\n")
    print("| stage | wall (s) | CPU (s) | peak RSS (MB) | us per image | fits 8 GB |")
    print("|---|---:|---:|---:|---:|---|")
    for name, r in table:
        print(f"| {name} | {r['seconds']:.0f} | {r['cpu_s']:.0f} | {r['max_rss_mb']:.0f} | "
              f"{1e6 * r['seconds'] / args.n:.0f} | {'yes' if r['max_rss_mb'] < 8192 else 'NO'} |")


if __name__ == "__main__":
    main()
