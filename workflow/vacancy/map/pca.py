"""Reduce the image features to a few components with scikit-learn, the transform streamed.

Features are 12,288 float32 per image: at 125,000 images that is 6 GB, so the data are never
loaded whole. The feature shards (one HDF5 file per location) are read as one sequence of rows,
in batches, and every row is transformed: the original script sliced batches of 1,000 and
silently left the last ``n mod 1000`` rows untouched.

The fit is the expensive part. ``fit_rows: all`` fits IncrementalPCA on every row, batch by
batch (one SVD of about 1,150 x 12,288 per batch: 279 s at 125,000 images); IncrementalPCA needs
at least ``n_components`` rows in every batch it fits, so a short last batch is merged into the
one before. An integer ``fit_rows`` (the default) fits an ordinary PCA with scikit-learn's
randomized SVD on that many rows spread evenly over the whole table (every location in
proportion to its size), held in memory: ``fit_rows`` x 12,288 float32, 0.98 GB for 20,000.
README "PCA" has what the sample costs in quality.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import h5py
import hdf5plugin  # noqa: F401 (registers the Bitshuffle filter the feature files use)
import numpy as np
from sklearn.decomposition import PCA, IncrementalPCA
from threadpoolctl import threadpool_limits

from ..common import Progress, atomic_path, iter_csv, provenance

log = logging.getLogger(__name__)

#: BLAS threads for the fit and the transform, whatever the job was given: OpenBLAS's SVD gives
#: different components with 1 and 2 threads (measured: up to 6.7 apart on 2,300 x 12,288 rows),
#: so the thread count must be fixed for the map to be a function of the data and config alone.
#: The rule asks for the same number of cores (``threads: 2`` in workflow/rules/map.smk).
BLAS_THREADS = 2

#: Seed of the randomized SVD of a sample fit, so that the components are a function of the data.
SVD_SEED = 0


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
        self.n_features = None
        for path in self.paths:
            with h5py.File(path, "r") as h5:
                ids = [x.decode() if isinstance(x, bytes) else str(x) for x in h5["ids"][:]]
                width = h5["features"].shape[1]
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
        parts = []
        for i, path in enumerate(self.paths):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            a, b = max(start, lo), min(stop, hi)
            if a < b:
                wanted = self.positions[i][a - lo:b - lo]
                with h5py.File(path, "r") as h5:
                    block = h5["features"][wanted[0]:wanted[-1] + 1]
                parts.append(block[wanted - wanted[0]].astype(np.float32, copy=False))
        if not parts:
            return np.empty((0, self.n_features or 0), dtype=np.float32)
        return np.concatenate(parts)


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


def sample_positions(n: int, fit_rows: int | str) -> np.ndarray | None:
    """Rows to fit on: ``fit_rows`` of the ``n`` spread evenly over the table (shards are
    locations, so each gets its share), all of them if there are no more; None for ``all``."""
    if fit_rows == "all":
        return None
    if fit_rows >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, int(fit_rows)).round().astype(np.int64))


def fit_sample(shards: FeatureShards, positions: np.ndarray, k: int, batch_size: int) -> PCA:
    """PCA (randomized SVD, seeded) of the rows at ``positions``, read batch by batch into one
    float32 array that the fit centres in place (``copy=False``): memory is the sample itself."""
    sample = np.empty((len(positions), shards.n_features), dtype=np.float32)
    progress = Progress("pca read sample", len(shards))
    filled = 0
    for a, b in batch_bounds(len(shards), batch_size, 1):
        inside = positions[(positions >= a) & (positions < b)]
        if len(inside):
            sample[filled:filled + len(inside)] = shards.rows(a, b)[inside - a]
            filled += len(inside)
        progress.update(b - a)
    progress.finish()
    model = PCA(n_components=k, svd_solver="randomized", random_state=SVD_SEED, copy=False)
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        model.fit(sample)
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
            model_out: str | Path | None = None) -> dict:
    """Fit the PCA (on ``fit_rows`` rows spread over the table, or ``all`` of them streamed by
    IncrementalPCA), then transform every row in batches; write ``out_h5``.

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
    positions = sample_positions(n, fit_rows)
    n_fit = n if positions is None else len(positions)
    k = n_components_for(n_fit, shards.n_features, n_components)
    if positions is None:
        model = fit_incremental(shards, k, batch_size)
    else:
        model = fit_sample(shards, positions, k, batch_size)
    params = {"n_components": k, "requested_components": n_components, "batch_size": batch_size,
              "fit_rows": fit_rows, "rows_fitted": n_fit}
    with atomic_path(out_h5, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("ids", data=np.array(shards.ids(), dtype=object),
                              dtype=h5py.string_dtype())
            out = h5.create_dataset("pca", shape=(n, k), dtype="float32")
            progress = Progress("pca transform", n)
            for a, b in batch_bounds(n, batch_size, 1):
                with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
                    out[a:b] = model.transform(shards.rows(a, b)).astype(np.float32)
                progress.update(b - a)
            progress.finish()
            h5.create_dataset("explained_variance_ratio",
                              data=model.explained_variance_ratio_.astype(np.float32))
            h5.attrs["provenance"] = json.dumps(provenance("pca", params, n_images=n))
    if model_out is not None:
        save_pca_model(model, model_out)
    explained = float(model.explained_variance_ratio_.sum())
    log.info("pca: %d images (fitted on %d), %d features -> %d components, %.1f%% of variance",
             n, n_fit, shards.n_features, k, 100 * explained)
    return {"n_images": n, "n_components": k, "rows_fitted": n_fit, "explained_variance": explained}


def save_pca_model(model, path) -> None:
    """Keep what projecting a row needs (sklearn's PCA and IncrementalPCA, ``whiten=False``)."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, mean=model.mean_, components=model.components_,
                     explained_variance_ratio=model.explained_variance_ratio_)


def load_pca_model(path) -> dict:
    """The arrays :func:`save_pca_model` wrote: mean, components, explained_variance_ratio."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def project(rows: np.ndarray, model: dict) -> np.ndarray:
    """PCA coordinates of feature ``rows`` with a stored model: scikit-learn's transform, the
    same formula (``x @ C.T - mean @ C.T``), so old and new images share one space."""
    components = model["components"]
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        return (rows @ components.T - model["mean"] @ components.T).astype(np.float32)


def read_pca(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The ids and the PCA coordinates written by :func:`run_pca`."""
    with h5py.File(path, "r") as h5:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in h5["ids"][:]]
        return ids, h5["pca"][:]
