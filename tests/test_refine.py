"""FLAS refinement keeps a valid grid (same cells, holes stay holes) and improves neighbourhoods."""
import json

import h5py
import numpy as np
import pytest

from vacancy.common import read_csv, sidecar_path, write_csv
from vacancy.map.grid import (assign, assign_blocks, choose_repair_passes, displacement,
                              grid_shape, run_grid)
from vacancy.map.quality import dpq
from vacancy.common import config_defaults
from vacancy.map.refine import choose_refine, refine, refine_flas

GRID = config_defaults()["grid"]
RADIUS_DECAY = GRID["radius_decay"]
ASSIGN = {**{key: GRID[key] for key in ("method", "block", "dense_max", "holes")},
          "repair_passes": choose_repair_passes(GRID["repair_passes"], "flas")}


def _assert_same_cells(before: np.ndarray, after: np.ndarray, n: int, cols: int, rows: int):
    """One distinct cell per image, inside the grid, and exactly the cells used before."""
    assert after.shape == (n,) and len(set(after.tolist())) == n
    assert after.min() >= 0 and after.max() < cols * rows
    assert set(after.tolist()) == set(before.tolist())  # the empty cells did not move


@pytest.mark.parametrize("holes", ["free", "end"])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 16, 99, 100, 1031])
def test_refine_keeps_one_cell_per_image_and_the_holes(n, holes):
    rng = np.random.default_rng(n)
    features = rng.normal(size=(n, 12))
    cols, rows = grid_shape(n)
    cells = assign_blocks(features[:, :2], cols, rows, block=4, holes=holes,
                          max_passes=ASSIGN["repair_passes"])
    refined = refine_flas(features, cells, cols, rows, RADIUS_DECAY)
    _assert_same_cells(cells, refined, n, cols, rows)
    if holes == "end":  # still the last cells in reading order
        assert sorted(refined.tolist()) == list(range(n))


@pytest.mark.parametrize("cols,rows,n", [(12, 4, 40), (3, 9, 27), (2, 2, 3), (25, 2, 50)])
def test_refine_on_non_square_grids(cols, rows, n):
    rng = np.random.default_rng(cols * rows)
    features = rng.normal(size=(n, 6))
    cells = rng.permutation(cols * rows)[:n]  # holes scattered anywhere
    refined = refine_flas(features, cells, cols, rows, RADIUS_DECAY)
    _assert_same_cells(cells, refined, n, cols, rows)


def test_refine_with_identical_features_still_gives_distinct_cells():
    cols, rows = grid_shape(50)
    cells, _ = assign(np.zeros((50, 2)), cols, rows, **ASSIGN)
    refined = refine_flas(np.zeros((50, 5)), cells, cols, rows, RADIUS_DECAY)
    _assert_same_cells(cells, refined, 50, cols, rows)


def test_a_single_image_stays_on_its_cell():
    assert refine_flas(np.ones((1, 3)), np.array([0]), 1, 1, RADIUS_DECAY).tolist() == [0]


def _clusters_seen_from_two_axes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """30-D features in 12 clusters, and a 2-D map (their first two principal axes) that keeps
    the broad layout but mixes up the near neighbours, as a t-SNE map does at large n."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, 30)) * 3
    label = rng.choice(12, n, p=rng.dirichlet(np.ones(12) * 2))
    features = centres[label] + rng.normal(size=(n, 30))
    centred = features - features.mean(axis=0)
    axes = np.linalg.svd(centred, full_matrices=False)[2][:2]
    return features, centred @ axes.T


@pytest.mark.parametrize("method", ["dense", "blocks"])
def test_refine_raises_dpq_on_a_clustered_case(method):
    features, points = _clusters_seen_from_two_axes(1500, seed=0)
    cols, rows = grid_shape(1500)
    cells, _ = assign(points, cols, rows, method, 8, GRID["dense_max"], GRID["holes"],
                      ASSIGN["repair_passes"])
    refined = refine_flas(features, cells, cols, rows, RADIUS_DECAY)
    before, after = dpq(features, cells, cols), dpq(features, refined, cols)
    assert after >= before + 0.05  # measured: 0.754 -> 0.862 (dense), 0.756 -> 0.863 (blocks)


def test_refine_is_reproducible():
    features, points = _clusters_seen_from_two_axes(400, seed=1)
    cols, rows = grid_shape(400)
    cells, _ = assign(points, cols, rows, **ASSIGN)
    assert np.array_equal(refine_flas(features, cells, cols, rows, RADIUS_DECAY),
                          refine_flas(features, cells, cols, rows, RADIUS_DECAY))


@pytest.mark.parametrize("n,requested,expected", [(100, "auto", "none"), (4000, "auto", "none"),
                                                  (4001, "auto", "flas"), (10, "flas", "flas"),
                                                  (10**6, "none", "none")])
def test_auto_refines_only_above_the_dense_threshold(n, requested, expected):
    assert choose_refine(n, requested, GRID["dense_max"]) == expected


def test_unknown_refine_is_an_error():
    with pytest.raises(ValueError, match="refine"):
        choose_refine(10, "lasso", GRID["dense_max"])
    with pytest.raises(ValueError, match="refine"):
        refine("auto", np.zeros((4, 2)), np.arange(4), 2, 2, RADIUS_DECAY, 2)


def _write_inputs(tmp_path, features, points):
    ids = [f"loc/{i}.jpg" for i in range(len(points))]
    # the PCA file lists the images in another order than the t-SNE map: matched by id
    order = np.random.default_rng(0).permutation(len(ids))
    with h5py.File(tmp_path / "pca.h5", "w") as h5:  # the layout run_pca writes
        h5.create_dataset("ids", data=np.array([ids[i] for i in order], dtype=object),
                          dtype=h5py.string_dtype())
        h5.create_dataset("pca", data=features[order].astype(np.float32))
    write_csv(tmp_path / "tsne.csv", ({"id": i, "x": x, "y": y} for i, (x, y) in zip(ids, points)),
              ["id", "x", "y"])
    return ids


def meta_params(csv_path) -> dict:
    return json.loads(sidecar_path(csv_path).read_text())["params"]


@pytest.mark.parametrize("setting,refine_used,expected", [("auto", "flas", 4), ("auto", "none", 16),
                                                          (0, "flas", 0), (9, "none", 9)])
def test_repair_passes_auto_is_fewer_when_flas_refines(setting, refine_used, expected):
    assert choose_repair_passes(setting, refine_used) == expected


@pytest.mark.parametrize("bad", [-1, "many", 2.5, True])
def test_repair_passes_refuses_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match="repair_passes"):
        choose_repair_passes(bad, "none")


def test_refine_sorts_on_the_first_dims_components_only():
    """grid.refine_dims: columns past the first ``dims`` cannot change the result (noise there
    is ignored), and the same first columns give the same grid."""
    features, points = _clusters_seen_from_two_axes(400, seed=3)
    cols, rows = grid_shape(400)
    cells, _ = assign(points, cols, rows, **{**ASSIGN, "method": "blocks", "block": 8})
    noisy = np.hstack([features, np.random.default_rng(0).normal(size=(400, 30)) * 50])
    first = refine("flas", noisy, cells, cols, rows, RADIUS_DECAY, features.shape[1])
    assert np.array_equal(first, refine("flas", features, cells, cols, rows, RADIUS_DECAY, 1000))
    assert not np.array_equal(first, refine("flas", noisy, cells, cols, rows, RADIUS_DECAY, 1000))
    assert dpq(features, first, cols) > dpq(features, cells, cols)


def test_run_grid_refined_writes_a_valid_grid_and_its_own_displacement(tmp_path):
    features, points = _clusters_seen_from_two_axes(600, seed=2)
    ids = _write_inputs(tmp_path, features, points)
    stats = run_grid(tmp_path / "tsne.csv", tmp_path / "grid.csv", pca_h5=tmp_path / "pca.h5",
                     **{**GRID, "refine": "flas", "block": 8, "dense_max": 100})
    assert meta_params(tmp_path / "grid.csv")["repair_passes"] == 4  # auto, refined
    out = read_csv(tmp_path / "grid.csv")
    assert [r["id"] for r in out] == ids
    cols, rows = grid_shape(600)
    cells = np.array([int(r["row"]) * cols + int(r["col"]) for r in out])
    assert len(set(cells.tolist())) == 600 and cells.max() < cols * rows
    moved = displacement(points, cells, cols, rows)
    meta = json.loads(sidecar_path(tmp_path / "grid.csv").read_text())
    assert meta["displacement_mean"] == pytest.approx(moved.mean())
    assert meta["displacement_p95"] == pytest.approx(np.percentile(moved, 95))
    assert meta["params"]["refine"] == "flas" and meta["params"]["radius_decay"] == RADIUS_DECAY
    assert meta["versions"]["vc_flas"]
    assert stats["assigned_displacement_mean"] < stats["displacement_mean"]
    # the same assignment (same passes), not refined
    unrefined = run_grid(tmp_path / "tsne.csv", tmp_path / "plain.csv",
                         **{**GRID, "refine": "none", "block": 8, "dense_max": 100,
                            "repair_passes": 4})
    assert unrefined["displacement_mean"] == pytest.approx(stats["assigned_displacement_mean"])
    plain = read_csv(tmp_path / "plain.csv")
    plain_cells = np.array([int(r["row"]) * cols + int(r["col"]) for r in plain])
    assert dpq(features, cells, cols) > dpq(features, plain_cells, cols)


def test_run_grid_auto_leaves_small_maps_unrefined(tmp_path):
    features, points = _clusters_seen_from_two_axes(120, seed=3)
    _write_inputs(tmp_path, features, points)
    stats = run_grid(tmp_path / "tsne.csv", tmp_path / "grid.csv", pca_h5=tmp_path / "pca.h5",
                     **{**GRID, "refine": "auto"})
    meta = json.loads(sidecar_path(tmp_path / "grid.csv").read_text())
    assert stats["refine"] == meta["params"]["refine"] == "none"
    assert meta["params"]["requested_refine"] == "auto"
    assert stats["displacement_mean"] == stats["assigned_displacement_mean"]


def test_run_grid_refine_needs_the_pca_vectors(tmp_path):
    features, points = _clusters_seen_from_two_axes(50, seed=4)
    _write_inputs(tmp_path, features, points)
    with pytest.raises(ValueError, match="pca"):
        run_grid(tmp_path / "tsne.csv", tmp_path / "grid.csv", **{**GRID, "refine": "flas"})
