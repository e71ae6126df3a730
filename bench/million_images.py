"""dedup and select, the run-level image stages, at up to a million images: measured, not scaled.

    .venv/bin/python bench/million_images.py [--run bench/cache/run-125000] [--replicas 1,2,4,8]

``bench/million.py`` measures the map stages at a million from synthetic PCA vectors; dedup and
select need what ``prepare`` writes (hashes, triage, feature rows, inventories, rejects), and a
million demo images would take hours to render. So this takes a finished ``bench/scale.py`` run
(``--run``; its results/) and writes eight transformed copies of it, one per symmetry of the
square (identity, the three rotations, and the four mirror images): every 64 x 64 plane of each
feature row is rotated or mirrored, the dHash is taken again from the transformed grey image as
``prepare`` takes it (checked equal to the run's own for the identity), and the ids get a
location of their own (``austin-t3/...``). A rotated or mirrored room is a new, distinct image
with the same structure around it: the same families, the same copies of each photo within a
copy, so within each copy dedup has as many candidates and duplicates as in the run. Across
copies only images that are symmetric (uniform, mostly) can match, so the candidate pairs grow
about linearly with the copies; in the synthetic demo, whose few families each render thousands
of similar rooms, more images of the same families would grow them faster (quadratically at
worst), and real listings fall somewhere between. What this measures exactly is everything that
grows with the number of images: reading the feature rows, the descriptors held per image, the
id tables, the rows of select.

Then, for each replica count ``k`` (the first ``k`` copies), dedup (check ``features``, the
rule's 2 threads) and select run as their rules call them, each in a child process, and the
table gives wall time, CPU seconds, peak RSS (the stage's own process; dedup's reading processes
apart, they hold one file's rows at a time) and dedup's candidate pairs. The copies (about 32 GB
of feature rows for eight copies of the 125,000-image run) go to ``bench/cache/million-images``;
``--clean`` removes them afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from vacancy.common import config_defaults  # noqa: E402
from vacancy.images import prepare as prep  # noqa: E402
from vacancy.images.hashes import dhash_of_gray, gray8_of_unit  # noqa: E402

DEFAULTS = config_defaults()
OUT = REPO / "bench" / "cache" / "million-images"
#: the eight symmetries of the square: (quarter turns, then mirrored left-right)
SYMMETRIES = [(k, False) for k in range(4)] + [(k, True) for k in range(4)]
SIDE = 64
#: the rule's threads (dedup asks for 2; this machine has 2 cores)
THREADS = 2


def transform(planes: np.ndarray, symmetry: int) -> np.ndarray:
    """(..., 64, 64) planes turned and mirrored by one of the eight symmetries."""
    turns, mirrored = SYMMETRIES[symmetry]
    out = np.rot90(planes, turns, axes=(-2, -1))
    return np.flip(out, axis=-1) if mirrored else out


def renamed(image_id: str, symmetry: int) -> str:
    location, _, name = image_id.partition("/")
    return f"{location}-t{symmetry}/{name}"


def _copy_csv(src: Path, dst: Path, symmetry: int, hashes: dict | None = None) -> None:
    """A CSV with every id (and location) renamed; dHashes replaced where given."""
    with open(src, newline="", encoding="utf-8") as fin, \
            open(dst, "w", newline="", encoding="utf-8") as fout:
        reader = csv.DictReader(fin)
        writer = csv.DictWriter(fout, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            old = row["id"]
            row["id"] = renamed(old, symmetry)
            if "location" in row:
                row["location"] = row["id"].partition("/")[0]
            if hashes is not None and old in hashes:
                row["dhash"] = hashes[old][symmetry]
            writer.writerow(row)


def _copy_features(src: Path, dst: dict[int, Path], hash_size: int) -> dict[str, list[str]]:
    """Each feature row of ``src`` turned by every symmetry into its own file; the new dHashes
    (hex, per symmetry) of every id, from the turned 64x64 grey image as prepare takes them."""
    hashes: dict[str, list[str]] = {}
    with h5py.File(src, "r") as h5, contextlib.ExitStack() as stack:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in h5["ids"][:]]
        features = h5["features"]
        n_features = features.shape[1]
        attrs = {key: h5.attrs[key] for key in h5.attrs if key != "n_rows"}
        writers = {s: stack.enter_context(prep._h5_rows(
            path, "features", (n_features,), "float32", 256, attrs, **prep.FEATURE_COMPRESSION))
            for s, path in dst.items()}
        for start in range(0, len(ids), 1024):
            block = features[start:start + 1024]
            planes = block.reshape(len(block), -1, SIDE, SIDE)  # the stack's 64x64 planes
            for s, writer in writers.items():
                turned = transform(planes, s)
                for k in range(len(block)):
                    image_id = ids[start + k]
                    writer.add(renamed(image_id, s), turned[k].reshape(-1))
                    hashes.setdefault(image_id, [""] * len(SYMMETRIES))[s] = dhash_of_gray(
                        gray8_of_unit(turned[k, 0]), hash_size)
    return hashes


def make_copies(run: Path, out: Path, replicas: int) -> list[str]:
    """The first ``replicas`` transformed copies of the run's prepare outputs, made once."""
    results = run / "results"
    locations = sorted(p.stem for p in (results / "hashes").glob("*.csv"))
    done = out / f"done-{replicas}"
    names = [f"{loc}-t{s}" for s in range(replicas) for loc in locations]
    if done.exists():
        return names
    for sub in ("inventory", "triage", "hashes", "features", "prepare"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    hash_size = DEFAULTS["dedup"]["hash_size"]
    for loc in locations:
        start = time.perf_counter()
        hashes = _copy_features(results / "features" / f"{loc}.h5",
                                {s: out / "features" / f"{loc}-t{s}.h5" for s in range(replicas)},
                                hash_size)
        with open(results / "hashes" / f"{loc}.csv", newline="", encoding="utf-8") as handle:
            own = {row["id"]: row["dhash"] for row in csv.DictReader(handle)}
        wrong = [i for i, h in hashes.items() if h[0] != own[i]]
        if wrong:
            raise SystemExit(f"{loc}: the identity copy's dHash differs from prepare's on "
                             f"{len(wrong)} images, e.g. {wrong[0]}")
        for s in range(replicas):
            name = f"{loc}-t{s}"
            _copy_csv(results / "inventory" / f"{loc}.csv", out / "inventory" / f"{name}.csv", s)
            _copy_csv(results / "triage" / f"{loc}.csv", out / "triage" / f"{name}.csv", s)
            _copy_csv(results / "hashes" / f"{loc}.csv", out / "hashes" / f"{name}.csv", s, hashes)
            _copy_csv(results / "prepare" / f"{loc}.rejects.csv",
                      out / "prepare" / f"{name}.rejects.csv", s)
        print(f"copied {loc} x {replicas} in {time.perf_counter() - start:.0f} s", flush=True)
    done.touch()
    return names


def stage(name: str, out: Path, locations: list[str], work: Path) -> None:
    """dedup or select in this (child) process, as its rule's script calls it."""
    from vacancy.common import setup_logging

    work.mkdir(parents=True, exist_ok=True)
    setup_logging(str(work / f"{name}.log"))

    def csvs(sub: str, suffix: str = ".csv") -> list[Path]:
        return [out / sub / f"{loc}{suffix}" for loc in locations]

    d = DEFAULTS["dedup"]
    if name == "dedup":
        from vacancy.images.dedup import dedup

        counts = dedup(csvs("hashes"), work / "duplicates.csv", max_distance=d["max_distance"],
                       triage_csvs=csvs("triage"), feature_h5s=csvs("features", ".h5"),
                       keep_maybe=DEFAULTS["triage"]["keep_maybe"], check=d["check"],
                       inner_distance=d["inner_distance"], min_correlation=d["min_correlation"],
                       threads=THREADS)
    else:
        from vacancy.images.select import select_images

        counts = select_images(csvs("inventory"), csvs("triage"), work / "duplicates.csv",
                               csvs("prepare", ".rejects.csv"), work / "selected.csv",
                               work / "rejects.csv", keep_maybe=DEFAULTS["triage"]["keep_maybe"])
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"max_rss_mb": _vm_hwm_mb(), "children_rss_mb": kids.ru_maxrss / 1024,
                      "cpu_s": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
                      "counts": counts}))


def _vm_hwm_mb() -> float:
    """This process's own peak RSS (VmHWM starts afresh at exec; ru_maxrss would not)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_stage(name: str, out: Path, locations: list[str], work: Path) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--stage", name, "--dir", str(out),
                           "--work", str(work), "--locations", ",".join(locations)],
                          check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - start
    pairs = re.search(r"second check: (\d+) candidate pairs, (\d+) within", done.stderr)
    result["pairs"] = (int(pairs.group(1)), int(pairs.group(2))) if pairs else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=REPO / "bench" / "cache" / "run-125000")
    parser.add_argument("--replicas", default="1,2,4,8",
                        help="replica counts to measure, each at most 8")
    parser.add_argument("--clean", action="store_true", help="remove the copies afterwards")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--locations", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        return stage(args.stage, args.dir, args.locations.split(","), args.work)
    counts = sorted({int(k) for k in args.replicas.split(",")})
    if counts[0] < 1 or counts[-1] > len(SYMMETRIES):
        parser.error(f"replica counts must be 1..{len(SYMMETRIES)}")
    start = time.perf_counter()
    make_copies(args.run, OUT, counts[-1])
    print(f"copies ready in {time.perf_counter() - start:.0f} s ({OUT})", flush=True)
    base = sorted(p.stem for p in (args.run / "results" / "hashes").glob("*.csv"))
    table = []
    for k in counts:
        locations = [f"{loc}-t{s}" for s in range(k) for loc in base]
        work = OUT / f"run-{k}"
        for name in ("dedup", "select"):
            result = run_stage(name, OUT, locations, work)
            table.append((k, name, result))
            print(f"done {name} x {k}: {result}; load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"\ndedup and select on k transformed copies of {args.run.name} (2 threads for dedup), "
          f"one after another\n")
    print("| copies | images in | stage | wall (s) | CPU (s) | peak RSS (MB) | readers' peak (MB) "
          "| candidate pairs (checked in full) | result |")
    print("|---:|---:|---|---:|---:|---:|---:|---|---|")
    for k, name, r in table:
        c = r["counts"]
        n = c.get("images", c.get("inventory"))
        pairs = f"{r['pairs'][0]:,} ({r['pairs'][1]:,})" if r["pairs"] else ""
        what = (f"{c['duplicates']:,} copies" if name == "dedup" else f"{c['selected']:,} selected")
        readers = f"{r['children_rss_mb']:.0f}" if name == "dedup" else ""
        print(f"| {k} | {n:,} | {name} | {r['seconds']:.1f} | {r['cpu_s']:.1f} | "
              f"{r['max_rss_mb']:.0f} | {readers} | {pairs} | {what} |")
    if args.clean:
        shutil.rmtree(OUT)


if __name__ == "__main__":
    main()
