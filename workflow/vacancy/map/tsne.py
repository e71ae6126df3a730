"""Embed the PCA coordinates in 2-D with openTSNE, so similar rooms land near each other.

openTSNE's FFT-accelerated gradients and approximate nearest neighbours keep the cost near
linear in the number of images. ``learning_rate: auto`` (n / early exaggeration) is the default:
the original's fixed 1000 under-converges from about 50,000 images. The original settings are
kept as the ``original`` preset (:mod:`vacancy.map.tsne_settings`).

The nearest neighbours are found once by rule ``neighbours`` (:func:`run_neighbours`, more than
the usual perplexities need) and the tsne job computes the perplexity's affinities from the
first 3 x perplexity of them: a perplexity change, the usual reason to rerun t-SNE, skips the
search (a quarter of the job at 103,615 images).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from openTSNE import TSNE
from openTSNE.affinity import PerplexityBasedNN
from openTSNE.nearest_neighbors import Annoy, PrecomputedNeighbors, Sklearn
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from ..common import config_defaults, provenance, write_csv
from .pca import read_pca

log = logging.getLogger(__name__)

#: Iterations openTSNE spends in early exaggeration; ``n_iter`` in config counts them too.
EARLY_EXAGGERATION_ITER = 250
#: All iterations by default (the schema's, the one place it lives): 250 exaggerated + 100.
DEFAULT_N_ITER: int = config_defaults()["tsne"]["n_iter"]

#: Below this many points openTSNE's "auto" uses exact neighbours (scikit-learn), which do not
#: depend on the thread count; above it, :class:`FixedTreesAnnoy`.
EXACT_NEIGHBOURS_BELOW = 1000
#: BLAS threads (openTSNE's PCA initialisation): fixed, since a BLAS result may depend on them;
#: openTSNE's own parallel parts use ``n_jobs`` and give the same numbers for any count.
BLAS_THREADS = 1
#: Annoy trees of an extend's reference forest, as openTSNE (and FIt-SNE) use by default: its
#: queries (openTSNE's ``Annoy.query``) search ANNOY_TREES x k nodes.
ANNOY_TREES = 50
#: Trees of the all-points search (rule neighbours), which looks at SEARCH_PER_NEIGHBOUR x (k + 1)
#: candidates per point, as many as openTSNE's 50 trees did: fewer, deeper trees find as many
#: true neighbours for the same candidates (a sixth of the build), while fewer candidates lost
#: recall on Gaussian clusters (``bench/neighbours.py``, ``tests/test_tsne.py``).
SEARCH_TREES = 8
SEARCH_PER_NEIGHBOUR = ANNOY_TREES
#: Points per neighbour-query task of the thread pool.
QUERY_CHUNK = 1024
#: Leading PCA dimensions and leaf size of the ball tree that orders the points for the search
#: (:func:`spatial_order`): the leading components carry most of the spread it splits on.
ORDER_DIMS = 16
ORDER_LEAF = 200


class PhaseClock:
    """Wall and CPU seconds (all threads) of consecutive phases, for the log and the benchmark:
    on the shared machine the CPU seconds compare better than the wall seconds."""

    def __init__(self):
        self.wall, self.cpu, self.times = time.perf_counter(), time.process_time(), {}

    def lap(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.times[name] = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu

    def __str__(self) -> str:
        return ", ".join(f"{name} {w:.1f} / {c:.1f}" for name, (w, c) in self.times.items())


def spatial_order(points: np.ndarray) -> np.ndarray:
    """A permutation of the points that keeps near points near in memory: scikit-learn's ball
    tree's order (each node's points are one contiguous range), on the leading ORDER_DIMS.

    Why: an Annoy query reads thousands of candidate vectors scattered over the whole array, and
    at 100,000 points (60 MB) these reads, not the arithmetic, are most of its cost. With the
    points stored, and queried, in this order, a query's candidates and the next query's share
    pages and cache lines. No randomness and one thread: the same order for any thread count.
    """
    from sklearn.neighbors import BallTree

    lead = np.ascontiguousarray(points[:, :ORDER_DIMS], dtype=np.float64)
    return np.asarray(BallTree(lead, leaf_size=ORDER_LEAF).get_arrays()[1], dtype=np.int64)


class FixedTreesAnnoy(Annoy):
    """openTSNE's Annoy neighbours with trees that do not depend on the number of threads.

    Why: openTSNE builds Annoy's forest with ``n_jobs`` threads, and Annoy seeds each thread's
    trees separately, so the neighbours, and with them the whole map, changed with ``--cores``
    (measured: up to 6 units of t-SNE coordinates between 1 and 2 threads on 2,400 points, while
    the optimisation itself was identical for 1, 2 and 8 threads). The forest is built on one
    thread; the queries, which are most of the time and do not depend on the thread count, run
    on ``n_jobs`` threads. The attributes below are the all-points search's settings (class
    attributes so that ``bench/neighbours.py`` can measure others in the same run).
    """

    search_trees = SEARCH_TREES
    #: None: Annoy's default, search_trees x (k + 1) candidates.
    search_per_neighbour: int | None = SEARCH_PER_NEIGHBOUR
    ordered = True

    def build_forest(self, points: np.ndarray | None = None, n_trees: int = ANNOY_TREES) -> None:
        """Annoy's forest of ``points`` (``self.data`` if None), built on one thread: the same
        trees for any count."""
        from openTSNE.dependencies.annoy import AnnoyIndex

        points = self.data if points is None else points
        self.index = AnnoyIndex(points.shape[1], "euclidean")
        self.index.set_seed(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        for i, row in enumerate(points):
            self.index.add_item(i, row)
        self.index.build(n_trees=n_trees, n_jobs=1)

    def build(self):
        """Every point's k nearest neighbours; then the forest is freed.

        The forest holds the points in :func:`spatial_order` (item i is point ``order[i]``) and
        is queried in that order; the found items are mapped back to point numbers. Memory
        (measured at 100,000 points, linear in n): the forest (then 50 trees) held 130 MB and is
        not needed once the neighbours are known (a fresh embedding is never asked to place new
        points; the extend stage builds its own forest), and it would otherwise stay alive
        through the P matrix's construction, t-SNE's peak. The queries go to the threads in chunks of
        QUERY_CHUNK points: one pool task per point held a future per point until the last was
        done (167 MB at 100,000). At a million points the two were about 3 GB of the 8.6 GB peak.
        """
        n, k = len(self.data), self.k
        clock = PhaseClock()
        order = spatial_order(self.data) if self.ordered else np.arange(n)
        clock.lap("order")
        self.build_forest(self.data[order] if self.ordered else self.data, self.search_trees)
        clock.lap("forest")
        search_k = -1 if self.search_per_neighbour is None else self.search_per_neighbour * (k + 1)
        indices = np.zeros((n, k), dtype=int)
        distances = np.zeros((n, k))

        def neighbours_from(start: int) -> None:
            items = range(start, min(start + QUERY_CHUNK, n))
            found, dist = np.zeros((len(items), k), dtype=int), np.zeros((len(items), k))
            for row, i in enumerate(items):
                f, d = self.index.get_nns_by_item(i, k + 1, search_k, include_distances=True)
                found[row], dist[row] = f[1:], d[1:]  # the first is the point itself
            indices[order[items.start:items.stop]] = order[found]
            distances[order[items.start:items.stop]] = dist

        with ThreadPoolExecutor(max(1, self.n_jobs)) as pool:
            for _ in pool.map(neighbours_from, range(0, n, QUERY_CHUNK)):
                pass
        clock.lap("queries")
        self.index.unload()
        self.index = None  # any later query fails loudly instead of finding nothing
        self.seconds = clock.times
        log.info("neighbours: %s (wall / CPU seconds)", clock)
        return indices, distances


def find_neighbours(points: np.ndarray, k: int, n_jobs: int, seed: int):
    """Every point's ``k`` nearest neighbours: (indices, distances), nearest first.

    Exact (scikit-learn, through openTSNE) below EXACT_NEIGHBOURS_BELOW points, else
    :class:`FixedTreesAnnoy`: the same neighbours for any thread count.
    """
    points = np.ascontiguousarray(points, dtype=np.float32)
    k = min(len(points) - 1, int(k))
    if len(points) < EXACT_NEIGHBOURS_BELOW:
        index = Sklearn(points, k, metric="euclidean", n_jobs=n_jobs, random_state=seed)
    else:
        index = FixedTreesAnnoy(points, k, metric="euclidean", n_jobs=n_jobs, random_state=seed)
    indices, distances = index.build()
    return np.asarray(indices, dtype=np.int32), np.asarray(distances)


def write_neighbours(path: str | Path, ids: list[str], indices: np.ndarray,
                     distances: np.ndarray) -> None:
    """Save the neighbours with the ids they index (npz, via a temp file then renamed).

    Annoy's distances are float32 inside, so they are stored as float32 (124 MB for 150
    neighbours at 103,615 images); exact ones keep their float64.
    """
    path = Path(path)
    if distances.dtype == np.float64 and len(ids) >= EXACT_NEIGHBOURS_BELOW:
        distances = distances.astype(np.float32)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, ids=np.asarray(ids, dtype=str), indices=indices, distances=distances)
    tmp.replace(path)


def read_neighbours(path: str | Path, ids: list[str], columns: int | None = None):
    """(indices, distances) saved by :func:`write_neighbours`, checked against ``ids``.

    Only the first ``columns`` (all if None) are kept, as the int64 / float64 openTSNE takes:
    the full arrays are freed here, not held through the P matrix's construction (t-SNE's peak).
    """
    with np.load(path) as data:
        if data["ids"].tolist() != list(ids):
            raise ValueError(f"{path} was computed for other images than the PCA output; "
                             "delete it to have it recomputed")
        saved = data["indices"]  # each access of an npz member reads it again: once
        indices = np.ascontiguousarray(saved[:, :columns], dtype=np.int64)
        log.info("tsne: the first %d of the %d saved neighbours", indices.shape[1], saved.shape[1])
        del saved
        distances = np.ascontiguousarray(data["distances"][:, :columns], dtype=np.float64)
        return indices, distances


def run_neighbours(pca_h5: str | Path, out_npz: str | Path, k: int, seed: int,
                   n_jobs: int = 1) -> dict:
    """Rule neighbours: find the PCA points' k nearest neighbours once, for any perplexity up
    to k / 3 (a perplexity change then skips this step, the t-SNE's most costly after the
    optimisation: 36 s of the 139 s at 103,615 images)."""
    ids, points = read_pca(pca_h5)
    start = time.perf_counter()
    indices, distances = find_neighbours(points, k, n_jobs, seed)
    log.info("neighbours: %d images, %d neighbours each, %.1f s", len(ids), indices.shape[1],
             time.perf_counter() - start)
    write_neighbours(out_npz, ids, indices, distances)
    return {"n_images": len(ids), "k": int(indices.shape[1])}


def perplexity_affinities(points: np.ndarray, perplexity: float, n_jobs: int, seed: int,
                          neighbours=None) -> PerplexityBasedNN:
    """openTSNE's perplexity affinities from the first 3 x perplexity of the given neighbours
    (nearest first), or from neighbours found now if none are given or too few."""
    n = len(points)
    k = min(n - 1, int(3 * perplexity))
    if neighbours is not None and neighbours[0].shape[1] < k:
        log.warning("tsne: perplexity %.1f needs %d neighbours, %d were found ahead "
                    "(tsne.neighbours); finding them again", perplexity, k,
                    neighbours[0].shape[1])
        neighbours = None
    if neighbours is None:
        neighbours = find_neighbours(points, k, n_jobs, seed)
    indices, distances = (np.ascontiguousarray(a[:, :k], dtype=dtype)
                          for a, dtype in zip(neighbours, (np.int64, np.float64)))
    knn = PrecomputedNeighbors(indices, distances)
    return PerplexityBasedNN(perplexity=perplexity, knn_index=knn, n_jobs=n_jobs)


def effective_perplexity(perplexity: float, n: int) -> float:
    """openTSNE needs about 3 x perplexity neighbours: lower it for tiny collections."""
    limit = max(1.0, (n - 1) / 3.0)
    if perplexity > limit:
        log.warning("tsne: perplexity %.1f is too high for %d images; using %.1f", perplexity, n, limit)
        return limit
    return perplexity


def embed(points: np.ndarray, perplexity: float = 30.0, learning_rate="auto",
          n_iter: int = DEFAULT_N_ITER, seed: int = 42, method: str = "fft", theta: float = 0.5,
          n_jobs: int = 1, neighbours=None) -> np.ndarray:
    """2-D t-SNE embedding of ``points`` (n x d): the same for a given seed at any ``n_jobs``.

    ``neighbours``: (indices, distances) found ahead (rule neighbours), used if they have the
    3 x perplexity columns the affinities need.
    """
    n = len(points)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 images, got {n}")
    points = np.ascontiguousarray(points, dtype=np.float32)
    perplexity = effective_perplexity(perplexity, n)
    start = time.perf_counter()
    affinities = perplexity_affinities(points, perplexity, n_jobs, seed, neighbours)
    log.info("tsne: affinities in %.1f s", time.perf_counter() - start)
    model = TSNE(
        n_components=2,
        perplexity=perplexity,
        learning_rate=learning_rate,
        early_exaggeration_iter=min(EARLY_EXAGGERATION_ITER, n_iter - 1),
        n_iter=max(1, n_iter - EARLY_EXAGGERATION_ITER),
        negative_gradient_method=method,
        theta=theta,
        n_jobs=n_jobs,
        random_state=seed,
        verbose=False,
    )
    start = time.perf_counter()
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        coords = np.asarray(model.fit(points, affinities=affinities), dtype=np.float64)
    log.info("tsne: optimisation in %.1f s", time.perf_counter() - start)
    return coords


def run_tsne(pca_h5: str | Path, out_csv: str | Path, settings: dict, n_jobs: int = 1,
             neighbours_npz: str | Path | None = None) -> dict:
    """Embed the PCA output and write ``id, x, y`` to ``out_csv`` (with the neighbours of
    ``neighbours_npz`` if given)."""
    ids, points = read_pca(pca_h5)
    neighbours = None
    if neighbours_npz:  # the columns the perplexity needs (a higher one finds its own)
        needed = min(len(ids) - 1, int(3 * settings["perplexity"]))
        neighbours = read_neighbours(neighbours_npz, ids, columns=needed)
    log.info("tsne: %d images, %d dims, settings %s, %d threads", len(ids), points.shape[1],
             settings, n_jobs)
    coords = embed(points, perplexity=settings["perplexity"],
                   learning_rate=settings["learning_rate"], n_iter=settings["n_iter"],
                   seed=settings["seed"], method=settings["method"], theta=settings["theta"],
                   n_jobs=n_jobs, neighbours=neighbours)
    rows = ({"id": i, "x": f"{x:.6f}", "y": f"{y:.6f}"} for i, (x, y) in zip(ids, coords))
    count = write_csv(out_csv, rows, ["id", "x", "y"], prov=provenance("tsne", settings))
    log.info("tsne: wrote %d points", count)
    return {"n_images": count}
