"""What ``prepare.draft_side`` costs and changes: each JPEG measured at several decode scales.

    .venv/bin/python bench/draft_side.py [--images 2000] [--sides 96,128] [--passes 2]

Why: ``prepare`` decodes a JPEG at reduced scale (ImageMagick's ``jpeg:size`` hint; libjpeg
scales by M/8 while decoding) and takes triage, hash, features and thumbnail from that one
decode. A smaller scale is cheaper in every later step, but moves the measurements away from a
full decode. This bench runs ``measure_image`` as ``prepare`` calls it (the schema's settings)
on the same files at each ``--sides`` value and with the full decode, interleaved image by image
in one process pinned to one core, and prints per scale:

* ms per image (median and mean over images x passes) and its ratio to the first side;
* against the full decode: mean and 99th percentile |entropy difference| (nats), the share of
  images whose triage class changes, mean |feature difference| per value (0..1), mean dHash bits
  and the share of identical hashes, mean |thumbnail difference| per value (0..255).

Files: the demo corpus of ``--images`` (bench/cache/corpus-N-seed1, as bench/scale.py makes it)
and, when built (bench/realset.py), the real set's JPEGs, and the real set's originals shrunk to
fit 600x450 (JPEG quality 85: the size Craigslist serves listing photos at, the case the default
is chosen for). Unreadable files are left out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "bench"))

from fit_triage import listing_copy  # noqa: E402
from prepare_floor import rule_params  # noqa: E402
from realset import CACHE, read_labels  # noqa: E402
from scale import make_corpus  # noqa: E402
from vacancy.formats import Rejected, check_blob, read_blob  # noqa: E402
from vacancy.images.prepare import decode_options, measure_image  # noqa: E402

FULL = "full decode"


def measure_kwargs() -> dict:
    """measure_image's settings as the rule passes them (prepare_location's, from the schema's
    defaults, without what only the location loop and the decode hint use)."""
    return {key: value for key, value in rule_params().items()
            if key not in ("draft", "draft_side", "batch_size")}


def jpeg_blobs(paths) -> list[bytes]:
    """The JPEGs among ``paths`` (bytes), in order."""
    out = []
    for path in paths:
        try:
            blob = read_blob(path)
            if check_blob(blob) == "jpeg":
                out.append(blob)
        except Rejected:
            continue
    return out


def file_sets(images: int, realset: Path) -> dict[str, list[bytes]]:
    """The named sets of JPEG bytes this bench measures."""
    corpus = make_corpus(images, 1)
    sets = {f"demo ({images} images)": jpeg_blobs(sorted((corpus / "raw").rglob("*.jpg")))}
    if (realset / "labels.csv").exists():
        rows = [r for r in read_labels(realset / "labels.csv")
                if r["category"] not in ("copy", "moved")]
        sets["real set, JPEGs as shipped"] = jpeg_blobs(realset / r["id"] for r in rows)
        listing = []
        for row in rows:
            try:
                listing.append(listing_copy(read_blob(realset / row["id"])))
            except Exception:  # a file Wand cannot read is not this bench's question
                continue
        sets["real set at listing size (600x450, JPEG 85)"] = listing
    return sets


def measure_all(blobs: list[bytes], options: dict, kwargs: dict, passes: int):
    """Per image: the measurement at each option (or None if rejected) and the seconds each
    took, the options interleaved in a rotating order."""
    names = list(options)
    results = {name: [None] * len(blobs) for name in names}
    seconds = {name: [] for name in names}
    for p in range(passes):
        for i, blob in enumerate(blobs):
            shift = (i + p) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                try:
                    out = measure_image(blob, options[name], **kwargs)
                except Rejected:
                    out = None
                seconds[name].append(time.perf_counter() - start)
                if p == 0:
                    results[name][i] = out
    return results, seconds


def compare(result: list, full: list) -> dict:
    """Differences of one scale's measurements from the full decode's, over images both kept."""
    ent, klass, feat, bits, same_hash, thumb = [], [], [], [], [], []
    for a, b in zip(result, full):
        if a is None or b is None:
            continue
        ent.append(abs(float(a["triage"]["entropy"]) - float(b["triage"]["entropy"])))
        klass.append(a["triage"]["class"] != b["triage"]["class"])
        distance = bin(int(a["hash"]["dhash"], 16) ^ int(b["hash"]["dhash"], 16)).count("1")
        bits.append(distance)
        same_hash.append(distance == 0)
        if a["features"] is not None and b["features"] is not None:
            feat.append(float(np.abs(a["features"] - b["features"]).mean()))
            thumb.append(float(np.abs(a["thumb"].astype(int) - b["thumb"].astype(int)).mean()))
    return {"n": len(ent), "entropy": np.mean(ent), "entropy_p99": np.percentile(ent, 99),
            "class": np.mean(klass), "features": np.mean(feat) if feat else float("nan"),
            "bits": np.mean(bits), "same_hash": np.mean(same_hash),
            "thumb": np.mean(thumb) if thumb else float("nan")}


def report(label: str, blobs: list[bytes], sides: list[int], passes: int) -> None:
    kwargs = measure_kwargs()
    options = {f"draft_side {s}": decode_options(True, kwargs["cell_px"], s) for s in sides}
    options[FULL] = None
    measure_all(blobs[:20], options, kwargs, 1)  # warm-up: resize matrices, code paths
    load = os.getloadavg()[0]
    results, seconds = measure_all(blobs, options, kwargs, passes)
    first = np.median(seconds[next(iter(options))])
    print(f"\n{label}: {len(blobs)} JPEGs x {passes} passes, one core, load average "
          f"{load:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    print("| decode | ms/image median | mean | ratio (median) | images | entropy diff mean "
          "| p99 | class changed | features diff | dHash bits | hash identical "
          "| thumbnail diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in options:
        ms = 1000 * np.median(seconds[name]), 1000 * np.mean(seconds[name])
        ratio = np.median(seconds[name]) / first
        if name == FULL:
            print(f"| {name} | {ms[0]:.3f} | {ms[1]:.3f} | {ratio:.2f}x | "
                  f"{sum(r is not None for r in results[name])} | - | - | - | - | - | - | - |")
            continue
        d = compare(results[name], results[FULL])
        print(f"| {name} ({options[name]['jpeg:size']}) | {ms[0]:.3f} | {ms[1]:.3f} | "
              f"{ratio:.2f}x | {d['n']} | {d['entropy']:.4f} | {d['entropy_p99']:.3f} | "
              f"{d['class']:.4f} | {d['features']:.5f} | {d['bits']:.2f} | "
              f"{d['same_hash']:.3f} | {d['thumb']:.2f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--sides", default="96,128",
                        help="prepare.draft_side values, comma-separated (the first is the base)")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--cpu", type=int, default=os.cpu_count() - 1)
    parser.add_argument("--realset", type=Path, default=CACHE / "realset")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.cpu})
    sides = [int(s) for s in args.sides.split(",")]
    with threadpool_limits(1):
        for label, blobs in file_sets(args.images, args.realset).items():
            report(label, blobs, sides, args.passes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
