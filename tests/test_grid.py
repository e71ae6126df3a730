"""The grid gives every point one cell, no cell two points; dense is optimal, blocks within 5 %."""
import json

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from vacancy.common import read_csv, sidecar_path, write_csv
from vacancy.map.grid import (assign_blocks, assign_dense, cell_centres, choose_method,
                              choose_repair_passes, displacement, grid_shape, run_grid,
                              to_grid_units)
from vacancy.common import config_defaults

GRID = config_defaults()["grid"]
PASSES = choose_repair_passes("auto", "none")  # the assignment alone: the final layout


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
    stats = run_grid(tmp_path / "tsne.csv", tmp_path / "grid.csv", **GRID)
    out = read_csv(tmp_path / "grid.csv")
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    cells = {(int(r["col"]), int(r["row"])) for r in out}
    assert len(cells) == 23 and all(0 <= c < 5 and 0 <= r < 5 for c, r in cells)
    meta = json.loads(sidecar_path(tmp_path / "grid.csv").read_text())
    assert (meta["cols"], meta["rows"]) == (5, 5) == (stats["cols"], stats["rows"])
    assert meta["versions"]["lapjv"]


# --- block assignment (scales to 125,000 images) ---------------------------------------------


def _mixture(n: int, seed: int, clusters: int = 8) -> np.ndarray:
    """t-SNE-like points: clusters of different sizes and spreads, with gaps between them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, 2)) * 4
    label = rng.choice(clusters, n, p=rng.dirichlet(np.ones(clusters)))
    spread = rng.uniform(0.3, 1.2, size=clusters)
    return centres[label] + rng.normal(size=(n, 2)) * spread[label, None]


def _optimal_displacement(points: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Displacement of the exact optimum (scipy's solver: same optimum as lapjv, faster here)."""
    scaled = to_grid_units(points, cols, rows)
    cost = ((scaled[:, None, :] - cell_centres(cols, rows)[None]) ** 2).sum(-1)
    _, cells = linear_sum_assignment(cost)
    return displacement(points, cells, cols, rows)


@pytest.mark.parametrize("holes", ["free", "end"])
@pytest.mark.parametrize("n,block", [(1, 4), (2, 4), (3, 2), (7, 2), (99, 4), (100, 4),
                                     (1000, 8), (1024, 8), (1031, 5)])
def test_blocks_give_every_point_its_own_cell(n, block, holes):
    points = np.random.default_rng(n).normal(size=(n, 2))
    cols, rows = grid_shape(n)
    cells = assign_blocks(points, cols, rows, block=block, holes=holes, max_passes=PASSES)
    assert cells.shape == (n,) and len(set(cells.tolist())) == n
    assert cells.min() >= 0 and cells.max() < cols * rows
    if holes == "end":  # the empty cells are exactly the last ones in reading order
        assert sorted(cells.tolist()) == list(range(n))


@pytest.mark.parametrize("holes", ["free", "end"])
def test_blocks_on_two_threads_give_the_same_cells_as_on_one(holes):
    rng = np.random.default_rng(3)
    centres = rng.random((12, 2)) * 10
    points = centres[rng.integers(0, 12, 3000)] + rng.normal(scale=0.4, size=(3000, 2))
    cols, rows = 60, 55  # 300 spare cells
    one = assign_blocks(points, cols, rows, block=8, holes=holes, max_passes=8, workers=1)
    two = assign_blocks(points, cols, rows, block=8, holes=holes, max_passes=8, workers=2)
    assert len(set(two.tolist())) == len(points)
    np.testing.assert_array_equal(one, two)


def test_blocks_place_identical_points_in_distinct_cells():
    cols, rows = grid_shape(300)
    cells = assign_blocks(np.full((300, 2), 7.0), cols, rows, block=6, holes="free",
                          max_passes=PASSES)
    assert len(set(cells.tolist())) == 300 and cells.max() < cols * rows


def test_blocks_keep_points_already_on_a_grid_in_place():
    cols, rows = 20, 20
    points = cell_centres(cols, rows)[::-1].copy()  # listed in reverse, positioned exactly
    cells = assign_blocks(points, cols, rows, block=6, holes="free", max_passes=PASSES)
    assert np.array_equal(cells, np.arange(cols * rows)[::-1])


@pytest.mark.parametrize("n,seed,kind,block", [(1000, 1, "mixture", 8), (1200, 2, "mixture", 12),
                                               (2000, 3, "uniform", 16), (900, 4, "mixture", 10)])
def test_block_displacement_is_within_5_percent_of_the_dense_optimum(n, seed, kind, block):
    points = (_mixture(n, seed) if kind == "mixture"
              else np.random.default_rng(seed).uniform(size=(n, 2)))
    cols, rows = grid_shape(n)
    assert cols > 2 * block  # several blocks, so there are seams to repair
    cells = assign_blocks(points, cols, rows, block=block, holes="free", max_passes=PASSES)
    blocks = displacement(points, cells, cols, rows)
    optimum = _optimal_displacement(points, cols, rows)
    assert blocks.mean() <= 1.05 * optimum.mean()


def test_seam_repair_improves_on_the_balanced_split():
    points = _mixture(1500, 5)
    cols, rows = grid_shape(1500)
    split_only = displacement(points, assign_blocks(points, cols, rows, 8, "free", 0), cols, rows)
    repaired = displacement(points, assign_blocks(points, cols, rows, 8, "free", PASSES), cols, rows)
    assert (repaired ** 2).sum() < 0.97 * (split_only ** 2).sum()


@pytest.mark.parametrize("n,method,expected", [(10, "auto", "dense"), (4000, "auto", "dense"),
                                               (4001, "auto", "blocks"), (10, "blocks", "blocks"),
                                               (10**6, "dense", "dense")])
def test_auto_picks_dense_up_to_the_threshold(n, method, expected):
    assert choose_method(n, method, GRID["dense_max"]) == expected


def test_run_grid_with_blocks_records_the_method(tmp_path):
    rows = [{"id": f"loc/{i}.jpg", "x": x, "y": y} for i, (x, y) in enumerate(_mixture(230, 9))]
    write_csv(tmp_path / "tsne.csv", rows, ["id", "x", "y"])
    stats = run_grid(tmp_path / "tsne.csv", tmp_path / "grid.csv",
                     **{**GRID, "block": 6, "dense_max": 100, "refine": "none"})
    out = read_csv(tmp_path / "grid.csv")
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert len({(int(r["col"]), int(r["row"])) for r in out}) == 230
    meta = json.loads(sidecar_path(tmp_path / "grid.csv").read_text())
    assert meta["params"]["method"] == "blocks" and meta["params"]["block"] == 6
    assert stats["method"] == meta["method"] == "blocks" and (meta["cols"], meta["rows"]) == (16, 15)
    dense = run_grid(tmp_path / "tsne.csv", tmp_path / "dense.csv", **GRID)
    assert json.loads(sidecar_path(tmp_path / "dense.csv").read_text())["params"]["method"] == "lapjv-dense"
    assert stats["displacement_mean"] <= 1.05 * dense["displacement_mean"]
