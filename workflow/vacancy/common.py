"""Helpers every stage shares: atomic writes, provenance records, progress logs, id handling.

Every output of the workflow is written to a temporary file in the same folder and renamed into
place, so an interrupted job never leaves a half-written file that a later run could mistake for
a finished one. Every CSV gets a ``<name>.meta.json`` sidecar and every HDF5 file gets attributes
that say which stage, parameters and library versions made it.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

log = logging.getLogger("vacancy")

#: Distributions whose versions can change a result; recorded with every output.
TRACKED_PACKAGES = (
    "numpy", "scipy", "pandas", "pillow", "wand", "imagehash", "h5py",
    "scikit-learn", "opentsne", "lapjv", "vc_flas", "snakemake",
)

#: File name suffixes that the sources treat as images (case-insensitive): the six formats of
#: :data:`vacancy.formats.FORMATS` (``.jfif`` and ``.jpe`` are JPEG as browsers save it).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
#: Photo formats a folder of photos often holds that are not read (phones save HEIC; the map's
#: viewer shows originals in the browser, which cannot show HEIC): named in the inventory's warning.
UNREAD_PHOTO_SUFFIXES = {".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF", ".jxl": "JPEG XL",
                         ".dng": "raw", ".cr2": "raw", ".nef": "raw", ".arw": "raw"}


#: The config schema: the one place every default lives (Snakemake's ``validate`` fills them in).
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


@functools.lru_cache(maxsize=1)
def config_schema() -> dict:
    """The config schema, read once."""
    import yaml  # only here: the Snakefile imports this module at parse time

    return yaml.safe_load(SCHEMA_PATH.read_text())


def config_defaults() -> dict:
    """The configuration the schema's defaults make, for code run outside the workflow
    (benchmarks, tests): the stage functions take every setting as a required argument."""

    def fill(node: dict):
        if node.get("type") == "object" and "properties" in node:
            return {key: fill(child) for key, child in node["properties"].items()}
        return node["default"]

    return fill(config_schema())


def location_name_pattern() -> re.Pattern:
    """Safe location names (they become folder and host names), as the schema states them."""
    return re.compile(config_schema()["$defs"]["location"]["pattern"])


def image_id(location: str, filename: str) -> str:
    """The id of an image everywhere in the workflow: ``location/filename``."""
    return f"{location}/{filename}"


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape results, plus ImageMagick's, for provenance."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    with contextlib.suppress(Exception):
        from wand.version import MAGICK_VERSION

        versions["imagemagick"] = MAGICK_VERSION
    return versions


def provenance(stage: str, params: Mapping | None = None, **extra) -> dict:
    """What made an output: stage, parameters, library versions, time and host."""
    record = {
        "stage": stage,
        "params": dict(params or {}),
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
    }
    record.update(extra)
    return record


#: What :func:`tempfile.mkstemp` and :func:`tempfile.mkdtemp` put between prefix and suffix.
_TEMP_NAME_CHARS = r"[a-z0-9_]{8}"
#: Suffixes of this module's temporary siblings: files and folders being written, trees moved aside.
_TEMP_SUFFIXES = (".part", ".old")


def remove_stale_temps(path: str | os.PathLike, suffix: str | None = None) -> list[Path]:
    """Delete temporary siblings of ``path`` left by a writer that was killed (``kill -9``, a
    node lost): they are never renamed into place, so only the next writer of the same output
    can know they are garbage. Snakemake runs one job per output at a time, so none of them can
    belong to a live writer. Returns what was removed."""
    path = Path(path)
    suffixes = "|".join(re.escape(s) for s in {*_TEMP_SUFFIXES, *([suffix] if suffix else [])})
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{_TEMP_NAME_CHARS}(?:{suffixes})")
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for sibling in path.parent.iterdir():
            if pattern.fullmatch(sibling.name):
                if sibling.is_dir() and not sibling.is_symlink():
                    shutil.rmtree(sibling, ignore_errors=True)
                else:
                    sibling.unlink(missing_ok=True)
                removed.append(sibling)
    if removed:
        log.info("removed %d stale temporary file(s) of %s left by an interrupted run", len(removed), path)
    return removed


def _umask_mode(mode: int) -> int:
    """``mode`` as the user's umask lets a newly created file have it (mkstemp and mkdtemp
    create 0600 and 0700, which a web server or a colleague could not read)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    The temporary file lives in the destination folder so the final rename is atomic on POSIX.
    Temporary files of an earlier, killed writer of the same output are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".part", dir=path.parent)
    os.fchmod(fd, _umask_mode(0o666))
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def link_or_copy(src: Path, dest: Path) -> None:
    """Hard-link ``src`` to ``dest`` (its folders made), or copy it where a link is impossible
    (another filesystem, or one without hard links). Tiles are shared this way between the
    bands, the pyramid and a saved layout: a link costs no bytes, and it stays valid because
    every folder is replaced by a rename (:func:`atomic_dir`), never rewritten in place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def link_tree(src: Path, dest: Path, pattern: str = "**/*") -> int:
    """:func:`link_or_copy` every file of ``src`` matching ``pattern`` under ``dest``; the count."""
    count = 0
    for path in Path(src).glob(pattern):
        if path.is_file():
            link_or_copy(path, dest / path.relative_to(src))
            count += 1
    return count


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success replace ``path`` with it in one rename.

    Snakemake's ``directory()`` outputs are trusted if they exist, so a half-built tree must never
    sit under the final name. A stale previous tree is moved aside and removed only after the new
    one is in place; folders of an earlier, killed writer are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    os.chmod(tmp, _umask_mode(0o777))
    try:
        yield tmp
        old = None
        if path.is_dir() and not path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "tree")
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike, data) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


class CsvRows:
    """Rows being written to a CSV by :func:`csv_rows`: ``add`` one at a time; ``prov`` (the
    provenance sidecar's content) can still be completed before the block ends."""

    def __init__(self, writer: csv.DictWriter, prov: dict | None):
        self._writer = writer
        self.prov = prov
        self.count = 0

    def add(self, row: Mapping) -> None:
        self._writer.writerow(row)
        self.count += 1


@contextlib.contextmanager
def csv_rows(path: str | os.PathLike, fieldnames: Sequence[str],
             prov: Mapping | None = None) -> Iterator[CsvRows]:
    """Write a CSV row by row (memory flat in the number of rows), atomically, with a
    ``.meta.json`` provenance sidecar written when the block succeeds."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fieldnames), extrasaction="ignore")
            writer.writeheader()
            rows = CsvRows(writer, dict(prov) if prov is not None else None)
            yield rows
    if rows.prov is not None:
        write_json(sidecar_path(path), {**rows.prov, "n_rows": rows.count,
                                        "columns": list(fieldnames)})


def write_csv(
    path: str | os.PathLike,
    rows: Iterable[Mapping],
    fieldnames: Sequence[str],
    prov: Mapping | None = None,
) -> int:
    """Write rows as CSV atomically (and a ``.meta.json`` provenance sidecar); return the count."""
    with csv_rows(path, fieldnames, prov) as out:
        for row in rows:
            out.add(row)
    return out.count


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the provenance of a CSV output is kept."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def iter_csv(path: str | os.PathLike) -> Iterator[dict[str, str]]:
    """The rows of a CSV one at a time, for tables too big to hold as dicts (125,000 rows of
    selected.csv are ~300 MB as a list of dicts)."""
    with open(path, newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a CSV written by :func:`write_csv` into a list of dicts (all values as text)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def setup_logging(log_path: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Log to the rule's log file (Snakemake prints where it is) and to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )


class Progress:
    """Log ``done/total`` and the rate every few seconds, so long rules show they are alive."""

    def __init__(self, label: str, total: int | None, every_s: float = 5.0, logger=None):
        self.label = label
        self.total = total
        self.every_s = every_s
        self.logger = logger or log
        self.done = 0
        self.start = time.monotonic()
        self._last = self.start

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._emit(now)

    def finish(self) -> None:
        self._emit(time.monotonic(), final=True)

    def _emit(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self.start, 1e-9)
        total = f"/{self.total}" if self.total is not None else ""
        word = "finished" if final else "progress"
        self.logger.info(
            "%s %s: %d%s images, %.1f images/s, %.1f s",
            self.label, word, self.done, total, self.done / elapsed, elapsed,
        )


@contextlib.contextmanager
def run_ahead(function, items: Iterable, depth: int) -> Iterator[Iterator[tuple]]:
    """``(item, future of function(item))`` in the order of ``items``, with up to ``depth``
    calls running ahead of the caller, each on its own thread.

    Why: for calls that mostly wait (a file read from a network file system, a USB disk or a
    cloud-drive mount) while the caller computes: the waits overlap the caller's work and each
    other. ``future.result()`` gives the call's value or raises what it raised. Leaving the
    ``with`` block early cancels the calls not yet started and waits for the running ones.
    """
    pool = ThreadPoolExecutor(max(1, depth), thread_name_prefix="ahead")

    def ordered() -> Iterator[tuple]:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(function, item)))
            if len(pending) > depth:
                yield pending.popleft()
        while pending:
            yield pending.popleft()

    try:
        yield ordered()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
