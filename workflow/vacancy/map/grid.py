"""Snap the t-SNE points onto a near-square grid, one image per cell.

The t-SNE positions are stretched to fill the grid, and each point is given a cell so that the
total squared distance between points and their cell centres is as small as possible. Up to a
few thousand images this is solved exactly in one piece (``assign_dense``, lapjv on an n x n cost
matrix). That matrix grows as n^2 (125,000 images would need 62 GB) and the solve as n^2..n^3, so
larger collections use ``assign_blocks``: a balanced split into grid-shaped blocks that are each
solved exactly, followed by passes over blocks offset by half a block that repair the seams.
Spare cells (n < cols x rows) take no image; like the dense solve's zero-cost dummy points, they
end up wherever they save the most displacement (``holes="end"`` keeps them at the end of the
last row instead).

With ``refine="flas"`` (config ``grid.refine``; ``auto``, the default, above ``dense_max``
images) the assignment is then refined in PCA space by FLAS
(``vacancy.map.refine``): images swap cells so that grid neighbours are closer in feature space, the
holes stay where the assignment put them, and the displacement statistics describe the final grid.

With ``reserve`` (config ``layout.reserve``, a share of the cells) a fresh grid keeps that share
of spare cells *inside* the map, for a later extend (``vacancy.map.layout``) to fill: phantom
points, copies of real t-SNE points drawn at random and jittered by about half a cell, join the
assignment and their cells are then emptied, so the spare cells sit where the images are, in
proportion to their density, and each family keeps room for its own later arrivals (without
them a fresh grid has spare cells only in the t-SNE gaps and at the end, and new images land at
the edge). Refinement keeps these holes fixed like any other. ``reserve`` 0 is the plain grid.

The later stages read grid.csv through :mod:`vacancy.map.grid_csv`, which needs none of the
solvers.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
from lapjv import lapjv
from scipy.optimize import linear_sum_assignment

from ..common import provenance, read_csv, write_csv
from .refine import SEED, choose_refine
from .refine import refine as refine_cells

log = logging.getLogger(__name__)

#: Seam-repair passes stop when a round of four lowers the total cost by less than this
#: fraction, or after ``grid.repair_passes``.
REPAIR_TOL = 1e-4
#: ``repair_passes: auto``: passes when the assignment is the final layout (each pass counts:
#: DPQ16 0.870 after 4, 0.883 after 16 on the 20,000-image demo) ...
PASSES_UNREFINED = 16
#: ... and when FLAS refines it afterwards (final DPQ16 0.8937 after 4, 0.8943 after 16 on the
#: same run, three query samples each: within their spread, for a third of the time).
PASSES_REFINED = 4
#: Seed of the reserve's phantom points: the same data and config give the same holes.
RESERVE_SEED = 7
#: Phantom points' jitter (standard deviation) in cells: enough that a copy does not compete
#: for its original's cell, little enough that it stays inside the original's family.
RESERVE_JITTER = 0.5
#: Largest ``reserve``: beyond half the cells, a map is more hole than image.
RESERVE_MAX = 0.5


def grid_shape(n: int) -> tuple[int, int]:
    """``(cols, rows)`` of the near-square grid for n images: cols = ceil(sqrt(n))."""
    if n < 1:
        raise ValueError("a grid needs at least one image")
    cols = math.ceil(math.sqrt(n))
    return cols, math.ceil(n / cols)


def to_grid_units(points: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Scale each axis of the points to span the grid, in cell units (0..cols, 0..rows)."""
    points = np.asarray(points, dtype=np.float64)
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    unit = (points - low) / span
    return unit * np.array([cols, rows]) * (1 - 1e-9)


def cell_centres(cols: int, rows: int) -> np.ndarray:
    """Centres of all cells, row by row, in cell units."""
    c, r = np.meshgrid(np.arange(cols), np.arange(rows))
    return np.column_stack([c.ravel() + 0.5, r.ravel() + 0.5])


def assign_dense(points: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Optimal cell index (row-major) for each point, minimising total squared displacement."""
    n = len(points)
    cells = cols * rows
    if n > cells:
        raise ValueError(f"{n} points do not fit a {cols}x{rows} grid")
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    scaled = to_grid_units(points, cols, rows)
    centres = cell_centres(cols, rows)
    cost = np.zeros((cells, cells), dtype=np.float64)
    diff = scaled[:, None, :] - centres[None, :, :]
    cost[:n] = np.einsum("ijk,ijk->ij", diff, diff)
    row_to_cell, _, _ = lapjv(cost)
    return np.asarray(row_to_cell[:n], dtype=np.int64)


def _solve_block(scaled: np.ndarray, point_idx: np.ndarray, cell_idx: np.ndarray, cols: int,
                 cell_owner: np.ndarray) -> None:
    """Optimally assign ``point_idx`` to some of ``cell_idx`` (at least as many) in ``cell_owner``.

    scipy's ``linear_sum_assignment`` is an exact Jonker-Volgenant-type solver like lapjv, and
    measured 4-10x faster than lapjv on these 256..2,304-cell blocks.
    """
    if len(point_idx) == 0:
        return
    centres = np.column_stack([cell_idx % cols + 0.5, cell_idx // cols + 0.5])
    diff = scaled[point_idx, None, :] - centres[None, :, :]
    cost = np.einsum("ijk,ijk->ij", diff, diff)
    rows_, cols_ = linear_sum_assignment(cost)
    cell_owner[cell_idx[cols_]] = point_idx[rows_]


def _spans(length: int, block: int, offset: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the blocks along one axis; with an offset the first block is short."""
    first = block - offset if offset else block
    edges = [0, *range(first, length, block), length]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def _quotas(total: int, capacities: np.ndarray) -> np.ndarray:
    """Split ``total`` points over parts in proportion to their cell counts, rounding so that
    every prefix of parts gets its fair share (never more points than cells)."""
    bounds = np.rint(total * np.cumsum(capacities) / max(int(capacities.sum()), 1)).astype(np.int64)
    return np.diff(bounds, prepend=0)


def _block_cells(r0: int, r1: int, c0: int, c1: int, cols: int, allowed: np.ndarray) -> np.ndarray:
    """Row-major indices of the cells that may hold an image in rows r0..r1-1, columns c0..c1-1."""
    c, r = np.meshgrid(np.arange(c0, c1), np.arange(r0, r1))
    cells = (r * cols + c).ravel()
    return cells[allowed[cells]]


def _balanced_split(scaled: np.ndarray, cols: int, rows: int, block: int, allowed: np.ndarray,
                    cell_owner: np.ndarray, workers: int = 1) -> None:
    """First assignment, a balanced k-d split: bands of ``block`` rows take points in y order,
    as many as their share of the cells, and each band's points go in x order to its blocks,
    again by their share of cells; then every block is solved exactly."""
    n = len(scaled)
    row_spans, col_spans = _spans(rows, block, 0), _spans(cols, block, 0)
    grids = [[_block_cells(r0, r1, c0, c1, cols, allowed) for c0, c1 in col_spans]
             for r0, r1 in row_spans]
    band_caps = np.array([sum(len(c) for c in band) for band in grids])
    by_y = np.lexsort((scaled[:, 0], scaled[:, 1]))
    start, blocks = 0, []
    for band_cells, quota in zip(grids, _quotas(n, band_caps)):
        band = by_y[start:start + quota]
        start += quota
        band = band[np.lexsort((scaled[band, 1], scaled[band, 0]))]
        taken = 0
        for cells, share in zip(band_cells, _quotas(quota, np.array([len(c) for c in band_cells]))):
            blocks.append((band[taken:taken + share], cells))
            taken += share
    _solve_blocks(scaled, blocks, cols, cell_owner, workers)


def _repair_pass(scaled: np.ndarray, cols: int, rows: int, block: int, offset: tuple[int, int],
                 allowed: np.ndarray, cell_owner: np.ndarray, workers: int = 1) -> None:
    """Re-solve every block of a grid of blocks shifted by ``offset`` (rows, cols), exactly, among
    the points that currently sit in it (empty cells of the block may take them too); a block's
    solution never costs more than before."""
    blocks = []
    for r0, r1 in _spans(rows, block, offset[0]):
        for c0, c1 in _spans(cols, block, offset[1]):
            cells = _block_cells(r0, r1, c0, c1, cols, allowed)
            owners = cell_owner[cells]
            cell_owner[cells] = -1
            blocks.append((owners[owners >= 0], cells))
    _solve_blocks(scaled, blocks, cols, cell_owner, workers)


def _solve_blocks(scaled: np.ndarray, blocks: list, cols: int, cell_owner: np.ndarray,
                  workers: int) -> None:
    """Solve ``(point_idx, cell_idx)`` blocks, on ``workers`` threads. The blocks of one pass
    share no cell and no point, so their order does not matter and the result is the same for
    any number of threads; SciPy's solver and NumPy release the GIL, so two threads take about
    half the time."""
    if workers <= 1:
        for points, cells in blocks:
            _solve_block(scaled, points, cells, cols, cell_owner)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda b: _solve_block(scaled, b[0], b[1], cols, cell_owner), blocks))


def _total_cost(scaled: np.ndarray, cell_owner: np.ndarray, cols: int) -> float:
    """Sum of squared point-to-centre distances of the current assignment."""
    cells = np.flatnonzero(cell_owner >= 0)
    centres = np.column_stack([cells % cols + 0.5, cells // cols + 0.5])
    return float(((scaled[cell_owner[cells]] - centres) ** 2).sum())


def assign_blocks(points: np.ndarray, cols: int, rows: int, block: int,
                  holes: str, max_passes: int, tol: float = REPAIR_TOL,
                  workers: int = 1) -> np.ndarray:
    """Near-optimal cell index (row-major) for each point, in memory and time linear in n.

    Blocks of ``block`` x ``block`` cells are solved exactly after a balanced split, then the
    seams are repaired by re-solving blocks shifted by half a block (diagonally, along each
    axis, then unshifted, in turn) until a round of four passes lowers the total squared
    displacement by less than ``tol`` of it, or after ``max_passes``.

    Empty cells (when n < cols x rows): ``holes="free"`` lets them go wherever the assignment is
    cheapest, as the dense solve does (in t-SNE maps: the sparse gaps between clusters);
    ``holes="end"`` keeps them at the end of the last row, at some cost in displacement.
    The blocks of each pass are solved on ``workers`` threads (the same cells for any number).
    """
    n = len(points)
    cells = cols * rows
    if n > cells:
        raise ValueError(f"{n} points do not fit a {cols}x{rows} grid")
    if block < 2:
        raise ValueError("block must be at least 2 cells")
    if holes not in ("free", "end"):
        raise ValueError(f"holes {holes!r} is not one of free, end")
    allowed = np.ones(cells, bool) if holes == "free" else np.arange(cells) < n
    scaled = to_grid_units(points, cols, rows)
    cell_owner = np.full(cells, -1, dtype=np.int64)
    _balanced_split(scaled, cols, rows, block, allowed, cell_owner, workers)
    half = block // 2
    offsets = [(half, half), (0, half), (half, 0), (0, 0)]
    cost = round_start = _total_cost(scaled, cell_owner, cols)
    log.debug("grid blocks: balanced split, cost %.1f", cost)
    for i in range(max_passes):
        _repair_pass(scaled, cols, rows, block, offsets[i % 4], allowed, cell_owner, workers)
        cost = _total_cost(scaled, cell_owner, cols)
        log.debug("grid blocks: repair pass %d, cost %.1f", i + 1, cost)
        if i % 4 == 3:
            if round_start - cost <= tol * round_start:
                break
            round_start = cost
    cell_index = np.empty(n, dtype=np.int64)
    occupied = np.flatnonzero(cell_owner >= 0)
    cell_index[cell_owner[occupied]] = occupied
    return cell_index


def displacement(points: np.ndarray, cell_index: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Distance, in cell units, between each scaled point and the centre of its cell."""
    scaled = to_grid_units(points, cols, rows)
    return np.linalg.norm(scaled - cell_centres(cols, rows)[cell_index], axis=1)


def choose_repair_passes(setting: int | str, refine_used: str) -> int:
    """The number of seam-repair passes for ``grid.repair_passes`` (a number, or ``auto``)."""
    if setting == "auto":
        return PASSES_REFINED if refine_used != "none" else PASSES_UNREFINED
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ValueError(f"grid repair_passes {setting!r} is not auto or a number >= 0")
    return setting


def choose_method(n: int, method: str, dense_max: int) -> str:
    """``dense`` or ``blocks``: ``auto`` picks dense up to ``dense_max`` images."""
    if method == "auto":
        return "dense" if n <= dense_max else "blocks"
    if method not in ("dense", "blocks"):
        raise ValueError(f"grid method {method!r} is not one of auto, dense, blocks")
    return method


def assign(points: np.ndarray, cols: int, rows: int, method: str, block: int, dense_max: int,
           holes: str, repair_passes: int, workers: int = 1) -> tuple[np.ndarray, str]:
    """Cell index for each point by the chosen method; also return the method used."""
    used = choose_method(len(points), method, dense_max)
    if used == "dense":
        return assign_dense(points, cols, rows), used
    return assign_blocks(points, cols, rows, block=block, holes=holes,
                         max_passes=repair_passes, workers=workers), used


def reserve_count(n: int, reserve: float) -> int:
    """Phantom points that make ``reserve`` of the n + phantoms cells spare: n r / (1 - r)."""
    if isinstance(reserve, bool) or not isinstance(reserve, (int, float)) or \
            not 0 <= reserve <= RESERVE_MAX:
        raise ValueError(f"layout reserve {reserve!r} is not a share of cells from 0 to "
                         f"{RESERVE_MAX}")
    return int(round(n * reserve / (1 - reserve)))


def with_phantoms(points: np.ndarray, count: int, seed: int = RESERVE_SEED) -> np.ndarray:
    """``points`` followed by ``count`` phantoms: copies of randomly chosen points (each at most
    once while there are enough), jittered by ``RESERVE_JITTER`` cells of the grid they will be
    laid on and kept within the points' bounding box, so the real points' scaling is unchanged.
    Phantoms follow the points' density, so the spare cells they leave do too."""
    points = np.asarray(points, dtype=np.float64)
    if count == 0:
        return points
    rng = np.random.default_rng(seed)
    n = len(points)
    pick = rng.choice(n, count, replace=count > n)
    low, high = points.min(axis=0), points.max(axis=0)
    cols, rows = grid_shape(n + count)
    cell = np.where(high > low, high - low, 1.0) / np.array([cols, rows])
    jitter = rng.normal(scale=RESERVE_JITTER, size=(count, 2)) * cell
    return np.vstack([points, np.clip(points[pick] + jitter, low, high)])


def _pca_rows(pca_h5: str | Path, ids: list[str]) -> np.ndarray:
    """The PCA vectors of ``ids``, in that order (pca.h5 may list them in another)."""
    from .pca import read_pca

    pca_ids, vectors = read_pca(pca_h5)
    row = {i: k for k, i in enumerate(pca_ids)}
    missing = [i for i in ids if i not in row]
    if missing:
        raise ValueError(f"{len(missing)} images of the t-SNE map are not in {pca_h5}, "
                         f"e.g. {missing[0]}")
    return vectors[[row[i] for i in ids]]


def run_grid(tsne_csv: str | Path, out_csv: str | Path, method: str, block: int,
             dense_max: int, holes: str, repair_passes: int | str, refine: str, radius_decay: float,
             refine_dims: int, pca_h5: str | Path | None = None, reserve: float = 0.0,
             workers: int = 1) -> dict:
    """Read ``id, x, y``, assign cells, write ``id, col, row`` with the grid size in the sidecar.

    With ``reserve`` > 0 the grid is sized and assigned for the images plus
    :func:`reserve_count` phantoms (:func:`with_phantoms`), whose cells stay empty: the method
    and the dense threshold count them too.

    The sidecar's ``params`` record the method actually used (``lapjv-dense`` or ``blocks``),
    the block size and the threshold, and the refinement, so a change of any of them is visible
    in the provenance. With ``refine="flas"`` the PCA vectors (``pca_h5``) are needed.
    The displacement statistics are those of the written (final) grid; the assignment's own,
    before refinement, are kept as ``assigned_displacement_mean`` / ``_p95``.
    """
    rows_in = read_csv(tsne_csv)
    ids = [r["id"] for r in rows_in]
    points = np.array([[float(r["x"]), float(r["y"])] for r in rows_in], dtype=np.float64)
    phantoms = reserve_count(len(ids), reserve)
    laid = with_phantoms(points, phantoms)
    cols, rows = grid_shape(len(laid))
    used = choose_method(len(laid), method, dense_max)
    requested_refine, refine = refine, choose_refine(len(ids), refine, dense_max)
    requested_passes = repair_passes
    if refine != "none" and pca_h5 is None:
        raise ValueError(f"grid refine {refine!r} needs the PCA vectors (pca_h5)")
    repair_passes = choose_repair_passes(repair_passes, refine)
    log.info("grid: %d images (and %d reserved cells) on %d x %d cells, method %s (%d repair "
             "passes), refine %s", len(ids), phantoms, cols, rows, used, repair_passes, refine)
    start = time.perf_counter()
    cell_index, used = assign(laid, cols, rows, used, block, dense_max, holes, repair_passes,
                              workers)
    cell_index = cell_index[:len(ids)]  # the phantoms' cells are the reserve: left empty
    seconds = time.perf_counter() - start
    assigned = displacement(points, cell_index, cols, rows)
    refine_seconds = 0.0
    if refine != "none":
        features = _pca_rows(pca_h5, ids)
        start = time.perf_counter()
        cell_index = refine_cells(refine, features, cell_index, cols, rows, radius_decay,
                                  refine_dims)
        refine_seconds = time.perf_counter() - start
        log.info("grid: refined by %s in %.1f s", refine, refine_seconds)
    moved = displacement(points, cell_index, cols, rows)
    stats = {"cols": cols, "rows": rows, "n_images": len(ids), "method": used,
             "refine": refine, "n_reserved": phantoms,
             "n_spare": cols * rows - len(ids), "seconds": round(seconds, 3),
             "refine_seconds": round(refine_seconds, 3),
             "displacement_mean": float(moved.mean()),
             "displacement_p95": float(np.percentile(moved, 95)),
             "assigned_displacement_mean": float(assigned.mean()),
             "assigned_displacement_p95": float(np.percentile(assigned, 95))}
    log.info("grid: %.1f s, mean displacement %.3f cells, 95th percentile %.3f (assignment alone "
             "%.3f, %.3f)", seconds + refine_seconds, stats["displacement_mean"],
             stats["displacement_p95"], stats["assigned_displacement_mean"],
             stats["assigned_displacement_p95"])
    out_rows = ({"id": i, "col": int(c % cols), "row": int(c // cols)}
                for i, c in zip(ids, cell_index))
    params = {"method": "lapjv-dense" if used == "dense" else "blocks", "requested": method,
              "dense_max": dense_max, "refine": refine, "requested_refine": requested_refine}
    if phantoms:
        params.update(reserve=reserve, reserve_seed=RESERVE_SEED, reserve_jitter=RESERVE_JITTER)
    if used == "blocks":
        params.update(block=block, holes=holes, repair_tol=REPAIR_TOL,
                      repair_passes=repair_passes, requested_repair_passes=requested_passes)
    if refine == "flas":
        params.update(radius_decay=radius_decay, refine_dims=refine_dims, seed=SEED)
    write_csv(out_csv, out_rows, ["id", "col", "row"], prov=provenance("grid", params, **stats))
    return stats
