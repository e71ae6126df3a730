"""The grid gives every point one cell, no cell two points, and is the optimal assignment."""
import json

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from vacancy.common import read_csv, sidecar_path, write_csv
from vacancy.grid import assign_dense, cell_centres, grid_shape, run_grid, to_grid_units


@pytest.mark.parametrize("n,shape", [(1, (1, 1)), (2, (2, 1)), (4, (2, 2)), (5, (3, 2)),
                                     (2000, (45, 45)), (2026, (46, 45))])
def test_grid_shape_is_near_square(n, shape):
    cols, rows = grid_shape(n)
    assert (cols, rows) == shape
    assert cols * rows >= n and cols * (rows - 1) < n


@pytest.mark.parametrize("n", [1, 7, 16, 50])
def test_every_point_gets_its_own_cell(n):
    points = np.random.default_rng(n).normal(size=(n, 2))
    cols, rows = grid_shape(n)
    cells = assign_dense(points, cols, rows)
    assert len(cells) == n and len(set(cells.tolist())) == n
    assert cells.min() >= 0 and cells.max() < cols * rows


def test_identical_points_still_fill_distinct_cells():
    cells = assign_dense(np.zeros((10, 2)), *grid_shape(10))
    assert len(set(cells.tolist())) == 10


def test_points_already_on_a_grid_stay_in_order():
    cols, rows = 4, 3
    points = cell_centres(cols, rows) * [1.0, -1.0]  # t-SNE y up vs grid rows down: mirrored
    cells = assign_dense(points, cols, rows)
    c, r = cells % cols, cells // cols
    assert np.array_equal(c, np.tile(np.arange(cols), rows))
    assert np.array_equal(r, (rows - 1) - np.repeat(np.arange(rows), cols))


def test_dense_assignment_is_optimal():
    points = np.random.default_rng(3).uniform(size=(30, 2))
    cols, rows = grid_shape(30)
    cells = assign_dense(points, cols, rows)
    scaled = to_grid_units(points, cols, rows)
    cost = ((scaled[:, None, :] - cell_centres(cols, rows)[None]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    assert cost[np.arange(30), cells].sum() == pytest.approx(cost[r, c].sum(), rel=1e-9)


def test_run_grid_writes_cells_and_grid_size(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"id": f"loc/{i}.jpg", "x": x, "y": y} for i, (x, y) in enumerate(rng.normal(size=(23, 2)))]
    write_csv(tmp_path / "tsne.csv", rows, ["id", "x", "y"])
    stats = run_grid(tmp_path / "tsne.csv", tmp_path / "grid.csv")
    out = read_csv(tmp_path / "grid.csv")
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    cells = {(int(r["col"]), int(r["row"])) for r in out}
    assert len(cells) == 23 and all(0 <= c < 5 and 0 <= r < 5 for c, r in cells)
    meta = json.loads(sidecar_path(tmp_path / "grid.csv").read_text())
    assert (meta["cols"], meta["rows"]) == (5, 5) == (stats["cols"], stats["rows"])
    assert meta["versions"]["lapjv"]
