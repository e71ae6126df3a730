"""Stage ``dedup``: find copies of the same photo across all locations, keep one of each.

Listings re-post the same photos (same file, a re-encode, a resized copy), and a map full of
copies wastes space and hides the variety. With ``check: none`` two images are duplicates when
their dHashes (from the ``hashes`` stage) differ in at most ``max_distance`` bits (identical hashes
always are); with ``check: features`` (the default) the hashes only propose candidates and a
second check on the stored grey image decides (below). The grouping is the same for both.

Grouping: a *star around a keeper*, not union-find. Images are taken in keeper-priority order
(largest ``width * height`` first, then the smallest id in Python string order; when extending
a saved layout, its placed images before all others, so a later, larger copy never takes a
placed image's cell away); an image not yet claimed becomes a keeper and claims every
unclaimed image that is a copy of it.
So every removed image is a copy of the image kept in its place (the ``distance`` and
``correlation`` columns), and chains do not merge: if A~B and B~C but A and C differ by more than
``max_distance``, and A is kept, then B goes to A and C stays (C is kept unless it is within reach
of another keeper). Union-find would chain A~B~C into one group and could remove C in favour of
an image it does not resemble; near-uniform images (dark, white, floor plans) form long chains.
Images with identical hashes always share a group (they are equally far from every keeper).

Search: identical hashes are collapsed first (``np.unique``), so thousands of all-black images
cost nothing; near matches are searched only among the distinct hashes with multi-index hashing:
the 64 bits are cut into ``m`` bands, and by the pigeonhole principle two hashes within ``d``
bits agree within ``d // m`` bits in at least one band. For each band, distinct hashes are sorted
by their band value and every hash looks up the band values within ``d // m`` flipped bits
(a pair of buckets one flip apart is looked up from its smaller band value only); candidates are
verified with a popcount of the full XOR, on the bucket's hashes read in order, before any index
is made. ``m`` and the flip
radius are chosen by a cost estimate (for 125,000 hashes: d = 1-4 gives d + 1 bands matched
exactly, d = 5 three 22-bit bands with 1 flipped bit, d = 6-7 four 16-bit bands with 1 flip,
d = 10 four bands with 2 flips); bands up to 22 bits are indexed by a direct-address table.
Measured on 125,000 random hashes (2 cores, busy machine): 0.1 s for d <= 3, 0.3-0.6 s for
d = 4-6, 3-4 s for d = 8-10, plus ~0.3 s of parsing and sorting. Candidates are expanded in
bounded chunks, so a big bucket (thousands of distinct but similar hashes, e.g. near-black
images) costs quadratic time but not memory, and is logged: 5,000 such hashes take ~1 s at d = 2
and ~5 s at d = 4 (1.1 million near pairs). (These figures predate the one-sided lookups and the
popcount-first order, which made the 125,000-image demo's two searches about 3x faster.)

Speed and memory (README "Dedup"): with ``threads`` > 1 the feature files are read by that many
processes (decompression is the cost and h5py serialises threads), and the second check's chunks
run on that many threads while another thread searches the next candidates (NumPy releases the
GIL). The candidates are streamed: each pair is found once (the first band it matches in) and
checked batch by batch, so memory does not grow with their number. The second check first skips
the pairs a cheap bound rules out (:class:`SecondCheck`). None of this changes a row of the output.

Who takes part: only images that can reach the map (triage class ``photo``, and ``maybe`` when
``triage.keep_maybe`` puts it on the map; never an id of the curator's exclude file). So a
photo is never removed in favour of a graphic, of a ``maybe`` left off the map or of an excluded
image, and every keeper is on the map.

The second check (``check: features``, the default). At 125,000 demo images many distinct
renders of one room family lie within 4 dHash bits (precision 0.44), while real copies cropped by
2% or given a thin border lie up to 9 bits away: no Hamming radius serves both. So the dHash only
proposes candidates, and a second, independent measure decides:

* candidates: pairs within ``max_distance`` dHash bits, or within ``inner_distance`` bits of an
  *inner* dHash, the same 9x8 difference hash taken from the central 56x56 pixels of the stored
  64x64 grey image (a border or a crop changes the edges, which the inner hash leaves out);
* check: the correlation of the two grey images' central windows (48x48 of 64x64, averaged into
  12x12 cells, mean and contrast removed), the best over seven zooms of one image about its
  centre (1/1.06 .. 1.06, what a 2-3% crop per side or a thin border does). A pair is a copy
  when it reaches ``min_correlation``. Re-encodes, resizes, brightness changes and watermarks
  keep it above 0.99; distinct renders of one demo room family and distinct similar real photos
  (something moved in the scene, stereo pairs) fall below (README "Dedup").

Both descriptors come from the features ``prepare`` already stored (the first 4,096 values of a
row are the 64x64 grey image): one streamed pass over the feature files, about 2 KB kept per
image. Grouping is then the same star, over images rather than distinct hashes, since two
images with one dHash are no longer copies without the check.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import queue
import string
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import h5py
import hdf5plugin  # noqa: F401 (registers the Bitshuffle filter the feature files use)
import numpy as np
from threadpoolctl import threadpool_limits

from ..common import iter_csv, provenance, read_csv, write_csv

log = logging.getLogger("vacancy.images.dedup")

STAGE = "dedup"
DUPLICATE_COLUMNS = ["id", "kept_id", "distance", "correlation"]
CHECKS = ("features", "none")

#: The second check's window: this many pixels of the 64x64 grey image are left out on each side
#: (where a border or a crop acts), the rest averaged into CELLS x CELLS cells.
MARGIN = 8
CELLS = 12
#: Zooms of one image about its centre tried against the other: a 2% crop per side is 1.04, a
#: thin border about 0.98, and a copy of a copy compounds them.
ZOOMS = (1 / 1.06, 1 / 1.04, 1 / 1.02, 1.0, 1.02, 1.04, 1.06)
#: Pixels left out on each side for the inner dHash.
INNER_MARGIN = 4
#: Candidate pairs checked at once (each holds two profile sets, 8 KB as float32).
CHECK_PAIRS = 8192
#: Feature rows read at once (a multiple of the files' 64-row chunks).
READ_ROWS = 1024

#: Candidate pairs expanded at once: bounds memory, and small enough that a chunk's few arrays stay
#: in the processor's cache (1.9x less CPU for the searches at 125,000 than 4 million at once).
CHUNK_PAIRS = 1 << 18
#: Image pairs made at once from pairs of distinct hashes (more only for one pair of big groups).
EXPAND_PAIRS = 1 << 20
#: Candidate pairs gathered before the second check runs on them (its threads split the batch).
CHECK_BATCH = 1 << 20
#: More candidate image pairs than this from identical hashes are logged.
BIG_EXPANSION = 200_000_000

#: Bands up to this many bits are indexed by a direct-address table (2**22 entries = 32 MB).
TABLE_BITS = 22

#: A band bucket with more distinct hashes than this is logged (it costs bucket**2 comparisons).
BIG_BUCKET = 2_000


def parse_hash(text: str) -> int:
    """A hex dHash as an int; raises ValueError for anything but 1-16 hex digits."""
    text = text.strip()
    if not 0 < len(text) <= 16 or text.strip(string.hexdigits):
        raise ValueError(f"dhash must have 1-16 hex digits (at most 64 bits), got {text!r}")
    return int(text, 16)


def _to_int(value) -> int:
    """Width/height from a CSV cell; a missing or bad value counts as 0 (never kept first)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _prepare(records) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Validated ids, uint64 hashes, areas and the hash length in bits.

    Records with a bad hash or a repeated id are logged and skipped (the first copy of an id wins);
    hashes of different lengths (mixed ``hash_size`` settings) cannot be compared and raise.
    """
    ids, hashes, areas, lengths, seen = [], [], [], set(), set()
    for record in records:
        image = record.get("id", "")
        try:
            value = parse_hash(record.get("dhash") or "")
        except ValueError as exc:
            log.warning("skipping %r: %s", image, exc)
            continue
        if not image or image in seen:
            log.warning("skipping record with empty or repeated id %r", image)
            continue
        seen.add(image)
        lengths.add(len(record["dhash"].strip()))
        ids.append(image)
        hashes.append(value)
        areas.append(_to_int(record.get("width")) * _to_int(record.get("height")))
    if len(lengths) > 1:
        raise ValueError(f"dhashes of different lengths {sorted(lengths)} (mixed hash_size?)")
    nbits = 4 * lengths.pop() if lengths else 64
    return ids, np.array(hashes, dtype=np.uint64), np.array(areas, dtype=np.int64), nbits


def plan_bands(nbits: int, max_distance: int, n: int) -> tuple[list[int], int]:
    """Band widths and per-band flip radius minimising the estimated time of lookups + candidates.

    Weights measured on 125,000 random hashes: a table lookup costs about 4 candidate checks, a
    binary-search lookup (bands wider than ``TABLE_BITS``) about 12.
    """
    best = None
    for bands in range(1, min(max_distance + 1, nbits) + 1):
        radius = max_distance // bands
        narrow, wide = nbits // bands, -(-nbits // bands)
        flips = sum(math.comb(wide, k) for k in range(radius + 1))
        lookup = 4.0 if wide <= TABLE_BITS else 12.0
        cost = bands * flips * (lookup * n + n * n / 2.0**narrow)
        if best is None or cost < best[0]:
            best = (cost, bands, radius)
    _, bands, radius = best
    widths = [nbits // bands + (1 if i < nbits % bands else 0) for i in range(bands)]
    return widths, radius


def _flip_masks(width: int, radius: int) -> list[int]:
    """All band values with at most ``radius`` bits set: the XORs to look up around a band value."""
    masks = []
    for k in range(radius + 1):
        for bits in itertools.combinations(range(width), k):
            masks.append(sum(1 << b for b in bits))
    return masks


def _log_big_buckets(sorted_keys: np.ndarray, shift: int, width: int) -> None:
    """Warn about band buckets so full of distinct hashes (many similar images) that they cost
    quadratic time: above ``BIG_BUCKET`` and far above what random hashes would give."""
    _, counts = np.unique(sorted_keys, return_counts=True)
    if counts.size and counts.max() > max(BIG_BUCKET, 8 * sorted_keys.size / 2.0**width):
        log.warning("band at bit %d: a bucket holds %d distinct hashes (quadratic candidates)",
                    shift, int(counts.max()))


class _BandIndex:
    """Distinct hashes sorted by one band's value, with a fast "where is band value q" lookup.

    Narrow bands (up to ``TABLE_BITS``) use a direct-address table of bucket starts, which is
    several times faster than ``searchsorted``; wider bands fall back to binary search.
    """

    def __init__(self, keys: np.ndarray, width: int, hashes: np.ndarray):
        self.order = np.argsort(keys, kind="stable")
        self.sorted_keys = keys[self.order]
        self.sorted_hashes = hashes[self.order]  # a bucket's hashes side by side, read in order
        self.table = None
        if width <= TABLE_BITS:
            counts = np.bincount(keys.astype(np.int64), minlength=1 << width)
            self.table = np.concatenate([[0], np.cumsum(counts)])

    def lookup(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start (in ``order``) and size of the bucket of every query value."""
        if self.table is not None:
            q = queries.astype(np.int64)
            left = self.table[q]
            return left, self.table[q + 1] - left
        left = np.searchsorted(self.sorted_keys, queries, "left")
        return left, np.searchsorted(self.sorted_keys, queries, "right") - left


def _pairs_for_lookup(hashes, index: _BandIndex, queries, max_distance, sources=None):
    """Verified pairs (i < j) where ``hashes[j]``'s band equals ``queries[q]``, in bounded chunks;
    ``i`` is ``sources[q]`` (each unordered pair asked for once: no i < j filter) or, without
    ``sources``, ``q`` itself (a band matched exactly: every pair comes twice, keep i < j).
    The popcount runs first, on hashes read in bucket order; only the few close pairs are then
    turned into indices (the quadratic part of a big bucket is a few sequential passes)."""
    exact, sources = sources is None, np.arange(queries.size) if sources is None else sources
    left, counts = index.lookup(queries)
    hits = np.flatnonzero(counts)
    if hits.size == 0:
        return
    cum = np.cumsum(counts[hits])
    start = 0
    while start < hits.size:
        base = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, base + CHUNK_PAIRS, "right")), start + 1)
        qs = hits[start:stop]
        c = counts[qs]
        pos = np.repeat(left[qs] - (np.cumsum(c) - c), c) + np.arange(int(c.sum()))
        close = np.flatnonzero(np.bitwise_count(np.repeat(hashes[sources[qs]], c)
                                                ^ index.sorted_hashes[pos]) <= max_distance)
        i, j = np.repeat(sources[qs], c)[close], index.order[pos[close]]
        keep = i < j if exact else slice(None)
        yield np.minimum(i, j)[keep], np.maximum(i, j)[keep]
        start = stop


def _band_pairs(hashes, index: _BandIndex, keys, flip: int, max_distance):
    """Verified pairs whose band values differ by ``flip``. For a nonzero flip, the bucket pair
    (k, k ^ flip) is looked up from its smaller key only: the other side would find the same
    pairs again (half the candidates, the quadratic part in big buckets)."""
    if flip == 0:
        yield from _pairs_for_lookup(hashes, index, keys, max_distance)
        return
    flipped = keys ^ np.uint64(flip)
    side = np.flatnonzero(keys < flipped)
    yield from _pairs_for_lookup(hashes, index, flipped[side], max_distance, side)


def iter_near_pairs(hashes: np.ndarray, max_distance: int,
                    nbits: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks (i, j) of the pairs (i < j) of *distinct* uint64 hashes within ``max_distance``
    bits (multi-index hashing), each pair exactly once, in no particular order.

    A close pair lies within the flip radius in at least one band (the pigeonhole principle),
    maybe in several; it is reported by the first such band only, so nothing downstream has to
    collect every pair to remove repeats. That is what keeps dedup's memory flat in the number
    of candidate pairs (117 million at a million demo-like images).
    """
    if max_distance <= 0 or hashes.size < 2:
        return
    widths, radius = plan_bands(nbits, max_distance, hashes.size)
    earlier, shift = [], 0  # the masks of the bands already searched
    for width in widths:
        keys = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        index = _BandIndex(keys, width, hashes)
        _log_big_buckets(index.sorted_keys, shift, width)
        for flip in _flip_masks(width, radius):
            for i, j in _band_pairs(hashes, index, keys, flip, max_distance):
                if earlier:
                    differ = hashes[i] ^ hashes[j]
                    first = np.ones(i.size, dtype=bool)
                    for mask in earlier:
                        first &= np.bitwise_count(differ & mask) > radius
                    i, j = i[first], j[first]
                if i.size:
                    yield i, j
        earlier.append(np.uint64(((1 << width) - 1) << shift))
        shift += width


def near_pairs(hashes: np.ndarray, max_distance: int,
               nbits: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) of distinct hashes within ``max_distance`` bits, sorted by (i, j)."""
    parts = list(iter_near_pairs(hashes, max_distance, nbits))
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    codes = np.sort(np.concatenate([i * hashes.size + j for i, j in parts]))
    return codes // hashes.size, codes % hashes.size


def _assign_keepers(n: int, pairs, priority: np.ndarray) -> np.ndarray:
    """Star grouping over ``n`` nodes: for each node, the node kept in its place (itself if
    kept). Nodes are taken in ``priority`` order (lowest first); an unclaimed node becomes a
    keeper and claims its unclaimed neighbours."""
    keeper = np.arange(n)
    a, b = pairs
    if a.size == 0:
        return keeper
    src, dst = np.concatenate([a, b]), np.concatenate([b, a])
    by_src = np.argsort(src, kind="stable")
    src, dst = src[by_src], dst[by_src]
    indptr = np.searchsorted(src, np.arange(n + 1))
    claimed = np.zeros(n, dtype=bool)
    connected = np.unique(src)
    for u in connected[np.argsort(priority[connected])].tolist():
        if claimed[u]:
            continue
        claimed[u] = True
        near = dst[indptr[u]:indptr[u + 1]]
        near = near[~claimed[near]]
        claimed[near] = True
        keeper[near] = u
    return keeper


# ---------------------------------------------------------------------------------------------
# The second check: descriptors of the stored 64x64 grey image


@lru_cache(maxsize=None)
def window_matrix(zoom: float, cells: int = CELLS, margin: int = MARGIN, size: int = 64,
                  samples: int = 4) -> np.ndarray:
    """(cells x size) weights: cell means of the window ``[margin, size - margin)`` of an image
    zoomed by ``zoom`` about its centre (linear interpolation at ``samples`` points per cell,
    edge pixels repeated), so that a cells x cells descriptor is ``W @ image @ W.T``."""
    weights = np.zeros((cells, size))
    width = (size - 2 * margin) / cells
    for k in range(cells):
        for t in range(samples):
            x = margin + (k + (t + 0.5) / samples) * width            # in the zoomed image
            source = size / 2 + (x - size / 2) / zoom - 0.5            # as a pixel index
            left = int(np.floor(source))
            for index, w in ((left, 1 - (source - left)), (left + 1, source - left)):
                weights[k, min(max(index, 0), size - 1)] += w / samples
    return weights


def _unit_rows(values: np.ndarray) -> np.ndarray:
    """Rows with their mean removed and scaled to length 1 (a flat row stays 0)."""
    values = values.reshape(values.shape[0], -1).astype(np.float32)
    values -= values.mean(axis=1, keepdims=True)
    return values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-6)


def _sandwich(left: np.ndarray, images: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ image @ right.T`` for a stack of images, as two large matrix products (a
    broadcast ``@`` would do one small product per image, ten times slower)."""
    n, size = images.shape[0], images.shape[1]
    half = (images.reshape(n * size, size) @ right.T).reshape(n, size, right.shape[0])
    return np.tensordot(left, half, axes=([1], [1])).transpose(1, 0, 2)


def profiles(gray64: np.ndarray) -> np.ndarray:
    """(n, len(ZOOMS), CELLS**2) float16: each image's central window at every zoom, as unit
    vectors, so the dot product of two is a Pearson correlation."""
    gray64 = np.asarray(gray64, dtype=np.float32)
    out = [_unit_rows(_sandwich(w, gray64, w))
           for w in (window_matrix(z).astype(np.float32) for z in ZOOMS)]
    return np.stack(out, axis=1).astype(np.float16)


def inner_dhash(gray64: np.ndarray) -> np.ndarray:
    """uint64 dHash (9x8 cell means, "is the right cell brighter?") of each image's central
    56x56 pixels: unlike the stored dHash, it does not see a border or the edges a crop cuts."""
    gray64 = np.asarray(gray64, dtype=np.float32)
    cols = window_matrix(1.0, 9, INNER_MARGIN).astype(np.float32)
    rows = window_matrix(1.0, 8, INNER_MARGIN).astype(np.float32)
    small = _sandwich(rows, gray64, cols)
    bits = (small[:, :, 1:] > small[:, :, :-1]).reshape(len(gray64), -1)
    return np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)


def read_descriptors(feature_h5s, wanted: set[str], threads: int = 1):
    """Inner dHashes and profiles of the ``wanted`` ids found in the feature files: (row of each
    id, uint64 hashes, profiles); an id in several files counts from the first. One streamed pass;
    with ``threads`` > 1 that many processes read files side by side (decompressing the feature
    rows is most of the cost, and h5py holds a global lock, so threads would not help)."""
    rows: dict[str, int] = {}
    # filled file by file: at a million images the profiles are 2 GB, and collecting them in
    # parts before one concatenation would need twice that
    hashes = np.empty(len(wanted), np.uint64)
    profile_rows = np.empty((len(wanted), len(ZOOMS), CELLS * CELLS), np.float16)
    with contextlib.ExitStack() as stack:
        if threads > 1 and len(feature_h5s) > 1:
            pool = stack.enter_context(ProcessPoolExecutor(min(threads, len(feature_h5s))))
            found = pool.map(_read_file, feature_h5s, itertools.repeat(wanted))  # in order, lazily
        else:
            found = (_read_file(path, wanted) for path in feature_h5s)
        for ids, inner, profile in found:
            new = [k for k, image in enumerate(ids) if image not in rows]
            first = len(rows)
            for k in new:
                rows[ids[k]] = len(rows)
            hashes[first:len(rows)] = inner[new]
            profile_rows[first:len(rows)] = profile[new]
            del ids, inner, profile
    return rows, hashes[:len(rows)], profile_rows[:len(rows)]


def _read_file(path, wanted: set[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The ``wanted`` ids of one feature file (each once) with their inner dHashes and profiles."""
    taken, hashes, parts = set(), [], []
    with h5py.File(path, "r") as h5:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in h5["ids"][:]]
        features = h5["features"]
        for start in range(0, len(ids), READ_ROWS):
            take = [k for k in range(start, min(start + READ_ROWS, len(ids)))
                    if ids[k] in wanted and ids[k] not in taken]
            if not take:
                continue
            block = features[start:take[-1] + 1]  # whole rows: faster than a column slice
            gray = block[np.array(take) - start, :64 * 64].reshape(-1, 64, 64)
            taken.update(ids[k] for k in take)
            parts.append((take, inner_dhash(gray), profiles(gray)))
    kept = [ids[k] for take, _, _ in parts for k in take]
    if not parts:
        return kept, np.empty(0, np.uint64), np.empty((0, len(ZOOMS), CELLS * CELLS), np.float16)
    return kept, np.concatenate([h for _, h, _ in parts]), np.concatenate([p for _, _, p in parts])


def aligned_correlation(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Per pair of profile sets: the best correlation of one image's window, at any zoom, with
    the other's unzoomed window (both ways round)."""
    centre = ZOOMS.index(1.0)
    pa, pb = pa.astype(np.float32), pb.astype(np.float32)
    ab = np.matmul(pa, pb[:, centre, :, None])[..., 0].max(axis=1)
    ba = np.matmul(pb, pa[:, centre, :, None])[..., 0].max(axis=1)
    return np.maximum(ab, ba)


def centre_and_spread(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: its unzoomed window as a float32 unit vector, and the largest angle (radians)
    between that and its window at any zoom (pi when a window is flat, so it bounds nothing)."""
    centre = ZOOMS.index(1.0)
    units = np.empty((len(profile), profile.shape[2]), np.float32)
    spread = np.empty(len(profile))
    for start in range(0, len(profile), READ_ROWS):
        part = profile[start:start + READ_ROWS].astype(np.float32)
        norm = np.linalg.norm(part, axis=2)
        dots = np.einsum("nzk,nk->nz", part, part[:, centre]) / np.maximum(
            norm * norm[:, centre:centre + 1], 1e-30)
        angles = np.arccos(np.clip(dots, -1.0, 1.0)).max(axis=1)
        spread[start:start + READ_ROWS] = np.where((norm > 0).all(axis=1), angles, np.pi)
        units[start:start + READ_ROWS] = part[:, centre] / np.maximum(norm[:, centre:centre + 1],
                                                                       1e-30)
    return units, spread


def _reach(profile: np.ndarray, min_correlation: float) -> float:
    """The largest angle (radians) between two windows whose product can reach
    ``min_correlation``, for the largest norm among the float16 profiles, plus rounding slack;
    pi (no bound) for a threshold <= 0."""
    if min_correlation <= 0 or len(profile) == 0:
        return float(np.pi)
    norm2 = max(float(np.square(profile[start:start + READ_ROWS].astype(np.float32))
                      .sum(axis=2).max()) for start in range(0, len(profile), READ_ROWS))
    return float(np.arccos(min(min_correlation / norm2, 1.0))) + 1e-3


class SecondCheck:
    """What the second check needs: descriptors by id, the two thresholds, and the cheap bound.

    The bound: the correlation of a pair needs some zoom ``z`` with ``a_z . b_1 >= min_correlation``
    (or the same with a and b swapped). Angles between vectors obey the triangle inequality, so
    ``angle(a_1, b_1) <= angle(a_1, a_z) + angle(a_z, b_1)``: a pair whose unzoomed windows are
    further apart than ``reach`` (the angle ``min_correlation`` allows, for the largest norm the
    float16 profiles have, plus rounding slack) plus the larger of the two images' zoom spreads
    cannot pass, and is skipped without its 14 products. At 125,000 demo images 83% of the
    candidate pairs are skipped; the rest get exactly the check they got before.
    """

    def __init__(self, rows: dict[str, int], inner: np.ndarray, profile: np.ndarray,
                 inner_distance: int, min_correlation: float, threads: int = 1):
        self.rows, self.inner, self.profile = rows, inner, profile
        self.inner_distance, self.min_correlation = inner_distance, min_correlation
        self.threads = threads
        self.units, self.spread = centre_and_spread(profile)
        self.reach = _reach(profile, min_correlation)

    @classmethod
    def from_features(cls, feature_h5s, wanted: set[str], inner_distance: int,
                      min_correlation: float, threads: int = 1) -> "SecondCheck":
        return cls(*read_descriptors(feature_h5s, wanted, threads), inner_distance,
                   min_correlation, threads)

    def correlations(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
        """:func:`aligned_correlation` of the pairs of rows ``(a, b)`` (-1 where the bound rules
        a pair out), and how many pairs were checked in full; chunks run on ``threads`` threads
        (NumPy releases the GIL)."""
        corr = np.full(a.size, -1.0, dtype=np.float32)
        chunks = [slice(start, start + CHECK_PAIRS) for start in range(0, a.size, CHECK_PAIRS)]
        with ThreadPoolExecutor(self.threads) as pool:
            full = sum(pool.map(lambda part: self._check_chunk(a, b, part, corr), chunks))
        return corr, full

    def _check_chunk(self, a, b, part: slice, corr: np.ndarray) -> int:
        """One chunk: the bound, then the full check of the pairs it leaves (written to ``corr``)."""
        ia, ib = a[part], b[part]
        cos = np.einsum("nk,nk->n", self.units[ia], self.units[ib])
        angle = np.arccos(np.clip(cos, -1.0, 1.0))
        left = np.flatnonzero(angle <= self.reach + np.maximum(self.spread[ia], self.spread[ib]))
        if left.size:
            corr[part][left] = aligned_correlation(self.profile[ia[left]], self.profile[ib[left]])
        return int(left.size)


# ---------------------------------------------------------------------------------------------
# Candidates and grouping


class _HashGroups:
    """The images of each distinct hash, to turn pairs of distinct hashes into image pairs."""

    def __init__(self, inverse: np.ndarray, n_unique: int):
        self.order = np.argsort(inverse, kind="stable")  # images grouped by distinct hash
        self.counts = np.bincount(inverse, minlength=n_unique)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)])

    def within(self) -> tuple[np.ndarray, np.ndarray]:
        """Each distinct hash held by several images, as the pair (hash, itself)."""
        shared = np.flatnonzero(self.counts > 1)
        return shared, shared

    def expand(self, a: np.ndarray, b: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Image pairs (i < j) of the hash pairs (a, b), each once (for a == b: the pairs within
        that hash), in chunks of at most about ``EXPAND_PAIRS``."""
        total = self.counts[a] * self.counts[b]
        if total.sum() > BIG_EXPANSION:
            log.warning("%d candidate image pairs (large groups of identical hashes)",
                        int(total.sum()))
        cum = np.cumsum(total)
        start = 0
        while start < a.size:
            base = cum[start - 1] if start else 0
            stop = max(int(np.searchsorted(cum, base + EXPAND_PAIRS, "right")), start + 1)
            if stop == start + 1 and total[start] > EXPAND_PAIRS:
                yield from self._expand_big(int(a[start]), int(b[start]))
            else:
                yield self._expand_part(a[start:stop], b[start:stop], total[start:stop])
            start = stop

    def _expand_big(self, a: int, b: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One hash pair whose images make more than ``EXPAND_PAIRS`` pairs (thousands of
        identical hashes, say), a block of ``a``'s images at a time."""
        count_a, count_b = int(self.counts[a]), int(self.counts[b])
        step = max(1, EXPAND_PAIRS // count_b)
        for first in range(0, count_a, step):
            p = np.repeat(np.arange(first, min(count_a, first + step)), count_b)
            q = np.tile(np.arange(count_b), p.size // count_b)
            if a == b:
                p, q = p[p < q], q[p < q]
            i, j = self.order[self.starts[a] + p], self.order[self.starts[b] + q]
            yield np.minimum(i, j), np.maximum(i, j)

    def _expand_part(self, a, b, total) -> tuple[np.ndarray, np.ndarray]:
        pair = np.repeat(np.arange(a.size), total)
        local = np.arange(pair.size) - np.repeat(np.cumsum(total) - total, total)
        p, q = local // self.counts[b[pair]], local % self.counts[b[pair]]
        keep = (a[pair] != b[pair]) | (p < q)  # within one hash: each unordered pair once
        pair, p, q = pair[keep], p[keep], q[keep]
        i = self.order[self.starts[a[pair]] + p]
        j = self.order[self.starts[b[pair]] + q]
        return np.minimum(i, j), np.maximum(i, j)


def iter_candidate_pairs(hashes: np.ndarray, max_distance: int,
                         nbits: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks of the image pairs (i < j) whose hashes differ in at most ``max_distance`` bits,
    each pair once: images with identical hashes, then those of near distinct hashes."""
    unique, inverse = np.unique(hashes, return_inverse=True)
    groups = _HashGroups(inverse.ravel(), unique.size)
    yield from groups.expand(*groups.within())
    for a, b in iter_near_pairs(unique, max_distance, nbits):
        yield from groups.expand(a, b)


def _priority(ids: list[str], areas: np.ndarray, placed: frozenset = frozenset()) -> np.ndarray:
    """Rank of each image in keeper order: images ``placed`` on the saved map first (an extend
    must not drop one for a later, larger copy: that would leave a hole in the map), then the
    largest area, then the smallest id."""
    id_order = np.argsort(np.array(ids, dtype=object), kind="stable")
    id_rank = np.empty(len(ids), dtype=np.int64)
    id_rank[id_order] = np.arange(len(ids))
    not_placed = np.array([image not in placed for image in ids], dtype=bool)
    by_priority = np.lexsort((id_rank, -areas, not_placed))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[by_priority] = np.arange(len(ids))
    return rank


def _all_candidates(hashes, max_distance, nbits, inner, has, inner_distance):
    """Chunks of every candidate image pair, each once: dHash pairs, then inner-dHash pairs
    (among the images ``has`` with a feature row) whose dHashes are not already close."""
    yield from iter_candidate_pairs(hashes, max_distance, nbits)
    if has.size == 0 or inner_distance <= 0:
        return
    for a, b in iter_candidate_pairs(inner, inner_distance):
        i, j = has[a], has[b]  # has is sorted, so i < j
        new = np.bitwise_count(hashes[i] ^ hashes[j]) > max_distance
        if new.any():
            yield i[new], j[new]


def _batches(chunks, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pair chunks regrouped into batches of at least ``size`` pairs (the last smaller)."""
    held, count = [], 0
    for i, j in chunks:
        held.append((i, j))
        count += i.size
        if count >= size:
            yield np.concatenate([x for x, _ in held]), np.concatenate([y for _, y in held])
            held, count = [], 0
    if held:
        yield np.concatenate([x for x, _ in held]), np.concatenate([y for _, y in held])


def _ahead(iterable, depth: int = 2) -> Iterator:
    """``iterable`` produced on a thread of its own, at most ``depth`` items ahead: the search
    for candidates runs while the previous batch is checked (NumPy releases the GIL). An error
    in the producer is raised in the consumer; a consumer that stops early stops the producer."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterable:
                if not put((None, item)):
                    return
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, raised there)
            put((exc, None))
            return
        put((None, done))

    thread = threading.Thread(target=produce, name="dedup-search-ahead", daemon=True)
    thread.start()
    try:
        while True:
            error, item = items.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _verified_pairs(ids, hashes, max_distance, nbits, check: SecondCheck):
    """Candidate pairs (dHash or inner dHash) that pass the correlation: (i, j, correlation),
    sorted by (i, j). Streamed: candidates are searched, checked and dropped batch by batch,
    so memory grows with the pairs that pass, not with the candidates."""
    row = np.array([check.rows.get(image, -1) for image in ids], dtype=np.int64)
    missing = int((row < 0).sum())
    if missing:
        log.warning("%d images have no feature row: they are compared by nothing and kept", missing)
    has = np.flatnonzero(row >= 0)
    candidates = _all_candidates(hashes, max_distance, nbits, check.inner[row[has]], has,
                                 check.inner_distance)
    passed, n_candidates, n_full = [], 0, 0
    for i, j in _ahead(_batches(candidates, CHECK_BATCH)):
        both = (row[i] >= 0) & (row[j] >= 0)
        i, j = i[both], j[both]
        corr, full = check.correlations(row[i], row[j])
        ok = corr >= check.min_correlation
        passed.append((i[ok], j[ok], corr[ok]))
        n_candidates, n_full = n_candidates + i.size, n_full + full
    i, j, corr = (np.concatenate([part[k] for part in passed]) if passed else
                  np.empty(0, np.float32 if k == 2 else np.int64) for k in range(3))
    log.info("second check: %d candidate pairs, %d within the bound checked in full, %d pass "
             "correlation >= %g", n_candidates, n_full, i.size, check.min_correlation)
    order = np.lexsort((j, i))
    return i[order], j[order], corr[order]


def find_duplicates(records, max_distance: int, check: SecondCheck | None = None,
                    placed: frozenset = frozenset()) -> list[dict]:
    """Rows ``{id, kept_id, distance, correlation}`` for every image that is not kept, by id.

    ``records`` are dicts with ``id, dhash, width, height`` (strings or numbers). Without
    ``check`` two images are copies when their dHashes are within ``max_distance`` bits; with it,
    when they are candidates and pass the correlation (module docstring). Grouping: a star around
    each keeper (largest area, then smallest id; ids in ``placed``, the saved layout's images
    when extending, before all others).
    """
    ids, hashes, areas, nbits = _prepare(records)
    if not ids:
        return []
    rank = _priority(ids, areas, placed)
    if check is None:
        kept_image, correlation = _hash_only_keepers(hashes, rank, max_distance, nbits), {}
    else:
        i, j, corr = _verified_pairs(ids, hashes, max_distance, nbits, check)
        kept_image = _assign_keepers(len(ids), (i, j), rank)
        correlation = {(int(a), int(b)): float(c) for a, b, c in zip(i, j, corr)
                       if kept_image[a] == b or kept_image[b] == a}
    removed = np.flatnonzero(kept_image != np.arange(len(ids)))
    distance = np.bitwise_count(hashes[removed] ^ hashes[kept_image[removed]])
    rows = []
    for r, k, d in zip(removed.tolist(), kept_image[removed].tolist(), distance.tolist()):
        c = correlation.get((min(r, k), max(r, k)))
        rows.append({"id": ids[r], "kept_id": ids[k], "distance": int(d),
                     "correlation": "" if c is None else round(c, 4)})
    rows.sort(key=lambda row: row["id"])
    return rows


def _hash_only_keepers(hashes, rank, max_distance, nbits) -> np.ndarray:
    """The kept image of each image by dHash alone (``check: none``): identical hashes are
    collapsed first, so thousands of all-black images cost nothing."""
    unique, inverse = np.unique(hashes, return_inverse=True)
    inverse = inverse.ravel()
    best_rank = np.full(unique.size, rank.size, dtype=np.int64)
    np.minimum.at(best_rank, inverse, rank)
    best_image = np.argsort(rank)[best_rank]
    keeper = _assign_keepers(unique.size, near_pairs(unique, max_distance, nbits), best_rank)
    return best_image[keeper[inverse]]


def read_placed(grid_csv) -> frozenset:
    """Ids of the images on the saved layout's grid (an extend keeps them first), or none."""
    if not grid_csv:
        return frozenset()
    placed = frozenset(row["id"] for row in iter_csv(grid_csv))
    log.info("dedup: %d images of the saved layout %s are kept before their copies",
             len(placed), grid_csv)
    return placed


def read_exclusions(exclude_file) -> set[str]:
    """The curator's excluded ids (select's format and checks), or none."""
    if not exclude_file:
        return set()
    from .select import read_exclude_file

    return read_exclude_file(exclude_file)


def dedup(hash_csvs: list, out_csv, *, max_distance: int, check: str, inner_distance: int,
          min_correlation: float, triage_csvs=None, feature_h5s=None, keep_maybe: bool = False,
          exclude_file=None, threads: int = 1, placed_csv=None) -> dict:
    """Read every location's hash CSV, write ``duplicates.csv``; return counts.

    ``placed_csv``: the saved layout's ``grid.csv`` when extending; its images are kept before
    any copy of them (:func:`_priority`).

    With ``triage_csvs`` only images that can reach the map take part (:func:`eligible_ids`);
    with ``check: features`` the candidates are verified on ``feature_h5s`` (module docstring),
    reading the files and checking the pairs on ``threads`` cores.
    """
    if check not in CHECKS:
        raise ValueError(f"dedup.check must be one of {CHECKS}, not {check!r}")
    start = time.monotonic()
    records = [row for path in hash_csvs for row in read_csv(path)]
    excluded = read_exclusions(exclude_file)
    if triage_csvs is not None:
        eligible = eligible_ids(triage_csvs, keep_maybe, excluded)
        records = [row for row in records if row["id"] in eligible]
    second = None
    # Small matrix products: BLAS threads only add overhead (and contention on a busy machine).
    with threadpool_limits(1):
        if check == "features":
            second = SecondCheck.from_features(feature_h5s or [], {r["id"] for r in records},
                                               inner_distance, min_correlation, threads)
        rows = find_duplicates(records, max_distance, second, read_placed(placed_csv))
    params = {"max_distance": max_distance, "check": check, "inner_distance": inner_distance,
              "min_correlation": min_correlation, "keep_maybe": keep_maybe,
              "exclude_file": str(exclude_file) if exclude_file else None,
              "placed_csv": str(placed_csv) if placed_csv else None,
              "inputs": [str(p) for p in hash_csvs],
              "grouping": "star around keeper (placed on the saved map, largest area, "
                          "then smallest id)"}
    write_csv(out_csv, rows, DUPLICATE_COLUMNS, prov=provenance(STAGE, params))
    counts = {
        "images": len(records),
        "duplicates": len(rows),
        "exact": sum(1 for row in rows if row["distance"] == 0),
        "groups": len({row["kept_id"] for row in rows}),
        "kept": len(records) - len(rows),
    }
    log.info("dedup of %s (max_distance %d, check %s) in %.1f s: %s",
             ", ".join(Path(p).stem for p in hash_csvs) or "nothing", max_distance, check,
             time.monotonic() - start, counts)
    return counts


# ---------------------------------------------------------------------------------------------
# Which images take part: only those that can reach the map


def eligible_ids(triage_csvs, keep_maybe: bool, excluded: set[str]) -> set[str]:
    """Ids that can reach the map: triage class ``photo`` (and ``maybe`` with ``keep_maybe``),
    not in the curator's exclude file. Only these are compared, so a photo is never removed in
    favour of a graphic, of a ``maybe`` left off the map, or of an excluded image."""
    wanted = {"photo", "maybe"} if keep_maybe else {"photo"}
    return {row["id"] for path in triage_csvs for row in iter_csv(path)
            if row.get("class") in wanted and row["id"] not in excluded}
