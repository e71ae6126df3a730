"""Sources of images: every source ends in one inventory CSV per location.

The demo generator and the Craigslist scraper write ``results/raw/<location>/`` with the
photos and a ``manifest.csv`` of listing data; ``source: folder`` points at a user's folder with
one sub-folder per location and no manifest. The inventory joins what is on disk with what the
manifest says, so every later stage reads one uniform table and never lists folders itself.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

from ..common import IMAGE_SUFFIXES, UNREAD_PHOTO_SUFFIXES, image_id, provenance, read_csv, write_csv

log = logging.getLogger(__name__)

#: Columns of a location's manifest, as the demo generator and the scraper write them.
MANIFEST_COLUMNS = [
    "filename", "image_url", "listing_url", "listing_id", "title", "price", "posted",
    "state", "bytes", "sha256", "fetched_at", "latitude", "longitude",
]

#: Columns of ``results/inventory/<location>.csv``.
INVENTORY_COLUMNS = [
    "id", "location", "filename", "path", "image_url", "listing_url", "listing_id", "title",
    "price", "posted", "state",
]


def list_locations(folder: str | Path) -> list[str]:
    """Sub-folders of a ``source: folder`` tree, sorted; hidden folders are skipped.

    Image files directly in ``folder`` belong to no location. A flat folder of photos (images,
    no sub-folder) is the first thing many users try: it is an error that says what to do,
    not "no locations". Loose images beside sub-folders are counted in a warning, not left
    out unsaid.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"folder.path {str(folder)!r} is not a folder: it must hold one sub-folder per location"
        )
    names, loose = [], 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                names.append(entry.name)
            elif _is_candidate(Path(entry.name)):
                loose += 1
    if loose and not names:
        raise ValueError(
            f"folder.path {str(folder)!r} holds {loose} image files but no sub-folder: each "
            f"sub-folder of folder.path is one location. Move the images into sub-folders (by "
            f"place or by batch, for example {str(folder / 'batch1')!r}; one sub-folder of "
            f"them all will do) and run again"
        )
    if loose:
        log.warning("folder %s: %d image files directly in it are left out: only its "
                    "sub-folders are locations (move them into one)", folder, loose)
    printable = []
    for name in sorted(names):
        if _printable_name(name):
            printable.append(name)
        else:
            log.warning("folder %s: location folder %r skipped: its name is not UTF-8 (rename it)",
                        folder, os.fsencode(name))
    return printable


def _printable_name(name: str) -> bool:
    """False for a name that is not valid UTF-8 (Python keeps its bytes as surrogates): no CSV,
    image id or Snakemake path can hold it."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_candidate(path: Path) -> bool:
    """A folder entry that might be a photo: not hidden, not a partial download, an image suffix.

    Not only regular files: a pipe, a device or a dangling link named like a photo is listed too,
    so that ``prepare`` names it in its rejects (what it is) instead of it vanishing unseen.
    """
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def _manifest_entries(manifest_path: Path, location: str) -> list[tuple[str, dict]]:
    """(filename, listing row) for each distinct file name in a manifest, in file order."""
    seen: dict[str, dict] = {}
    for row in read_csv(manifest_path):
        name = row.get("filename", "")
        if not name or "/" in name or name in (".", ".."):
            log.warning("inventory %s: manifest row with unusable filename %r skipped", location, name)
            continue
        seen.setdefault(name, row)
    return list(seen.items())


def _folder_entries(location_dir: Path, location: str) -> list[tuple[str, dict]]:
    """(filename, {}) for each image file of a folder without a manifest, sorted by name.

    Other files are left out, each logged, and photos of a format that is not read (HEIC from a
    phone, camera raw) are counted in one warning that says what to do: a folder of iPhone
    photos must not become an empty map with nothing said.
    """
    entries, unread = [], Counter()
    for path in sorted(location_dir.iterdir()) if location_dir.is_dir() else []:
        if not _printable_name(path.name):
            log.warning("inventory %s: skipped %r: its name is not UTF-8 (rename it)", location,
                        os.fsencode(path.name))
        elif _is_candidate(path):
            entries.append((path.name, {}))
        elif path.is_file():
            log.info("inventory %s: skipped %s (not an image file name)", location, path.name)
            kind = UNREAD_PHOTO_SUFFIXES.get(path.suffix.lower())
            if kind and not path.name.startswith("."):
                unread[f"{kind} ({path.suffix.lower()})"] += 1
    if unread:
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(unread.items()))
        log.warning("inventory %s: %s photos left out: only %s files are read; convert them to "
                    "JPEG first (for example `mogrify -format jpg *.heic` with ImageMagick)",
                    location, found, ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES)))
    return entries


def build_inventory(location_dir: str | Path, location: str, out_csv: str | Path) -> int:
    """List one location's images, with their listing data, in one table.

    Where a ``manifest.csv`` exists (demo and scraper output) it is the authority: its rows are
    the images, so a stray or stale file in the folder is never mapped, and a file that the
    manifest names but that is missing reaches triage, which reports it. A plain folder of photos
    has no manifest: its files with an image suffix are listed (other files are logged and left
    out). Whether a listed file really is an image is decided later, from its bytes.
    Returns the number of images in the inventory.
    """
    location_dir = Path(location_dir)
    manifest_path = location_dir / "manifest.csv"
    if manifest_path.exists():
        entries = _manifest_entries(manifest_path, location)
    else:
        entries = _folder_entries(location_dir, location)
    rows = [
        {**{key: meta.get(key, "") for key in INVENTORY_COLUMNS},
         "id": image_id(location, name), "location": location, "filename": name,
         "path": str(location_dir / name)}
        for name, meta in entries
    ]
    count = write_csv(out_csv, rows, INVENTORY_COLUMNS,
                      prov=provenance("inventory", {"location": location, "dir": str(location_dir)}))
    log.info("inventory %s: %d images", location, count)
    return count
