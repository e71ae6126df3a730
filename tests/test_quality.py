"""Grid quality: displacement statistics and DPQ, checked against cases worked out by hand."""
import math

import numpy as np
import pytest

from vacancy.map.grid import grid_shape
from vacancy.map.quality import displacement_stats, dpq, grid_quality, neighbour_curves


def _row_major(cols: int, rows: int) -> np.ndarray:
    return np.arange(cols * rows)


# 2 x 2 grid, 1-D features 0, 1, 2, 3 in reading order:  0 1
#                                                          2 3
# Grid neighbours of each query, nearest first; at equal grid distance the nearer feature first:
#   query 0: 1 (d 1), 2 (d 2) at distance 1, then 3 (d 3) diagonally  -> 1, 2, 3
#   query 1: 0 (d 1), 3 (d 2) at distance 1, then 2 (d 1)            -> 1, 2, 1
#   query 2: 3 (d 1), 0 (d 2) at distance 1, then 1 (d 1)            -> 1, 2, 1
#   query 3: 2 (d 1), 1 (d 2) at distance 1, then 0 (d 3)            -> 1, 2, 3
# D_k(grid) = 1, 3/2, 5/3.  Ideal (nearest features): 1,2,3 / 1,1,2 / 1,1,2 / 1,2,3 so
# D_k(HD) = 1, 5/4, 5/3.  Mean distance 5/3.  Gains: grid 2/5, 1/10, 0; ideal 2/5, 1/4, 0.
FOUR = np.array([[0.0], [1.0], [2.0], [3.0]])


def test_neighbour_curves_of_a_2x2_grid_by_hand():
    grid_curve, ideal_curve = neighbour_curves(FOUR, _row_major(2, 2), cols=2)
    assert grid_curve == pytest.approx([1, 3 / 2, 5 / 3])
    assert ideal_curve == pytest.approx([1, 5 / 4, 5 / 3])


@pytest.mark.parametrize("p", [1, 2, 16])
def test_dpq_of_a_2x2_grid_by_hand(p):
    expected = ((2 / 5) ** p + (1 / 10) ** p) ** (1 / p) / ((2 / 5) ** p + (1 / 4) ** p) ** (1 / p)
    assert dpq(FOUR, _row_major(2, 2), cols=2, p=p) == pytest.approx(expected, rel=1e-12)
    assert dpq(FOUR, _row_major(2, 2), cols=2, p=1) == pytest.approx(10 / 13)


def test_ties_at_equal_grid_distance_go_to_the_nearest_feature_first():
    # Query 2 has 0 (d 2) before 3 (d 1) in reading order; taking it first would give
    # D_1 = (1 + 1 + 2 + 1) / 4 instead of 1.
    grid_curve, _ = neighbour_curves(FOUR, _row_major(2, 2), cols=2)
    assert grid_curve[0] == 1.0


# 3 x 3 grid, 1-D features 0..8 in reading order. With the tie rule, each query's first
# neighbours (grid distance 1) are worked out by hand, nearest feature first:
#   0: 1, 3   1: 0, 2, 4   2: 1, 5   3: 4, 0, 6   4: 3, 5, 1, 7   5: 4, 2, 8   6: 7, 3
#   7: 6, 8, 4   8: 7, 5.   Their first feature distances (the 1-NN on the grid) are all 1,
# and the second ones are 3, 1, 3, 3, 1, 3, 3, 1, 3 (mean 21/9), so D_1 = 1, D_2 = (1 + 21/9)/2.
def test_first_terms_of_a_3x3_grid_by_hand():
    features = np.arange(9.0)[:, None]
    grid_curve, ideal_curve = neighbour_curves(features, _row_major(3, 3), cols=3)
    assert grid_curve[:2] == pytest.approx([1, (1 + 21 / 9) / 2])
    # ideal: 1-NN distance 1 for all; 2-NN 2 for the ends (0, 8), 1 for the others -> 11/9
    assert ideal_curve[:2] == pytest.approx([1, (1 + 11 / 9) / 2])
    # the last term of both is the mean distance over all pairs: 2 * sum_{d=1..8} d (9 - d) / 72
    assert grid_curve[-1] == pytest.approx(ideal_curve[-1]) and ideal_curve[-1] == pytest.approx(10 / 3)


def test_a_perfect_layout_scores_one():
    # 2-D features equal to the cell positions: grid neighbours are the feature neighbours.
    cols, rows = 5, 4
    cells = _row_major(cols, rows)
    features = np.column_stack([cells % cols, cells // cols]).astype(float)
    assert dpq(features, cells, cols) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_a_1d_ordering_on_a_line_scores_one_either_way(order):
    values = np.arange(40.0)[:, None]
    cells = np.arange(40) if order == "sorted" else np.arange(40)[::-1]
    assert dpq(values, cells, cols=40) == pytest.approx(1.0, abs=1e-12)


def test_a_shuffled_line_scores_far_below_a_sorted_one():
    rng = np.random.default_rng(0)
    values = np.arange(400.0)[:, None]
    shuffled = dpq(values, rng.permutation(400), cols=400)
    half_sorted = dpq(values, np.r_[np.arange(200), 200 + rng.permutation(200)], cols=400)
    # Not 0: the tie rule lets a random layout pick the nearer of its two equidistant grid
    # neighbours, which with 1-D features is a real gain at k = 1.
    assert shuffled < 0.35 and 0.6 < half_sorted < 0.9


def test_the_sampled_estimate_approaches_the_exact_value():
    rng = np.random.default_rng(1)
    n = 900
    cols, rows = grid_shape(n)
    features = rng.normal(size=(n, 8))
    order = np.lexsort((features[:, 1], features[:, 0]))  # a half-good layout: sorted by 2 dims
    cells = np.empty(n, dtype=np.int64)
    cells[order] = np.arange(n)
    exact = dpq(features, cells, cols, n_queries=None)
    assert dpq(features, cells, cols, n_queries=n) == exact
    errors = [abs(dpq(features, cells, cols, n_queries=q, seed=s) - exact)
              for q in (50, 400) for s in (1, 2, 3)]
    assert 0.2 < exact < 0.9
    assert max(errors[3:]) < 0.02 and np.mean(errors[3:]) <= np.mean(errors[:3])


def test_empty_cells_are_not_neighbours():
    # Same 4 images as the 2x2 case on a 3x2 grid with the middle column empty: 0 _ 1 / 2 _ 3.
    cells = np.array([0, 2, 3, 5])
    grid_curve, _ = neighbour_curves(FOUR, cells, cols=3)
    # query 0: 2 (d 2) at 1, then 1 (d 1) at 2, then 3 (d 3) at sqrt 5; similar for the others
    assert grid_curve == pytest.approx([(2 + 2 + 2 + 2) / 4, (1.5 + 1.5 + 1.5 + 1.5) / 4, 5 / 3])


def test_degenerate_inputs():
    assert math.isnan(dpq(np.zeros((1, 3)), np.array([0]), cols=1))
    assert dpq(np.ones((6, 3)), np.arange(6), cols=3) == 1.0
    with pytest.raises(ValueError):
        dpq(np.zeros((4, 2)), np.arange(3), cols=2)


def test_displacement_stats_and_ratio_to_dense():
    stats = displacement_stats(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 1.0, 2.0]))
    assert stats["displacement_mean"] == 1.5
    assert stats["displacement_p95"] == pytest.approx(2.85)
    assert stats["ratio_mean"] == pytest.approx(1.5 / 1.0)
    assert stats["ratio_p95"] == pytest.approx(2.85 / 1.85)


def test_grid_quality_reports_both_measures():
    rng = np.random.default_rng(2)
    points = rng.uniform(size=(16, 2))
    cells = np.arange(16)
    stats = grid_quality(points, points, cells, 4, 4, dense_index=cells, p=16)
    assert stats["ratio_mean"] == 1.0 and 0 < stats["dpq16"] <= 1 and stats["dpq_queries"] == 16


def test_dpq_agrees_with_the_authors_package_where_installed():
    metrics = pytest.importorskip("vc_flas.metrics")
    rng = np.random.default_rng(3)
    cols, rows, n = 7, 6, 39
    features = rng.normal(size=(n, 5))
    cells = rng.permutation(cols * rows)[:n]
    grid = np.zeros((rows, cols, 5))
    valid = np.zeros((rows, cols), bool)
    grid[cells // cols, cells % cols] = features
    valid[cells // cols, cells % cols] = True
    reference = metrics.distance_preservation_quality(grid, valid, p=16)
    assert dpq(features, cells, cols, p=16) == pytest.approx(reference, rel=1e-9)
