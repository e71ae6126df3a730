"""How good is a grid layout: displacement from the t-SNE map, and distance preservation (DPQ).

Displacement says how far the grid moved each image from where t-SNE put it, in cell units; it
is comparable with the dense optimum, which minimises (the squares of) exactly that.

DPQ_p, the Distance Preservation Quality of Barthel, Hezel, Jung and Schall (2023, "Improved
Evaluation and Generation of Grid Layouts using Distance Preservation Quality and Linear
Assignment Sorting", Computer Graphics Forum), asks whether images that are close on the grid
are close in feature space, which is what a visitor of the map sees. For a query image, sort all
other images by grid distance and take the mean feature distance of the first k; average that
over query images to get D_k(S) for the layout S. A random layout gives D_k = D_mean (the mean
distance of all pairs) for every k; the best conceivable layout gives D_k(HD), the mean of each
query's k nearest neighbours in feature space. The gain DeltaDP_k = max(0, (D_mean - D_k) /
D_mean) for k = 1..n-1 is summed as a p-norm, which for large p is dominated by small k:

    DPQ_p(S) = ||DeltaDP(S)||_p / ||DeltaDP(HD)||_p,   1 = ideal, about 0 = random.

Tie rule (as in the paper): grid neighbours at equal grid distance (the 4 at distance 1, the 4
diagonals, ...) are taken in order of increasing feature distance, so the order of equidistant
cells never penalises a layout. Grid distance is the Euclidean distance between cell positions
(col, row); empty cells are not neighbours. Feature distance is Euclidean. At large n the
averages over query images are estimated from a random sample of queries, each still against
all n images, so memory and time grow as (queries x n), not n^2.
"""

from __future__ import annotations

import math

import numpy as np

#: The paper's recommended p: emphasises the closest neighbours.
DPQ_P = 16
#: Query images sampled at large n; the exact value (all queries) is used up to this many.
DPQ_QUERIES = 1000
#: Queries handled at once (rows of queries x n distances in memory).
_CHUNK = 32


def displacement_stats(moved: np.ndarray, dense_moved: np.ndarray | None = None) -> dict:
    """Mean and 95th percentile of per-image displacement (cell units), and ratios to dense."""
    moved = np.asarray(moved, dtype=np.float64)
    stats = {"displacement_mean": float(moved.mean()),
             "displacement_p95": float(np.percentile(moved, 95))}
    if dense_moved is not None:
        dense_moved = np.asarray(dense_moved, dtype=np.float64)
        stats["ratio_mean"] = _ratio(moved.mean(), dense_moved.mean())
        stats["ratio_p95"] = _ratio(np.percentile(moved, 95), np.percentile(dense_moved, 95))
    return stats


def _ratio(a: float, b: float) -> float:
    """a / b, with 0 / 0 = 1 (both layouts put every point on its cell centre)."""
    if b == 0:
        return 1.0 if a == 0 else math.inf
    return float(a / b)


def neighbour_curves(features: np.ndarray, cell_index: np.ndarray, cols: int,
                     queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """D_k of the layout and of the ideal (feature-space) order, k = 1..n-1, over ``queries``.

    Both are means over queries of the mean feature distance to the first k neighbours: grid
    neighbours by grid distance, ties by feature distance; ideal neighbours by feature distance.
    """
    x = np.asarray(features, dtype=np.float64)
    n = len(x)
    cell_index = np.asarray(cell_index, dtype=np.int64)
    pos = np.column_stack([cell_index % cols, cell_index // cols]).astype(np.int64)
    queries = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
    sq_norms = np.einsum("ij,ij->i", x, x)
    grid_sum = np.zeros(n - 1)
    ideal_sum = np.zeros(n - 1)
    for start in range(0, len(queries), _CHUNK):
        q = queries[start:start + _CHUNK]
        hd = np.sqrt(np.maximum(sq_norms[q, None] - 2 * x[q] @ x.T + sq_norms[None, :], 0.0))
        hd[np.arange(len(q)), q] = 0.0  # exactly zero to itself despite rounding
        offset = pos[q, None, :] - pos[None, :, :]
        grid_d2 = np.einsum("qnk,qnk->qn", offset, offset)  # integers: ties are exact
        for row in range(len(q)):
            order = np.lexsort((hd[row], grid_d2[row]))
            grid_sum += hd[row, order[1:]]  # order[0] is the query itself (grid distance 0)
        ideal_sum += np.sort(hd, axis=1)[:, 1:].sum(axis=0)
    ks = np.arange(1, n)
    return (np.cumsum(grid_sum) / ks / len(queries), np.cumsum(ideal_sum) / ks / len(queries))


def dpq(features: np.ndarray, cell_index: np.ndarray, cols: int, p: float = DPQ_P,
        n_queries: int | None = DPQ_QUERIES, seed: int = 0) -> float:
    """DPQ_p of a layout: ``features`` (n x d) row i sits in cell ``cell_index[i]`` (row-major).

    Exact when n <= ``n_queries`` (or ``n_queries`` is None); otherwise estimated from that many
    query images drawn without replacement (``seed``). Returns 1.0 when all features are equal
    (every layout preserves the distances) and nan for fewer than 2 images.
    """
    n = len(features)
    if len(cell_index) != n:
        raise ValueError(f"{n} feature rows but {len(cell_index)} cells")
    if n < 2:
        return math.nan
    queries = None
    if n_queries is not None and n > n_queries:
        queries = np.sort(np.random.default_rng(seed).choice(n, n_queries, replace=False))
    grid_curve, ideal_curve = neighbour_curves(features, cell_index, cols, queries)
    mean_d = ideal_curve[-1]  # all n-1 neighbours: the mean distance, i.e. a random layout's D_k
    if mean_d <= 0:
        return 1.0
    gain_grid = np.clip((mean_d - grid_curve) / mean_d, 0.0, None)
    gain_ideal = np.clip((mean_d - ideal_curve) / mean_d, 0.0, None)
    return float(_pnorm(gain_grid, p) / _pnorm(gain_ideal, p))


def _pnorm(values: np.ndarray, p: float) -> float:
    """p-norm, scaled by the largest value first so that p = 16 cannot underflow."""
    top = values.max()
    if top == 0:
        return 0.0
    return float(top * np.sum((values / top) ** p) ** (1.0 / p))


def grid_quality(features: np.ndarray, points: np.ndarray, cell_index: np.ndarray, cols: int,
                 rows: int, dense_index: np.ndarray | None = None, p: float = DPQ_P,
                 n_queries: int | None = DPQ_QUERIES, seed: int = 0) -> dict:
    """Both measures for one layout: displacement (and its ratio to a dense layout, if given)
    from the t-SNE ``points``, and DPQ_p in the ``features`` (the PCA space)."""
    from .grid import displacement

    moved = displacement(points, cell_index, cols, rows)
    dense_moved = None if dense_index is None else displacement(points, dense_index, cols, rows)
    stats = displacement_stats(moved, dense_moved)
    stats[f"dpq{p:g}"] = dpq(features, cell_index, cols, p=p, n_queries=n_queries, seed=seed)
    stats["dpq_queries"] = min(len(features), n_queries or len(features))
    return stats
