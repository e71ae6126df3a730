"""Refine the grid in feature space: FLAS swaps started from our t-SNE grid.

The t-SNE map followed by the block assignment keeps what t-SNE saw, but snapping 2-D points to
cells loses some of the fine order that the PCA vectors carry; at 93,500 images its DPQ16 (in PCA
space, ``vacancy.map.quality``) was 0.837 against 0.887 for FLAS sorting the PCA vectors from
scratch.
FLAS (Barthel et al. 2023; PyPI ``vc_flas``) repeatedly blurs the map of feature vectors and
re-solves small linear assignments so that every image moves to the cell whose blurred vector
it matches best. Started from our grid instead of a random one, it keeps t-SNE's global layout
and fixes the local order: DPQ16 0.890 (three query samples: 0.892, 0.892, 0.887; FLAS alone
0.887, 0.882, 0.885) at 93,500 images in about 16 s, at the cost of moving images about twice as
far from their t-SNE positions (README, "Grid").

Empty cells are frozen: FLAS never moves a frozen cell, so the holes stay exactly where the
assignment put them (in the t-SNE gaps with ``holes: free``, at the end of the last row with
``holes: end``), and every image still gets exactly one cell.
"""

from __future__ import annotations

import numpy as np

#: Methods of ``grid.refine``: auto refines by FLAS above ``dense_max`` images, not below.
REFINE_METHODS = ("auto", "none", "flas")
#: FLAS draws random swap candidates; a fixed seed makes the grid reproducible.
SEED = 1


def cells_to_ids(cell_index: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """The (rows, cols) map of image indices (int32) for a row-major ``cell_index``; -1 = hole."""
    ids = np.full(cols * rows, -1, dtype=np.int32)
    ids[np.asarray(cell_index, dtype=np.int64)] = np.arange(len(cell_index), dtype=np.int32)
    return ids.reshape(rows, cols)


def ids_to_cells(ids: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`cells_to_ids`: the row-major cell of each of the n images."""
    flat = np.asarray(ids).ravel()
    filled = np.flatnonzero(flat >= 0)
    if len(filled) != n or len(np.unique(flat[filled])) != n:
        raise RuntimeError("the refined grid is not one cell per image")
    cell_index = np.empty(n, dtype=np.int64)
    cell_index[flat[filled]] = filled
    return cell_index


def refine_flas(features: np.ndarray, cell_index: np.ndarray, cols: int, rows: int,
                radius_decay: float, seed: int = SEED) -> np.ndarray:
    """New row-major cell of each image after FLAS swaps in ``features`` (n x d) space.

    Starts from ``cell_index`` (one distinct cell per image) with the empty cells frozen, so the
    result uses the same cells. FLAS needs at least 2 x 2 cells; smaller grids (1 or 2 images)
    are returned unchanged.
    """
    import vc_flas  # imported here: only the grid rule with refine on needs it

    features = np.ascontiguousarray(features, dtype=np.float32)
    cell_index = np.asarray(cell_index, dtype=np.int64)
    n = len(features)
    if len(cell_index) != n:
        raise ValueError(f"{n} feature rows but {len(cell_index)} cells")
    if rows < 2 or cols < 2:
        return cell_index.copy()
    ids = cells_to_ids(cell_index, cols, rows)
    grid = vc_flas.Grid(features=features, ids=ids, frozen=ids < 0,
                        labels=np.arange(n, dtype=np.int32))
    sorting = vc_flas.flas(grid, wrap=False, radius_decay=radius_decay, seed=seed).sorting
    return ids_to_cells(sorting, n)


def choose_refine(n: int, method: str, dense_max: int) -> str:
    """``none`` or ``flas``: ``auto`` refines only collections larger than ``dense_max``.

    Measured on the demo (README, "Grid", means of three query samples): at 1,650 images the
    dense optimum's DPQ16 (0.897) is already above FLAS's (0.889) and refining gains only 0.002
    (0.93 decay: loses 0.003) while doubling the displacement; at 16,000 and 93,500 images, where
    the block method is used, it raises DPQ16 from 0.884 to 0.892 and from 0.836 to 0.890.
    """
    if method == "auto":
        return "flas" if n > dense_max else "none"
    if method not in REFINE_METHODS:
        raise ValueError(f"grid refine {method!r} is not one of {', '.join(REFINE_METHODS)}")
    return method


def refine(method: str, features: np.ndarray, cell_index: np.ndarray, cols: int, rows: int,
           radius_decay: float, dims: int) -> np.ndarray:
    """``cell_index`` refined by ``method``, ``none`` or ``flas`` (``none``: unchanged), on the
    first ``dims`` columns of ``features``: PCA components come in order of variance, and FLAS's
    time is linear in the columns it blurs and compares."""
    if method == "none":
        return np.asarray(cell_index, dtype=np.int64)
    if method == "flas":
        return refine_flas(np.asarray(features)[:, :dims], cell_index, cols, rows,
                           radius_decay=radius_decay)
    raise ValueError(f"grid refine {method!r} is not one of none, flas (auto is resolved first)")
