"""Reduce the image features to a few components with scikit-learn, the transform streamed.

Features are 12,288 float32 per image: at 125,000 images that is 6 GB, so the data are never
loaded whole. The feature shards (one HDF5 file per location) are read as one sequence of rows,
in batches, and every row is transformed: the original script sliced batches of 1,000 and
silently left the last ``n mod 1000`` rows untouched.

The fit is the expensive part. ``fit_rows: all`` fits IncrementalPCA on every row, batch by
batch (one SVD of about 1,150 x 12,288 per batch: 279 s at 125,000 images); IncrementalPCA needs
at least ``n_components`` rows in every batch it fits, so a short last batch is merged into the
one before. An integer ``fit_rows`` (the default) fits an ordinary PCA with scikit-learn's
randomized SVD on that many rows held in memory (``fit_rows`` x 12,288 float32, 0.98 GB for
20,000), taken from whole HDF5 chunks (64 rows, compressed as one) spread evenly over the whole
table, every location in proportion to its size: only the chunks of the sample are read and
decompressed, not every row. README "PCA" has what the sample costs in quality.

The transform reads and decompresses every row; h5py serialises its calls within a process, so
it runs in ``workers`` processes, each projecting whole batches with one BLAS thread. A batch's
numbers depend only on its rows (the batches are cut the same way for any worker count), so the
output is the same for any number of workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import time
from pathlib import Path
from typing import Sequence

import h5py
import hdf5plugin  # noqa: F401 (registers the Bitshuffle filter the feature files use)
import numpy as np
from sklearn.decomposition import PCA, IncrementalPCA
from threadpoolctl import threadpool_limits

from ..common import Progress, atomic_path, iter_csv, provenance

log = logging.getLogger(__name__)

#: BLAS threads for the fit, whatever the job was given: OpenBLAS's SVD gives
#: different components with 1 and 2 threads (measured: up to 6.7 apart on 2,300 x 12,288 rows),
#: so the thread count must be fixed for the map to be a function of the data and config alone.
#: The rule asks for the same number of cores (``threads: 2`` in workflow/rules/map.smk).
BLAS_THREADS = 2

#: Seed of the randomized SVD of a sample fit, so that the components are a function of the data.
SVD_SEED = 0

#: Most stored rows one HDF5 read asks for (16 chunks of 64 rows, 50 MB of float32): bounds the
#: memory of a read however many adjacent chunks hold wanted rows.
MAX_READ_ROWS = 1024


class FeatureShards:
    """Several feature HDF5 files read as one table of rows, in the order given.

    With ``keep`` (a set of ids), only those rows form the table: the prepare stage stores
    features of every photo before dedup and the curator's exclusions, and PCA maps only the
    selection. Rows are still read as contiguous slices (then filtered), never one by one.
    """

    def __init__(self, paths: Sequence[str | Path], keep: set[str] | None = None):
        self.paths = [Path(p) for p in paths]
        self.positions: list[np.ndarray] = []  # per shard: which of its rows are in the table
        self._ids: list[list[str]] = []
        self.stored: list[int] = []  # per shard: rows in the file, selected or not
        self.chunk_rows: list[int] = []  # per shard: rows per HDF5 chunk (1: not chunked)
        self.n_features = None
        for path in self.paths:
            with h5py.File(path, "r") as h5:
                ids = [x.decode() if isinstance(x, bytes) else str(x) for x in h5["ids"][:]]
                width = h5["features"].shape[1]
                self.chunk_rows.append((h5["features"].chunks or (1,))[0])
            self.stored.append(len(ids))
            if self.n_features not in (None, width):
                raise ValueError(f"{path}: {width} features per image, other shards have {self.n_features}")
            self.n_features = width
            wanted = [i for i, id_ in enumerate(ids) if keep is None or id_ in keep]
            self.positions.append(np.asarray(wanted, dtype=np.int64))
            self._ids.append([ids[i] for i in wanted])
        self.lengths = [len(p) for p in self.positions]
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(int)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def ids(self) -> list[str]:
        return [id_ for shard in self._ids for id_ in shard]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the concatenated table, as float32."""
        return self.take(np.arange(start, stop))

    def chunks(self) -> np.ndarray:
        """For every row of the table, the number of the HDF5 chunk that holds it (chunks
        numbered through all shards in order, so the numbers never decrease along the table)."""
        numbers, first = [np.empty(0, dtype=np.int64)], 0
        for positions, per_chunk, stored in zip(self.positions, self.chunk_rows, self.stored):
            numbers.append(first + positions // per_chunk)
            first += -(-stored // per_chunk)
        return np.concatenate(numbers)

    def take(self, positions: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """The rows at the increasing table ``positions``, as float32: each shard reads only
        the chunks that hold them, adjacent ones together (at most MAX_READ_ROWS rows a read)."""
        out = np.empty((len(positions), self.n_features or 0), dtype=np.float32)
        bounds = np.searchsorted(positions, self.offsets)
        for i, path in enumerate(self.paths):
            if bounds[i] == bounds[i + 1]:
                continue
            stored = self.positions[i][positions[bounds[i]:bounds[i + 1]] - self.offsets[i]]
            with h5py.File(path, "r") as h5:
                data = h5["features"]
                for lo, hi in read_runs(stored, self.chunk_rows[i], self.stored[i]):
                    a, b = np.searchsorted(stored, [lo, hi])
                    out[bounds[i] + a:bounds[i] + b] = data[lo:hi][stored[a:b] - lo]
                    if progress is not None:
                        progress.update(int(b - a))
        return out


def read_runs(stored: np.ndarray, per_chunk: int, n_stored: int) -> list[tuple[int, int]]:
    """Stored-row ranges ``[lo, hi)`` to read for the increasing ``stored`` rows: the chunks
    holding them, adjacent chunks merged, each range at most MAX_READ_ROWS rows (or one chunk)."""
    chunks = np.unique(stored // per_chunk)
    longest = max(1, MAX_READ_ROWS // per_chunk)
    runs, first = [], chunks[0]
    for previous, chunk in zip(chunks[:-1], chunks[1:]):
        if chunk != previous + 1 or chunk - first == longest:
            runs.append((first, previous + 1))
            first = chunk
    runs.append((first, chunks[-1] + 1))
    return [(int(a * per_chunk), int(min(b * per_chunk, n_stored))) for a, b in runs]


def batch_bounds(n: int, batch_size: int, min_rows: int) -> list[tuple[int, int]]:
    """Cut ``n`` rows into batches of ``batch_size``; a last batch under ``min_rows`` joins the
    previous one, so every row is in exactly one batch and every batch can be fitted."""
    bounds = [(a, min(a + batch_size, n)) for a in range(0, n, batch_size)]
    if len(bounds) >= 2 and bounds[-1][1] - bounds[-1][0] < min_rows:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def n_components_for(n_images: int, n_features: int, wanted: int) -> int:
    """150 components unless there are fewer images (or features) than that."""
    return max(1, min(wanted, n_images, n_features))


def sample_positions(chunks: np.ndarray, fit_rows: int | str) -> np.ndarray | None:
    """Rows to fit on: ``fit_rows`` of the table's rows, all from whole chunks spread evenly over
    the table (``chunks``: the chunk of every row, :meth:`FeatureShards.chunks`); all rows if
    there are no more; None for ``all``.

    A chunk is decompressed whole, so a sample of single rows spread over the table reads nearly
    every chunk; whole chunks read only about ``fit_rows`` rows. The chunks are those holding
    evenly spaced rows (shards are locations, so each gets its share; a chunk with few selected
    rows is picked less often), as many as it takes to hold ``fit_rows`` rows, of which
    ``fit_rows`` are kept, evenly spaced.
    """
    if fit_rows == "all":
        return None
    n = len(chunks)
    if fit_rows >= n:
        return np.arange(n)
    per_chunk = n / len(np.unique(chunks))
    picks = int(np.ceil(fit_rows / per_chunk))
    while True:
        picked = np.unique(chunks[np.linspace(0, n - 1, picks).round().astype(np.int64)])
        candidates = np.flatnonzero(np.isin(chunks, picked))
        if len(candidates) >= fit_rows:
            break
        picks += int(np.ceil((fit_rows - len(candidates)) / per_chunk))
    return candidates[np.linspace(0, len(candidates) - 1, fit_rows).round().astype(np.int64)]


def fit_sample(shards: FeatureShards, positions: np.ndarray, k: int) -> PCA:
    """PCA (randomized SVD, seeded) of the rows at ``positions``, read into one float32 array
    that the fit centres in place (``copy=False``): memory is the sample itself."""
    progress = Progress("pca read sample", len(positions))
    sample = shards.take(positions, progress)
    progress.finish()
    start = time.monotonic()
    model = PCA(n_components=k, svd_solver="randomized", random_state=SVD_SEED, copy=False)
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        model.fit(sample)
    log.info("pca fit: %d rows in %.1f s", len(positions), time.monotonic() - start)
    return model


def fit_incremental(shards: FeatureShards, k: int, batch_size: int) -> IncrementalPCA:
    """IncrementalPCA over every row, streamed in batches (``fit_rows: all``)."""
    model = IncrementalPCA(n_components=k)
    progress = Progress("pca fit", len(shards))
    for a, b in batch_bounds(len(shards), batch_size, k):
        with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
            model.partial_fit(shards.rows(a, b))
        progress.update(b - a)
    progress.finish()
    return model


def run_pca(feature_h5s: Sequence[str | Path], out_h5: str | Path, n_components: int,
            batch_size: int, fit_rows: int | str, selected_csv: str | Path | None = None,
            model_out: str | Path | None = None, workers: int = 1) -> dict:
    """Fit the PCA (on ``fit_rows`` rows from chunks spread over the table, or ``all`` of them
    streamed by IncrementalPCA), then transform every row in batches, in ``workers`` processes;
    write ``out_h5``.

    With ``selected_csv`` only the selected images' rows are used. Output datasets: ``ids`` (in
    shard order), ``pca`` (n x k float32), ``explained_variance_ratio`` (of the fitted rows).
    ``model_out`` keeps the fitted model's mean and components (``vacancy.map.layout``), which a
    saved layout needs to project later images into this same space.
    """
    keep = {row["id"] for row in iter_csv(selected_csv)} if selected_csv else None
    shards = FeatureShards(feature_h5s, keep)
    n = len(shards)
    if n < 2:
        raise ValueError(f"PCA needs at least 2 images, the feature shards hold {n}")
    positions = sample_positions(shards.chunks(), fit_rows)
    n_fit = n if positions is None else len(positions)
    k = n_components_for(n_fit, shards.n_features, n_components)
    if positions is None:
        model = fit_incremental(shards, k, batch_size)
    else:
        model = fit_sample(shards, positions, k)
    params = {"n_components": k, "requested_components": n_components, "batch_size": batch_size,
              "fit_rows": fit_rows, "rows_fitted": n_fit}
    coords = project_shards(shards, pca_model_arrays(model), batch_size, workers)
    with atomic_path(out_h5, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("ids", data=np.array(shards.ids(), dtype=object),
                              dtype=h5py.string_dtype())
            h5.create_dataset("pca", data=coords)
            h5.create_dataset("explained_variance_ratio",
                              data=model.explained_variance_ratio_.astype(np.float32))
            h5.attrs["provenance"] = json.dumps(provenance("pca", params, n_images=n))
    if model_out is not None:
        save_pca_model(model, model_out)
    explained = float(model.explained_variance_ratio_.sum())
    log.info("pca: %d images (fitted on %d), %d features -> %d components, %.1f%% of variance",
             n, n_fit, shards.n_features, k, 100 * explained)
    return {"n_images": n, "n_components": k, "rows_fitted": n_fit, "explained_variance": explained}


def project_shards(shards: FeatureShards, model: dict, batch_size: int, workers: int) -> np.ndarray:
    """PCA coordinates of every row of ``shards`` (n x k float32, 62 MB at 103,615 rows), batch
    by batch in ``workers`` processes with one BLAS thread each.

    The processes are forked (a spawned one would rerun the Snakemake script that imports this)
    while no HDF5 file is open here, and each opens the feature files itself. One worker
    projects in this process, the same way.
    """
    bounds = batch_bounds(len(shards), batch_size, 1)
    coords = np.empty((len(shards), model["components"].shape[0]), dtype=np.float32)
    progress = Progress("pca transform", len(shards))
    with contextlib.ExitStack() as stack:
        if workers <= 1 or len(bounds) <= 1:
            _start_worker(shards, model)
            stack.callback(_WORKER.clear)
            batches = map(_project_batch, bounds)
        else:
            pool = stack.enter_context(multiprocessing.get_context("fork").Pool(
                min(workers, len(bounds)), initializer=_start_worker, initargs=(shards, model)))
            batches = pool.imap(_project_batch, bounds)
        for (a, b), rows in zip(bounds, batches):
            coords[a:b] = rows
            progress.update(b - a)
    progress.finish()
    return coords


#: What :func:`_project_batch` reads and projects with, in this process (set by _start_worker).
_WORKER: dict = {}


def _start_worker(shards: FeatureShards, model: dict) -> None:
    _WORKER.update(shards=shards, model=model)


def _project_batch(bounds: tuple[int, int]) -> np.ndarray:
    """Rows ``a:b`` projected: the numbers depend on the rows alone, never on which process or
    how many run them."""
    return project(_WORKER["shards"].rows(*bounds), _WORKER["model"])


def pca_model_arrays(model) -> dict:
    """What projecting a row needs of a fitted sklearn PCA or IncrementalPCA (``whiten=False``)."""
    return {"mean": model.mean_, "components": model.components_,
            "explained_variance_ratio": model.explained_variance_ratio_}


def save_pca_model(model, path) -> None:
    """Keep what projecting a row needs (sklearn's PCA and IncrementalPCA, ``whiten=False``)."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **pca_model_arrays(model))


def load_pca_model(path) -> dict:
    """The arrays :func:`save_pca_model` wrote: mean, components, explained_variance_ratio."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def project(rows: np.ndarray, model: dict) -> np.ndarray:
    """PCA coordinates of feature ``rows`` with a fitted or stored model (``mean``,
    ``components``): scikit-learn's transform to the last bit, the same formula
    (``x @ C.T - mean @ C.T``, the mean as a 1-row matrix: a vector would take another BLAS
    routine), so old and new images share one space. One BLAS thread, and the components in C
    order (a fitted model's are not, a loaded one's are): the last bits depend on both."""
    components = np.ascontiguousarray(model["components"])
    with threadpool_limits(limits=1, user_api="blas"):
        shift = model["mean"].reshape(1, -1) @ components.T
        return (rows @ components.T - shift).astype(np.float32)


def read_pca(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The ids and the PCA coordinates written by :func:`run_pca`."""
    with h5py.File(path, "r") as h5:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in h5["ids"][:]]
        return ids, h5["pca"][:]
