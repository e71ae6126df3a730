"""How close prepare's per-image loop is to a bare libjpeg reduced-scale decode of the same files.

    .venv/bin/python bench/prepare_floor.py [--images 2000] [--passes 3] [--cpu 1] [--realset DIR]
                                            [--before REV] [--no-rss]

Issue 15 asks for the loop "within 1.5x of a bare libjpeg reduced-scale decode of the same files
measured in the same run". For the demo's JPEGs (made once into bench/cache/ by the workflow's
demo generator, as bench/scale.py does) and, when its cache is present, the JPEGs of the real set
(bench/realset.py), in one process pinned to one core, this times per image:

* floor, Pillow: ``Image.open`` + the libjpeg scale prepare asks for + ``load()``. prepare's
  ``jpeg:size`` hint makes ImageMagick ask libjpeg for 1/d with d = floor(min(w, h) / side), which
  libjpeg rounds up to M/8 (600x450 -> 3/8 = 225x169); Pillow's ``draft`` only offers 1/2, 1/4,
  1/8, so the floor sets the same 1/d on Pillow's own libjpeg-turbo (its ``decoderconfig``) and
  checks that every decode has ImageMagick's size. Pillow's plain ``draft`` (300x225 here) is
  shown beside it.
* Wand ``jpeg:size`` alone: an ImageMagick read of the blob with the hint, nothing else (djpeg-like).
* prepare's guarded decode (:func:`vacancy.imaging.decode_sized`: sniff, header size, read, damage
  check), nothing else.
* the least prepare must do: that decode, the one pixel export with its grey, the features'
  64x64 Lanczos grey and the cell thumbnail, nothing else: the lowest ratio the loop could reach
  with ImageMagick as the decoder and Lanczos as the filter.
* :func:`vacancy.images.prepare.measure_image` as ``prepare_location`` calls it, with reading the
  bytes (``read_blob``), with the schema's defaults (the rule's params).
* ``prepare_location`` on each location's inventory (writing the CSVs and HDF5 files), per image.
* the same loop step by step with timers (the breakdown table), checked against measure_image.
* with ``--before REV``: measure_image and prepare_location as they were at git revision REV,
  interleaved with the rest, their outputs compared with today's on every image.

Every timed call reads the file's bytes (from the page cache after a warm-up pass). The per-image
methods are interleaved image by image in a rotating order, reversed every other image (what ran
just before warms the caches, so each method follows each other one as often as it precedes it);
``prepare_location`` runs on each location's batch between them (before or after, alternately),
so load from other work hits all alike. Peak RSS is that of a separate process doing one method
over all images (each the same Python with the same imports: the difference between rows is what
the method adds).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MAGICK_THREAD_LIMIT", "1")  # as the rule sets it (threads: 1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
from PIL import Image as PillowImage  # noqa: E402
from PIL import ImageFile, features  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from wand.api import library  # noqa: E402
from wand.image import Image as WandImage  # noqa: E402
from wand.version import MAGICK_VERSION  # noqa: E402

from vacancy.common import config_defaults, read_csv, write_csv  # noqa: E402
from vacancy.images import prepare as prep  # noqa: E402
from vacancy.images.features import features_of_small  # noqa: E402
from vacancy.images.hashes import dhash_of_gray, gray8_of_unit  # noqa: E402
from vacancy.images.resample import resize_gray  # noqa: E402
from vacancy.images.thumbs import thumb_from_rgb  # noqa: E402
from vacancy.images.triage import SIGNALS, histogram_of_q16, signals, triage_class  # noqa: E402
from vacancy.imaging import (Rejected, _new_wand, check_blob, decode_sized,  # noqa: E402
                             decoder_damage, header_size, read_blob)
from vacancy.sources.inventory import INVENTORY_COLUMNS, build_inventory  # noqa: E402

CACHE = REPO / "bench" / "cache"


# ---------------------------------------------------------------------------------------------
# The rule's parameters (the schema is the one source of defaults)


def rule_params(draft_side: int | None = None) -> dict:
    """prepare_location's keyword arguments as the rule passes them, from the schema's defaults
    (``draft_side``: another ``prepare.draft_side`` to measure)."""
    c = config_defaults()
    if draft_side:
        c["prepare"]["draft_side"] = draft_side
    return dict(graphic_below=c["triage"]["graphic_below"], photo_above=c["triage"]["photo_above"],
                method=c["triage"]["method"],
                score_graphic_below=c["triage"]["score_graphic_below"],
                score_photo_above=c["triage"]["score_photo_above"],
                hash_size=c["dedup"]["hash_size"], color=c["features"]["color"],
                batch_size=c["features"]["batch_size"], cell_px=c["tiles"]["cell_px"],
                background=tuple(c["tiles"]["background"]), draft=c["prepare"]["draft"],
                draft_side=c["prepare"]["draft_side"], max_pixels=c["max_pixels"])


def measure_args(p: dict) -> tuple:
    """measure_image's positional arguments, in the order prepare_location passes them."""
    return (prep.decode_options(p["draft"], p["cell_px"], p["draft_side"]), p["graphic_below"],
            p["photo_above"], p["hash_size"], p["color"], p["cell_px"], p["background"],
            p["max_pixels"], p["method"], p["score_graphic_below"], p["score_photo_above"])


def draft_side(p: dict) -> int:
    """The side prepare's ``jpeg:size`` hint asks for (read from decode_options, not restated)."""
    hint = prep.decode_options(True, p["cell_px"], p["draft_side"])["jpeg:size"]
    return int(hint.split("x")[0])


# ---------------------------------------------------------------------------------------------
# The methods: each takes a path and does everything from reading the bytes


def libjpeg_scale(width: int, height: int, side: int) -> tuple[int, tuple[int, int]]:
    """(d, output size) of ImageMagick's ``jpeg:size=side`` request: it asks libjpeg for 1/d,
    d = floor(min(w, h) / side); libjpeg decodes at the smallest M/8 >= 1/d, size rounded up."""
    d = int(min(width / side, height / side))
    if d <= 1:
        return 1, (width, height)
    m = -(-8 // d)
    return d, (-(-width * m // 8), -(-height * m // 8))


def pillow_exact(path: str, side: int) -> tuple[int, int]:
    """Bare libjpeg-turbo (Pillow's) decode to RGB at the scale prepare's hint gives."""
    with open(path, "rb") as handle:
        blob = handle.read()
    im = PillowImage.open(io.BytesIO(blob))
    d, size = libjpeg_scale(*im.size, side)
    if d > 1:  # what Image.draft does, with libjpeg's M/8 instead of only 1/2, 1/4, 1/8
        name, _, offset, args = im.tile[0]
        im.tile = [ImageFile._Tile(name, (0, 0, *size), offset, args)]
        im._size = size
        im.decoderconfig = (d, 0)
    im.load()
    return im.size


def pillow_draft(path: str, side: int) -> tuple[int, int]:
    """Pillow's own ``draft("RGB", (side, side))`` + load: the power-of-two scale at least side."""
    with open(path, "rb") as handle:
        blob = handle.read()
    im = PillowImage.open(io.BytesIO(blob))
    im.draft("RGB", (side, side))
    im.load()
    return im.size


def wand_bare(path: str, options: dict) -> tuple[int, int]:
    """ImageMagick's read of the blob with the ``jpeg:size`` hint and the coder named, nothing else."""
    with open(path, "rb") as handle:
        blob = handle.read()
    img = WandImage()
    try:
        library.MagickSetFormat(img.wand, b"JPEG")
        for key, value in options.items():
            img.options[key] = value
        img.read(blob=blob)
        return img.width, img.height
    finally:
        img.destroy()


def guarded_decode(path: str, options: dict, max_pixels: int) -> tuple[int, int]:
    """prepare's decode (read_blob, sniff, header size, read, damage check), nothing after it."""
    with decode_sized(read_blob(path), max_pixels, options) as (img, _):
        return img.width, img.height


def least_prepare(path: str, options: dict, max_pixels: int, cell_px: int) -> np.ndarray:
    """What any prepare with this decoder and these filters must do per image, and no more:
    the guarded decode, the one pixel export with its grey, the features' 64x64 Lanczos grey
    and the cell thumbnail (Lanczos). No triage signals, hash, blurs, rows or writing: the
    ratio of this to the floor is the least the loop's ratio can be without changing the
    decoder (ImageMagick) or the resampling filter."""
    with decode_sized(read_blob(path), max_pixels, options) as (img, _):
        q16, rgb16 = prep.gray_and_rgb(img)
    resize_gray(q16 * np.float32(1 / 65535))
    return thumb_from_rgb(rgb16, cell_px)


def measure(path: str, args: tuple) -> dict:
    """measure_image exactly as prepare_location calls it."""
    return prep.measure_image(read_blob(path), *args)


STEPS = ("file read", "sniff + header size", "decode (ImageMagick read)", "damage check",
         "RGB export + gray", "histogram", "64x64 resize", "triage signals + class",
         "rows (formatting)", "dHash", "features (blurs)", "thumbnail (8-bit planes + resize)",
         "wand destroy", "writing (CSV + HDF5 rows, close)")


def measure_steps(path: str, p: dict, args: tuple, out: dict | None, image_id: str,
                  t: dict) -> dict:
    """measure_image's steps one by one (the same functions, same order), adding ns to ``t``.

    Checked against measure_image's results in :func:`check_steps`; ``out``: prepare's outputs
    to record into (the writing step), or None. Graphics have no features or thumbnail (as in
    measure_image). Images above MAX_WORK_SIDE (none here: all are JPEG at draft scale) are not
    handled: the caller checks.
    """
    (options, graphic_below, photo_above, hash_size, color, cell_px, background, max_pixels,
     method, score_graphic_below, score_photo_above) = args
    clock = time.perf_counter_ns
    t0 = clock()
    blob = read_blob(path)
    t1 = clock(); t["file read"] += t1 - t0
    fmt = check_blob(blob)
    width, height = header_size(blob, fmt)
    if width * height > max_pixels:
        raise Rejected("too many pixels")
    img = _new_wand(fmt, options)
    t2 = clock(); t["sniff + header size"] += t2 - t1
    try:
        img.read(blob=blob)
        t3 = clock(); t["decode (ImageMagick read)"] += t3 - t2
        if decoder_damage(img):
            raise Rejected("damaged")
        t4 = clock(); t["damage check"] += t4 - t3
        if max(img.width, img.height) > prep.MAX_WORK_SIDE:
            raise RuntimeError("breakdown expects draft-scale JPEGs")
        q16, rgb16 = prep.gray_and_rgb(img)
        t5 = clock(); t["RGB export + gray"] += t5 - t4
        counts = histogram_of_q16(q16)
        t6 = clock(); t["histogram"] += t6 - t5
        small = resize_gray(q16 * np.float32(1 / 65535))
        t7 = clock(); t["64x64 resize"] += t7 - t6
        values = signals(counts, small, q16, rgb16)
        klass, value = triage_class(values, method, graphic_below, photo_above,
                                    score_graphic_below, score_photo_above)
        t8 = clock(); t["triage signals + class"] += t8 - t7
        result = {
            "triage": {"entropy": f"{values['entropy']:.6f}", "class": klass,
                       "width": width, "height": height,
                       "score": "" if np.isnan(value) else f"{value:.6f}",
                       **{name: f"{values[name]:.6f}" for name in SIGNALS[1:]}},
            "hash": {"dhash": None, "width": width, "height": height, "bytes": len(blob)},
            "features": None, "thumb": None,
        }
        t9 = clock(); t["rows (formatting)"] += t9 - t8
        result["hash"]["dhash"] = dhash_of_gray(gray8_of_unit(small), hash_size)
        t10 = clock(); t["dHash"] += t10 - t9
        if klass != "graphic":
            if color != "gray" or rgb16 is None or img.alpha_channel:
                raise RuntimeError("breakdown expects gray features of sRGB JPEGs")
            result["features"] = features_of_small(small)
            t11 = clock(); t["features (blurs)"] += t11 - t10
            orientation = img.orientation
            result["thumb"] = thumb_from_rgb(rgb16, cell_px, orientation)  # Q16: as prepare
            t10 = clock(); t["thumbnail (8-bit planes + resize)"] += t10 - t11
    finally:
        img.destroy()
    t12 = clock(); t["wand destroy"] += t12 - t10
    if out is not None:
        prep._record(out, image_id, result)
        t["writing (CSV + HDF5 rows, close)"] += clock() - t12
    return result


def same_result(a: dict, b: dict) -> bool:
    if a["triage"] != b["triage"] or a["hash"] != b["hash"]:
        return False
    for key in ("features", "thumb"):
        if (a[key] is None) != (b[key] is None):
            return False
        if a[key] is not None and not np.array_equal(a[key], b[key]):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Inputs


def demo_files(images: int, seed: int) -> tuple[Path, list[tuple[str, list[dict]]]]:
    """The demo corpus (made once, as bench/scale.py makes it) as (location, inventory rows)."""
    from scale import make_corpus

    corpus = make_corpus(images, seed)
    out = []
    for loc_dir in sorted(p for p in (corpus / "raw").iterdir() if p.is_dir()):
        inv = CACHE / "prepare_floor" / f"inventory-{images}-seed{seed}" / f"{loc_dir.name}.csv"
        inv.parent.mkdir(parents=True, exist_ok=True)
        build_inventory(loc_dir, loc_dir.name, inv)
        out.append((loc_dir.name, read_csv(inv)))
    return corpus, out


def realset_files(root: Path) -> list[tuple[str, list[dict]]]:
    """The real set's JPEGs, one batch per package group (its top-level folders)."""
    out = []
    for group in sorted(p for p in root.iterdir() if p.is_dir()):
        rows = [{**dict.fromkeys(INVENTORY_COLUMNS, ""), "id": f"{group.name}/{f.name}",
                 "location": group.name, "filename": f.name, "path": str(f)}
                for f in sorted(group.rglob("*")) if f.is_file()]
        out.append((group.name, rows))
    return out


def usable(batches, p: dict, side: int) -> tuple[list, dict]:
    """Keep the JPEGs that every method decodes (prepare's rejects and other formats are left
    out, so all rows time the same files); check the floor's size against ImageMagick's."""
    args = measure_args(p)
    options = prep.decode_options(p["draft"], p["cell_px"], p["draft_side"])
    kept, dropped = [], {"not JPEG": 0, "rejected by prepare": 0, "other": 0}
    mismatched = 0
    for loc, rows in batches:
        good = []
        for row in rows:
            path = row["path"]
            try:
                if check_blob(read_blob(path)) != "jpeg":
                    dropped["not JPEG"] += 1
                    continue
                measure(path, args)
            except Rejected:
                dropped["rejected by prepare"] += 1
                continue
            try:
                if pillow_exact(path, side) != wand_bare(path, options):
                    mismatched += 1
                    continue
                pillow_draft(path, side)
            except Exception:  # noqa: BLE001 - a file Pillow alone refuses: not comparable
                dropped["other"] += 1
                continue
            good.append(row)
        if good:
            kept.append((loc, good))
    dropped["floor size differs from ImageMagick's"] = mismatched
    return kept, dropped


# ---------------------------------------------------------------------------------------------
# The timed run


FLOOR = "Pillow libjpeg, prepare's scale (floor)"
LEAST = "least prepare must do: guarded decode, export, both Lanczos resizes"
LOOP = "measure_image (the loop's call, no writing)"
STEPPED = "measure_image steps with timers + writing"
LOCATION = "prepare_location (with writing), per image"


def load_before(rev: str):
    """prepare as it was at git revision ``rev`` (its workflow/vacancy, imported under another
    name from bench/cache), so that before and after are timed in one run on the same files."""
    import importlib

    name = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout.strip()
    root = CACHE / "prepare_floor" / f"before-{name}"
    package = root / "workflow" / f"vacancy_{name}"
    if not package.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", name, "workflow/vacancy", "workflow/schemas"],
                                 cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
        (root / "workflow" / "vacancy").rename(package)
    sys.path.insert(0, str(root / "workflow"))
    return name, importlib.import_module(f"vacancy_{name}.images.prepare")


def methods(p: dict, before=None) -> tuple[dict, dict]:
    """The timed methods: per image (path -> anything) and per location (inventory, dir -> ms)."""
    side, args = draft_side(p), measure_args(p)
    options = prep.decode_options(p["draft"], p["cell_px"], p["draft_side"])
    per_image = {
        FLOOR: lambda path: pillow_exact(path, side),
        "Pillow draft(), power-of-two scale": lambda path: pillow_draft(path, side),
        "Wand read with jpeg:size alone": lambda path: wand_bare(path, options),
        "prepare's guarded decode (decode_sized)":
            lambda path: guarded_decode(path, options, p["max_pixels"]),
        LEAST: lambda path: least_prepare(path, options, p["max_pixels"], p["cell_px"]),
        LOOP: lambda path: measure(path, args),
    }
    per_location = {LOCATION: lambda inv, workdir: _run_location(prep, inv, workdir, p)}
    if before is not None:
        name, old = before
        per_image[f"measure_image at {name} (before)"] = \
            lambda path: old.measure_image(read_blob(path), *args)
        old_p = accepted(old.prepare_location, p)
        per_location[f"prepare_location at {name} (before), per image"] = \
            lambda inv, workdir: _run_location(old, inv, workdir, old_p)
    return per_image, per_location


def timed_run(batches, p: dict, passes: int, workdir: Path, before=None
              ) -> tuple[dict, dict, int]:
    """Per method, ms per image (per location batch for the per_location methods); the
    breakdown's summed ns per step and its number of images."""
    per_image, per_location = methods(p, before)
    args = measure_args(p)
    order = [*per_image, STEPPED]
    times: dict[str, list[float]] = {name: [] for name in (*order, *per_location)}
    steps = {name: 0 for name in STEPS}
    n_steps = 0
    clock = time.perf_counter_ns
    for rnd in range(passes):
        for b, (loc, rows) in enumerate(batches):
            inv = workdir / f"{loc}.csv"
            write_csv(inv, rows, INVENTORY_COLUMNS)
            locations = list(per_location)
            if (rnd + b) % 2:
                locations.reverse()
            location_first = (rnd + b) % 2 == 0
            if location_first:
                for name in locations:
                    times[name].append(per_location[name](inv, workdir) / len(rows))
            out_dir = workdir / "steps"
            with contextlib.ExitStack() as stack:
                out = prep._open_outputs(stack, out_dir / "triage.csv", out_dir / "hashes.csv",
                                         out_dir / "rejects.csv", out_dir / "features.h5",
                                         out_dir / "thumbs.h5", {}, p["color"], p["cell_px"],
                                         p["batch_size"])
                for i, row in enumerate(rows):
                    # rotated, and reversed every other image: each method follows each other
                    # one as often as it precedes it (what ran just before warms the caches)
                    k = (i // 2 + b + rnd) % len(order)
                    turn = order[k:] + order[:k]
                    for name in (turn[::-1] if i % 2 else turn):
                        if name == STEPPED:
                            before_ns = sum(steps.values())
                            measure_steps(row["path"], p, args, out, row["id"], steps)
                            times[name].append((sum(steps.values()) - before_ns) / 1e6)
                            n_steps += 1
                        else:
                            start = clock()
                            per_image[name](row["path"])
                            times[name].append((clock() - start) / 1e6)
                start = clock()
            # closing the outputs (flush, attributes, rename) is part of writing
            steps["writing (CSV + HDF5 rows, close)"] += clock() - start
            if not location_first:
                for name in locations:
                    times[name].append(per_location[name](inv, workdir) / len(rows))
    return times, steps, n_steps


def accepted(function, p: dict) -> dict:
    """The keyword arguments of ``p`` that an older ``prepare_location`` takes. A setting it
    does not know must be at that revision's fixed value (``draft_side``: its DRAFT_SIDE),
    else the two would not decode the same way."""
    known = inspect.signature(function).parameters
    fixed = sys.modules[function.__module__]
    if "draft_side" not in known and p["draft_side"] != getattr(fixed, "DRAFT_SIDE", None):
        raise SystemExit(f"--before: that revision decodes at {getattr(fixed, 'DRAFT_SIDE', '?')}"
                         f" a side and has no draft_side setting; drop --draft-side")
    return {key: value for key, value in p.items() if key in known}


def _run_location(module, inv: Path, workdir: Path, p: dict) -> float:
    """``module.prepare_location`` on one inventory; returns milliseconds."""
    out = workdir / "location"
    start = time.perf_counter_ns()
    module.prepare_location(inv, out / "triage.csv", out / "hashes.csv", out / "features.h5",
                            out / "thumbs.h5", out / "rejects.csv", **p)
    return (time.perf_counter_ns() - start) / 1e6


def check_steps(batches, p: dict, limit: int = 200) -> int:
    """The breakdown's step-by-step loop gives measure_image's results (first ``limit`` images)."""
    args = measure_args(p)
    t = {name: 0 for name in STEPS}
    n = 0
    for _, rows in batches:
        for row in rows:
            if n == limit:
                return n
            if not same_result(measure_steps(row["path"], p, args, None, row["id"], t),
                               measure(row["path"], args)):
                raise AssertionError(f"breakdown differs from measure_image on {row['path']}")
            n += 1
    return n


def compare_before(batches, p: dict, before) -> str:
    """What the change since ``before`` does to measure_image's outputs, over every image."""
    name, old = before
    args = measure_args(p)
    n = rows_differ = thumb_values = thumb_differ = thumb_max = 0
    feature_max = 0.0
    for _, rows in batches:
        for row in rows:
            blob = read_blob(row["path"])
            a, b = old.measure_image(blob, *args), prep.measure_image(blob, *args)
            n += 1
            rows_differ += a["triage"] != b["triage"] or a["hash"] != b["hash"]
            if a["features"] is not None:
                feature_max = max(feature_max, float(np.abs(a["features"] - b["features"]).max()))
                d = np.abs(a["thumb"].astype(int) - b["thumb"])
                thumb_values += d.size
                thumb_differ += int(np.count_nonzero(d))
                thumb_max = max(thumb_max, int(d.max()))
    return (f"outputs now against {name}, {n} images: triage and hash rows differ on "
            f"{rows_differ}; features differ by at most {feature_max:g}; thumbnail values differ "
            f"on {thumb_differ} of {thumb_values} (at most {thumb_max} level)")


# ---------------------------------------------------------------------------------------------
# Peak RSS: one process per method


def rss_child(method: str, paths_file: Path, cpu: int, before: str | None,
              draft_side: int) -> float:
    """Peak RSS (MB) of a process doing ``method`` over every file (same imports as this one)."""
    cmd = [sys.executable, __file__, "--rss-method", method, "--rss-paths", str(paths_file),
           "--cpu", str(cpu), "--draft-side", str(draft_side)] + (
               ["--before", before] if before else [])
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def rss_main(method: str, paths_file: Path, before, draft_side: int | None) -> None:
    p = rule_params(draft_side)
    per_image, per_location = methods(p, before)
    rows = read_csv(paths_file)
    with threadpool_limits(1), tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        if method in per_location:
            inv = Path(tmp) / "all.csv"
            write_csv(inv, rows, INVENTORY_COLUMNS)
            per_location[method](inv, Path(tmp))
        elif method != "none":
            for row in rows:
                per_image[method](row["path"])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


# ---------------------------------------------------------------------------------------------
# Report


def report(label: str, batches, p: dict, passes: int, cpu: int, rss: bool, before=None) -> dict:
    n = sum(len(rows) for _, rows in batches)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        workdir = Path(tmp)
        with threadpool_limits(1):
            checked = check_steps(batches, p)
            changes = compare_before(batches, p, before) if before else None
            # warm-up: page cache, resize matrices, Wand/Pillow code paths
            timed_run([(loc, rows[:20]) for loc, rows in batches[:2]], p, 1, workdir, before)
            load = os.getloadavg()
            start = time.perf_counter()
            times, steps, n_steps = timed_run(batches, p, passes, workdir, before)
            wall = time.perf_counter() - start
            load_after = os.getloadavg()
        peaks = {}
        if rss:
            paths_file = workdir / "paths.csv"
            write_csv(paths_file, [r for _, rows in batches for r in rows], INVENTORY_COLUMNS)
            for name in ("none", *(k for k in times if k != STEPPED)):
                peaks[name] = rss_child(name, paths_file, cpu, before[0] if before else None,
                                         p["draft_side"])

    floor = times[FLOOR]
    floor_med, floor_mean = statistics.median(floor), statistics.fmean(floor)
    print(f"\n**{label}: {n} JPEGs x {passes} passes, one core (cpu {cpu}), "
          f"{len(batches)} batches; timed part {wall:.0f} s, load average (1 min) "
          f"{load[0]:.2f} before, {load_after[0]:.2f} after**\n")
    print("| method | ms/image median | ms/image mean | images/s | ratio to floor (median) "
          "| ratio to floor (mean) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ratios = {}
    for name, values in times.items():
        med, mean = statistics.median(values), statistics.fmean(values)
        ratios[name] = (med / floor_med, mean / floor_mean)
        peak = f"{peaks[name]:.0f}" if name in peaks else "-"
        per_batch = "prepare_location" in name
        med_text = f"({med:.3f})" if per_batch else f"{med:.3f}"
        print(f"| {name} | {med_text} | {mean:.3f} | {1000 / mean:.0f} | {med / floor_med:.2f}x "
              f"| {mean / floor_mean:.2f}x | {peak} |")
    print("\n(medians in brackets: over the per-location batches, not images"
          + (f"; peak RSS of the same Python and imports doing nothing: {peaks['none']:.0f} MB)"
             if peaks else ")"))
    if changes:
        print(f"\n{changes}")
        old = next(name for name in times if name.startswith("measure_image at "))
        paired = [a / b for a, b in zip(times[LOOP], times[old])]
        saved = [b - a for a, b in zip(times[LOOP], times[old])]
        print(f"\npaired, image by image (the two calls run next to each other): measure_image "
              f"now / {old.split(' ')[2]}: median {statistics.median(paired):.3f}, "
              f"saving {statistics.median(saved):.3f} ms per image (median)")

    total = sum(steps.values())
    print(f"\n*Breakdown of the per-image loop (timers around measure_image's own steps, "
          f"{n_steps} images; checked equal to measure_image on {checked}):*\n")
    print("| step | ms/image (mean) | share | x floor |")
    print("|---|---:|---:|---:|")
    for name in STEPS:
        ms = steps[name] / 1e6 / n_steps
        print(f"| {name} | {ms:.3f} | {100 * steps[name] / total:.0f}% | {ms / floor_mean:.2f} |")
    print(f"| **total** | **{total / 1e6 / n_steps:.3f}** | 100% | "
          f"{total / 1e6 / n_steps / floor_mean:.2f} |")
    loop_ratio = ratios[LOOP]
    print(f"\nwithin 1.5x of the floor: measure_image {loop_ratio[0]:.2f}x (median), "
          f"{loop_ratio[1]:.2f}x (mean); prepare_location {ratios[LOCATION][1]:.2f}x (mean): "
          f"{'holds' if max(loop_ratio) <= 1.5 else 'does not hold'}")
    least, loop = statistics.fmean(times[LEAST]), statistics.fmean(times[LOOP])
    print(f"\nthe least prepare must do (decoder and filters as they are) is "
          f"{least / floor_mean:.2f}x the floor (mean), so 1.5x leaves "
          f"{1.5 * floor_mean - least:.3f} ms per image for triage, hash, blurs and rows, "
          f"which take {loop - least:.3f} ms in measure_image "
          f"(and writing {ratios[LOCATION][1] * floor_mean - loop:.3f} ms more in "
          f"prepare_location)")
    return ratios


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=os.cpu_count() - 1,
                        help="the one core every timed process is pinned to")
    parser.add_argument("--realset", type=Path, default=CACHE / "realset")
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--draft-side", type=int, metavar="N",
                        help="decode at this prepare.draft_side instead of the schema's default")
    parser.add_argument("--before", metavar="REV",
                        help="also time measure_image and prepare_location as they were at REV")
    parser.add_argument("--rss-method", help=argparse.SUPPRESS)
    parser.add_argument("--rss-paths", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.cpu})
    before = load_before(args.before) if args.before else None
    if args.rss_method:
        rss_main(args.rss_method, args.rss_paths, before, args.draft_side)
        return 0

    p = rule_params(args.draft_side)
    side = draft_side(p)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {platform.machine()}, "
          f"Python {platform.python_version()}, Pillow {PillowImage.__version__} "
          f"(libjpeg-turbo {features.version_feature('libjpeg_turbo')}), "
          f"{MAGICK_VERSION.split(' http')[0]}")
    print(f"prepare: jpeg:size {side}x{side} (decode_options), params from the schema: "
          f"method {p['method']}, color {p['color']}, cell_px {p['cell_px']}")
    _, demo = demo_files(args.images, args.seed)
    demo, dropped = usable(demo, p, side)
    print(f"demo: left out {dropped}")
    report(f"Demo corpus ({args.images} images, seed {args.seed})", demo, p, args.passes,
           args.cpu, not args.no_rss, before)
    if args.realset.is_dir() and (args.realset / "labels.csv").exists():
        real, dropped = usable(realset_files(args.realset), p, side)
        print(f"\nreal set: left out {dropped}")
        report(f"Real set ({args.realset})", real, p, args.passes, args.cpu, not args.no_rss,
               before)
    else:
        print(f"\nreal set: {args.realset} not built (bench/realset.py), skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
