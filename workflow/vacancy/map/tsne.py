"""Embed the PCA coordinates in 2-D with openTSNE, so similar rooms land near each other.

openTSNE's FFT-accelerated gradients and approximate nearest neighbours keep the cost near
linear in the number of images. ``learning_rate: auto`` (n / early exaggeration) is the default:
the original's fixed 1000 under-converges from about 50,000 images. The original settings are
kept as the ``original`` preset (:mod:`vacancy.map.tsne_settings`).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from openTSNE import TSNE
from openTSNE.nearest_neighbors import Annoy
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from ..common import provenance, write_csv
from .pca import read_pca

log = logging.getLogger(__name__)

#: Iterations openTSNE spends in early exaggeration; ``n_iter`` in config counts them too.
EARLY_EXAGGERATION_ITER = 250

#: Below this many points openTSNE's "auto" uses exact neighbours (scikit-learn), which do not
#: depend on the thread count; above it, :class:`FixedTreesAnnoy`.
EXACT_NEIGHBOURS_BELOW = 1000
#: BLAS threads (openTSNE's PCA initialisation): fixed, since a BLAS result may depend on them;
#: openTSNE's own parallel parts use ``n_jobs`` and give the same numbers for any count.
BLAS_THREADS = 1
#: Annoy trees, as openTSNE (and FIt-SNE) use by default.
ANNOY_TREES = 50
#: Points per neighbour-query task of the thread pool.
QUERY_CHUNK = 1024


class FixedTreesAnnoy(Annoy):
    """openTSNE's Annoy neighbours with trees that do not depend on the number of threads.

    Why: openTSNE builds Annoy's forest with ``n_jobs`` threads, and Annoy seeds each thread's
    trees separately, so the neighbours, and with them the whole map, changed with ``--cores``
    (measured: up to 6 units of t-SNE coordinates between 1 and 2 threads on 2,400 points, while
    the optimisation itself was identical for 1, 2 and 8 threads). Building the 50 trees on one
    thread costs about 3 s at 60,000 points; the queries, which are most of the time (about 40 s
    there) and do not depend on the thread count, still run on ``n_jobs`` threads.
    """

    def build_forest(self) -> None:
        """Annoy's forest of ``self.data``, built on one thread: the same trees for any count."""
        from openTSNE.dependencies.annoy import AnnoyIndex

        self.index = AnnoyIndex(self.data.shape[1], "euclidean")
        self.index.set_seed(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        for i, row in enumerate(self.data):
            self.index.add_item(i, row)
        self.index.build(n_trees=ANNOY_TREES, n_jobs=1)

    def build(self):
        """Every point's k nearest neighbours; then the forest is freed.

        Memory (measured at 100,000 points, linear in n): the forest holds 130 MB and is not
        needed once the neighbours are known (a fresh embedding is never asked to place new
        points; the extend stage builds its own forest), and it would otherwise stay alive
        through the P matrix's construction, t-SNE's peak. The queries go to the threads in
        chunks of QUERY_CHUNK points: one pool task per point held a future per point until the
        last was done (167 MB at 100,000). At a million points the two were about 3 GB of the
        8.6 GB peak.
        """
        self.build_forest()
        n, k = len(self.data), self.k
        indices = np.zeros((n, k), dtype=int)
        distances = np.zeros((n, k))

        def neighbours_from(start: int) -> None:
            for i in range(start, min(start + QUERY_CHUNK, n)):
                found, dist = self.index.get_nns_by_item(i, k + 1, include_distances=True)
                indices[i], distances[i] = found[1:], dist[1:]  # the first is the point itself

        with ThreadPoolExecutor(max(1, self.n_jobs)) as pool:
            for _ in pool.map(neighbours_from, range(0, n, QUERY_CHUNK)):
                pass
        self.index.unload()
        self.index = None  # any later query fails loudly instead of finding nothing
        return indices, distances


def neighbour_index(points: np.ndarray, perplexity: float, n_jobs: int, seed: int):
    """openTSNE's ``neighbors`` argument: "exact" for small sets, else a thread-proof Annoy."""
    if len(points) < EXACT_NEIGHBOURS_BELOW:
        return "exact"
    k = min(len(points) - 1, int(3 * perplexity))
    return FixedTreesAnnoy(points, k, metric="euclidean", n_jobs=n_jobs, random_state=seed)


def effective_perplexity(perplexity: float, n: int) -> float:
    """openTSNE needs about 3 x perplexity neighbours: lower it for tiny collections."""
    limit = max(1.0, (n - 1) / 3.0)
    if perplexity > limit:
        log.warning("tsne: perplexity %.1f is too high for %d images; using %.1f", perplexity, n, limit)
        return limit
    return perplexity


def embed(points: np.ndarray, perplexity: float = 30.0, learning_rate="auto", n_iter: int = 750,
          seed: int = 42, method: str = "fft", theta: float = 0.5, n_jobs: int = 1) -> np.ndarray:
    """2-D t-SNE embedding of ``points`` (n x d): the same for a given seed at any ``n_jobs``."""
    n = len(points)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 images, got {n}")
    points = np.ascontiguousarray(points, dtype=np.float32)
    perplexity = effective_perplexity(perplexity, n)
    model = TSNE(
        n_components=2,
        perplexity=perplexity,
        learning_rate=learning_rate,
        early_exaggeration_iter=min(EARLY_EXAGGERATION_ITER, n_iter - 1),
        n_iter=max(1, n_iter - EARLY_EXAGGERATION_ITER),
        negative_gradient_method=method,
        theta=theta,
        neighbors=neighbour_index(points, perplexity, n_jobs, seed),
        n_jobs=n_jobs,
        random_state=seed,
        verbose=False,
    )
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        return np.asarray(model.fit(points), dtype=np.float64)


def run_tsne(pca_h5: str | Path, out_csv: str | Path, settings: dict, n_jobs: int = 1) -> dict:
    """Embed the PCA output and write ``id, x, y`` to ``out_csv``."""
    ids, points = read_pca(pca_h5)
    log.info("tsne: %d images, %d dims, settings %s, %d threads", len(ids), points.shape[1],
             settings, n_jobs)
    coords = embed(points, perplexity=settings["perplexity"],
                   learning_rate=settings["learning_rate"], n_iter=settings["n_iter"],
                   seed=settings["seed"], method=settings["method"], theta=settings["theta"],
                   n_jobs=n_jobs)
    rows = ({"id": i, "x": f"{x:.6f}", "y": f"{y:.6f}"} for i, (x, y) in zip(ids, coords))
    count = write_csv(out_csv, rows, ["id", "x", "y"], prov=provenance("tsne", settings))
    log.info("tsne: wrote %d points", count)
    return {"n_images": count}
