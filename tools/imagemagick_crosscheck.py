"""Prepare a fixed set of images with whichever ImageMagick Wand loads, and print every output.

Run once under ImageMagick 6 and once under 7 (tools/check-imagemagick7.sh does both) and diff
the two printouts: triage, hashes and rejects are printed as written, the features as a SHA-256.
The images cover what decodes differently: sRGB, grey and CMYK JPEG, PNG, palette GIF, WebP, and
a truncated JPEG that must be a reject. Usage: python imagemagick_crosscheck.py OUT_DIR
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import h5py
import sklearn.datasets
from PIL import Image
from wand.version import MAGICK_VERSION

from vacancy.common import write_csv
from vacancy.images.prepare import prepare_location

VARIANTS = [("RGB", "JPEG"), ("L", "JPEG"), ("CMYK", "JPEG"), ("RGB", "PNG"), ("P", "GIF"),
            ("RGB", "WEBP")]


def write_images(folder: Path) -> list[dict]:
    """Scikit-learn's two sample photographs in every variant, plus a truncated JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, name in enumerate(["china.jpg", "flower.jpg"]):
        pixels = sklearn.datasets.load_sample_image(name)
        for mode, fmt in VARIANTS:
            path = folder / f"{Path(name).stem}-{mode}.{fmt.lower()}"
            Image.fromarray(pixels).convert(mode).save(path, format=fmt)
            rows.append({"id": path.stem, "path": str(path)})
    whole = (folder / "china-RGB.jpeg").read_bytes()
    (folder / "truncated.jpeg").write_bytes(whole[: len(whole) // 2])
    rows.append({"id": "truncated", "path": str(folder / "truncated.jpeg")})
    return rows


def main(out: Path) -> None:
    rows = write_images(out / "images")
    write_csv(out / "inventory.csv", rows, ["id", "path"])
    names = ["triage.csv", "hashes.csv", "features.h5", "thumbs.h5", "rejects.csv"]
    prepare_location(out / "inventory.csv", *(out / n for n in names),
                     graphic_below=3.9, photo_above=4.4, cell_px=64)
    print(f"# {MAGICK_VERSION}", file=sys.stderr)
    for name in ("triage.csv", "hashes.csv", "rejects.csv"):
        print(f"## {name}\n{(out / name).read_text()}")
    with h5py.File(out / "features.h5") as h5:
        features = h5["features"][:]
    print(f"## features {features.shape} sha256 {hashlib.sha256(features.tobytes()).hexdigest()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
