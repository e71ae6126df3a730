"""Prepare measures only new or changed images: the rows of the others come from its last run.

Why: ``prepare`` is one job per location, and a later scrape adds images to the existing
location folders, so every location with one new image is prepared again, and without this
every one of its images would be decoded again (at 125,000 images: minutes of a 2-core
machine for an update of a few thousand).

How: Snakemake deletes a job's outputs before it runs it, so after a location is written its
five outputs are hard-linked (copied where links are impossible) into a cache folder that is
no rule's output (``results/cache/prepare/<location>/``), with ``files.csv`` (each image's id,
path, size and mtime_ns, taken before it was read) and ``signature.json``: a hash of every
prepare parameter, of the source of the modules that compute the rows, and of ImageMagick's
version. The next run copies an image's rows (triage, hash, features, thumbnail; or its
reject) from there when its id, path, size and mtime_ns and the signature are all unchanged,
and measures every other image as before. Rows keep inventory order, so the outputs equal a
fresh run's. Rejects that may not hold next time for the same bytes (a read error, an
ImageMagick resource limit) are measured again. Any doubt about the cache (missing, damaged,
another signature) means measuring everything: the cache can only save work, never change a
value. Deleting ``results/cache/prepare/`` forces a full measurement.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from ..common import atomic_dir, iter_csv, link_or_copy, write_csv

log = logging.getLogger("vacancy.images.prepare")

#: The outputs a location's cache keeps, by the short names prepare_location uses.
OUTPUT_FILES = {"triage": "triage.csv", "hashes": "hashes.csv", "rejects": "rejects.csv",
                "features": "features.h5", "thumbs": "thumbs.h5"}
IDENTITY_COLUMNS = ("id", "path", "size", "mtime_ns")
#: Reject reasons that the same bytes may not earn next time: measured again, never reused.
TRANSIENT_REJECTS = ("cannot read file", "ImageMagick failed")
#: Sources (relative to the vacancy package) whose code makes prepare's rows: any edit to them
#: makes every cached row stale, since it may change a value.
MEASURING_CODE = ("images/prepare.py", "images/features.py", "images/hashes.py",
                  "images/triage.py", "images/triage_model.json", "images/thumbs.py",
                  "images/resample.py", "images/isolate.py", "imaging.py", "formats.py")


def signature(params: dict) -> str:
    """What made a location's rows: every prepare param, the measuring code, ImageMagick."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    package = Path(__file__).resolve().parents[1]
    for name in MEASURING_CODE:
        digest.update(name.encode() + b"\0" + (package / name).read_bytes())
    try:
        from wand.version import MAGICK_VERSION
    except ImportError:  # no ImageMagick: prepare fails anyway, before any image
        MAGICK_VERSION = ""
    digest.update(MAGICK_VERSION.encode())
    return digest.hexdigest()


def file_identity(path: str) -> tuple[str, str] | None:
    """(size, mtime_ns) of an image file as text (how files.csv stores it); None if unreadable."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return str(stat.st_size), str(stat.st_mtime_ns)


class _Rows:
    """Rows of an HDF5 dataset by id, read a chunk-sized block at a time: reused rows come in
    (nearly) the stored order, and a single-row read would decompress a whole chunk each time."""

    def __init__(self, path: Path, name: str):
        self.h5 = h5py.File(path, "r")
        self.data = self.h5[name]
        self.index = {i.decode(): n for n, i in enumerate(self.h5["ids"][:])}
        self.block = (self.data.chunks or (64,))[0]
        self.start, self.rows = -1, None

    def get(self, image_id: str) -> np.ndarray:
        n = self.index[image_id]
        start = n - n % self.block
        if start != self.start:
            self.start, self.rows = start, self.data[start:start + self.block]
        return self.rows[n - start]


class PreviousRun:
    """The rows of a location's last prepare run, replayed for unchanged images, and the
    bookkeeping to keep this run's rows for the next one."""

    def __init__(self, folder, params: dict):
        self.folder = Path(folder) if folder else None
        self.signature = signature(params) if self.folder else ""
        self.seen: list[dict] = []
        self.images = self.reused = 0
        self.known: dict[str, dict] = {}
        self.h5: dict[str, _Rows] = {}
        if self.folder and (self.folder / "signature.json").exists():
            try:
                self._load()
            except (OSError, KeyError, ValueError) as exc:
                log.warning("prepare cache %s unusable (%s): measuring every image",
                            self.folder, exc)
                self.close()
                self.known = {}

    def _load(self) -> None:
        """Read the cache if its signature is this run's (else leave it empty: measure all)."""
        saved = json.loads((self.folder / "signature.json").read_text())["signature"]
        if saved != self.signature:
            log.info("prepare cache %s: parameters or code changed, measuring every image",
                     self.folder)
            return
        known = {r["id"]: {"identity": (r["path"], r["size"], r["mtime_ns"])}
                 for r in iter_csv(self.folder / "files.csv")}
        for name in ("triage", "hashes", "rejects"):
            for row in iter_csv(self.folder / OUTPUT_FILES[name]):
                if row["id"] in known:
                    known[row["id"]][name] = row
        self.h5 = {name: _Rows(self.folder / OUTPUT_FILES[name], name)
                   for name in ("features", "thumbs")}
        self.known = known

    def stored(self, row: dict, identity: tuple[str, str] | None) -> dict | None:
        """The stored rows of this inventory row's image if they can be replayed, else None.

        Only reads what :meth:`_load` built, so the threads reading files ahead may ask it."""
        if identity is None:
            return None  # a missing or unreadable file is measured (and rejected) every time
        old = self.known.get(row["id"])
        if old is None or old["identity"] != (row["path"], *identity):
            return None
        if "rejects" in old:
            return None if old["rejects"]["reason"].startswith(TRANSIENT_REJECTS) else old
        if "triage" not in old or "hashes" not in old:
            return None
        if old["triage"]["class"] != "graphic" and not all(
                row["id"] in h.index for h in self.h5.values()):
            return None
        return old

    def replay(self, row: dict, identity: tuple[str, str] | None, out: dict,
               counts: dict) -> bool:
        """Write the stored rows of this inventory row's image if it is unchanged (True), or
        note its ``identity`` (:func:`file_identity`, taken before the file was read) and
        leave it to be measured (False)."""
        self.images += 1
        if identity is not None:
            self.seen.append({"id": row["id"], "path": row["path"], "size": identity[0],
                              "mtime_ns": identity[1]})
        old = self.stored(row, identity)
        if old is None:
            return False
        if "rejects" in old:
            out["rejects"].add(old["rejects"])
            counts["rejected"] += 1
        else:
            klass = old["triage"]["class"]
            out["triage"].add(old["triage"])
            out["hashes"].add(old["hashes"])
            if klass != "graphic":
                out["features"].add(row["id"], self.h5["features"].get(row["id"]))
                out["thumbs"].add(row["id"], self.h5["thumbs"].get(row["id"]))
            counts[klass] += 1
        self.reused += 1
        return True

    def __enter__(self) -> "PreviousRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the cached HDF5 files (before :meth:`save` replaces them)."""
        for rows in self.h5.values():
            rows.h5.close()
        self.h5 = {}

    def save(self, location: str, *outputs) -> None:
        """Log what was reused; keep this run's ``outputs`` (triage, hashes, rejects, features,
        thumbs: links) and the identity of every image for the next run. A failure here costs
        the next run time, never a value: it is logged, not raised."""
        self.close()
        log.info("prepare %s: reused %d of %d images, measured the others", location,
                 self.reused, self.images)
        if not self.folder:
            return
        try:
            with atomic_dir(self.folder) as tmp:
                for path, filename in zip(outputs, OUTPUT_FILES.values(), strict=True):
                    link_or_copy(Path(path), tmp / filename)
                write_csv(tmp / "files.csv", self.seen, IDENTITY_COLUMNS)
                (tmp / "signature.json").write_text(json.dumps({"signature": self.signature}))
        except OSError as exc:
            log.warning("prepare cache %s not written (%s): the next run measures every image",
                        self.folder, exc)
