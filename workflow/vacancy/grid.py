"""Snap the t-SNE points onto a near-square grid, one image per cell, with lapjv.

The t-SNE positions are stretched to fill the grid, and the assignment that minimises the total
squared distance between each point and its cell centre is solved exactly with lapjv (a
Jonker-Volgenant linear assignment solver). The grid has ``ceil(sqrt(n))`` columns and as many
rows as needed; spare cells are taken by zero-cost dummy points and stay empty. The dense solve
needs an n x n cost matrix, which is fine to about 10,000 images.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from lapjv import lapjv

from .common import provenance, read_csv, write_csv

log = logging.getLogger(__name__)


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


def displacement(points: np.ndarray, cell_index: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Distance, in cell units, between each scaled point and the centre of its cell."""
    scaled = to_grid_units(points, cols, rows)
    return np.linalg.norm(scaled - cell_centres(cols, rows)[cell_index], axis=1)


def run_grid(tsne_csv: str | Path, out_csv: str | Path) -> dict:
    """Read ``id, x, y``, assign cells, write ``id, col, row`` with the grid size in the sidecar."""
    rows_in = read_csv(tsne_csv)
    ids = [r["id"] for r in rows_in]
    points = np.array([[float(r["x"]), float(r["y"])] for r in rows_in], dtype=np.float64)
    cols, rows = grid_shape(len(ids))
    log.info("grid: %d images on %d x %d cells", len(ids), cols, rows)
    cell_index = assign_dense(points, cols, rows)
    moved = displacement(points, cell_index, cols, rows)
    stats = {"cols": cols, "rows": rows, "n_images": len(ids),
             "displacement_mean": float(moved.mean()),
             "displacement_p95": float(np.percentile(moved, 95))}
    log.info("grid: mean displacement %.3f cells, 95th percentile %.3f",
             stats["displacement_mean"], stats["displacement_p95"])
    out_rows = ({"id": i, "col": int(c % cols), "row": int(c // cols)}
                for i, c in zip(ids, cell_index))
    write_csv(out_csv, out_rows, ["id", "col", "row"],
              prov=provenance("grid", {"method": "lapjv-dense"}, **stats))
    return stats
