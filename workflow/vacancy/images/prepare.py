"""Stage prepare: everything the map needs from an image, from ONE decode of it.

Why one stage: decoding a listing JPEG is most of the per-image cost, and the original scripts
(and our first version) decoded every image once per measurement. Here each image of a location
is read once, decoded once by ImageMagick (through Wand, with :mod:`vacancy.imaging`'s defences:
content sniffing, pixel limits, damage checks) at reduced scale, and that one decode gives:

* triage: entropy of the 8-bit grey histogram, the cheap signals of
  :func:`vacancy.images.triage.signals` (from the same histogram, the 64x64 grey image and a strided colour sample), the model's
  score and the class (:mod:`vacancy.images.triage`);
* hashes: the dHash for dedup (:mod:`vacancy.images.hashes`) of the features' 64x64 grey image (the
  hash only needs 9x8, and resizing 64x64 instead of the decode is 6x cheaper), plus stored size
  and file size;
* features: the 64x64 grey + blur 3 + blur 8 vector (:mod:`vacancy.images.features`), for photos and
  "maybe" images only (graphics never reach the map);
* thumbs: the map's cell-sized thumbnail (:mod:`vacancy.images.thumbs`), for the same images.

Reduced scale: JPEGs are decoded with ImageMagick's ``jpeg:size`` hint, which lets libjpeg
scale by M/8 while decoding, to the smallest scale at least ``draft_side`` pixels a side
(600x450, a listing photo's size -> 225x169 for the default 128, 150x113 for 96; a 4000x3000
photo -> 500x375). Other formats are decoded whole. What it changes against full decodes, and
what 96 saves (1.2x per image), is measured by ``bench/draft_side.py`` (README, "Preparation"):
on the demo at 128 the entropy moves by 0.05 nats on average (0.05% of images change class),
features by 0.0009 per value (0..1), the hash by 0.4 bits. ``draft: false`` decodes everything
whole.

A bad image is one row in the location's rejects CSV (id, stage, reason) and never stops the job,
even one that crashes or hangs the decoder (:func:`prepare_location_guarded`, :mod:`.isolate`).
Every output is written to a temporary file and renamed into place when the location is done.
A location that holds a large share of all images is measured by several worker processes (the
rule's threads, :func:`vacancy.resources.prepare_threads`); the rows are the same either way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import h5py
import hdf5plugin
import numpy as np
from threadpoolctl import threadpool_limits
from wand.color import Color

from ..common import (Progress, atomic_path, config_defaults, csv_rows, iter_csv, provenance,
                      run_ahead)
from .features import N_FEATURES, RECIPE, check_color, features_of_small, wand_features
from .resample import resize_gray
from .isolate import Guard, supervised
from .reuse import PreviousRun, file_identity
from .hashes import HASH_COLUMNS, check_hash_size, dhash_of_gray, gray8_of_unit
from ..imaging import DEFAULT_MAX_PIXELS, Rejected, decode_sized, export_pixels, read_blob
from .thumbs import thumb_from_rgb
from .triage import OUT_COLUMNS as TRIAGE_COLUMNS
from .triage import SIGNALS, classify, gray_q16, histogram_of_q16, signals, triage_class

log = logging.getLogger("vacancy.images.prepare")

STAGE = "prepare"
REJECT_COLUMNS = ("id", "stage", "reason")
#: Smallest side of a reduced-scale JPEG decode (config ``prepare.draft_side``, whose default
#: lives in the schema): above the 64-px feature grid, so the Lanczos resize still averages
#: pixels. Raised to ``cell_px`` for big thumbnails.
DRAFT_SIDE: int = config_defaults()["prepare"]["draft_side"]
#: ImageMagick 6's weights for ``-colorspace gray`` (Rec709Luma, on the sRGB-encoded values).
REC709_LUMA = np.array([0.212656, 0.715158, 0.072186])
#: Longest side worked on after the entropy is taken: larger decodes (formats without scaled
#: decoding) are first shrunk by ImageMagick, so a resize matrix is at most 1024 x 1024.
MAX_WORK_SIDE = 1024
#: Rows per HDF5 chunk: a chunk of 64 gray vectors is 3 MB raw, a good unit for PCA batches.
CHUNK_ROWS = 64
#: Files read ahead of the decoding, each on its own thread: on storage that answers slowly (a
#: network file system, a USB disk, a cloud-drive mount) the waits overlap the decoding and each
#: other. Measured by bench/read_ahead.py (README, "Preparation").
READ_AHEAD = 8
#: Larger files are read when their turn comes, not ahead: the reads ahead hold at most
#: READ_AHEAD x this (a listing photo is well under 1 MB, a 50-megapixel JPEG 10-30 MB).
READ_AHEAD_MAX_BYTES = 16 * 1024 * 1024
#: Bitshuffle + LZ4 (hdf5plugin). Measured on 2,048 rows of demo features: 31.8 KB per image
#: (raw 48, lzf+shuffle 34.5), written in 0.04 ms per image (lzf+shuffle 0.25: a sixth of the
#: whole per-image cost) and read back in 0.02 ms (lzf+shuffle 0.10); PCA reads every row twice.
FEATURE_COMPRESSION = dict(hdf5plugin.Bitshuffle(cname="lz4"))


def decode_options(draft: bool, cell_px: int,
                   draft_side: int = DRAFT_SIDE) -> dict[str, str] | None:
    """ImageMagick read options: the JPEG scale hint, or none for a full decode."""
    if not draft:
        return None
    side = max(int(draft_side), int(cell_px))
    return {"jpeg:size": f"{side}x{side}"}


def gray_and_rgb(img) -> tuple[np.ndarray, np.ndarray | None]:
    """ImageMagick's ``-colorspace gray`` (Q16) and the Q16 RGB it is computed from, one export.

    For sRGB and gray images the gray is Rec. 709 luma of the exported values, rounded as
    ImageMagick rounds: equal to its own conversion (measured: 0 of 1.5 million demo pixels
    differ; the tests compare the entropy with its CLI). Other colourspaces (CMYK) are left to
    ImageMagick, and the RGB is then exported separately.
    """
    if img.colorspace not in ("srgb", "gray"):
        return gray_q16(img), None
    rgb16 = export_pixels(img, "RGB", "short")
    return luma_q16(rgb16), rgb16


def luma_q16(rgb16: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of Q16 RGB, rounded as ImageMagick rounds (see :func:`gray_and_rgb`)."""
    luma = rgb16 @ REC709_LUMA
    luma += 0.5  # in place: the same float64 values as floor(luma + 0.5), one array fewer
    return np.floor(luma, out=luma).astype(np.uint16)


#: Rows of a large decode exported at a time for its histogram (see :func:`gray_histogram`).
BAND_ROWS = 256


def gray_histogram(img) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(256-level grey histogram, Q16 grey, Q16 RGB) of a decode, the arrays None when it is
    larger than MAX_WORK_SIDE.

    A large sRGB or grey decode (a PNG, GIF or TIFF is decoded whole: up to ``max_pixels``) is
    exported a band of rows at a time for its histogram, then shrunk by the caller: exported
    whole, its luma in float64 alone took 1.2 GB at 49 megapixels, beyond the rule's memory.
    The counts are the same as the whole export's.
    """
    big = max(img.width, img.height) > MAX_WORK_SIDE
    if big and img.colorspace in ("srgb", "gray"):
        counts = np.zeros(256, dtype=np.int64)
        for top in range(0, img.height, BAND_ROWS):
            rows = (top, min(BAND_ROWS, img.height - top))
            counts += histogram_of_q16(luma_q16(export_pixels(img, "RGB", "short", rows=rows)))
        return counts, None, None
    q16, rgb16 = gray_and_rgb(img)
    return (histogram_of_q16(q16), None, None) if big else (histogram_of_q16(q16), q16, rgb16)


def _flatten(img, background) -> None:
    """Transparent parts replaced by the map background, before anything is measured.

    Triage, hash, features and thumbnail then all see what the map shows. Measured on the colours
    hidden under transparency (black, white or anything), a fully transparent PNG could be
    classed photo and mapped as a blank cell. On the real set this moves no photo and takes
    one graphic in 30 with alpha off the map (shipped model: 0.0331 -> 0.0294 of graphics).
    """
    if img.alpha_channel:
        img.background_color = Color("rgb({},{},{})".format(*background))
        img.alpha_channel = "remove"


def _flat_rgb8(img) -> np.ndarray:
    """8-bit sRGB pixels (of an image already flattened by :func:`_flatten`)."""
    img.transform_colorspace("srgb")  # a grey or CMYK JPEG comes out as three equal channels
    return export_pixels(img, "RGB", "char")


def measure_image(blob: bytes, options: dict | None, graphic_below: float, photo_above: float,
                  hash_size: int, color: str, cell_px: int, background,
                  max_pixels: int = DEFAULT_MAX_PIXELS, method: str = "entropy",
                  score_graphic_below: float = 0.5, score_photo_above: float = 0.5) -> dict:
    """Triage row, hash row, and (not for graphics) feature vector and thumbnail of one image.

    ``method`` "entropy" classes by the entropy thresholds alone (the original rule); "model" by
    the score of :func:`vacancy.images.triage.score` against the ``score_*`` thresholds. Every
    signal is measured and written either way, so a curator can compare. Raises :class:`Rejected` with
    the reason for an image that cannot be used.
    """
    with decode_sized(blob, max_pixels, options) as (img, (width, height)):
        _flatten(img, background)
        counts, q16, rgb16 = gray_histogram(img)
        if q16 is None:
            # a big PNG or TIFF (or draft off): shrink once, so resize matrices stay small
            img.transform(resize=f"{MAX_WORK_SIDE}x{MAX_WORK_SIDE}>")
            q16, rgb16 = gray_and_rgb(img)
        small = resize_gray(q16 * np.float32(1 / 65535))  # the 64x64 of the feature recipe
        values = signals(counts, small, q16, rgb16)
        klass, value = triage_class(values, method, graphic_below, photo_above,
                                    score_graphic_below, score_photo_above)
        result = {
            "triage": {"entropy": f"{values['entropy']:.6f}", "class": klass,
                       "width": width, "height": height,
                       "score": "" if np.isnan(value) else f"{value:.6f}",
                       **{name: f"{values[name]:.6f}" for name in SIGNALS[1:]}},
            "hash": {"dhash": dhash_of_gray(gray8_of_unit(small), hash_size),
                     "width": width, "height": height, "bytes": len(blob)},
            "features": None,
            "thumb": None,
        }
        if klass == "graphic":
            return result
        if color == "gray":
            result["features"] = features_of_small(small)
        else:
            with img.clone() as copy:
                result["features"] = wand_features(copy, color)
        orientation = img.orientation
        if rgb16 is None:  # CMYK: ImageMagick converts
            rgb = _flat_rgb8(img)
        else:  # the Q16 export: scaled to 8 bits as ImageMagick does, inside the crop only
            rgb = rgb16
    result["thumb"] = thumb_from_rgb(rgb, cell_px, orientation)
    return result


class RowWriter:
    """Appends (id, row) pairs to an ``ids`` and a data dataset in batches: flat memory."""

    def __init__(self, h5: h5py.File, name: str, row_shape: tuple, dtype: str, batch: int,
                 **storage):
        self.ids = h5.create_dataset("ids", shape=(0,), maxshape=(None,), chunks=(1024,),
                                     dtype=h5py.string_dtype("utf-8"))
        self.data = h5.create_dataset(name, shape=(0, *row_shape), maxshape=(None, *row_shape),
                                      dtype=dtype, chunks=(CHUNK_ROWS, *row_shape), **storage)
        self.buffer = np.empty((max(1, batch), *row_shape), dtype=dtype)
        self.buffer_ids: list[str] = []
        self.written = 0

    def add(self, id_: str, row: np.ndarray) -> None:
        self.buffer[len(self.buffer_ids)] = row
        self.buffer_ids.append(id_)
        if len(self.buffer_ids) == len(self.buffer):
            self.flush()

    def flush(self) -> None:
        n = len(self.buffer_ids)
        if n == 0:
            return
        end = self.written + n
        self.ids.resize((end,))
        self.data.resize(end, axis=0)
        self.ids[self.written:end] = self.buffer_ids
        self.data[self.written:end] = self.buffer[:n]
        self.written = end
        self.buffer_ids.clear()


@contextlib.contextmanager
def _h5_rows(path, name, row_shape, dtype, batch, attrs, **storage) -> Iterator[RowWriter]:
    """A RowWriter on a temporary HDF5 file that is renamed to ``path`` only on success."""
    with atomic_path(path, suffix=".h5.part") as tmp:
        with h5py.File(tmp, "w") as h5:
            writer = RowWriter(h5, name, row_shape, dtype, batch, **storage)
            yield writer
            writer.flush()
            for key, value in attrs.items():
                h5.attrs[key] = value
            h5.attrs["n_rows"] = writer.written


def prepare_location(inventory_csv, triage_csv, hashes_csv, features_h5, thumbs_h5, rejects_csv,
                     graphic_below: float = 3.9, photo_above: float = 4.4, hash_size: int = 8,
                     color: str = "gray", cell_px: int = 64, background=(24, 24, 24),
                     draft: bool = True, draft_side: int = DRAFT_SIDE, batch_size: int = 256,
                     max_pixels: int = DEFAULT_MAX_PIXELS, method: str = "entropy",
                     score_graphic_below: float = 0.5, score_photo_above: float = 0.5,
                     reuse_dir=None, workers: int = 1, guard: Guard | None = None) -> dict:
    """Decode every image of one location's inventory once; write the five outputs; return counts.

    ``triage_csv``: :data:`vacancy.images.triage.OUT_COLUMNS` (id, entropy, class, width, height,
    score, then the other signals). ``method`` and the thresholds: see :func:`measure_image`. ``hashes_csv``: id, dhash, width, height,
    bytes. ``features_h5``: ``ids``, ``features`` (n x 12,288 float32, chunks of 64 rows,
    bitshuffle + LZ4) for photos and "maybe". ``thumbs_h5``: ``ids``, ``thumbs`` (n x cell_px x
    cell_px x 3 uint8). ``rejects_csv``: id, stage, reason. Rows keep inventory
    order. Configuration errors (thresholds, hash size, colour) are raised before any image.
    ``reuse_dir``: the location's cache of its last run (:mod:`.reuse`), for unchanged images.
    ``workers``: processes that measure images side by side (the rule's threads: more for a
    large location, see :func:`_measure_in_workers`); the outputs are the same for any number.
    ``guard``: how images are measured when a file may crash or hang the decoder (see
    :func:`prepare_location_guarded`, which the rule runs); None measures them plainly.
    """
    guard = guard or Guard()
    classify(0.0, graphic_below, photo_above)
    triage_class(dict.fromkeys(SIGNALS, 0.0), method, graphic_below, photo_above,
                 score_graphic_below, score_photo_above)  # bad method or thresholds: fail now
    check_hash_size(hash_size)
    check_color(color)
    background = tuple(int(v) for v in background)
    params = {"graphic_below": graphic_below, "photo_above": photo_above,
              "hash_size": hash_size, "color": color, "cell_px": cell_px,
              "background": list(background), "draft": draft, "draft_side": draft_side,
              "max_pixels": max_pixels,
              "method": method, "score_graphic_below": score_graphic_below,
              "score_photo_above": score_photo_above}
    options = decode_options(draft, cell_px, draft_side)
    total = sum(1 for _ in iter_csv(inventory_csv))
    counts = {"images": total, "graphic": 0, "maybe": 0, "photo": 0, "rejected": 0}
    progress = Progress(f"prepare {Path(inventory_csv).stem}", total, logger=log)
    prov = provenance(STAGE, params, input=os.fspath(inventory_csv))
    started = time.perf_counter()
    # Every output is streamed (memory flat in the number of images) to a temporary file that
    # is renamed into place only when the whole location is done. Small matrix products: BLAS
    # threads would only add overhead (and jobs run side by side).
    with threadpool_limits(1), contextlib.ExitStack() as stack:
        out = _open_outputs(stack, triage_csv, hashes_csv, rejects_csv, features_h5, thumbs_h5,
                            prov, color, cell_px, batch_size)
        previous = stack.enter_context(PreviousRun(reuse_dir, params))
        measure_args = (options, graphic_below, photo_above, hash_size, color, cell_px,
                        background, max_pixels, method, score_graphic_below, score_photo_above)
        measured = stack.enter_context(_measured(iter_csv(inventory_csv), previous,
                                                 measure_args, workers, guard))
        for row, identity, outcome in measured:
            if not previous.replay(row, identity, out, counts):
                _write_outcome(out, counts, row, outcome)
            progress.update()
        seconds = time.perf_counter() - started
        for name in ("triage", "hashes", "rejects"):
            out[name].prov["seconds"] = round(seconds, 3)
    progress.finish()
    previous.save(Path(inventory_csv).stem, triage_csv, hashes_csv, rejects_csv, features_h5,
                  thumbs_h5)
    log.info("prepare %s: %s in %.1f s (%.2f ms per image, %d worker%s)",
             Path(inventory_csv).stem, counts, seconds, 1000 * seconds / max(1, total), workers,
             "" if workers == 1 else "s")
    return counts


def prepare_location_guarded(inventory_csv, *outputs, **settings) -> dict:
    """:func:`prepare_location` in a supervised process, as the rule runs it: a file that
    crashes or hangs the decoder becomes that image's reject and the location is still
    prepared (:mod:`.isolate`)."""
    return supervised(lambda guard: prepare_location(inventory_csv, *outputs, **settings,
                                                     guard=guard), Path(inventory_csv).stem)


#: What measuring one image gave: measure_image's result, the reason it was rejected, or None
#: for an image whose rows the last run's cache replays.
Outcome = dict | Rejected | None
#: In place of a file's bytes: the image will be replayed from the cache, so was not read.
_REPLAY = object()


@contextlib.contextmanager
def _measured(rows, previous: PreviousRun, args: tuple, workers: int,
              guard: Guard) -> Iterator[Iterator[tuple[dict, tuple | None, Outcome]]]:
    """``(row, identity, outcome)`` for every inventory row, in order: the outcome is
    :func:`measure_image`'s result, the Rejected, or None for an image the last run's rows will
    replay (never read). Measured in this process (``workers`` 1) or in worker processes."""
    if workers > 1:
        with _measure_in_workers(rows, previous, args, workers, guard) as outcomes:
            yield outcomes
    else:
        with run_ahead(functools.partial(_load, previous=previous), rows, READ_AHEAD) as loads:
            yield ((row, *_measure_loaded(row, loading.result(), args, guard))
                   for row, loading in loads)


def _measure_loaded(row: dict, loaded: tuple, args: tuple,
                    guard: Guard) -> tuple[tuple | None, Outcome]:
    """(identity, outcome) of a row whose file :func:`_load` read ahead (or left to read)."""
    identity, blob = loaded
    if blob is _REPLAY:
        return identity, None
    if isinstance(blob, Rejected):
        return identity, blob
    try:
        blob = read_blob(row["path"]) if blob is None else blob
        return identity, guard.measure(row["id"], measure_image, blob, *args)
    except Rejected as exc:
        return identity, exc


@contextlib.contextmanager
def _measure_in_workers(rows, previous: PreviousRun, args: tuple, workers: int,
                        guard: Guard) -> Iterator[Iterator[tuple[dict, tuple | None, Outcome]]]:
    """:func:`_measured` with ``workers`` processes reading and measuring images side by side.

    Why: a location is one job, and without this one core measures all of it. Locations are
    rarely of one size (a scrape's big cities, a folder the user never split), and the largest
    one set the wall time of the whole stage however many cores were free. This process keeps
    what needs order and state: the reuse check, which it makes before an image is sent, and the
    writing, in inventory order. Each worker reads the file itself, so up to ``workers`` reads
    wait at once on slow storage; up to 4 images per worker are in flight.

    Workers are forked, not spawned: a spawned child would re-run the Snakemake script that
    started this job. With fork, ProcessPoolExecutor starts them all at the first submit, before
    its own threads, and this path starts no other thread. They are single-threaded like a
    one-thread job: MAGICK_THREAD_LIMIT is set by the rule's script, BLAS by _worker_start.
    """
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start)

    def ordered() -> Iterator[tuple[dict, tuple | None, Outcome]]:
        pending: deque = deque()
        for row in rows:
            identity = file_identity(row["path"])
            replayed = previous.stored(row, identity) is not None
            pending.append((row, identity, None if replayed else pool.submit(
                _measure_file, row["id"], row["path"], args, guard)))
            if len(pending) > 4 * workers:
                yield _settled(*pending.popleft())
        while pending:
            yield _settled(*pending.popleft())

    try:
        yield ordered()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _settled(row: dict, identity, future) -> tuple[dict, tuple | None, Outcome]:
    return row, identity, None if future is None else future.result()


def _worker_start() -> None:
    """A worker of :func:`_measure_in_workers`: one BLAS thread, as in a one-thread job."""
    global _WORKER_LIMITS
    _WORKER_LIMITS = threadpool_limits(1)


_WORKER_LIMITS = None


def _measure_file(image_id: str, path: str, args: tuple, guard: Guard) -> Outcome:
    """In a worker: read and measure one image; a Rejected is returned (sent back as a value)."""
    try:
        return guard.measure(image_id, _read_and_measure, path, args)
    except Rejected as exc:
        return exc


def _read_and_measure(path: str, args: tuple) -> dict:
    return measure_image(read_blob(path), *args)


def _load(row: dict, previous: PreviousRun) -> tuple[tuple[str, str] | None,
                                                     bytes | Rejected | None]:
    """(identity, bytes) of an inventory row's file, on a thread ahead of the decoding.

    The identity (:func:`.reuse.file_identity`) is taken before the bytes are read. In place of
    the bytes: _REPLAY when the last run's rows will be replayed, None when the file is larger
    than READ_AHEAD_MAX_BYTES (read when its turn comes), a Rejected when it cannot be read.
    """
    identity = file_identity(row["path"])
    if previous.stored(row, identity) is not None:
        return identity, _REPLAY
    if identity is not None and int(identity[0]) > READ_AHEAD_MAX_BYTES:
        return identity, None
    try:
        return identity, read_blob(row["path"])
    except Rejected as exc:
        return identity, exc


def _open_outputs(stack, triage_csv, hashes_csv, rejects_csv, features_h5, thumbs_h5, prov,
                  color, cell_px, batch_size) -> dict:
    """The five streamed outputs of a location, entered on ``stack`` (renamed when it closes)."""
    h5_attrs = {"provenance": json.dumps(prov)}
    feature_attrs = {**h5_attrs, "recipe": RECIPE, "color": color,
                     "n_features": N_FEATURES[color]}
    return {
        "triage": stack.enter_context(csv_rows(triage_csv, TRIAGE_COLUMNS, prov)),
        "hashes": stack.enter_context(csv_rows(hashes_csv, HASH_COLUMNS, prov)),
        "rejects": stack.enter_context(csv_rows(rejects_csv, REJECT_COLUMNS, prov)),
        "features": stack.enter_context(_h5_rows(
            features_h5, "features", (N_FEATURES[color],), "float32", batch_size, feature_attrs,
            **FEATURE_COMPRESSION)),
        "thumbs": stack.enter_context(_h5_rows(
            thumbs_h5, "thumbs", (cell_px, cell_px, 3), "uint8", batch_size, h5_attrs)),
    }


def _write_outcome(out: dict, counts: dict, row: dict, outcome: dict | Rejected) -> None:
    """Append a measured image's rows, or its reject, to the outputs and count it."""
    if isinstance(outcome, Rejected):
        log.warning("reject %s (%s): %s", row["id"], row["path"], outcome)
        out["rejects"].add({"id": row["id"], "stage": STAGE, "reason": str(outcome)})
        counts["rejected"] += 1
    else:
        _record(out, row["id"], outcome)
        counts[outcome["triage"]["class"]] += 1


def _record(out: dict, image_id: str, result: dict) -> None:
    """Append one measured image to the outputs (features and thumbnail unless a graphic)."""
    out["triage"].add({"id": image_id, **result["triage"]})
    out["hashes"].add({"id": image_id, **result["hash"]})
    if result["features"] is not None:
        out["features"].add(image_id, result["features"])
        out["thumbs"].add(image_id, result["thumb"])

