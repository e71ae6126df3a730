"""What the triage signals add to the per-image cost of ``prepare`` (the issue allows 10%).

    .venv/bin/python bench/triage_cost.py [--demo 300] [--real 300] [--repeat 3]

For each image the whole of :func:`vacancy.images.prepare.measure_image` (decode, triage, hash, features,
thumbnail: what ``prepare`` does per image, at the default config) is timed, and so is the part
the model adds on the same inputs: :func:`vacancy.images.triage.signals` without its entropy (which the
entropy rule computes anyway) plus :func:`vacancy.images.triage.score`. "Without" is the difference.
Best of ``--repeat`` runs per image, single thread (as the rule runs). Printed as a Markdown
table with the ratio, on demo images (listing-like JPEGs) and on the real set.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MAGICK_THREAD_LIMIT", "1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "bench"))

from realset import CACHE, build, read_labels  # noqa: E402
from vacancy.common import config_defaults  # noqa: E402
from vacancy.imaging import Rejected, decode_sized, read_blob  # noqa: E402
from vacancy.images.prepare import MAX_WORK_SIDE, decode_options, gray_and_rgb, measure_image  # noqa: E402
from vacancy.images.resample import resize_gray  # noqa: E402
from vacancy.images.triage import entropy_nats, histogram_of_q16, score, signals  # noqa: E402


def settings() -> tuple[dict, dict]:
    """measure_image's keyword arguments at the default config, and the decode options."""
    c = config_defaults()
    kwargs = dict(graphic_below=c["triage"]["graphic_below"],
                  photo_above=c["triage"]["photo_above"], hash_size=c["dedup"]["hash_size"],
                  color=c["features"]["color"], cell_px=c["tiles"]["cell_px"],
                  background=c["tiles"]["background"], max_pixels=c["max_pixels"],
                  method=c["triage"]["method"],
                  score_graphic_below=c["triage"]["score_graphic_below"],
                  score_photo_above=c["triage"]["score_photo_above"])
    return kwargs, decode_options(c["prepare"]["draft"], c["tiles"]["cell_px"],
                                  c["prepare"]["draft_side"])


def signal_inputs(blob: bytes, options) -> tuple:
    """The arrays measure_image hands to signals(), made the same way."""
    with decode_sized(blob, options=options) as (img, _):
        q16, rgb16 = gray_and_rgb(img)
        counts = histogram_of_q16(q16)
        if max(img.width, img.height) > MAX_WORK_SIDE:
            img.transform(resize=f"{MAX_WORK_SIDE}x{MAX_WORK_SIDE}>")
            q16, rgb16 = gray_and_rgb(img)
        return counts, resize_gray(q16 * np.float32(1 / 65535)), q16, rgb16


def best(fn, repeat: int) -> float:
    """Shortest of ``repeat`` timings of fn(), in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(paths: list[Path], repeat: int) -> dict:
    """Summed best times (s) of the whole per-image work and of the signals' extra part."""
    kwargs, options = settings()
    whole = extra = entropy_only = 0.0
    n = 0
    for path in paths:
        try:
            blob = read_blob(path)
            whole += best(lambda: measure_image(blob, options, **kwargs), repeat)
        except Rejected:
            continue
        counts, small, q16, rgb16 = signal_inputs(blob, options)
        entropy_only += best(lambda: entropy_nats(counts), repeat)
        extra += best(lambda: score(signals(counts, small, q16, rgb16)), repeat)
        n += 1
    extra -= entropy_only  # the entropy is computed by either method
    return {"images": n, "with": whole, "extra": extra, "without": whole - extra}


def demo_paths(n: int) -> list[Path]:
    """``n`` demo images (generated once into bench/cache/corpus-N, as bench/scale.py does)."""
    from vacancy.sources.demo import generate_corpus
    corpus = CACHE / f"corpus-{n}"
    if not (corpus / "truth.csv").is_file():
        generate_corpus(corpus / "raw", corpus / "truth.csv.part", ["sfbay", "boston"], n, 1)
        (corpus / "truth.csv.part").rename(corpus / "truth.csv")
    return sorted(p for p in (corpus / "raw").rglob("*") if p.is_file()
                  and p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def real_paths(n: int) -> list[Path]:
    """The first ``n`` images of the real set (built if missing)."""
    root = CACHE / "realset"
    if not (root / "labels.csv").is_file():
        build(root)
    return [root / r["id"] for r in read_labels(root / "labels.csv")][:n]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=int, default=300)
    parser.add_argument("--real", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print("| images | n | prepare ms/image without signals | with signals | signals ms/image "
          "| ratio with/without |")
    print("|---|---:|---:|---:|---:|---:|")
    with threadpool_limits(1):
        sets = (("demo", demo_paths(args.demo) if args.demo else []),
                ("real set", real_paths(args.real) if args.real else []))
        for name, paths in ((name, paths) for name, paths in sets if paths):
            r = measure(paths, args.repeat)
            n = max(1, r["images"])
            print(f"| {name} | {r['images']} | {1000 * r['without'] / n:.2f} | "
                  f"{1000 * r['with'] / n:.2f} | {1000 * r['extra'] / n:.3f} | "
                  f"{r['with'] / r['without']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
