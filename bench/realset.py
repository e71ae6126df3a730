"""Build the real-image test set: photos and graphics that Debian and PyPI packages ship, labelled.

    .venv/bin/python bench/realset.py [--out bench/cache/realset] [--part N]

Why: every quality figure used to come from the synthetic demo. This set is made of real
photographs (scikit-image's sample photos, OpenCV's sample and tutorial photos, GIMP's manual
photos, MATE's nature backgrounds) and real graphics of the kinds a listing carries (OpenCV and
gnuplot diagrams and plots, GIMP dialog screenshots, Marble's map screenshots, Openclipart clip art,
logos, text and scanned pages), each labelled by hand in ``bench/realset_labels.csv``.

Nothing is downloaded at run time beyond the package clients: the Debian packages are installed by
``tools/install-system-deps.sh realset`` and the scikit-image wheel is fetched once with
``pip download`` into ``bench/cache/wheels`` and read from the zip. The build is deterministic
(sorted inputs, fixed copy recipes, no random numbers), so the same packages give the same set.

Output (``--out``), usable as ``source: folder`` (one sub-folder per package group):

* ``<group>/<name>``: the originals (bytes as the package ships them) and the copies;
* ``labels.csv``: id (``group/name``, the workflow's image id), kind (photo / graphic / other),
  category (photo, map, clipart, screenshot, diagram, text, plot, art ...), source;
* ``copies.csv``: group, id, recipe: each group is an original and its copies (re-encode, resize,
  2% crop per side, thin border, brightness, watermark), all of which should dedup to one;
* ``distinct.csv``: id_a, id_b, why: distinct but similar photos (stereo pairs, consecutive
  frames, the same scene with something moved) that must never be merged.

``kind`` "other" marks images that are neither a listing photo nor a listing-like graphic
(abstract wallpapers, paintings, renders, filter demos): they count towards neither target.
``--part N`` builds only the first N labelled images of each kind (and their copies and pairs),
deterministically: the test suite's fast part.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LABELS = REPO / "bench" / "realset_labels.csv"
CACHE = REPO / "bench" / "cache"
#: The wheel whose ``skimage/data`` photos join the set (pinned: its files are labelled).
SKIMAGE_WHEEL = "scikit-image==0.22.0"
INSTALL_SCRIPT = REPO / "tools" / "install-system-deps.sh"


def debian_packages(script: Path = INSTALL_SCRIPT) -> tuple[str, ...]:
    """The set's Debian packages, as the install script names them (its ``realset=(...)`` line)."""
    match = re.search(r"^realset=\(([^)]*)\)", script.read_text(), re.MULTILINE)
    if not match:
        raise ValueError(f"{script} has no realset=(...) package list")
    return tuple(match.group(1).split())


#: Debian packages the set reads (tools/install-system-deps.sh realset installs them).
DEBIAN_PACKAGES = debian_packages()
WATERMARK_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#: How copies are made (name -> what a re-post does to a photo).
COPY_RECIPES = ("reencode", "resize", "crop2", "border", "bright", "watermark")
#: Every how-many-th labelled photo (in label order) gets the copy recipes.
COPY_EVERY = 6
#: Every how-many-th labelled photo gets a "something moved" twin (a patch pasted elsewhere).
MOVED_EVERY = 9
#: Stereo pairs and consecutive frames that packages ship: distinct similar photos.
SHIPPED_PAIRS = (
    ("opencv/aloeL.jpg", "opencv/aloeR.jpg", "stereo"),
    ("opencv/left.jpg", "opencv/right.jpg", "stereo"),
    ("skimage/motorcycle_left.png", "skimage/motorcycle_right.png", "stereo"),
    ("opencv/basketball1.png", "opencv/basketball2.png", "frames"),
    ("opencv/rubberwhale1.png", "opencv/rubberwhale2.png", "frames"),
    ("opencv/leuvenA.jpg", "opencv/leuvenB.jpg", "lighting"),
    ("opencv/graf1.png", "opencv/graf3.png", "viewpoint"),
    ("opencv/aero1.jpg", "opencv/aero3.jpg", "viewpoint"),
    ("opencv/ela_original.jpg", "opencv/ela_modified.jpg", "edited"),
    *((f"opencv/left{i:02d}.jpg", f"opencv/right{i:02d}.jpg", "stereo")
      for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14)),
)
LABEL_COLUMNS = ("id", "kind", "category", "source")


def read_labels(path: Path = LABELS) -> list[dict]:
    """The hand-made labels, in file order (the order fixes copies, pairs and ``--part``)."""
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if not row["id"].startswith("#")]
    for row in rows:
        if row["kind"] not in ("photo", "graphic", "other"):
            raise ValueError(f"{path}: {row['id']}: kind {row['kind']!r} is not photo/graphic/other")
    return rows


def skimage_wheel(cache: Path = CACHE / "wheels") -> Path:
    """The pinned scikit-image wheel, fetched once by pip (any platform's wheel has the data)."""
    found = sorted(cache.glob("scikit_image-0.22.0-*.whl"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "-d", str(cache), SKIMAGE_WHEEL], check=True)
    found = sorted(cache.glob("scikit_image-0.22.0-*.whl"))
    if not found:
        raise FileNotFoundError(f"pip download {SKIMAGE_WHEEL} left no wheel in {cache}")
    return found[0]


def read_source(source: str, wheel: Path | None) -> bytes:
    """Bytes of a label's source: ``wheel:skimage/data/x.png`` or an absolute Debian path."""
    if source.startswith("wheel:"):
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(source[len("wheel:"):])
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"{source} is missing: run 'bash tools/install-system-deps.sh realset' "
            f"(Debian packages {', '.join(DEBIAN_PACKAGES)})")
    return path.read_bytes()


def missing_packages() -> list[str]:
    """Debian packages of the set that are not installed (empty when the set can be built)."""
    missing = []
    for name in DEBIAN_PACKAGES:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name],
                                capture_output=True, text=True)
        if "install ok installed" not in status.stdout:
            missing.append(name)
    return missing


def make_copy(blob: bytes, recipe: str) -> tuple[bytes, str]:
    """One re-post of a photo: (bytes, file suffix). Fixed parameters: deterministic."""
    from wand.color import Color
    from wand.drawing import Drawing
    from wand.image import Image

    with Image(blob=blob) as img:
        img.auto_orient()
        if img.alpha_channel:
            img.alpha_channel = "remove"
        w, h = img.width, img.height
        if recipe == "reencode":
            img.compression_quality = 60
        elif recipe == "resize":
            img.resize(max(1, round(w * 0.6)), max(1, round(h * 0.6)), filter="lanczos")
        elif recipe == "crop2":
            dx, dy = round(w * 0.02), round(h * 0.02)
            img.crop(dx, dy, width=w - 2 * dx, height=h - 2 * dy)
        elif recipe == "border":
            side = max(2, round(min(w, h) * 0.01))
            img.border(Color("white"), side, side)
        elif recipe == "bright":
            img.modulate(brightness=108)
        elif recipe == "watermark":
            with Drawing() as draw:
                draw.font = WATERMARK_FONT
                draw.font_size = max(10, h // 14)
                draw.fill_color = Color("rgba(255,255,255,0.7)")
                draw.text_alignment = "right"
                draw.text(w - max(4, w // 40), h - max(4, h // 30), "rentals-now.example")
                draw(img)
        else:
            raise ValueError(f"unknown copy recipe {recipe!r}")
        img.format = "jpeg"
        if recipe != "reencode":
            img.compression_quality = 88
        img.strip()
        return img.make_blob(), ".jpg"


def make_moved(blob: bytes) -> bytes:
    """The same scene with something moved: a quarter-size patch copied to another place."""
    from wand.image import Image

    with Image(blob=blob) as img:
        img.auto_orient()
        if img.alpha_channel:
            img.alpha_channel = "remove"
        w, h = img.width, img.height
        pw, ph = w // 4, h // 4
        with img.clone() as patch:
            patch.crop(w // 10, h // 2, width=pw, height=ph)
            img.composite(patch, left=w - pw - w // 10, top=h // 8)
        img.format = "jpeg"
        img.compression_quality = 88
        img.strip()
        return img.make_blob()


def select_part(labels: list[dict], part: int | None) -> list[dict]:
    """All labels, or the first ``part`` of each kind plus both ends of every shipped pair."""
    if not part:
        return labels
    paired = {a for a, _, _ in SHIPPED_PAIRS[:4]} | {b for _, b, _ in SHIPPED_PAIRS[:4]}
    taken: dict[str, int] = {}
    chosen = []
    for row in labels:
        taken[row["kind"]] = taken.get(row["kind"], 0) + 1
        if taken[row["kind"]] <= part or row["id"] in paired:
            chosen.append(row)
    return chosen


def write_csv(path: Path, columns, rows) -> None:
    """A small CSV, written whole."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def build(out: Path, part: int | None = None, labels_path: Path = LABELS) -> dict:
    """Write the set into ``out``; return counts by kind and of copies and pairs."""
    labels = select_part(read_labels(labels_path), part)
    wheel = skimage_wheel() if any(r["source"].startswith("wheel:") for r in labels) else None
    out.mkdir(parents=True, exist_ok=True)
    rows, copies, pairs = [], [], []
    photos = [r for r in labels if r["kind"] == "photo"]
    for row in labels:
        blob = read_source(row["source"], wheel)
        _write(out / row["id"], blob)
        rows.append(row)
    for n, row in enumerate(photos):
        blob = read_source(row["source"], wheel)
        stem = Path(row["id"]).stem
        group = Path(row["id"]).parent.name
        if n % COPY_EVERY == 0:
            copies.append({"group": row["id"], "id": row["id"], "recipe": "original"})
            for recipe in COPY_RECIPES:
                data, suffix = make_copy(blob, recipe)
                cid = f"copies/{group}-{stem}-{recipe}{suffix}"
                _write(out / cid, data)
                copies.append({"group": row["id"], "id": cid, "recipe": recipe})
                rows.append({"id": cid, "kind": "photo", "category": "copy",
                             "source": f"{recipe} of {row['id']}"})
        if n % MOVED_EVERY == MOVED_EVERY - 1:
            mid = f"moved/{group}-{stem}-moved.jpg"
            _write(out / mid, make_moved(blob))
            pairs.append({"id_a": row["id"], "id_b": mid, "why": "moved"})
            rows.append({"id": mid, "kind": "photo", "category": "moved",
                         "source": f"moved patch of {row['id']}"})
    present = {r["id"] for r in rows}
    pairs += [{"id_a": a, "id_b": b, "why": why} for a, b, why in SHIPPED_PAIRS
              if a in present and b in present]
    write_csv(out / "labels.csv", LABEL_COLUMNS, rows)
    write_csv(out / "copies.csv", ("group", "id", "recipe"), copies)
    write_csv(out / "distinct.csv", ("id_a", "id_b", "why"), pairs)
    counts = {kind: sum(r["kind"] == kind for r in rows) for kind in ("photo", "graphic", "other")}
    counts.update(copy_groups=len({c["group"] for c in copies}), copies=len(copies),
                  distinct_pairs=len(pairs))
    return counts


def _write(path: Path, data: bytes) -> None:
    """Write a file unless it already holds exactly these bytes (reruns are cheap)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=CACHE / "realset")
    parser.add_argument("--part", type=int, default=None,
                        help="only the first N labelled images of each kind")
    args = parser.parse_args(argv)
    missing = missing_packages()
    if missing:
        print(f"missing Debian packages {missing}: run 'bash tools/install-system-deps.sh realset'",
              file=sys.stderr)
        return 1
    counts = build(args.out, args.part)
    print(f"real set in {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
